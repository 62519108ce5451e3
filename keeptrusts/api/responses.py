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
from keeptrusts.api.rewrite import EventRewriter

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


def _event(name, payload):
    return (b"event: " + name + b"\ndata: " +
            json.dumps(payload, separators=(",", ":")).encode("utf-8") +
            b"\n\n")


class ResponsesRewriter(EventRewriter):
    """
    One scanner per C{(output_index, content_index)}; the released text of
    each is kept to rewrite the closing events.
    """

    def __init__(self, outcome, endpoint, newScanner):
        EventRewriter.__init__(self, outcome, endpoint, newScanner)
        self._released = {}

    def _rewritePayload(self, name, payload, event):
        if not isinstance(payload, dict):
            return None
        kind = payload.get("type")
        key = (payload.get("output_index", 0), payload.get("content_index", 0))
        if kind == "response.output_text.delta" and isinstance(
                payload.get("delta"), str):
            payload["delta"] = self._release(key, self._scanner(key).feed(
                payload["delta"]))
            return _event(name or kind.encode(), payload)
        if kind == "response.output_text.done":
            held = self._heldDelta(payload, key)
            payload["text"] = self._textFor(key, payload.get("text"))
            return held + _event(name or kind.encode(), payload)
        if kind == "response.content_part.done" and isinstance(
                payload.get("part"), dict):
            return self._closing(name, payload, payload["part"], key)
        if kind == "response.output_item.done" and isinstance(
                payload.get("item"), dict):
            return self._closing(name, payload, payload["item"], key,
                                 "content")
        if kind == "response.completed" and isinstance(
                payload.get("response"), dict):
            tokens = usageOf(payload)
            if tokens is not None:
                self.outcome.tokens = tokens
            held = self._flushAll(payload)
            for index, item in enumerate(payload["response"].get("output")
                                         or ()):
                if isinstance(item, dict):
                    self._replaceTexts(item, "content", index)
            return held + _event(name or kind.encode(), payload)
        return None

    def _release(self, key, text):
        self._released[key] = self._released.get(key, "") + text
        return text

    def _heldDelta(self, template, key):
        scanner = self._scanners.pop(key, None)
        held = scanner.end() if scanner is not None else ""
        if not held:
            return b""
        payload = {k: template[k] for k in ("item_id", "output_index",
                                            "content_index") if k in template}
        payload.update(type="response.output_text.delta",
                       delta=self._release(key, held))
        return _event(b"response.output_text.delta", payload)

    def _flushAll(self, template):
        return b"".join(self._heldDelta(dict(template, output_index=o,
                                             content_index=c), (o, c))
                        for o, c in sorted(list(self._scanners)))

    def _closing(self, name, payload, holder, key, field=None):
        held = self._heldDelta(payload, key)
        if field is None:
            if isinstance(holder.get("text"), str):
                holder["text"] = self._textFor(key, holder["text"])
        else:
            self._replaceTexts(holder, field, key[0])
        return held + _event(name or payload["type"].encode(), payload)

    def _replaceTexts(self, holder, field, outputIndex):
        for contentIndex, (part, textKey) in enumerate(
                _contentSlots(holder, field)):
            part[textKey] = self._textFor((outputIndex, contentIndex),
                                          part[textKey])

    def _textFor(self, key, original):
        """
        The text the client was sent for C{key}; a text that came only in
        a closing event is scanned whole.
        """
        if key not in self._released and isinstance(original, str):
            scanner = self._newScanner()
            self._allScanners.append(scanner)
            self._released[key] = scanner.feed(original) + scanner.end()
        return self._released.get(key, "")

    def _flush(self):
        return self._flushAll({})


RESPONSES = Endpoint(
    "responses", _validate, _requestSlots, _outputSlots,
    usage=usageOf, errorEvent=errorEvent, rewriter=ResponsesRewriter)
