# -*- test-case-name: tests.test_testing -*-
"""
Fakes shared by the tests: an LLM provider that speaks the OpenAI wire
formats (JSON and SSE streams) and a journal kept in memory.

L{FakeProvider} is a L{Resource} mounted as the root of a L{Site}; the
gateway under test points a target at C{http://127.0.0.1:<port>/v1} (see
L{listenFake}).  What it answers, and how it misbehaves, is a frozen
L{Script} set per test::

    provider = FakeProvider(reactor)
    port, baseURL = listenFake(reactor, provider, self.addCleanup)
    provider.script = Script(chunks=["Hel", "lo"], hold=True)
    ...
    provider.requests[-1].headers["authorization"]

Every timed call goes through the injected clock and is cancelled when the
client goes away or when L{FakeProvider.stop} runs, so trial never sees a
dirty reactor.
"""

import base64
import hashlib
import json
import re
import struct
from numbers import Real
from typing import Any, Callable, Dict, Optional, Tuple, Union

import attr
from twisted.internet import defer
from twisted.internet.error import TimeoutError
from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from keeptrusts.interfaces import IJournal

DEFAULT_ANSWER = "Hello from the fake provider."
DEFAULT_MODELS = ("gpt-fake", "gpt-fake-mini", "text-embedding-fake")
GENESIS_HASH = "0" * 64

_DONE = b"data: [DONE]\n\n"
# Not JSON: the opening of an answer, cut short.
_MALFORMED_JSON = b'{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{'
# One bigStream event carries this much text; about 4 KiB on the wire.
_FILLER = "lorem ipsum " * 340
# bigStream writes at most this much per reactor turn, so a consumer that
# never pushes back cannot make it loop forever inside one write burst.
_BURST = 2 ** 20

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
    @ivar headers: extra response headers, a mapping or pairs.
    @ivar reset: abort the TCP connection instead of answering.
    @ivar resetMidStream: abort the TCP connection after this many stream
        chunks (0: right after the headers); a JSON answer sends its headers
        and half its body, then aborts.
    @ivar hang: never answer; the request stays open until the client
        leaves or L{FakeProvider.stop} cuts it.
    @ivar malformed: a JSON answer that is not JSON; a stream gets a broken
        event after its first chunk.
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


def _tokens(texts):
    # A word count is a good enough stand-in for tokens here.
    return sum(len(text.split()) for text in texts)


def _usage(body, text):
    prompt = _tokens(promptTexts(body))
    completion = _tokens([text])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _event(obj):
    return b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n"


def _vector(item, dimensions):
    # Deterministic per input; k/128 is exact in float32, so the float and
    # base64 encodings carry the same numbers.
    if not isinstance(item, str):
        item = json.dumps(item)
    digest = hashlib.sha256(item.encode("utf-8")).digest()
    return [(digest[i % len(digest)] - 128) / 128.0 for i in range(dimensions)]


class _Refusal(Exception):
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
class _Stream:
    """
    An SSE answer: one entry of C{steps} per chunk (every choice's event for
    that piece), then C{tail} (finish, usage, [DONE]).  C{filler} is what
    bigStream repeats; C{broken} what C{malformed} inserts.
    """

    steps: list
    tail: bytes
    filler: bytes
    broken: bytes


