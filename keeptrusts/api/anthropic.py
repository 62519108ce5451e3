# -*- test-case-name: tests.test_api_anthropic -*-
"""
The Anthropic Messages surface, C{POST /v1/messages} (Claude Code): where
the texts are in requests, answers and named stream events.
"""

import json

from keeptrusts.api.cost import usageTokens
from keeptrusts.api.endpoint import Endpoint
from keeptrusts.api.errors import validationError
from keeptrusts.api.rewrite import EventRewriter, namedEvent


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
# input (JSON, scanned as the text it is).  Thinking is passed as it is:
# its signature seals it, and a changed one is refused on the next turn.
_DELTA_TEXT = {"text_delta": "text", "input_json_delta": "partial_json"}


class MessagesRewriter(EventRewriter):
    """
    One scanner per text content block; what a scanner holds when its
    block stops goes out as one more delta just before the stop.
    """

    def __init__(self, *args):
        EventRewriter.__init__(self, *args)
        # The delta type of each block's text, for what is released later.
        self._kinds = {}

    def _rewritePayload(self, name, payload, event):
        kind = payload.get("type")
        tokens = usageOf(payload)
        if tokens is not None:
            self.outcome.tokens = dict(self.outcome.tokens or {}, **tokens)
        index = payload.get("index", 0)
        if not isinstance(index, int):
            index = 0
        if kind == "content_block_delta":
            delta = payload.get("delta")
            deltaKind = delta.get("type") if isinstance(delta, dict) else None
            field = _DELTA_TEXT.get(deltaKind) if isinstance(
                deltaKind, str) else None
            if field is not None and isinstance(delta.get(field), str):
                self._kinds[index] = deltaKind
                text = delta[field]
                delta[field] = released = self._scanner(index).feed(text)
                if released == text:
                    return None  # the event as it came: no re-encoding
                return namedEvent(b"content_block_delta", payload)
        elif kind in ("content_block_stop", "message_stop"):
            # Its own fields are read too (a stop carries no text).
            held = (self._heldDelta(index) if kind == "content_block_stop"
                    else self._flush())
            return held + (self._scanOther(name or kind.encode(), payload)
                           or event + b"\n\n")
        return self._scanOther(name or str(kind).encode(), payload)

    def _heldDelta(self, index):
        scanner = self._scanners.pop(index, None)
        held = scanner.end() if scanner is not None else ""
        if not held:
            return b""
        kind = self._kinds.get(index, "text_delta")
        return namedEvent(b"content_block_delta", {
            "type": "content_block_delta", "index": index,
            "delta": {"type": kind, _DELTA_TEXT[kind]: held}})

    def _flush(self):
        return b"".join(self._heldDelta(index)
                        for index in sorted(list(self._scanners)))


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
