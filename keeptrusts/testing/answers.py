# -*- test-case-name: tests.test_testing -*-
"""
What an endpoint of the fake provider returns, and the pieces the
providers' formats share.

An endpoint is C{endpoint(provider, received, script)}: it returns a JSON
object (sent whole) or a L{Stream} (sent event by event), or raises
L{Refusal}.
"""

import json

import attr

from keeptrusts.testing.script import errorBody, promptTexts

DONE = b"data: [DONE]\n\n"
# One bigStream event carries this much text; about 4 KiB on the wire.
FILLER = "lorem ipsum " * 340


class Refusal(Exception):
    """
    The request cannot be answered: an OpenAI error with this status.
    """

    def __init__(self, status, message, code=None):
        Exception.__init__(self, status, message)
        self.status = status
        self.body = errorBody(status, message)
        if code is not None:
            self.body["error"]["code"] = code


@attr.s(slots=True, auto_attribs=True)
class Stream:
    """
    An SSE answer: one entry of C{steps} per chunk (every choice's event for
    that piece), then C{tail} (finish, usage, [DONE]).  C{filler} is what
    bigStream repeats; C{broken} what C{malformed} inserts.
    """

    steps: list
    tail: bytes
    filler: bytes
    broken: bytes


def requireBody(received, key):
    body = received.json
    if not isinstance(body, dict):
        raise Refusal(400, "We could not parse the JSON body of your request.")
    if key not in body:
        raise Refusal(400, "Missing required parameter: '%s'." % (key,))
    return body


def countTokens(texts):
    # A word count is a good enough stand-in for tokens here.
    return sum(len(text.split()) for text in texts)


def chatUsage(body, text):
    prompt = countTokens(promptTexts(body))
    completion = countTokens([text])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def event(obj):
    return b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n"


def namedEvent(name, payload):
    """
    An SSE event with an C{event:} line, as Anthropic and Sourcegraph send.
    """
    return (b"event: " + name + b"\ndata: "
            + json.dumps(payload).encode("utf-8") + b"\n\n")
