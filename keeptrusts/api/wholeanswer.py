# -*- test-case-name: tests.test_api -*-
"""
A whole (not streamed) answer as the policies read it: parsed so that no
other reader can read it otherwise, every text of it found, and written
anew once they changed it.
"""

import json

from keeptrusts.api.texts import readAnswer
from keeptrusts.api.errors import GatewayError
from keeptrusts.api.rewrite import forgetLogprobs
from keeptrusts.api.strictjson import DuplicateKey, loadsStrict
from keeptrusts.api.translate import answerToChat

_NOT_JSON = object()


def readWholeAnswer(endpoint, data, ok, translated):
    """
    Read the answer C{data} (bytes) of a call to C{endpoint}.

    @param ok: whether it is a success (2xx): only then must it be the
        surface's own (a JSON object).
    @param translated: whether it is an Anthropic answer to be given as a
        chat completion.
    @return: C{(answer, data, slots, names)}: the answer for
        L{redactedAnswer}, the bytes to pass on when no text changes, the
        slots of its texts, its names (L{readAnswer}).
    @raise GatewayError: a success that is no JSON object (502).
    """
    try:
        answer = loadsStrict(data)
    except DuplicateKey:
        # Readers differ on which value counts: what goes on is what the
        # policies read (the last), written anew.
        answer = json.loads(data)
        data = json.dumps(answer).encode("utf-8")
    except (ValueError, RecursionError):
        answer = _NOT_JSON
    surface = ok and endpoint.answerSlots is not None
    if surface and not isinstance(answer, dict):
        raise GatewayError(502, "upstream_error",
                           "the provider's answer is not a JSON object")
    if translated:
        answer = answerToChat(answer)
        data = json.dumps(answer).encode("utf-8")
    if isinstance(answer, (dict, list)):
        # An answer of the surface's, or an error or another call's answer,
        # of whatever JSON: every text read.
        reading = readAnswer(endpoint, answer, own=surface)
        if reading.rewritten:
            data = json.dumps(answer).encode("utf-8")
        return answer, data, reading.slots, reading.names
    if isinstance(answer, str) or answer is _NOT_JSON:
        # JSON that is one string, or no JSON (text, HTML, an error sent
        # as a stream; small, it is read whole): its text.
        whole = _Whole(answer, data)
        return whole, data, [(whole.box, 0)], ()
    return answer, data, [], ()  # a number, true, null


def redactedAnswer(answer):
    """
    The bytes of an answer of L{readWholeAnswer} whose slots the policies
    rewrote; a text that changed loses its logprobs.
    """
    if isinstance(answer, _Whole):
        return answer.encoded()
    forgetLogprobs(answer)
    return json.dumps(answer).encode("utf-8")


class _Whole:
    """
    An answer read as one text: a JSON string, or what is no JSON at all
    (its bytes as UTF-8, any other byte kept as it came).
    """

    def __init__(self, answer, data):
        self.json = answer is not _NOT_JSON
        self.box = [answer if self.json else data.decode(
            "utf-8", "surrogateescape")]

    def encoded(self):
        if self.json:
            return json.dumps(self.box[0]).encode("utf-8")
        return self.box[0].encode("utf-8", "surrogateescape")
