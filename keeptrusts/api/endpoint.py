# -*- test-case-name: tests.test_api_openai -*-
"""
What the pipeline knows of an endpoint, whatever the provider's format.

A text is addressed as a slot, a C{(container, key)} pair inside the parsed
JSON: reading the slots gives the texts, writing them back rewrites the body
in place, whatever else it carries.
"""

import re
from collections import deque

import attr


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Endpoint:
    """
    One endpoint's shape: where its texts are, in requests, answers and
    streams.

    @ivar name: the endpoint as events name it, e.g. C{chat/completions}.
    @ivar requestSlots: body -> slots of the prompt texts.
    @ivar answerSlots: answer JSON -> slots of the answer texts.
    @ivar deltaSlots: stream chunk -> C{(choice index, container, key)}.
    @ivar deltaChoice: C{(index, text)} -> a stream chunk's choice carrying
        that text, for text the gateway releases itself.
    @ivar usage: answer or stream event -> C{{"input": n, "output": n}} or
        L{None}.
    @ivar errorEvent: L{GatewayError} -> the bytes of the surface's own
        stream error event.
    @ivar rewriter: the L{EventRewriter} class for its streams.
    @ivar provider: the provider name events record, when the surface
        implies one (C{sourcegraph}); else the target's.
    @ivar formats: the target C{provider}s that speak this endpoint.
    @ivar upstreamPath: a target's C{base_url} -> the path to append to it;
        by default C{/<name>}.
    """

    name: str
    validate: object
    requestSlots: object
    answerSlots: object = None
    deltaSlots: object = None
    deltaChoice: object = None
    usage: object = None
    errorEvent: object = None
    rewriter: object = None
    provider: object = None
    formats: tuple = ("openai", "openai-compatible")
    upstreamPath: object = None

    def pathFor(self, baseURL):
        if self.upstreamPath is None:
            return b"/" + self.name.encode("ascii")
        return self.upstreamPath(baseURL)


def readSlots(slots):
    return tuple(container[key] for container, key in slots)


def writeSlots(slots, texts):
    for (container, key), text in zip(slots, texts):
        container[key] = text


# Strings of a request that are not text anyone wrote: identifiers, names
# of formats and enumerations, and encoded data (base64 media, signed
# reasoning) that a policy could only misread.  Only these keys' own string
# values are left out: what is nested below them is read.
_NOT_TEXT = frozenset([
    "model", "role", "type", "id", "name", "object", "speaker", "status",
    "tool_call_id", "tool_use_id", "call_id", "item_id", "file_id",
    "previous_response_id", "finish_reason", "stop_reason", "stopReason",
    "media_type",
    "mime_type", "detail", "format", "encoding_format", "service_tier",
    "reasoning_effort", "effort", "voice", "tool_choice", "truncation",
    "signature", "encrypted_content"])
# A data URL that is base64 and nothing else; base64 and nothing else.
_DATA_URL = re.compile(r"data:[^,]*;base64,[A-Za-z0-9+/=\r\n]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\r\n]*")


def _notText(node, key, value):
    if key in _NOT_TEXT or _DATA_URL.fullmatch(value):
        return True
    if not isinstance(node, dict):
        return False
    kind = node.get("type")
    # Base64 media: Anthropic's {"type": "base64", "data": ...}, OpenAI's
    # input_audio {"data": ..., "format": "wav"}; and Claude's signed
    # thinking, which its signature seals: the provider refuses it changed.
    return ((key == "data" and (kind == "base64"
                                or set(node) == {"data", "format"})
             and _BASE64.fullmatch(value))
            or (key == "thinking" and kind == "thinking"
                and isinstance(node.get("signature"), str))
            or (key == "thinking" and kind == "thinking_delta")
            or (key == "data" and kind == "redacted_thinking"))


def requestTextSlots(endpoint, body):
    """
    The slots of every text a request carries (L{readRequest}).
    """
    return readRequest(endpoint, body).slots


def answerTextSlots(endpoint, answer):
    """
    The slots of every text an answer carries, as L{requestTextSlots} finds
    a request's: a field the surface does not name (a refusal, a reasoning
    summary, a tool's output) does not reach the client unread.
    """
    return _everyText(endpoint.answerSlots(answer), answer)


