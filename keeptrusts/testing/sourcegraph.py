# -*- test-case-name: tests.test_testing -*-
"""
The fake provider's Sourcegraph endpoints, as Cody calls them: the chat
stream (deltas, or the whole text so far with C{cumulative}) and code
completions.
"""

from keeptrusts.testing.answers import FILLER, Stream, namedEvent, requireBody


def stream(provider, received, script):
    requireBody(received, "messages")
    text, pieces = script.compose(received)

    def completion(payload):
        return namedEvent(b"completion", payload)

    steps = []
    sofar = ""
    for piece in pieces:
        sofar += piece
        steps.append(completion(
            {"completion": sofar, "stopReason": ""} if script.cumulative
            else {"deltaText": piece, "stopReason": ""}))
    last = ({"completion": sofar, "stopReason": "end_turn"}
            if script.cumulative else
            {"deltaText": "", "stopReason": "end_turn"})
    return Stream(steps, completion(last) + b"event: done\ndata: {}\n\n",
                  completion({"deltaText": FILLER, "stopReason": ""}),
                  b"event: completion\ndata: {\"deltaText\n\n")


def code(provider, received, script):
    requireBody(received, "messages")
    text, _ = script.compose(received)
    return {"completion": text, "stopReason": "stop"}

