# -*- test-case-name: tests.test_api_openai -*-
"""
What the pipeline knows of an endpoint, whatever the provider's format.

A text is addressed as a slot, a C{(container, key)} pair inside the parsed
JSON: reading the slots gives the texts, writing them back rewrites the body
in place, whatever else it carries.
"""

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
    @ivar method: the method of its calls; a C{GET} sends no body.
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
    method: bytes = b"POST"

    def pathFor(self, baseURL):
        if self.upstreamPath is None:
            return b"/" + self.name.encode("ascii")
        return self.upstreamPath(baseURL)


def readSlots(slots):
    return tuple(container[key] for container, key in slots)


def writeSlots(slots, texts):
    for (container, key), text in zip(slots, texts):
        container[key] = text
