# -*- test-case-name: tests.test_testing -*-
"""
The fake provider's Anthropic endpoints: C{POST /v1/messages}, whole or
streamed, and C{POST /v1/messages/count_tokens}.
"""

from keeptrusts.testing.answers import (
    FILLER, Stream, countTokens, namedEvent, requireBody)
from keeptrusts.testing.script import promptTexts


def messages(provider, received, script):
    body = requireBody(received, "messages")
    ident = "msg_fake%d" % (len(provider.requests),)
    text, pieces = script.compose(received)
    inputTokens = countTokens(promptTexts(body))
    outputTokens = countTokens([text])
    message = {"id": ident, "type": "message", "role": "assistant",
               "model": body.get("model"), "stop_reason": None,
               "stop_sequence": None,
               "usage": {"input_tokens": inputTokens, "output_tokens": 1}}
    if not (body.get("stream") or script.bigStream):
        return dict(message, content=[{"type": "text", "text": text}],
                    stop_reason="end_turn",
                    usage={"input_tokens": inputTokens,
                           "output_tokens": outputTokens})

    def delta(piece):
        return namedEvent(b"content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}})

    head = (namedEvent(b"message_start", {
                "type": "message_start", "message": dict(message, content=[])})
            + namedEvent(b"content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}})
            + namedEvent(b"ping", {"type": "ping"}))
    steps = [delta(piece) for piece in pieces]
    steps[0] = head + steps[0]
    tail = (namedEvent(b"content_block_stop", {
                "type": "content_block_stop", "index": 0})
            + namedEvent(b"message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn",
                          "stop_sequence": None},
                "usage": {"output_tokens": outputTokens}})
            + namedEvent(b"message_stop", {"type": "message_stop"}))
    return Stream(steps, tail, delta(FILLER),
                  b"event: content_block_delta\ndata: {\"type\n\n")


def tokenCount(provider, received, script):
    body = requireBody(received, "messages")
    return {"input_tokens": countTokens(promptTexts(body))}
