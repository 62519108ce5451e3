# -*- test-case-name: tests.test_api_responses -*-
"""
The OpenAI Responses surface, C{POST /v1/responses} (Codex): texts in
C{instructions} and C{input}, answers in C{output[].content[]}, streamed
as C{response.output_text.delta} events.

A stream repeats the whole text in its closing events (C{...text.done},
C{...content_part.done}, C{...output_item.done}, C{response.completed});
each is rewritten to the redacted text the client was sent, so the
unredacted text never follows the deltas.
"""

import json

from keeptrusts.api.cost import usageTokens
from keeptrusts.api.endpoint import Endpoint
from keeptrusts.api.errors import validationError
from keeptrusts.api.rewrite import EventRewriter, indexOf, namedEvent

_TEXT_PARTS = ("input_text", "output_text", "text")


def _contentSlots(holder, key):
    content = holder.get(key)
    if isinstance(content, str):
        yield holder, key
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS \
                    and isinstance(part.get("text"), str):
                yield part, "text"


def _requestSlots(body):
    if isinstance(body.get("instructions"), str):
        yield body, "instructions"
    items = body.get("input")
    if isinstance(items, str):
        yield body, "input"
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        yield from _contentSlots(item, "content")
        if isinstance(item.get("output"), str):  # function_call_output
            yield item, "output"
        if isinstance(item.get("arguments"), str):  # function_call
            yield item, "arguments"


def _outputSlots(response):
    output = response.get("output") if isinstance(response, dict) else None
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict):
            yield from _contentSlots(item, "content")
            field = _callField(item)
            if field is not None:
                yield item, field


def _validate(body):
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise validationError("'model' must be a non-empty string")
    if not isinstance(body.get("input"), (str, list)):
        raise validationError("'input' must be a string or a list")
    if not isinstance(body.get("instructions", ""), (str, type(None))):
        raise validationError("'instructions' must be a string")


def usageOf(value):
    if not isinstance(value, dict):
        return None
    usage = value.get("usage")
    if usage is None and isinstance(value.get("response"), dict):
        usage = value["response"].get("usage")
    return usageTokens(usage, "input_tokens", "output_tokens",
                       both=True)


def errorEvent(error):
    return b"event: error\ndata: " + json.dumps({
        "type": "error", "code": error.code or error.type,
        "message": error.message, "param": None}).encode("utf-8") + b"\n\n"



# An output item's texts besides its content: a tool call's arguments (or a
# custom tool's input), streamed by events of their own.
_CALL_FIELDS = {"function_call": "arguments", "custom_tool_call": "input"}
_CALL_DELTAS = {"arguments": "response.function_call_arguments.delta",
                "input": "response.custom_tool_call_input.delta"}
_CALL_DONES = {"response.function_call_arguments.done": "arguments",
               "response.custom_tool_call_input.done": "input"}
_DELTA_FIELDS = {kind: field for field, kind in _CALL_DELTAS.items()}
# Events that repeat the request as the provider had it (instructions,
# tools; read on the way in), before any output: not read again.
_ECHOES = frozenset(["response.created", "response.in_progress",
                     "response.queued"])
# The closing events that repeat a whole response.
_RESPONSE_ENDS = ("response.completed", "response.incomplete",
                  "response.failed")


