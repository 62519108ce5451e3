# -*- test-case-name: tests.test_api_sourcegraph,tests.test_proxy_intercept,tests.test_api_routes -*-
"""
The Sourcegraph (Cody) surface: C{/.api/completions/stream} (chat) and
C{/.api/completions/code} (autocomplete), reached through the forward proxy.

Requests carry C{messages: [{speaker, text}]}.  Streams are C{event:
completion} events whose data holds either the whole completion so far
(older api-versions: C{completion}) or a piece of it (C{deltaText}), then
C{event: done}.  In the cumulative form the gateway sends the redacted text
released so far, so an unredacted prefix is never sent again.
"""

import json

from keeptrusts.api.endpoint import Endpoint
from keeptrusts.api.errors import validationError
from keeptrusts.api.rewrite import EventRewriter, namedEvent

PROVIDER = "sourcegraph"


def _validate(body):
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise validationError("'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(
                message.get("speaker"), str):
            raise validationError(
                "'messages[%d]' must be an object with a 'speaker'" % (i,))


def _requestSlots(body):
    for message in body["messages"]:
        if isinstance(message.get("text"), str):
            yield message, "text"


def _answerSlots(answer):
    if isinstance(answer, dict) and isinstance(answer.get("completion"), str):
        yield answer, "completion"


def errorEvent(error):
    return b"event: error\ndata: " + json.dumps(
        {"error": error.message}).encode("utf-8") + b"\n\n"


class CompletionRewriter(EventRewriter):
    """
    One streamed text, in either form.

    @ivar _seen: the cumulative text the provider sent so far.
    @ivar _released: the redacted text the client has so far.
    """

    _seen = ""
    _released = ""
    _cumulative = None
    _template = None

    def _rewritePayload(self, name, payload, event):
        if name == b"done":
            return self._flush() + (self._scanOther(name, payload)
                                    or event + b"\n\n")
        delta = payload.get("deltaText")
        whole = payload.get("completion")
        if isinstance(delta, str):
            self._cumulative = False
            released = self._scanner(0).feed(delta)
            unchanged = released == delta
            payload["deltaText"] = released
        elif isinstance(whole, str):
            self._cumulative = True
            fresh = whole[len(self._seen):]
            self._seen = whole
            released = self._scanner(0).feed(fresh)
            unchanged = True
        else:
            return self._scanOther(name or b"completion", payload)
        self._released += released
        if isinstance(whole, str):
            unchanged = unchanged and self._released == whole
            payload["completion"] = self._released
        self._template = payload
        if unchanged:
            return None  # the event as it came: no re-encoding
        return namedEvent(name or b"completion", payload)

    def _flush(self):
        scanner = self._scanners.pop(0, None)
        held = scanner.end() if scanner is not None else ""
        if not held:
            return b""
        self._released += held
        payload = dict(self._template or {})
        if self._cumulative:
            payload["completion"] = self._released
        else:
            payload["deltaText"] = held
            if "completion" in payload:
                payload["completion"] = self._released
        return namedEvent(b"completion", payload)


def _endpoint(name):
    return Endpoint(name, _validate, _requestSlots, _answerSlots,
                    errorEvent=errorEvent, rewriter=CompletionRewriter,
                    usage=lambda answer: None, provider=PROVIDER)


ENDPOINTS = {e.name: e for e in [_endpoint("completions/stream"),
                                 _endpoint("completions/code")]}
