"""
Tests for L{keeptrusts.testing}: the fake provider over real loopback TCP,
its controls, and the memory journal.
"""

import base64
import hashlib
import json
import struct

import attr
from treq.client import HTTPClient
from twisted.internet import defer, reactor, task, threads
from twisted.internet.error import TimeoutError
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from zope.interface.verify import verifyObject

from keeptrusts.interfaces import IJournal
from keeptrusts.testing import (
    DEFAULT_ANSWER,
    DEFAULT_MODELS,
    GENESIS_HASH,
    FakeProvider,
    MemoryJournal,
    Script,
    echoPrompt,
    errorBody,
    listenFake,
    promptTexts,
    recordHash,
    waitUntil,
)

try:
    import openai
except ImportError:  # pragma: no cover
    openai = None

CHAT = {"model": "gpt-fake", "messages": [{"role": "user", "content": "Say hi"}]}


def sseData(body):
    """
    The data fields of an SSE body, in order; it must end with a blank line.
    """
    events = body.split(b"\n\n")
    if events[-1] != b"":
        raise ValueError("the stream does not end with a blank line: %r" % (body[-40:],))
    data = []
    for event in events[:-1]:
        if not event.startswith(b"data: "):
            raise ValueError("not a data event: %r" % (event,))
        data.append(event[len(b"data: "):])
    return data


def sseJSON(body):
    """
    The events of an OpenAI stream, decoded; it must end with [DONE].
    """
    data = sseData(body)
    if data[-1] != b"[DONE]":
        raise ValueError("no [DONE] at the end")
    return [json.loads(each) for each in data[:-1]]


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class Collector(Protocol):
    """
    Keep a streamed body (or only count it); C{done} fires with the
    exception that ended the body (L{ResponseDone} when complete).

    @ivar pauseAtOnce: pause the transport at the first body bytes, like a
        client that stops reading.
    """

    def __init__(self, keep=True, pauseAtOnce=False):
        self.keep = keep
        self.pauseAtOnce = pauseAtOnce
        self.size = 0
        self.chunks = []
        self.done = defer.Deferred()

    @property
    def body(self):
        return b"".join(self.chunks)

    def dataReceived(self, data):
        # Not in connectionMade: deliverBody resumes the transport after it.
        if self.pauseAtOnce and not self.size:
            self.transport.pauseProducing()
        self.size += len(data)
        if self.keep:
            self.chunks.append(data)
        else:
            # Only the end matters: keep what ends the stream.
            self.chunks = [(b"".join(self.chunks) + data)[-64:]]

    def connectionLost(self, reason):
        self.done.callback(reason.value)


class LoopbackTestCase(TestCase):
    """
    A fake provider on 127.0.0.1 and an HTTP client pooled for the test.
    """

    # Whether the provider times its chunks on a Clock; TCP stays real.
    useClock = False

    def setUp(self):
        self.pool = HTTPConnectionPool(reactor)
        self.addCleanup(self.pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=self.pool)
        self.http = HTTPClient(self.agent)
        self.clock = Clock() if self.useClock else reactor
        self.provider = FakeProvider(self.clock)
        self.port, self.baseURL = listenFake(reactor, self.provider, self.addCleanup)

    def url(self, path):
        return self.baseURL + path

    def post(self, path, body, **kwargs):
        return self.http.post(self.url(path), json=body, **kwargs)

    @defer.inlineCallbacks
    def postJSON(self, path, body, status=200):
        response = yield self.post(path, body)
        self.assertEqual(response.code, status)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"application/json"]
        )
        answer = yield response.json()
        return answer

    @defer.inlineCallbacks
    def postStream(self, path, body, collector=None):
        """
        POST and start receiving the body into a L{Collector}.

        @return: the response and the collector.
        """
        response = yield self.post(path, body, unbuffered=True)
        collector = collector if collector is not None else Collector()
        response.deliverBody(collector)
        return response, collector


