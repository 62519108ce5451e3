# -*- test-case-name: tests.test_api_responses -*-
"""
What the events of an OpenAI Responses stream hold, as
L{keeptrusts.api.responsestream} reads them: the families of its streamed
texts and the fields and parts that carry them, the echoes and the closing
events, where a text sits in an output item; and the usage that an answer
or a closing event reports.
"""

from keeptrusts.api.cost import usageTokens
from keeptrusts.api.rewrite import indexOf


def usageOf(value):
    if not isinstance(value, dict):
        return None
    usage = value.get("usage")
    if usage is None and isinstance(value.get("response"), dict):
        usage = value["response"].get("usage")
    return usageTokens(usage, "input_tokens", "output_tokens",
                       both=True)


# The streamed texts, each of a family (its delta event's type without
# ".delta"): a message's text, a refusal, reasoning and its summary, a
# call's arguments or input, an interpreter's code, an audio transcript.
# A text is keyed (output_index, family, content_index or summary_index).
TEXT = "response.output_text"
SUMMARY = "response.reasoning_summary_text"
# Families whose text is JSON (a call's arguments): their escapes are
# written plainly before they are read.
JSON_FAMILIES = frozenset(["response.function_call_arguments",
                           "response.mcp_call_arguments"])
# Deltas that are no text (audio, base64): read whole, event by event.
NOT_TEXT_DELTAS = frozenset(["response.audio.delta",
                             "response.output_audio.delta"])
# The field of a done event (and of an item) that repeats a family's text.
DONE_FIELDS = ("text", "refusal", "arguments", "input", "code",
               "transcript")
# A content part's family and text field, by its type.
PARTS = {"output_text": (TEXT, "text"), "text": (TEXT, "text"),
         "input_text": (TEXT, "text"),
         "refusal": ("response.refusal", "refusal"),
         "reasoning_text": ("response.reasoning_text", "text"),
         "summary_text": (SUMMARY, "text")}
# An output item's own text (not in parts), by the item's type.
_ITEM_FIELDS = {
    "function_call": ("response.function_call_arguments", "arguments"),
    "custom_tool_call": ("response.custom_tool_call_input", "input"),
    "mcp_call": ("response.mcp_call_arguments", "arguments"),
    "code_interpreter_call": ("response.code_interpreter_call_code",
                              "code")}
# The keys of a delta event that carry no text but its delta.
PLAIN_DELTA = frozenset(["type", "item_id", "output_index", "content_index",
                         "summary_index", "delta", "sequence_number",
                         "logprobs", "obfuscation"])
# Events that repeat the response as it stands (the request's instructions
# and tools, an output so far): read, each text once however often it is
# repeated, and not counted as answer text.
ECHOES = frozenset(["response.created", "response.in_progress",
                    "response.queued"])
# The closing events that repeat a whole response.
RESPONSE_ENDS = ("response.completed", "response.incomplete",
                 "response.failed")

# Families of an item's own text (no content index in their events).
ITEM_FAMILIES = frozenset(family for family, _ in _ITEM_FIELDS.values())


def subIndex(family, payload):
    """
    A streamed text's place in its output item: C{summary_index} for a
    reasoning summary, C{content_index} for the others.
    """
    return indexOf(payload, "summary_index" if family == SUMMARY
                   else "content_index")


def streamSlots(item, output):
    """
    The texts of an output item that its deltas stream:
    C{(holder, field, key)}.
    """
    content = item.get("content")
    if isinstance(content, str) and item.get("type") == "message":
        yield item, "content", (output, TEXT, 0)
    for name in ("content", "summary"):
        parts = item.get(name)
        for position, part in enumerate(parts if isinstance(parts, list)
                                        else ()):
            kind = part.get("type") if isinstance(part, dict) else None
            spec = PARTS.get(kind) if isinstance(kind, str) else None
            if spec is not None and isinstance(part.get(spec[1]), str):
                yield part, spec[1], (output, spec[0], position)
    kind = item.get("type")
    spec = _ITEM_FIELDS.get(kind) if isinstance(kind, str) else None
    if spec is not None and isinstance(item.get(spec[1]), str):
        yield item, spec[1], (output, spec[0], 0)