class ResponsesRewriter(EventRewriter):
    """
    One scanner per text: C{(output_index, content_index)} for a message's
    content, C{(output_index, "arguments")} for a call's; the released text
    of each is kept to rewrite the closing events.
    """

    def __init__(self, outcome, endpoint, newScanner):
        EventRewriter.__init__(self, outcome, endpoint, newScanner)
        self._released = {}

    def _rewritePayload(self, name, payload, event):
        kind = payload.get("type")
        named = (kind.encode("utf-8", "surrogatepass")
                 if isinstance(kind, str) else None)
        if named is None or name not in (None, named):
            # No type, or another than its name says (a client may go by
            # either): its texts read whole.
            return self._scanOther(name, payload)
        name = named
        output = indexOf(payload, "output_index")
        key = (output, indexOf(payload, "content_index"))
        field = _DELTA_FIELDS.get(kind)
        if field is not None:
            key = (output, field)
        if (kind == "response.output_text.delta" or field is not None) \
                and isinstance(payload.get("delta"), str):
            text = payload["delta"]
            released = self._release(key, self._scanner(key).feed(text))
            if released == text:
                return None  # the event as it came: no re-encoding
            payload["delta"] = released
            _logprobsIfChanged(payload, text, released)
            return namedEvent(name, payload)
        if kind == "response.output_text.done":
            held = self._heldDelta(payload, key)
            self._replace(payload, "text", key)
            return held + namedEvent(name, payload)
        field = _CALL_DONES.get(kind)
        if field is not None:
            key = (output, field)
            held = self._heldDelta(payload, key)
            self._replace(payload, field, key)
            return held + namedEvent(name, payload)
        if kind == "response.content_part.done" and isinstance(
                payload.get("part"), dict):
            held = self._heldDelta(payload, key)
            self._replace(payload["part"], "text", key)
            return held + namedEvent(name, payload)
        if kind == "response.output_item.done" and isinstance(
                payload.get("item"), dict):
            held = self._flushAll(payload, output)
            self._replaceTexts(payload["item"], output)
            return held + namedEvent(name, payload)
        if kind in _RESPONSE_ENDS and isinstance(
                payload.get("response"), dict):
            tokens = usageOf(payload)
            if tokens is not None:
                self.outcome.tokens = tokens
            held = self._flushAll(payload)
            items = payload["response"].get("output")
            for index, item in enumerate(items if isinstance(items, list)
                                         else ()):
                if isinstance(item, dict):
                    self._replaceTexts(item, index)
            return held + namedEvent(name, payload)
        if kind in _ECHOES:
            return None
        return self._scanOther(name, payload)

    def _release(self, key, text):
        self._released[key] = self._released.get(key, "") + text
        return text

    def _heldDelta(self, template, key):
        scanner = self._scanners.pop(key, None)
        held = scanner.end() if scanner is not None else ""
        if not held:
            return b""
        kind = _CALL_DELTAS.get(key[1], "response.output_text.delta")
        payload = {k: template[k] for k in ("item_id",) if k in template}
        payload.update(type=kind, output_index=key[0])
        if kind == "response.output_text.delta":
            payload["content_index"] = key[1]
        payload["delta"] = self._release(key, held)
        return namedEvent(kind.encode(), payload)

    def _flushAll(self, template, output=None):
        """
        What the scanners (of one output item, or all) still hold.
        """
        keys = sorted((k for k in self._scanners
                       if output is None or k[0] == output), key=_order)
        return b"".join(self._heldDelta(template, key) for key in keys)

    def _replaceTexts(self, item, output):
        for contentIndex, (part, textKey) in enumerate(
                _contentSlots(item, "content")):
            self._replace(part, textKey, (output, contentIndex))
        field = _callField(item)
        if field is not None:
            self._replace(item, field, (output, field))

    def _replace(self, holder, field, key):
        """
        Put the text the client was sent for C{key} in C{holder[field]}
        (a closing event's copy); a changed text loses its logprobs.
        """
        original = holder.get(field)
        if isinstance(original, str) or key in self._released:
            holder[field] = self._textFor(key, original)
            _logprobsIfChanged(holder, original, holder[field])

    def _textFor(self, key, original):
        """
        The text the client was sent for C{key}; a text that came only in
        a closing event is scanned whole.
        """
        if key not in self._released and isinstance(original, str):
            self._released[key] = self._scanWhole(original)
        return self._released.get(key, "")

    def _flush(self):
        return self._flushAll({})


def _callField(item):
    field = _CALL_FIELDS.get(item.get("type")) if isinstance(
        item.get("type"), str) else None
    return field if isinstance(item.get(field), str) else None


def _logprobsIfChanged(holder, original, sent):
    # Their tokens would spell out what was taken.
    if sent != original and holder.get("logprobs"):
        holder["logprobs"] = []


def _order(key):
    # Content indexes (numbers) before call fields (names).
    return (key[0], isinstance(key[1], str), key[1])


RESPONSES = Endpoint(
    "responses", _validate, _requestSlots, _outputSlots,
    usage=usageOf, errorEvent=errorEvent, rewriter=ResponsesRewriter)