class _Reply:
    """
    One request being answered: its pending calls, whether it is over
    (finished, reset or lost) and what has been written.
    """

    def __init__(self, provider, request, script):
        self.provider = provider
        self.request = request
        self.script = script
        self.over = False
        self.written = 0
        self.producer = None
        self.held = None
        self._closed = False
        self._resetting = False
        self._calls = []
        self._waiters = []
        for name, value in script.headers:
            request.setHeader(name, value)
        request.notifyFinish().addCallbacks(self._done, self._lost)

    def later(self, delay, f, *args):
        """
        Call C{f} after C{delay} seconds unless the reply is over by then.
        """

        def fire():
            self._calls.remove(call)
            if not self.over:
                f(*args)

        call = self.provider._clock.callLater(delay, fire)
        self._calls.append(call)

    def hold(self, resume):
        self.held = resume
        self.provider._wakeHeld()

    def release(self):
        resume, self.held = self.held, None
        if resume is not None and not self.over:
            resume()

    def write(self, data):
        self.written += len(data)
        self.provider.bytesProduced += len(data)
        self.request.write(data)

    def finish(self):
        if not self.over:
            self.over = True
            self.request.finish()

    def sendBytes(self, status, contentType, data):
        self.request.setResponseCode(status)
        self.request.setHeader(b"content-type", contentType)
        self.request.setHeader(b"content-length", b"%d" % (len(data),))
        self.write(data)
        self.finish()

    def sendJSON(self, status, obj):
        self.sendBytes(status, b"application/json", json.dumps(obj).encode("utf-8"))

    def sendCut(self, obj):
        """
        Send the headers and half the body of a JSON answer, then reset.
        """
        data = json.dumps(obj).encode("utf-8")
        self.request.setHeader(b"content-type", b"application/json")
        self.request.setHeader(b"content-length", b"%d" % (len(data),))
        self.write(data[: len(data) // 2])
        self.reset()

    def startStream(self):
        self.request.setHeader(b"content-type", b"text/event-stream")
        self.request.setHeader(b"cache-control", b"no-cache")
        # An empty write sends the headers now, as providers do.
        self.write(b"")

    def reset(self):
        """
        Abort the connection; the loss that follows is ours, not a client
        disconnect.
        """
        if self.over:
            return
        self.over = True
        self._resetting = True
        self._cancelCalls()
        transport = self.request.transport
        # abortConnection drops what the transport still buffers: push the
        # chunks already written to the socket first, so a mid-stream reset
        # cuts the stream after them.
        flush = getattr(transport, "doWrite", None)
        if self.request.startedWriting and flush is not None:
            flush()
        transport.abortConnection()

    def whenDone(self):
        if self._closed:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def _cancelCalls(self):
        calls, self._calls = self._calls, []
        for call in calls:
            call.cancel()

    def _done(self, ignored):
        self._close()

    def _lost(self, reason):
        if not self._resetting:
            self.provider.disconnects += 1
        self._close()

    def _close(self):
        self.over = True
        self._closed = True
        self.held = None
        self._cancelCalls()
        if self.producer is not None:
            self.producer.stopProducing()
        self.provider._forget(self)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)


class _EventSender:
    """
    Send a L{_Stream}'s chunks with the script's pauses, hold, faults.
    """

    def __init__(self, reply, stream):
        self._reply = reply
        self._stream = stream
        self._sent = 0
        self._slept = False

    def start(self):
        self._reply.startStream()
        self._run()

    def _run(self):
        # A loop, not a chain of calls, so a long stream without pauses
        # does not recurse.
        reply, script, steps = self._reply, self._reply.script, self._stream.steps
        while not reply.over:
            if script.resetMidStream is not None and self._sent >= script.resetMidStream:
                reply.reset()
                return
            if self._sent == len(steps):
                if script.bigStream:
                    _BigStream(reply, self._stream, script.bigStream).start()
                else:
                    reply.write(self._stream.tail)
                    reply.finish()
                return
            pause = script.pauseBefore(self._sent)
            if pause > 0 and not self._slept:
                self._slept = True
                reply.later(pause, self._run)
                return
            self._slept = False
            reply.write(steps[self._sent])
            self._sent += 1
            if script.malformed and self._sent == 1:
                reply.write(self._stream.broken)
            if script.hold and self._sent == 1:
                reply.hold(self._run)
                return


@implementer(IPushProducer)
class _BigStream:
    """
    Write filler events until the reply has C{total} body bytes, only while
    the transport is not pushing back; then the tail.
    """

    def __init__(self, reply, stream, total):
        self._reply = reply
        self._stream = stream
        self._total = total
        self._stopped = False
        self._scheduled = False
        self.paused = False

    def start(self):
        self._reply.producer = self
        self._reply.request.registerProducer(self, True)
        self._produce()

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self._produce()

    def stopProducing(self):
        self._stopped = True

    def _produce(self):
        reply, event = self._reply, self._stream.filler
        budget = _BURST
        while not (self.paused or self._stopped or reply.over):
            if reply.written >= self._total:
                reply.producer = None
                reply.request.unregisterProducer()
                reply.write(self._stream.tail)
                reply.finish()
                return
            if budget <= 0:
                if not self._scheduled:
                    self._scheduled = True
                    reply.later(0, self._again)
                return
            reply.write(event)
            budget -= len(event)

    def _again(self):
        self._scheduled = False
        self._produce()


class FakeProvider(Resource):
    """
    An LLM provider speaking the OpenAI formats, for loopback tests.

    Serves C{POST /v1/chat/completions}, C{POST /v1/completions} (both
    streamable), C{POST /v1/embeddings}, C{GET /v1/models} and
    C{GET /v1/models/<id>}; anything else is a 404 with an OpenAI error.

    @ivar script: the L{Script} used by every request, unless one was
        queued with L{enqueue}.
    @ivar models: the model ids C{/v1/models} lists.
    @ivar requests: a L{Received} per request, in arrival order.
    @ivar disconnects: how many clients left before their answer was
        complete.
    @ivar bytesProduced: body bytes written, all requests together.
    """

    isLeaf = True

    def __init__(self, clock, script=None, models=DEFAULT_MODELS):
        """
        @param clock: an L{IReactorTime} for pauses, delays and timestamps.
        """
        Resource.__init__(self)
        self._clock = clock
        self.script = script if script is not None else Script()
        self.models = list(models)
        self.requests = []
        self.disconnects = 0
        self.bytesProduced = 0
        self._queue = []
        self._replies = []
        self._heldWaiters = []
        self._routes = {
            (b"POST", b"/v1/chat/completions"): self._chat,
            (b"POST", b"/v1/completions"): self._completions,
            (b"POST", b"/v1/embeddings"): self._embeddings,
            (b"GET", b"/v1/models"): self._listModels,
            (b"POST", b"/v1/messages"): self._anthropicMessages,
            (b"POST", b"/v1/responses"): self._responses,
            (b"POST", b"/.api/completions/stream"): self._sourcegraphStream,
            (b"POST", b"/.api/completions/code"): self._sourcegraphCode,
        }

    # Controls.

    def enqueue(self, *scripts):
        """
        Use these scripts once each, in order, for the next requests (e.g. a
        500 then a good answer); L{script} again afterwards.
        """
        self._queue.extend(scripts)

    def whenHeld(self):
        """
        @return: a L{Deferred} firing once a reply is held (at once if one
            already is).
        """
        if self.holding:
            return defer.succeed(None)
        d = defer.Deferred()
        self._heldWaiters.append(d)
        return d

    @property
    def holding(self):
        """
        How many replies wait for L{release}.
        """
        return sum(1 for reply in self._replies if reply.held is not None)

    def release(self):
        """
        Let every reply held now carry on.
        """
        for reply in list(self._replies):
            reply.release()

    @property
    def paused(self):
        """
        Whether a bigStream is paused by its transport right now.
        """
        return any(
            reply.producer is not None and reply.producer.paused
            for reply in self._replies
        )

    @property
    def pending(self):
        """
        How many requests are not answered completely yet.
        """
        return len(self._replies)

    def stop(self):
        """
        Cancel every pending call and abort every unfinished reply (held,
        hanging, paused or delayed).

        @return: a L{Deferred} that fires when their connections are gone.
        """
        replies = list(self._replies)
        waiting = [reply.whenDone() for reply in replies]
        for reply in replies:
            reply.reset()
        return defer.gatherResults(waiting)

    # Resource.

    def render(self, request):
        received = _receive(request)
        self.requests.append(received)
        handler = self._route(request)
        if handler is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"application/json")
            message = "Invalid URL (%s %s)" % (received.method, received.path)
            return json.dumps(errorBody(404, message)).encode("utf-8")
        script = self._queue.pop(0) if self._queue else self.script
        reply = _Reply(self, request, script)
        self._replies.append(reply)
        if script.delay > 0:
            reply.later(script.delay, self._answer, reply, handler, received)
        else:
            self._answer(reply, handler, received)
        return NOT_DONE_YET

    def _route(self, request):
        handler = self._routes.get((request.method, request.path))
        if handler is None and request.method == b"GET":
            if request.path.startswith(b"/v1/models/"):
                return self._oneModel
        return handler

    def _answer(self, reply, handler, received):
        script = reply.script
        if script.reset:
            reply.reset()
            return
        if script.hang:
            # Nothing scheduled: only the client or stop() ends it.
            return
        if script.status != 200:
            reply.sendJSON(script.status, errorBody(script.status))
            return
        try:
            answer = handler(received, script)
        except _Refusal as e:
            reply.sendJSON(e.status, e.body)
            return
        if isinstance(answer, _Stream):
            _EventSender(reply, answer).start()
        elif script.hold:
            reply.hold(lambda: self._sendWhole(reply, answer))
        else:
            self._sendWhole(reply, answer)

    def _sendWhole(self, reply, answer):
        script = reply.script
        if script.malformed:
            reply.sendBytes(200, b"application/json", _MALFORMED_JSON)
        elif script.resetMidStream is not None:
            reply.sendCut(answer)
        else:
            reply.sendJSON(200, answer)

    def _forget(self, reply):
        if reply in self._replies:
            self._replies.remove(reply)

    def _wakeHeld(self):
        waiters, self._heldWaiters = self._heldWaiters, []
        for d in waiters:
            d.callback(None)

    # Endpoints: each returns a JSON object or a _Stream.

    def _now(self):
        return int(self._clock.seconds())

    def _chat(self, received, script):
        body = _requireBody(received, "messages")
        ident = "chatcmpl-fake%d" % (len(self.requests),)
        model, created, choices = body.get("model"), self._now(), _choiceCount(body)
        text, pieces = script.compose(received)
        usage = _usage(body, text)
        if not (body.get("stream") or script.bigStream):
            return {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": index,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                    for index in range(choices)
                ],
                "usage": usage,
            }

        def chunk(delta, finish=None, index=0):
            return _event(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": index,
                            "delta": delta,
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                }
            )

        steps = []
        for number, piece in enumerate(pieces):
            delta = {"content": piece}
            if number == 0:
                delta = {"role": "assistant", "content": piece}
            steps.append(b"".join(chunk(delta, index=i) for i in range(choices)))
        tail = [chunk({}, "stop", i) for i in range(choices)]
        if _includeUsage(body):
            tail.append(
                _event(
                    {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        tail.append(_DONE)
        return _Stream(
            steps,
            b"".join(tail),
            chunk({"content": _FILLER}),
            b'data: {"id": "%s", "object": "chat.completion.chunk", "choi\n\n'
            % (ident.encode("ascii"),),
        )

    def _completions(self, received, script):
        body = _requireBody(received, "prompt")
        ident = "cmpl-fake%d" % (len(self.requests),)
        model, created, choices = body.get("model"), self._now(), _choiceCount(body)
        text, pieces = script.compose(received)
        usage = _usage(body, text)

        def choice(piece, finish, index):
            return {"text": piece, "index": index, "logprobs": None, "finish_reason": finish}

        def answer(choiceList, **extra):
            return dict(
                id=ident,
                object="text_completion",
                created=created,
                model=model,
                choices=choiceList,
                **extra
            )

        if not (body.get("stream") or script.bigStream):
            return answer([choice(text, "stop", i) for i in range(choices)], usage=usage)

        def chunk(piece, finish=None, index=0):
            return _event(answer([choice(piece, finish, index)]))

        steps = [b"".join(chunk(piece, index=i) for i in range(choices)) for piece in pieces]
        tail = [chunk("", "stop", i) for i in range(choices)]
        if _includeUsage(body):
            tail.append(_event(answer([], usage=usage)))
        tail.append(_DONE)
        return _Stream(
            steps,
            b"".join(tail),
            chunk(_FILLER),
            b'data: {"id": "%s", "object": "text_comp\n\n' % (ident.encode("ascii"),),
        )

    def _embeddings(self, received, script):
        body = _requireBody(received, "input")
        items = body["input"]
        if not isinstance(items, list) or (items and isinstance(items[0], int)):
            # One string, or one text given as a list of token ids.
            items = [items]
        dimensions = body.get("dimensions") or 8
        base64Wanted = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(items):
            vector = _vector(item, dimensions)
            if base64Wanted:
                packed = struct.pack("<%df" % (len(vector),), *vector)
                vector = base64.b64encode(packed).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = _tokens(promptTexts(body))
        return {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _listModels(self, received, script):
        return {"object": "list", "data": [_model(ident) for ident in self.models]}

    def _oneModel(self, received, script):
        ident = received.path[len("/v1/models/"):]
        if ident not in self.models:
            message = "The model '%s' does not exist" % (ident,)
            raise _Refusal(404, message, "model_not_found")
        return _model(ident)


    def _anthropicMessages(self, received, script):
        body = _requireBody(received, "messages")
        ident = "msg_fake%d" % (len(self.requests),)
        text, pieces = script.compose(received)
        inputTokens = _tokens(promptTexts(body))
        outputTokens = _tokens([text])
        message = {"id": ident, "type": "message", "role": "assistant",
                   "model": body.get("model"), "stop_reason": None,
                   "stop_sequence": None,
                   "usage": {"input_tokens": inputTokens, "output_tokens": 1}}
        if not (body.get("stream") or script.bigStream):
            return dict(message, content=[{"type": "text", "text": text}],
                        stop_reason="end_turn",
                        usage={"input_tokens": inputTokens,
                               "output_tokens": outputTokens})

        def event(name, payload):
            return (b"event: " + name + b"\ndata: " +
                    json.dumps(payload).encode("utf-8") + b"\n\n")

        def delta(piece):
            return event(b"content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}})

        head = (event(b"message_start", {"type": "message_start",
                                         "message": dict(message, content=[])})
                + event(b"content_block_start", {
                    "type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}})
                + event(b"ping", {"type": "ping"}))
        steps = [delta(piece) for piece in pieces]
        steps[0] = head + steps[0]
        tail = (event(b"content_block_stop", {"type": "content_block_stop",
                                              "index": 0})
                + event(b"message_delta", {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn",
                              "stop_sequence": None},
                    "usage": {"output_tokens": outputTokens}})
                + event(b"message_stop", {"type": "message_stop"}))
        return _Stream(steps, tail, delta(_FILLER),
                       b"event: content_block_delta\ndata: {\"type\n\n")

    def _responses(self, received, script):
        body = _requireBody(received, "input")
        ident = "resp_fake%d" % (len(self.requests),)
        text, pieces = script.compose(received)
        inputTexts = promptTexts(body)
        if isinstance(body.get("instructions"), str):
            inputTexts.append(body["instructions"])
        for item in body["input"] if isinstance(body["input"], list) else ():
            for part in (item.get("content") or ()) if isinstance(
                    item, dict) and isinstance(item.get("content"), list) else ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    inputTexts.append(part["text"])
        usage = {"input_tokens": _tokens(inputTexts),
                 "output_tokens": _tokens([text]),
                 "total_tokens": _tokens(inputTexts) + _tokens([text])}
        item = {"id": "msg_" + ident, "type": "message", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text,
                             "annotations": []}]}
        response = {"id": ident, "object": "response",
                    "created_at": self._now(), "status": "completed",
                    "model": body.get("model"), "output": [item],
                    "usage": usage}
        if not (body.get("stream") or script.bigStream):
            return response

        def event(payload):
            return (b"event: " + payload["type"].encode() + b"\ndata: " +
                    json.dumps(payload).encode("utf-8") + b"\n\n")

        def delta(piece):
            return event({"type": "response.output_text.delta",
                          "item_id": item["id"], "output_index": 0,
                          "content_index": 0, "delta": piece})

        started = dict(response, status="in_progress", output=[], usage=None)
        steps = [delta(piece) for piece in pieces]
        steps[0] = event({"type": "response.created",
                          "response": started}) + steps[0]
        tail = (event({"type": "response.output_text.done",
                       "item_id": item["id"], "output_index": 0,
                       "content_index": 0, "text": text})
                + event({"type": "response.output_item.done",
                         "output_index": 0, "item": item})
                + event({"type": "response.completed", "response": response}))
        return _Stream(steps, tail, delta(_FILLER),
                       b"event: response.output_text.delta\ndata: {\n\n")

    def _sourcegraphStream(self, received, script):
        _requireBody(received, "messages")
        text, pieces = script.compose(received)

        def completion(payload):
            return b"event: completion\ndata: " + json.dumps(payload).encode(
                "utf-8") + b"\n\n"

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
        return _Stream(steps, completion(last) + b"event: done\ndata: {}\n\n",
                       completion({"deltaText": _FILLER, "stopReason": ""}),
                       b"event: completion\ndata: {\"deltaText\n\n")

    def _sourcegraphCode(self, received, script):
        _requireBody(received, "messages")
        text, _ = script.compose(received)
        return {"completion": text, "stopReason": "stop"}


def _model(ident):
    return {"id": ident, "object": "model", "created": 0, "owned_by": "fake"}


def _requireBody(received, key):
    body = received.json
    if not isinstance(body, dict):
        raise _Refusal(400, "We could not parse the JSON body of your request.")
    if key not in body:
        raise _Refusal(400, "Missing required parameter: '%s'." % (key,))
    return body


def _choiceCount(body):
    n = body.get("n")
    return n if isinstance(n, int) and 1 <= n <= 16 else 1


def _includeUsage(body):
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _receive(request):
    if request.content is not None:
        request.content.seek(0)
        raw = request.content.read()
    else:
        raw = b""
    headers = {
        name.decode("latin-1").lower(): values[-1].decode("latin-1")
        for name, values in request.requestHeaders.getAllRawHeaders()
    }
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Received(
        method=request.method.decode("latin-1"),
        uri=request.uri.decode("latin-1"),
        path=request.path.decode("latin-1"),
        headers=headers,
        body=raw,
        json=parsed,
    )


def listenFake(reactor, provider, addCleanup=None):
    """
    Serve C{provider} on an ephemeral port of 127.0.0.1.

    @param reactor: an L{IReactorTCP}.
    @param addCleanup: e.g. C{TestCase.addCleanup}; when given, the port
        is closed and L{FakeProvider.stop} runs after the test.
    @return: the listening port and the base URL
        C{http://127.0.0.1:<port>/v1}.
    """
    site = Site(provider)
    site.noisy = False
    # Its access log would print what the gateway forwarded (queries
    # included) among the gateway's own log lines.
    site.log = lambda request: None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    if addCleanup is not None:
        addCleanup(port.stopListening)
        # Cleanups run last-in first-out: unfinished replies go first.
        addCleanup(provider.stop)
    return port, "http://127.0.0.1:%d/v1" % (port.getHost().port,)


def waitUntil(clock, predicate, timeout=5.0, interval=0.005):
    """
    Poll C{predicate} on the clock.

    @return: a L{Deferred} firing with the first true value of
        C{predicate()}, or failing with L{TimeoutError} after C{timeout}
        seconds.  Cancelling it cancels the polling.
    """
    deadline = clock.seconds() + timeout
    state = {"call": None}

    def cancel(d):
        if state["call"] is not None and state["call"].active():
            state["call"].cancel()

    d = defer.Deferred(cancel)

    def check():
        state["call"] = None
        value = predicate()
        if value:
            d.callback(value)
        elif clock.seconds() >= deadline:
            d.errback(TimeoutError("condition not met in %s seconds" % (timeout,)))
        else:
            state["call"] = clock.callLater(interval, check)

    check()
    return d


def recordHash(record):
    """
    The SHA-256 (hex) of a journal record's canonical JSON, C{hash} left out.
    """
    body = {key: value for key, value in record.items() if key != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@implementer(IJournal)
class MemoryJournal:
    """
    A journal kept in a list, hash-chained like the real one.

    @ivar records: the records, as they would read back from disk (a JSON
        round trip), with C{seq} from 1, C{prev_hash} and C{hash}.
    @ivar closed: whether L{close} was called; appending after it fails.
    """

    def __init__(self):
        self.records = []
        self.closed = False
        self._waiters = []

    def append(self, record):
        if self.closed:
            return defer.fail(RuntimeError("the journal is closed"))
        try:
            entry = {key: value for key, value in record.items() if key != "hash"}
            entry["seq"] = len(self.records) + 1
            entry["prev_hash"] = self.records[-1]["hash"] if self.records else GENESIS_HASH
            # The round trip copies the record and fails now, as the real
            # journal would, on anything JSON cannot hold.
            entry = json.loads(json.dumps(entry, ensure_ascii=False))
            entry["hash"] = recordHash(entry)
        except Exception:
            return defer.fail()
        self.records.append(entry)
        self._wake()
        return defer.succeed(None)

    def close(self):
        self.closed = True
        return defer.succeed(None)

    def whenRecords(self, count):
        """
        @return: a L{Deferred} firing with the list of records once there
            are at least C{count}.
        """
        d = defer.Deferred()
        self._waiters.append((count, d))
        self._wake()
        return d

    def _wake(self):
        ready = [(n, d) for n, d in self._waiters if len(self.records) >= n]
        self._waiters = [(n, d) for n, d in self._waiters if len(self.records) < n]
        for n, d in ready:
            d.callback(list(self.records))