class ChatTests(LoopbackTestCase):
    """
    C{POST /v1/chat/completions}, whole and streamed.
    """

    @defer.inlineCallbacks
    def test_answer(self):
        """
        A chat answer has the OpenAI shape, the request's model and the
        scripted text.
        """
        answer = yield self.postJSON("/chat/completions", CHAT)
        self.assertEqual(answer["id"], "chatcmpl-fake1")
        self.assertEqual(answer["object"], "chat.completion")
        self.assertIsInstance(answer["created"], int)
        self.assertEqual(answer["model"], "gpt-fake")
        self.assertEqual(
            answer["choices"],
            [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": DEFAULT_ANSWER},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
        )
        usage = answer["usage"]
        self.assertEqual(usage["prompt_tokens"], 2)
        self.assertEqual(usage["completion_tokens"], len(DEFAULT_ANSWER.split()))
        self.assertEqual(
            usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"]
        )

    @defer.inlineCallbacks
    def test_answerComputed(self):
        """
        A callable answer sees the request: L{echoPrompt} sends the last
        message back; C{n} gives that many choices.
        """
        self.provider.script = Script(answer=echoPrompt)
        body = dict(CHAT, n=2, messages=[{"role": "user", "content": "echo me"}])
        answer = yield self.postJSON("/chat/completions", body)
        self.assertEqual(
            [(c["index"], c["message"]["content"]) for c in answer["choices"]],
            [(0, "echo me"), (1, "echo me")],
        )

    @defer.inlineCallbacks
    def test_answerFromChunks(self):
        """
        Without an answer, the whole answer is the chunks joined.
        """
        self.provider.script = Script(chunks=["Hel", "lo"])
        answer = yield self.postJSON("/chat/completions", CHAT)
        self.assertEqual(answer["choices"][0]["message"]["content"], "Hello")

    @defer.inlineCallbacks
    def test_stream(self):
        """
        A stream is C{text/event-stream}: one chunk per piece, the first
        with the role, a finish chunk, a usage chunk when asked, [DONE].
        """
        self.provider.script = Script(chunks=["Hel", "lo", " world"])
        body = dict(CHAT, stream=True, stream_options={"include_usage": True})
        response, collector = yield self.postStream("/chat/completions", body)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/event-stream"]
        )
        reason = yield collector.done
        self.assertIsInstance(reason, ResponseDone)
        events = sseJSON(collector.body)
        self.assertEqual(
            {(e["id"], e["object"], e["model"]) for e in events},
            {("chatcmpl-fake1", "chat.completion.chunk", "gpt-fake")},
        )
        deltas = [e["choices"][0]["delta"] for e in events[:3]]
        self.assertEqual(
            deltas,
            [
                {"role": "assistant", "content": "Hel"},
                {"content": "lo"},
                {"content": " world"},
            ],
        )
        self.assertEqual(events[3]["choices"][0]["finish_reason"], "stop")
        self.assertEqual(events[3]["choices"][0]["delta"], {})
        self.assertEqual(events[4]["choices"], [])
        self.assertEqual(
            events[4]["usage"],
            {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
        )
        self.assertEqual(len(events), 5)

    @defer.inlineCallbacks
    def test_streamWithoutUsage(self):
        """
        Without C{include_usage} there is no usage chunk; the default answer
        is split into words.
        """
        response, collector = yield self.postStream(
            "/chat/completions", dict(CHAT, stream=True)
        )
        yield collector.done
        events = sseJSON(collector.body)
        self.assertNotIn("usage", events[-1])
        self.assertEqual(events[-1]["choices"][0]["finish_reason"], "stop")
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
        self.assertEqual(text, DEFAULT_ANSWER)
        self.assertEqual(len(events), len(DEFAULT_ANSWER.split()) + 1)

    @defer.inlineCallbacks
    def test_streamChoices(self):
        """
        With C{n}, every piece has one chunk per choice, by index.
        """
        self.provider.script = Script(chunks=["a", "b"])
        response, collector = yield self.postStream(
            "/chat/completions", dict(CHAT, stream=True, n=2)
        )
        yield collector.done
        events = sseJSON(collector.body)
        self.assertEqual(
            [(e["choices"][0]["index"], e["choices"][0]["delta"].get("content")) for e in events],
            [(0, "a"), (1, "a"), (0, "b"), (1, "b"), (0, None), (1, None)],
        )

    @defer.inlineCallbacks
    def test_badBody(self):
        """
        A body that is not JSON gets a 400 with an OpenAI error.
        """
        response = yield self.http.post(self.url("/chat/completions"), data=b"{nope")
        self.assertEqual(response.code, 400)
        answer = yield response.json()
        self.assertEqual(answer["error"]["type"], "invalid_request_error")


class OtherEndpointTests(LoopbackTestCase):
    """
    Legacy completions, embeddings, models, unknown paths.
    """

    @defer.inlineCallbacks
    def test_completion(self):
        """
        A legacy completion carries its text in C{choices[].text}.
        """
        self.provider.script = Script(answer="done.")
        body = {"model": "gpt-fake", "prompt": "Say it"}
        answer = yield self.postJSON("/completions", body)
        self.assertEqual(answer["object"], "text_completion")
        self.assertEqual(answer["id"], "cmpl-fake1")
        self.assertEqual(
            answer["choices"],
            [{"text": "done.", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        )
        self.assertEqual(answer["usage"]["total_tokens"], 3)

    @defer.inlineCallbacks
    def test_completionStream(self):
        """
        A legacy stream carries text pieces, a finish chunk, usage, [DONE].
        """
        self.provider.script = Script(chunks=["a", "b"])
        body = {
            "model": "gpt-fake",
            "prompt": ["x"],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        response, collector = yield self.postStream("/completions", body)
        yield collector.done
        events = sseJSON(collector.body)
        self.assertEqual(
            [(e["choices"][0]["text"], e["choices"][0]["finish_reason"]) for e in events[:3]],
            [("a", None), ("b", None), ("", "stop")],
        )
        self.assertEqual(events[3]["choices"], [])
        self.assertEqual(events[3]["usage"]["prompt_tokens"], 1)

    @defer.inlineCallbacks
    def test_embeddings(self):
        """
        Each input has a small deterministic vector; base64 carries the
        same numbers as float32 (the openai SDK asks for base64).
        """
        body = {"model": "text-embedding-fake", "input": ["one", "two words"]}
        answer = yield self.postJSON("/embeddings", body)
        self.assertEqual(answer["object"], "list")
        self.assertEqual(answer["model"], "text-embedding-fake")
        self.assertEqual(answer["usage"], {"prompt_tokens": 3, "total_tokens": 3})
        self.assertEqual(
            [(d["object"], d["index"]) for d in answer["data"]],
            [("embedding", 0), ("embedding", 1)],
        )
        vectors = [d["embedding"] for d in answer["data"]]
        self.assertEqual(len(vectors[0]), 8)
        self.assertNotEqual(vectors[0], vectors[1])
        self.assertTrue(all(-1 <= x < 1 for x in vectors[0]))

        again = yield self.postJSON(
            "/embeddings", dict(body, input="one", encoding_format="base64")
        )
        packed = base64.b64decode(again["data"][0]["embedding"])
        self.assertEqual(list(struct.unpack("<8f", packed)), vectors[0])

    @defer.inlineCallbacks
    def test_models(self):
        """
        C{/v1/models} lists the configured models; one can be fetched.
        """
        self.provider.models = ["gpt-a", "gpt-b"]
        response = yield self.http.get(self.url("/models"))
        answer = yield response.json()
        self.assertEqual(
            answer,
            {
                "object": "list",
                "data": [
                    {"id": "gpt-a", "object": "model", "created": 0, "owned_by": "fake"},
                    {"id": "gpt-b", "object": "model", "created": 0, "owned_by": "fake"},
                ],
            },
        )
        response = yield self.http.get(self.url("/models/gpt-b"))
        answer = yield response.json()
        self.assertEqual(answer["id"], "gpt-b")
        response = yield self.http.get(self.url("/models/gpt-z"))
        self.assertEqual(response.code, 404)
        answer = yield response.json()
        self.assertEqual(answer["error"]["code"], "model_not_found")

    @defer.inlineCallbacks
    def test_unknownPath(self):
        """
        Unknown paths (and known paths with another method) are 404s with
        an OpenAI error body; they are recorded too.
        """
        answer = yield self.postJSON("/nothing", {}, status=404)
        self.assertEqual(
            answer,
            {
                "error": {
                    "message": "Invalid URL (POST /v1/nothing)",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        )
        response = yield self.http.get(self.url("/chat/completions"))
        self.assertEqual(response.code, 404)
        yield response.content()
        self.assertEqual(
            [(r.method, r.path) for r in self.provider.requests],
            [("POST", "/v1/nothing"), ("GET", "/v1/chat/completions")],
        )


class RecordingTests(LoopbackTestCase):
    """
    What the provider received.
    """

    @defer.inlineCallbacks
    def test_received(self):
        """
        Method, path, query, lower-case headers (last value), raw and parsed
        body are kept per request.
        """
        response = yield self.http.post(
            self.url("/chat/completions?x=1"),
            json=CHAT,
            headers={"Authorization": ["Bearer one", "Bearer sk-fake"], "X-User-ID": "dev1"},
        )
        yield response.content()
        [received] = self.provider.requests
        self.assertEqual(received.method, "POST")
        self.assertEqual(received.path, "/v1/chat/completions")
        self.assertEqual(received.uri, "/v1/chat/completions?x=1")
        self.assertEqual(received.headers["authorization"], "Bearer sk-fake")
        self.assertEqual(received.headers["x-user-id"], "dev1")
        self.assertEqual(received.json, CHAT)
        self.assertEqual(json.loads(received.body), CHAT)
        self.assertEqual(echoPrompt(received), "Say hi")

    @defer.inlineCallbacks
    def test_receivedRaw(self):
        """
        A body that is not JSON is kept raw, with C{json} L{None}.
        """
        response = yield self.http.post(self.url("/embeddings"), data=b"\xffraw")
        yield response.content()
        [received] = self.provider.requests
        self.assertEqual((received.body, received.json), (b"\xffraw", None))


class FaultTests(LoopbackTestCase):
    """
    Status, reset, malformed, hang, disconnects, enqueue.
    """

    @defer.inlineCallbacks
    def test_status(self):
        """
        C{status} answers that status with an OpenAI error body, even for a
        stream, with the script's extra headers.
        """
        self.provider.script = Script(status=429, headers={"Retry-After": "3"})
        response = yield self.post("/chat/completions", dict(CHAT, stream=True))
        self.assertEqual(response.code, 429)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"3"])
        answer = yield response.json()
        self.assertEqual(answer, errorBody(429))
        self.assertEqual(answer["error"]["code"], "rate_limit_exceeded")

        self.provider.script = Script(status=500)
        answer = yield self.postJSON("/chat/completions", CHAT, status=500)
        self.assertEqual(answer["error"]["type"], "server_error")

    @defer.inlineCallbacks
    def test_enqueue(self):
        """
        Queued scripts serve one request each, then the standing script.
        """
        self.provider.enqueue(Script(status=500), Script(answer="second"))
        yield self.postJSON("/chat/completions", CHAT, status=500)
        answer = yield self.postJSON("/chat/completions", CHAT)
        self.assertEqual(answer["choices"][0]["message"]["content"], "second")
        answer = yield self.postJSON("/chat/completions", CHAT)
        self.assertEqual(answer["choices"][0]["message"]["content"], DEFAULT_ANSWER)

    @defer.inlineCallbacks
    def test_reset(self):
        """
        C{reset} aborts the connection before any response: the client gets
        a connection error.  The request was received; that loss is not
        counted as a client disconnect.
        """
        self.provider.script = Script(reset=True)
        yield self.assertFailure(self.post("/chat/completions", CHAT), ResponseNeverReceived)
        self.assertEqual(len(self.provider.requests), 1)
        yield waitUntil(reactor, lambda: self.provider.pending == 0)
        self.assertEqual(self.provider.disconnects, 0)

    @defer.inlineCallbacks
    def test_resetMidStream(self):
        """
        C{resetMidStream} sends that many chunks, then aborts: the client
        has them, then a failed body, no [DONE].
        """
        self.provider.script = Script(chunks=["one", "two", "three"], resetMidStream=2)
        response, collector = yield self.postStream("/chat/completions", dict(CHAT, stream=True))
        reason = yield collector.done
        self.assertIsInstance(reason, ResponseFailed)
        data = sseData(collector.body)
        self.assertEqual(
            [json.loads(d)["choices"][0]["delta"]["content"] for d in data], ["one", "two"]
        )
        self.assertEqual(self.provider.disconnects, 0)

    @defer.inlineCallbacks
    def test_resetMidJSON(self):
        """
        C{resetMidStream} on a JSON answer: headers and half the body, then
        the connection is cut.
        """
        self.provider.script = Script(resetMidStream=0)
        response = yield self.post("/chat/completions", CHAT)
        self.assertEqual(response.code, 200)
        yield self.assertFailure(response.content(), ResponseFailed)

    @defer.inlineCallbacks
    def test_malformed(self):
        """
        C{malformed}: a JSON answer that does not parse; a stream with a
        broken event after its first chunk.
        """
        self.provider.script = Script(malformed=True, chunks=["a", "b"])
        response = yield self.post("/chat/completions", CHAT)
        self.assertEqual(response.code, 200)
        content = yield response.content()
        self.assertRaises(ValueError, json.loads, content)

        response, collector = yield self.postStream("/chat/completions", dict(CHAT, stream=True))
        yield collector.done
        data = sseData(collector.body)
        self.assertEqual(json.loads(data[0])["choices"][0]["delta"]["content"], "a")
        self.assertRaises(ValueError, json.loads, data[1])
        self.assertEqual(data[-1], b"[DONE]")

    @defer.inlineCallbacks
    def test_hangThenClientLeaves(self):
        """
        C{hang} never answers; when the client gives up, the provider
        counts a disconnect and forgets the request.
        """
        self.provider.script = Script(hang=True)
        d = self.post("/chat/completions", CHAT)
        yield waitUntil(reactor, lambda: self.provider.pending == 1)
        d.cancel()
        yield self.assertFailure(d, ResponseNeverReceived)
        yield waitUntil(reactor, lambda: self.provider.disconnects == 1)
        self.assertEqual(self.provider.pending, 0)

    @defer.inlineCallbacks
    def test_stopCutsHang(self):
        """
        L{FakeProvider.stop} aborts a hanging request; its Deferred fires
        once the connection is gone; that is not a client disconnect.
        """
        self.provider.script = Script(hang=True)
        d = self.post("/chat/completions", CHAT)
        yield waitUntil(reactor, lambda: self.provider.pending == 1)
        yield self.provider.stop()
        self.assertEqual(self.provider.pending, 0)
        yield self.assertFailure(d, ResponseNeverReceived)
        self.assertEqual(self.provider.disconnects, 0)


class TimingTests(LoopbackTestCase):
    """
    Pauses, delay and hold, on an injected clock where it matters.
    """

    useClock = True

    def contents(self, collector):
        return [json.loads(d)["choices"][0]["delta"].get("content") for d in sseData(collector.body)]

    @defer.inlineCallbacks
    def test_pauses(self):
        """
        C{pauses} waits on the clock before each chunk; headers go first.
        """
        self.provider.script = Script(chunks=["a", "b"], pauses=(1.0, 2.0))
        response, collector = yield self.postStream("/chat/completions", dict(CHAT, stream=True))
        self.assertEqual(response.code, 200)
        yield sleep(0.05)
        self.assertEqual(collector.size, 0)
        self.clock.advance(1.0)
        yield waitUntil(reactor, lambda: collector.size)
        self.assertEqual(self.contents(collector), ["a"])
        self.clock.advance(1.9)
        yield sleep(0.05)
        self.assertEqual(self.contents(collector), ["a"])
        self.clock.advance(0.1)
        reason = yield collector.done
        self.assertIsInstance(reason, ResponseDone)
        self.assertEqual(sseData(collector.body)[-1], b"[DONE]")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_delay(self):
        """
        C{delay} holds back the whole answer, headers included.
        """
        self.provider.script = Script(delay=5)
        d = self.postJSON("/chat/completions", CHAT)
        yield waitUntil(reactor, lambda: self.provider.requests)
        yield sleep(0.05)
        self.assertNoResult(d)
        self.clock.advance(5)
        answer = yield d
        self.assertEqual(answer["choices"][0]["message"]["content"], DEFAULT_ANSWER)

    @defer.inlineCallbacks
    def test_hold(self):
        """
        C{hold}: the first chunk arrives while the provider holds the rest,
        which follows only after L{FakeProvider.release}.
        """
        self.provider.script = Script(chunks=["Hel", "lo", " world"], hold=True)
        held = self.provider.whenHeld()
        response, collector = yield self.postStream("/chat/completions", dict(CHAT, stream=True))
        yield held
        self.assertEqual(self.provider.holding, 1)
        yield waitUntil(reactor, lambda: collector.size)
        yield sleep(0.05)
        self.assertEqual(self.contents(collector), ["Hel"])
        self.assertNoResult(collector.done)
        self.provider.release()
        self.assertEqual(self.provider.holding, 0)
        reason = yield collector.done
        self.assertIsInstance(reason, ResponseDone)
        events = sseJSON(collector.body)
        self.assertEqual(
            [e["choices"][0]["delta"].get("content") for e in events],
            ["Hel", "lo", " world", None],
        )

    @defer.inlineCallbacks
    def test_holdJSON(self):
        """
        C{hold} on a JSON answer holds all of it until the release.
        """
        self.provider.script = Script(hold=True)
        d = self.postJSON("/chat/completions", CHAT)
        yield self.provider.whenHeld()
        yield sleep(0.05)
        self.assertNoResult(d)
        self.provider.release()
        answer = yield d
        self.assertEqual(answer["object"], "chat.completion")

    @defer.inlineCallbacks
    def test_hangSchedulesNothing(self):
        """
        C{hang} leaves no call on the clock.
        """
        self.provider.script = Script(hang=True)
        d = self.post("/chat/completions", CHAT)
        yield waitUntil(reactor, lambda: self.provider.pending)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        yield self.provider.stop()
        yield self.assertFailure(d, ResponseNeverReceived)

    @defer.inlineCallbacks
    def test_disconnectCancelsCalls(self):
        """
        A client leaving mid-stream is counted, and the provider's pending
        calls are cancelled.
        """
        self.provider.script = Script(chunks=["a", "b"], pauses=10)
        response, collector = yield self.postStream("/chat/completions", dict(CHAT, stream=True))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        collector.transport.stopProducing()
        yield collector.done
        yield waitUntil(reactor, lambda: self.provider.disconnects == 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.provider.pending, 0)

    @defer.inlineCallbacks
    def test_stopCancelsCalls(self):
        """
        L{FakeProvider.stop} cancels the pending calls of a paused stream
        and of a held one.
        """
        self.provider.script = Script(chunks=["a", "b"], pauses=10)
        first, collector1 = yield self.postStream("/chat/completions", dict(CHAT, stream=True))
        self.provider.script = Script(chunks=["a", "b"], hold=True)
        held = self.provider.whenHeld()
        second, collector2 = yield self.postStream("/chat/completions", dict(CHAT, stream=True))
        yield held
        yield self.provider.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        for collector in (collector1, collector2):
            reason = yield collector.done
            self.assertIsInstance(reason, ResponseFailed)
        self.assertEqual((self.provider.pending, self.provider.disconnects), (0, 0))


class BigStreamTests(LoopbackTestCase):
    """
    bigStream honours backpressure.
    """

    @defer.inlineCallbacks
    def test_whole(self):
        """
        A reader that keeps up gets at least the asked bytes, then [DONE].
        """
        total = 2 ** 20
        self.provider.script = Script(bigStream=total)
        response, collector = yield self.postStream(
            "/chat/completions", dict(CHAT, stream=True), Collector(keep=False)
        )
        reason = yield collector.done
        self.assertIsInstance(reason, ResponseDone)
        self.assertTrue(collector.body.endswith(b"data: [DONE]\n\n"))
        self.assertGreaterEqual(collector.size, total)
        self.assertEqual(collector.size, self.provider.bytesProduced)
        self.assertFalse(self.provider.paused)

    @defer.inlineCallbacks
    def test_pausedReader(self):
        """
        A client that stops reading stops the provider well below the
        total (only socket buffers fill); reading again lets it finish.
        """
        total = 64 * 2 ** 20
        self.provider.script = Script(bigStream=total)
        response, collector = yield self.postStream(
            "/chat/completions",
            dict(CHAT, stream=True),
            Collector(keep=False, pauseAtOnce=True),
        )
        yield waitUntil(reactor, lambda: self.provider.paused)
        # Let the kernel buffers fill up; then nothing more may come.
        stable = []

        def settled():
            stable.append(self.provider.bytesProduced)
            return len(stable) > 10 and stable[-1] == stable[-10] and self.provider.paused

        yield waitUntil(reactor, settled, interval=0.02)
        self.assertLess(self.provider.bytesProduced, total // 4)
        collector.transport.resumeProducing()
        reason = yield collector.done
        self.assertIsInstance(reason, ResponseDone)
        self.assertGreaterEqual(collector.size, total)
        self.assertTrue(collector.body.endswith(b"data: [DONE]\n\n"))
        self.assertEqual(self.provider.pending, 0)

    @defer.inlineCallbacks
    def test_readerLeaves(self):
        """
        A client that leaves a paused bigStream is counted; production stops.
        """
        self.provider.script = Script(bigStream=64 * 2 ** 20)
        response, collector = yield self.postStream(
            "/chat/completions",
            dict(CHAT, stream=True),
            Collector(keep=False, pauseAtOnce=True),
        )
        yield waitUntil(reactor, lambda: self.provider.paused)
        collector.transport.stopProducing()
        yield waitUntil(reactor, lambda: self.provider.disconnects == 1)
        produced = self.provider.bytesProduced
        yield sleep(0.05)
        self.assertEqual(self.provider.bytesProduced, produced)
        self.assertEqual(self.provider.pending, 0)
        self.assertFalse(self.provider.paused)


class OpenAISDKTests(LoopbackTestCase):
    """
    The real openai SDK (in a thread) reads the fake's answers.
    """

    if openai is None:  # pragma: no cover
        skip = "openai is not installed"

    def client(self):
        client = openai.OpenAI(base_url=self.baseURL, api_key="sk-fake", max_retries=0)
        self.addCleanup(client.close)
        return client

    @defer.inlineCallbacks
    def test_chatAndStream(self):
        """
        The SDK parses a chat answer and a stream with its usage chunk; the
        provider got the SDK's bearer key.
        """
        client = self.client()
        self.provider.script = Script(chunks=["Hel", "lo"])

        def talk():
            answer = client.chat.completions.create(
                model="gpt-fake", messages=[{"role": "user", "content": "hi"}]
            )
            stream = client.chat.completions.create(
                model="gpt-fake",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            pieces, usage = [], None
            for chunk in stream:
                if chunk.choices:
                    pieces.append(chunk.choices[0].delta.content or "")
                usage = chunk.usage or usage
            return answer, pieces, usage

        answer, pieces, usage = yield threads.deferToThread(talk)
        self.assertEqual(answer.choices[0].message.content, "Hello")
        self.assertEqual(pieces, ["Hel", "lo", ""])
        self.assertEqual(usage.total_tokens, 2)
        self.assertEqual(
            self.provider.requests[0].headers["authorization"], "Bearer sk-fake"
        )

    @defer.inlineCallbacks
    def test_embeddingsModelsErrors(self):
        """
        The SDK decodes base64 embeddings (its default), lists the models
        and raises its own error type for a 429.
        """
        client = self.client()

        self.provider.enqueue(Script(), Script(), Script(status=429))

        def talk():
            vectors = client.embeddings.create(model="text-embedding-fake", input="one")
            models = [m.id for m in client.models.list()]
            try:
                client.chat.completions.create(model="gpt-fake", messages=[])
            except openai.RateLimitError as e:
                error = e
            return vectors, models, error

        vectors, models, error = yield threads.deferToThread(talk)
        self.assertEqual(len(vectors.data[0].embedding), 8)
        self.assertEqual(models, list(DEFAULT_MODELS))
        self.assertEqual(error.status_code, 429)


class ScriptTests(SynchronousTestCase):
    """
    L{Script} as a value.
    """

    def test_pauses(self):
        self.assertEqual(Script(pauses=2).pauseBefore(5), 2.0)
        script = Script(pauses=[1, 0.5])
        self.assertEqual(script.pauses, (1.0, 0.5))
        self.assertEqual(
            [script.pauseBefore(i) for i in range(3)], [1.0, 0.5, 0.0]
        )

    def test_compose(self):
        self.assertEqual(
            Script().compose(None),
            (DEFAULT_ANSWER, ["Hello", " from", " the", " fake", " provider."]),
        )
        self.assertEqual(Script(chunks=["a", "b"]).compose(None), ("ab", ["a", "b"]))
        self.assertEqual(Script(answer="").compose(None), ("", [""]))
        self.assertEqual(
            Script(answer="whole", chunks=["x"]).compose(None), ("whole", ["x"])
        )

    def test_frozen(self):
        script = Script(headers={"A": "1"})
        self.assertEqual(script.headers, (("A", "1"),))
        self.assertRaises(attr.exceptions.FrozenInstanceError, setattr, script, "hang", True)
        self.assertEqual(attr.evolve(script, hang=True).hang, True)

    def test_promptTexts(self):
        body = {
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]},
            ],
            "prompt": ["p1", "p2"],
        }
        self.assertEqual(promptTexts(body), ["sys", "a", "p1", "p2"])
        self.assertEqual(promptTexts(b"junk"), [])


class WaitUntilTests(SynchronousTestCase):
    """
    L{waitUntil} on a clock.
    """

    def test_fires(self):
        clock, box = Clock(), []
        d = waitUntil(clock, lambda: box and box[0], interval=1)
        self.assertNoResult(d)
        box.append("yes")
        clock.advance(1)
        self.assertEqual(self.successResultOf(d), "yes")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timesOut(self):
        clock = Clock()
        d = waitUntil(clock, lambda: False, timeout=3, interval=1)
        clock.pump([1, 1, 1])
        self.failureResultOf(d, TimeoutError)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel(self):
        clock = Clock()
        d = waitUntil(clock, lambda: False)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])


class MemoryJournalTests(SynchronousTestCase):
    """
    L{MemoryJournal} chains its records like the real journal.
    """

    def test_interface(self):
        self.assertTrue(verifyObject(IJournal, MemoryJournal()))

    def test_chain(self):
        """
        Records get C{seq} from 1, C{prev_hash} (zeros first) and C{hash},
        the SHA-256 of the canonical JSON without C{hash}.
        """
        journal = MemoryJournal()
        record = {"phase": "input", "user": "dév", "hash": "ignored"}
        self.assertIsNone(self.successResultOf(journal.append(record)))
        self.successResultOf(journal.append({"phase": "output", "policies": ("a",)}))
        first, second = journal.records
        self.assertEqual(record["hash"], "ignored")
        self.assertEqual((first["seq"], second["seq"]), (1, 2))
        self.assertEqual(first["prev_hash"], GENESIS_HASH)
        self.assertEqual(second["prev_hash"], first["hash"])
        self.assertEqual(second["policies"], ["a"])
        canonical = json.dumps(
            {"phase": "input", "user": "dév", "seq": 1, "prev_hash": GENESIS_HASH},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        self.assertEqual(first["hash"], hashlib.sha256(canonical.encode("utf-8")).hexdigest())
        self.assertEqual(second["hash"], recordHash(second))

    def test_unserialisable(self):
        journal = MemoryJournal()
        self.failureResultOf(journal.append({"when": object()}), TypeError)
        self.assertEqual(journal.records, [])

    def test_whenRecords(self):
        journal = MemoryJournal()
        d = journal.whenRecords(2)
        journal.append({"n": 1})
        self.assertNoResult(d)
        journal.append({"n": 2})
        self.assertEqual([r["n"] for r in self.successResultOf(d)], [1, 2])
        self.assertEqual(len(self.successResultOf(journal.whenRecords(1))), 2)

    def test_close(self):
        journal = MemoryJournal()
        self.assertIsNone(self.successResultOf(journal.close()))
        self.assertTrue(journal.closed)
        self.failureResultOf(journal.append({}), RuntimeError)
