# -*- test-case-name: tests.test_api -*-
"""
The gateway's own errors: one JSON envelope (DESIGN.md section 4), and its
in-stream form for answers that already started.
"""

import json

from twisted.web.http import RESPONSES
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

# Twisted does not know every phrase of the statuses we answer with.
_PHRASES = {422: b"Unprocessable Entity", 413: b"Payload Too Large"}


class GatewayError(Exception):
    """
    An error the gateway answers itself.
    """

    def __init__(self, status, type, message, code=None, policy=None,
                 headers=()):
        Exception.__init__(self, message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.policy = policy
        self.headers = tuple(headers)

    def envelope(self):
        return {"error": {"type": self.type, "message": self.message,
                          "code": self.code, "policy": self.policy}}

    def body(self):
        return json.dumps(self.envelope()).encode("utf-8")


def validationError(message, status=422):
    return GatewayError(status, "validation_error", message)


def upstreamError(message):
    return GatewayError(502, "upstream_error", message)


def upstreamTimeout(message):
    return GatewayError(504, "upstream_timeout", message)


def writeError(request, error):
    """
    Answer C{request} with C{error}'s envelope; the caller finishes it.
    """
    body = error.body()
    request.setResponseCode(error.status, _PHRASES.get(
        error.status, RESPONSES.get(error.status, b"Error")))
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % (len(body),))
    for name, value in error.headers:
        request.setHeader(name, value)
    request.write(body)


class ErrorResource(Resource):
    """
    Answers every request with one L{GatewayError}, in its envelope.
    """

    isLeaf = True

    def __init__(self, error):
        Resource.__init__(self)
        self._error = error

    def render(self, request):
        writeError(request, self._error)
        request.finish()
        return NOT_DONE_YET
