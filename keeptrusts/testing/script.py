# -*- test-case-name: tests.test_testing -*-
"""
What the fake provider answers and how it misbehaves (L{Script}), and what
it was asked (L{Received}).
"""

import re
from numbers import Real
from typing import Any, Callable, Dict, Optional, Tuple, Union

import attr

DEFAULT_ANSWER = "Hello from the fake provider."

_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _floats(value):
    """
    Accept one pause for every chunk or a sequence of pauses, chunk by chunk.
    """
    if isinstance(value, Real):
        return float(value)
    return tuple(float(each) for each in value)


def _optionalTuple(value):
    return None if value is None else tuple(value)


def _headerPairs(value):
    items = value.items() if hasattr(value, "items") else value
    return tuple((str(name), str(header)) for name, header in items)



@attr.s(frozen=True, slots=True, auto_attribs=True, kw_only=True)
class Script:
    """
    How L{FakeProvider} answers, and how it misbehaves.  A frozen value:
    change it with C{attr.evolve} or make a new one.

    @ivar answer: the answer text; or a callable taking the L{Received}
        request and returning the text (see L{echoPrompt}).  When L{None},
        the joined C{chunks}, or L{DEFAULT_ANSWER}.
    @ivar chunks: the text pieces of a stream, one event each; by default
        the answer split before each run of spaces.
    @ivar pauses: seconds to wait (on the clock) before each stream chunk:
        one number for every chunk, or one per chunk (missing ones are 0).
    @ivar delay: seconds to wait before answering at all (before headers).
    @ivar hold: a stream sends its first chunk, then waits for
        L{FakeProvider.release}; a JSON answer waits whole.
    @ivar status: anything but 200 answers that status with an OpenAI
        error body (L{errorBody}).
    @ivar headers: extra response headers, a mapping or pairs; a
        C{Content-Type} among them replaces the answer's own.
    @ivar reset: abort the TCP connection instead of answering.
    @ivar resetMidStream: abort the TCP connection after this many stream
        chunks (0: right after the headers); a JSON answer sends its headers
        and half its body, then aborts.
    @ivar hang: never answer; the request stays open until the client
        leaves or L{FakeProvider.stop} cuts it.
    @ivar malformed: a JSON answer that is not JSON; a stream gets a broken
        event after its first chunk.
    @ivar usage: the C{usage} object an OpenAI chat or completions answer
        carries (whole, or in a stream's usage chunk) instead of the
        counted one: odd figures, for tests.
    @ivar logprobs: what each choice of a whole OpenAI chat answer carries
        as its C{logprobs}.
    @ivar bigStream: answer every (chat or legacy) completion as a stream of
        about this many body bytes, produced as fast as the transport takes them, pausing
        when it pushes back (see L{FakeProvider.bytesProduced},
        L{FakeProvider.paused}).
    """

    answer: Union[None, str, Callable[["Received"], str]] = None
    chunks: Optional[Tuple[str, ...]] = attr.ib(default=None, converter=_optionalTuple)
    pauses: Union[float, Tuple[float, ...]] = attr.ib(default=0.0, converter=_floats)
    delay: float = 0.0
    hold: bool = False
    status: int = 200
    headers: Tuple[Tuple[str, str], ...] = attr.ib(default=(), converter=_headerPairs)
    reset: bool = False
    resetMidStream: Optional[int] = None
    hang: bool = False
    malformed: bool = False
    cumulative: bool = False
    bigStream: Optional[int] = None
    usage: Any = None
    logprobs: Any = None

    def pauseBefore(self, index):
        """
        @return: the seconds to wait before stream chunk C{index}.
        """
        if isinstance(self.pauses, tuple):
            return self.pauses[index] if index < len(self.pauses) else 0.0
        return self.pauses

    def compose(self, received):
        """
        @return: the whole answer text and its stream pieces (at least one,
            since the first chunk carries the role).
        """
        if callable(self.answer):
            text = self.answer(received)
        elif self.answer is not None:
            text = self.answer
        elif self.chunks is not None:
            text = "".join(self.chunks)
        else:
            text = DEFAULT_ANSWER
        pieces = list(self.chunks) if self.chunks is not None else _split(text)
        return text, pieces or [""]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Received:
    """
    One request as the provider got it.

    @ivar headers: lower-case header names to their last value.
    @ivar body: the raw body.
    @ivar json: the parsed body, or L{None} when it is empty or not JSON.
    """

    method: str
    uri: str
    path: str
    headers: Dict[str, str]
    body: bytes
    json: Any


def errorBody(status, message=None):
    """
    The OpenAI error object the fake answers with C{status}.
    """
    kind, code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    if message is None:
        message = "The fake provider answered %d." % (status,)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def promptTexts(body):
    """
    The texts of a request body, in order: an Anthropic C{system}, message
    contents (plain or C{text} parts; Sourcegraph's C{text}), C{prompt},
    C{input}.
    """
    if not isinstance(body, dict):
        return []
    texts = []
    for message in body.get("messages") or ():
        if isinstance(message, dict) and isinstance(message.get("text"), str):
            texts.append(message["text"])  # Sourcegraph: {speaker, text}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    system = body.get("system")
    if isinstance(system, str):
        texts.insert(0, system)
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(each for each in value if isinstance(each, str))
    return texts


def echoPrompt(received):
    """
    An answer for L{Script.answer}: the last text of the request, so a test
    sees what the provider was given (e.g. the redacted prompt).
    """
    texts = promptTexts(received.json)
    return texts[-1] if texts else ""


def _split(text):
    # Keep the spaces with the word that follows, as providers do.
    return re.findall(r"\s*\S+|\s+$", text)

