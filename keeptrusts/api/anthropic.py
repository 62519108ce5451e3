# -*- test-case-name: tests.test_api_anthropic -*-
"""
The Anthropic Messages surface, C{POST /v1/messages} (Claude Code): where
the texts are in requests, answers and named stream events.
"""

import json

from keeptrusts.api.cost import usageTokens
from keeptrusts.api.endpoint import Endpoint
from keeptrusts.api.errors import validationError
from keeptrusts.api.rewrite import (
    EventRewriter, invalidEvent, namedEvent)


def _leaves(container):
    """
    Every string inside a JSON value, as slots (tool inputs are objects).
    """
    items = container.items() if isinstance(container, dict) else enumerate(
        container)
    for key, value in items:
        if isinstance(value, str):
            yield container, key
        elif isinstance(value, (dict, list)):
            yield from _leaves(value)


def _blockSlots(block):
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        yield block, "text"
    elif kind == "tool_use" and isinstance(block.get("input"), (dict, list)):
        yield from _leaves(block["input"])
    elif kind == "tool_result":
        yield from _contentSlots(block, "content")


def _contentSlots(holder, key):
    content = holder.get(key)
    if isinstance(content, str):
        yield holder, key
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                yield from _blockSlots(block)


def _requestSlots(body):
    yield from _contentSlots(body, "system")
    for message in body["messages"]:
        yield from _contentSlots(message, "content")


def _answerSlots(answer):
    if isinstance(answer, dict):
        yield from _contentSlots(answer, "content")


def _validate(body):
    if not isinstance(body.get("max_tokens"), int) or isinstance(
            body.get("max_tokens"), bool):
        raise validationError("'max_tokens' must be an integer")
    _validateCount(body)


def _validateCount(body):
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise validationError("'model' must be a non-empty string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise validationError("'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
                "user", "assistant"):
            raise validationError(
                "'messages[%d]' must be an object with role user or "
                "assistant" % (i,))
        if not isinstance(message.get("content"), (str, list)):
            raise validationError(
                "'messages[%d].content' must be a string or a list" % (i,))
    if not isinstance(body.get("system", ""), (str, list)):
        raise validationError("'system' must be a string or a list")


def usageOf(value):
    """
    Tokens from an answer, a C{message_start} or a C{message_delta}.
    """
    if not isinstance(value, dict):
        return None
    usage = value.get("usage")
    if usage is None and isinstance(value.get("message"), dict):
        usage = value["message"].get("usage")
    return usageTokens(usage, "input_tokens", "output_tokens")


def errorEvent(error):
    return b"event: error\ndata: " + json.dumps({
        "type": "error",
        "error": {"type": error.type, "message": error.message}}).encode(
            "utf-8") + b"\n\n"



# The streamed texts of a content block: an answer's text, a tool call's
# input (JSON, its escapes written plainly before it is read), thinking (the
# block's signature is not read: a thinking that was redacted is refused by
# the provider on the next turn, as a secret should be).  A block's text is
# keyed (index, delta type).
_DELTA_TEXT = {"text_delta": "text", "input_json_delta": "partial_json",
               "thinking_delta": "thinking"}
# A block that starts with its text (content_block_start, message_start):
# its field and the delta type its text continues in.
_BLOCK_TEXT = {"text": ("text", "text_delta"),
               "thinking": ("thinking", "thinking_delta")}
# The keys of a delta event that carry no other text (its delta has its
# type and its text, nothing else).
_PLAIN_EVENT = frozenset(["type", "index", "delta"])


def _blockIndex(payload):
    """
    The block an event is of: its C{index}, 0 when it gives none.

    @raise GatewayError: the index is not an integer: the SDKs would take
        C{"1"} for another block than the gateway does.
    """
    index = payload.get("index")
    if index is None:
        return 0
    if type(index) is not int:
        raise invalidEvent()
    return index