def everyText(value):
    """
    The slots of every text in C{value} (parsed JSON), but identifiers,
    enumerations and encoded data.
    """
    return _everyText((), value)


# Not read: an answer's logprobs spell its text out token by token (a text
# that is redacted loses them), and reading each token would cost dear.
_SKIPPED = frozenset(["logprobs", "top_logprobs"])


def _everyText(ownSlots, body):
    slots = list(ownSlots)
    known = {(id(container), key) for container, key in slots}
    queue = deque([body])
    while queue:
        node = queue.popleft()
        for key, value in (node.items() if isinstance(node, dict)
                           else enumerate(node)):
            if isinstance(value, (dict, list)):
                if key not in _SKIPPED:
                    queue.append(value)
            elif (isinstance(value, str) and value
                  and (id(node), key) not in known
                  and not _notText(node, key, value)):
                slots.append((node, key))
    return slots


# Encoded data among the identifiers: never read (they could only be
# misread).
_ENCODED = frozenset(["signature", "encrypted_content"])


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RequestReading:
    """
    What one walk over a request found.

    @ivar slots: the slots of every text it carries: the surface's own, in
        its order, then every other string of the body but identifiers,
        enumerations and encoded data.  A field no surface names (a new one,
        a rare one) is read all the same: what the policies do not see must
        not reach the provider.
    @ivar names: the names it carries, one per line: its object keys and
        the identifiers and enumerations left out of its texts (C{model},
        C{name}, C{id}, ...), but encoded data.  A name cannot be rewritten
        without changing the call: a credential there blocks the request.
    @ivar rewritten: whether the walk wrote the C{\\uXXXX} and C{\\/}
        escapes of tool-call arguments (a JSON text inside a string) plainly:
        the policies read the string, but a translation, a provider or a
        model reads what it decodes to, and a key written C{AKIA\\u0049...}
        would pass unread.  Only those escapes change: the rest of the JSON
        text, numbers and key order included, stays as it came.
    """

    slots: list
    names: str
    rewritten: bool


def readRequest(endpoint, body):
    """
    Walk C{body} once: its texts, its names, its arguments written plainly
    (in place).

    @rtype: L{RequestReading}
    """
    slots = list(endpoint.requestSlots(body))
    known = {(id(container), key) for container, key in slots}
    names = {}
    rewritten = False
    queue = deque([body])
    while queue:
        node = queue.popleft()
        mapping = isinstance(node, dict)
        for key, value in (node.items() if mapping else enumerate(node)):
            if mapping:
                names[key] = None
            if isinstance(value, (dict, list)):
                if key not in _SKIPPED:
                    queue.append(value)
                continue
            if not isinstance(value, str) or not value:
                continue
            if key == "arguments" and ("\\u" in value or "\\/" in value):
                plain = _ESCAPES.sub(_plainEscape, value)
                if plain != value:
                    node[key] = value = plain
                    rewritten = True
            if (id(node), key) in known:
                continue
            if not _notText(node, key, value):
                slots.append((node, key))
            elif (mapping and key in _NOT_TEXT and key not in _ENCODED
                  and not _DATA_URL.fullmatch(value)):
                names[value] = None
    return RequestReading(slots, "\n".join(names), rewritten)


# An escaped backslash (kept, so that what follows it is no escape), a
# \uXXXX escape and the one after it (a surrogate pair), an escaped slash.
_ESCAPES = re.compile(r"\\\\|\\u([0-9a-fA-F]{4})(?:\\u([0-9a-fA-F]{4}))?|\\/")


def _plainEscape(match):
    text = match.group(0)
    if text == "\\\\":
        return text
    if text == "\\/":
        return "/"
    high, low = int(match.group(1), 16), match.group(2)
    if low is not None and 0xD800 <= high < 0xDC00 and (
            0xDC00 <= int(low, 16) < 0xE000):
        return chr(0x10000 + ((high - 0xD800) << 10) + int(low, 16) - 0xDC00)
    return _plainCharacter(high, match.group(1)) + (
        "" if low is None else _plainCharacter(int(low, 16), low))


def _plainCharacter(code, hexDigits):
    # What a JSON string must escape, and a lone surrogate, stay escaped.
    if code < 0x20 or code in (0x22, 0x5C) or 0xD800 <= code < 0xE000:
        return "\\u" + hexDigits
    return chr(code)