class MessagesRewriter(EventRewriter):
    """
    One scanner per streamed text of a content block; what a block's
    scanners hold when it stops goes out as more deltas just before the
    stop.
    """

    def _rewritePayload(self, name, payload, event):
        kind = payload.get("type")
        tokens = usageOf(payload)
        if tokens is not None:
            self.outcome.tokens = dict(self.outcome.tokens or {}, **tokens)
        index = _blockIndex(payload)
        if kind == "content_block_delta":
            delta = payload.get("delta")
            deltaKind = delta.get("type") if isinstance(delta, dict) else None
            field = _DELTA_TEXT.get(deltaKind) if isinstance(
                deltaKind, str) else None
            if field is not None and isinstance(delta.get(field), str):
                text = delta[field]
                delta[field] = released = self._scanner(
                    (index, deltaKind),
                    deltaKind == "input_json_delta").feed(text)
                other = not (len(delta) == 2
                             and _PLAIN_EVENT.issuperset(payload)) and (
                    self._scanTexts(payload, {(id(delta), field)}))
                if released == text and not other:
                    return None  # the event as it came: no re-encoding
                return namedEvent(b"content_block_delta", payload)
        elif kind == "content_block_start":
            block = payload.get("content_block")
            return self._opening(name or b"content_block_start", payload,
                                 [(index, block)])
        elif kind == "message_start":
            message = payload.get("message")
            blocks = message.get("content") if isinstance(
                message, dict) else None
            return self._opening(name or b"message_start", payload, list(
                enumerate(blocks if isinstance(blocks, list) else ())))
        elif kind in ("content_block_stop", "message_stop"):
            # Its own fields are read too (a stop carries no text).
            held = (self._heldDeltas(index) if kind == "content_block_stop"
                    else self._flush())
            return held + (self._scanOther(name or kind.encode(), payload)
                           or event + b"\n\n")
        return self._scanOther(name or str(kind).encode(), payload)

    def _opening(self, name, payload, blocks):
        """
        Blocks that start with their text: it goes through the scanner the
        block's deltas use (the SDKs add the deltas to it); the event's
        other texts are read whole.
        """
        streamed = set()
        changed = False
        for index, block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            spec = _BLOCK_TEXT.get(kind) if isinstance(kind, str) else None
            if spec is None or not isinstance(block.get(spec[0]), str):
                continue
            field, deltaKind = spec
            streamed.add((id(block), field))
            text = block[field]
            if text:
                block[field] = released = self._scanner(
                    (index, deltaKind)).feed(text)
                changed = changed or released != text
        if self._scanTexts(payload, streamed) or changed:
            return namedEvent(name, payload)
        return None

    def _heldDeltas(self, index):
        self._ended.add(index)  # the block stopped: no more of its texts
        out = []
        for key in sorted(k for k in self._scanners if k[0] == index):
            held = self._endScanner(key).end()
            if held:
                out.append(namedEvent(b"content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": key[1], _DELTA_TEXT[key[1]]: held}}))
        return b"".join(out)

    def _flush(self):
        indexes = sorted(set(key[0] for key in self._scanners))
        return b"".join(self._heldDeltas(index) for index in indexes)


def _messagesPath(baseURL):
    # base_url is https://api.anthropic.com, or ends with /v1 for some.
    return b"/messages" if baseURL.endswith("/v1") else b"/v1/messages"


MESSAGES = Endpoint(
    "messages", _validate, _requestSlots, _answerSlots,
    usage=usageOf, errorEvent=errorEvent, rewriter=MessagesRewriter,
    formats=("anthropic",), upstreamPath=_messagesPath)


def _countTokensPath(baseURL):
    return _messagesPath(baseURL) + b"/count_tokens"


# The prompt goes to the provider to be counted: read like a message's; the
# answer (a number) passes as it is.
COUNT_TOKENS = Endpoint(
    "messages/count_tokens", _validateCount, _requestSlots,
    errorEvent=errorEvent, formats=("anthropic",),
    upstreamPath=_countTokensPath)
