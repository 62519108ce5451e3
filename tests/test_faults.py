"""
Faults: the provider, the client and the wire misbehave; the gateway answers
as DESIGN.md section 4 says, journals what happened (section 5), and still
serves the next request.

Two kinds of tests:

- loopback (L{FaultTests}, L{ClientFaultTests}, L{DescriptorTests}): a real
  gateway service (L{GatewayService}, listening on 127.0.0.1, so whatever the
  service listens with is what is tested) in front of
  L{keeptrusts.testing.FakeProvider}, with its journal kept in memory;
- in memory (L{MalformedRequestTests}): thousands of generated malformed
  requests (hypothesis) fed to the listener's own factory over a
  L{StringTransport}, the upstream a L{RequestTraversalAgent} into the fake
  provider, all on a L{MemoryReactorClock}.

Every loop is bounded in count and in time.  Cases that found a gateway
bug say so in a C{# Regression} comment: the cause, and the fix made.
"""

import importlib
import json
import os
import time

import treq
from hypothesis import HealthCheck, given, settings, strategies as st
from treq.testing import RequestTraversalAgent
from twisted.internet import defer, reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from keeptrusts.config import parseConfig
from keeptrusts.policy.registry import policyFactories
from keeptrusts.service import GatewayService
from keeptrusts.testing import FakeProvider, MemoryJournal, Script, listenFake

settings.register_profile("keeptrusts", derandomize=True, deadline=None,
                          database=None)
settings.load_profile("keeptrusts")

CONFIG = """
pack: {name: faults, version: 1.0.0, enabled: true}
gateway:
  listen: tcp:0:interface=127.0.0.1
  state_dir: %(state)s
  fail_mode: block
  limits: {max_body_bytes: %(maxBody)d, upstream_connect_timeout_s: 5,
           upstream_idle_timeout_s: %(idle)s,
           client_idle_timeout_s: %(clientIdle)s}
providers:
  targets:
    - id: fake
      provider: openai
      base_url: %(base)s
      secret_key_ref: {env: FAKE_KEY}
      models: [gpt-fake, gpt-fake-mini]
policies:
  chain: [dlp-filter, audit-logger]
policy:
  dlp-filter:
    action: redact
    detect_patterns: ['ACME-[0-9]{8}']
  audit-logger: {log_all_access: true}
"""

ENVIRON = {"FAKE_KEY": "sk-provider-key"}


def chat(text="hi", **extra):
    body = {"model": "gpt-fake",
            "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


def openFDs():
    return len(os.listdir("/proc/self/fd"))


def patchUsed(testCase, name, value, required=True):
    """
    Patch C{name} in every module of the service that uses it (the service
    is being split into parts: look in each), for this test.
    """
    patched = 0
    for moduleName in ("keeptrusts.service", "keeptrusts.parts"):
        try:
            module = importlib.import_module(moduleName)
        except ImportError:
            continue
        if hasattr(module, name):
            testCase.patch(module, name, value)
            patched += 1
    if required and not patched:
        raise AssertionError("no service module uses %s any more: update "
                             "tests/test_faults.py" % (name,))


def usedName(name):
    """
    The object C{name} stands for in the service's modules.
    """
    for moduleName in ("keeptrusts.parts", "keeptrusts.service"):
        try:
            module = importlib.import_module(moduleName)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError("no service module uses %s any more" % (name,))


def _memoryJournalModule(journal):
    """
    Stands in for L{keeptrusts.journal.Journal} in L{keeptrusts.service}:
    the service gets C{journal} from C{Journal.open}.
    """

    class _Journal:
        @staticmethod
        def open(directory, clock, sync="batch", segmentMaxBytes=None,
                 runInThread=None):
            return journal

    return _Journal


class _NoRetention:
    """
    Stands in for L{keeptrusts.retentionloop.Retention}: its sweeps read the
    journal's segment files, and this journal is in memory (retention has
    its own tests).
    """

    days = None

    @classmethod
    def fromConfig(cls, *args, **kwargs):
        return cls()

    def start(self):
        pass

    def stop(self):
        return defer.succeed(None)


def startService(testCase, reactor, base, idle=5, clientIdle=5,
                 maxBody=1024 * 1024, journal=None):
    """
    A L{GatewayService} as twistd would start it, with its journal in memory.

    @return: C{(service, journal)}.
    """
    journal = journal or MemoryJournal()
    patchUsed(testCase, "Journal", _memoryJournalModule(journal))
    patchUsed(testCase, "Retention", _NoRetention, required=False)
    state = os.path.abspath(testCase.mktemp())
    os.makedirs(state)
    factories = policyFactories()
    config = parseConfig(CONFIG % dict(
        state=state, base=base, idle=idle, clientIdle=clientIdle,
        maxBody=maxBody), factories)
    gateway = GatewayService(config, reactor, factories, environ=ENVIRON)
    gateway.privilegedStartService()
    gateway.startService()
    return gateway, journal


class Gateway:
    """
    A gateway service on 127.0.0.1 in front of a fake provider, for one test.
    """

    def __init__(self, testCase, **options):
        self.testCase = testCase
        self.provider = FakeProvider(reactor)
        _, base = listenFake(reactor, self.provider, testCase.addCleanup)
        self.service, self.journal = startService(testCase, reactor, base,
                                                  **options)
        testCase.addCleanup(self.service.stopService)
        self.port = self.service.port.getHost().port
        self.url = "http://127.0.0.1:%d" % (self.port,)
        self._clientPool = HTTPConnectionPool(reactor, persistent=False)
        testCase.addCleanup(self._clientPool.closeCachedConnections)

    def post(self, path, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return treq.post(self.url + path, data=data, headers=headers or {
            b"content-type": b"application/json"}, pool=self._clientPool)

    def events(self, phase=None):
        return [r for r in self.journal.records
                if phase is None or r["phase"] == phase]

    def raw(self):
        """
        @return: a Deferred firing with a connected L{RawClient}.
        """
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port,
                                      timeout=5)
        d = endpoint.connect(Factory.forProtocol(RawClient))

        def connected(client):
            self.testCase.addCleanup(client.abort)
            return client
        return d.addCallback(connected)

    @defer.inlineCallbacks
    def assertServes(self):
        """
        The next request, a plain one, is answered and journaled.
        """
        before = len(self.journal.records)
        self.provider.script = Script()
        response = yield self.post("/v1/chat/completions", chat("still there?"))
        body = yield response.json()
        self.testCase.assertEqual(response.code, 200)
        self.testCase.assertEqual(body["choices"][0]["message"]["content"],
                                  "Hello from the fake provider.")
        self.testCase.assertEqual(
            [(e["phase"], e["verdict"], e["status"])
             for e in self.journal.records[before:]],
            [("input", "allow", None), ("output", "allow", 200)])


class RawClient(Protocol):
    """
    A client that writes what it is told and keeps what comes back.
    """

    def __init__(self):
        self.data = b""
        self.lost = None
        self._waiters = []

    def connectionLost(self, reason):
        self.lost = reason
        self._wake()

    def dataReceived(self, data):
        self.data += data
        self._wake()

    def _wake(self):
        waiters, self._waiters = self._waiters, []
        for predicate, d in waiters:
            if predicate():
                d.callback(self.data)
            else:
                self._waiters.append((predicate, d))

    def write(self, data):
        self.transport.write(data)

    def abort(self):
        if self.lost is None:
            self.transport.abortConnection()

    def waitFor(self, predicate, timeout):
        """
        @return: a Deferred firing with the data once C{predicate()} holds,
            or failing with L{defer.TimeoutError} after C{timeout} seconds.
        """
        if predicate():
            return defer.succeed(self.data)
        d = defer.Deferred()
        self._waiters.append((predicate, d))
        return d.addTimeout(timeout, reactor)

    def whenClosed(self, timeout):
        return self.waitFor(lambda: self.lost is not None, timeout)

    def whenResponse(self, timeout):
        return self.waitFor(lambda: parseResponse(self.data) is not None,
                            timeout)

    @defer.inlineCallbacks
    def trickle(self, data, interval, until=None):
        """
        Write C{data} a byte at a time, C{interval} seconds apart, while the
        connection is open (and C{until()} is false).
        """
        for i in range(len(data)):
            if self.lost is not None or (until is not None and until()):
                return
            self.transport.write(data[i:i + 1])
            yield sleep(interval)


def parseResponse(data):
    """
    @return: C{(status, headers, body)} of the first complete response in
        C{data}, or L{None}.  Header names are lower case.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    try:
        status = int(lines[0].split(b" ")[1])
    except (IndexError, ValueError):
        return (0, {}, data)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), value.strip())
    rest = data[end + 4:]
    if b"content-length" in headers:
        size = int(headers[b"content-length"])
        return (status, headers, rest[:size]) if len(rest) >= size else None
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                return None
            size = int(line.split(b";")[0] or b"0", 16)
            if size == 0:
                return (status, headers, body)
            if len(rest) < size + 2:
                return None
            body, rest = body + rest[:size], rest[size + 2:]
    return (status, headers, rest)


def requestBytes(body, path=b"/v1/chat/completions", extra=b"",
                 contentLength=True):
    head = (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n")
    if contentLength:
        head += b"Content-Length: %d\r\n" % (len(body),)
    return head + extra + b"\r\n" + body


def sseEvents(text):
    return [e for e in text.split("\n\n") if e.strip()]


class FaultTests(TestCase):
    """
    The provider misbehaves.
    """

    timeout = 30

    @defer.inlineCallbacks
    def assertGatewayError(self, response, status, type):
        body = yield response.json()
        self.assertEqual(response.code, status)
        self.assertEqual(body["error"]["type"], type)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                         [b"application/json"])
        return body

    @defer.inlineCallbacks
    def assertRefusedAnswer(self, script, stream=False):
        """
        The provider's answer under C{script} is not passed on: 502 in the
        envelope, journaled as an error, and the gateway serves on.
        """
        gw = Gateway(self)
        gw.provider.script = script
        response = yield gw.post("/v1/chat/completions", chat(stream=stream))
        yield self.assertGatewayError(response, 502, "upstream_error")
        self.assertEvents(gw, [("input", "allow", None),
                               ("output", "error", 502)])
        yield gw.assertServes()

    def assertEvents(self, gw, expected):
        self.assertEqual([(e["phase"], e["verdict"], e["status"])
                          for e in gw.events()], expected)

    @defer.inlineCallbacks
    def test_providerResetBeforeAnswer(self):
        """
        The provider resets the connection before answering: 502, journaled
        as an error.
        """
        yield self.assertRefusedAnswer(Script(reset=True))

    @defer.inlineCallbacks
    def test_providerResetDuringStream(self):
        """
        The provider resets after two chunks: the client has them, then an
        error event, never C{[DONE]}.
        """
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["one ", "two ", "three"],
                                    resetMidStream=2)
        response = yield gw.post("/v1/chat/completions", chat(stream=True))
        text = yield response.text()
        self.assertEqual(response.code, 200)
        events = sseEvents(text)
        self.assertIn("one ", events[0])
        self.assertIn("two ", events[1])
        last = json.loads(events[-1][len("data: "):])
        self.assertEqual(last["error"]["type"], "upstream_error")
        self.assertNotIn("[DONE]", text)
        self.assertNotIn("three", text)
        self.assertEvents(gw, [("input", "allow", None),
                               ("output", "error", 200)])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_answerReadWhateverItsMediaType(self):
        """
        A JSON answer is read and redacted however its type is spelled, and
        when it says it is something else: never passed on unread.
        """
        secret = "AKIA1234567890EXAMPLE"
        for contentType in ["APPLICATION/JSON; charset=utf-8",
                            "application/json;charset=UTF-8", "text/plain"]:
            gw = Gateway(self)
            gw.provider.script = Script(answer="key " + secret,
                                        headers={"Content-Type": contentType})
            response = yield gw.post("/v1/chat/completions", chat())
            text = yield response.text()
            self.assertEqual(response.code, 200, contentType)
            self.assertNotIn(secret, text)
            self.assertIn("[REDACTED:AWS_ACCESS_KEY_ID]", text)
            self.assertEvents(gw, [("input", "allow", None),
                                   ("output", "redact", 200)])

    @defer.inlineCallbacks
    def test_streamReadWhateverTheCaseOfItsType(self):
        """
        A stream whose type is spelled in capitals is a stream: scanned.
        """
        gw = Gateway(self)
        gw.provider.script = Script(
            chunks=["key AKIA12345", "67890EXAMPLE done"],
            headers={"Content-Type": "Text/Event-Stream; charset=utf-8"})
        response = yield gw.post("/v1/chat/completions", chat(stream=True))
        text = yield response.text()
        self.assertEqual(response.code, 200)
        self.assertNotIn("AKIA12345", text)
        self.assertNotIn("67890EXAMPLE", text)
        self.assertIn("[REDACTED:AWS_ACCESS_KEY_ID]", text)
        self.assertEvents(gw, [("input", "allow", None),
                               ("output", "redact", 200)])

    @defer.inlineCallbacks
    def test_compressedAnswerRefused(self):
        """
        The gateway asks for no compression; an answer its policies must
        read that comes compressed anyway is refused (502), whole or
        streamed, not passed on unread.
        """
        for stream in (False, True):
            yield self.assertRefusedAnswer(
                Script(headers={"Content-Encoding": "gzip"}), stream)

    @defer.inlineCallbacks
    def test_invalidStatusRefused(self):
        """
        A status HTTP does not have is not passed on: 502.
        """
        yield self.assertRefusedAnswer(Script(status=999))

    @defer.inlineCallbacks
    def test_oddUsageFigures(self):
        """
        Token figures that are not counts (strings, floats, negatives,
        astronomical) are not taken: the answer goes out, its output event
        is journaled with the figures that are counts (else an estimate).
        """
        odd = [{"prompt_tokens": "3", "completion_tokens": 2},
               {"prompt_tokens": 1e308, "completion_tokens": 10 ** 400},
               {"prompt_tokens": -5, "completion_tokens": True},
               "lots", [1, 2]]
        for usage in odd:
            for stream in (False, True):
                gw = Gateway(self)
                gw.provider.script = Script(usage=usage)
                response = yield gw.post("/v1/chat/completions",
                                         chat(stream=stream))
                text = yield response.text()
                self.assertEqual(response.code, 200, (usage, stream))
                self.assertIn("Hello", text)
                [output] = gw.events("output")
                self.assertEqual((output["verdict"], output["status"]),
                                 ("allow", 200))
                tokens = output["tokens"]
                for name in ("input", "output"):
                    count = tokens.get(name)
                    self.assertTrue(count is None or (
                        type(count) is int and 0 <= count < 10 ** 9),
                        (usage, stream, tokens))
                self.assertNotEqual(output.get("cost_usd"), float("inf"))
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_streamOptionsOfAnotherType(self):
        gw = Gateway(self)
        for options in ["yes", [1], 5, True]:
            response = yield gw.post("/v1/chat/completions", chat(
                stream=True, stream_options=options))
            body = yield response.json()
            self.assertEqual(response.code, 422, options)
            self.assertEqual(body["error"]["type"], "validation_error")
        self.assertEqual(gw.provider.requests, [])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_provider500(self):
        """
        A provider's own 500 passes through unchanged (DESIGN.md section 4)
        and is journaled with its status.
        """
        gw = Gateway(self)
        gw.provider.script = Script(status=500)
        response = yield gw.post("/v1/chat/completions", chat())
        body = yield response.json()
        self.assertEqual(response.code, 500)
        self.assertEqual(body["error"]["type"], "server_error")
        [output] = gw.events("output")
        self.assertEqual(output["status"], 500)
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_providerHang(self):
        """
        A provider that never answers: 504 within the idle timeout, the
        provider's connection dropped.
        """
        gw = Gateway(self, idle=0.5)
        gw.provider.script = Script(hang=True)
        started = time.monotonic()
        response = yield gw.post("/v1/chat/completions", chat())
        elapsed = time.monotonic() - started
        yield self.assertGatewayError(response, 504, "upstream_timeout")
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 3.0)
        self.assertEvents(gw, [("input", "allow", None),
                               ("output", "error", 504)])
        yield _waitUntil(lambda: gw.provider.disconnects == 1, 5)
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_providerSlowTrickle(self):
        """
        Pauses between chunks, each shorter than the idle timeout: the
        stream completes, every chunk in order, then C{[DONE]}.
        """
        gw = Gateway(self, idle=1.0)
        gw.provider.script = Script(chunks=["a", "b", "c", "d", "e"],
                                    pauses=0.3)
        started = time.monotonic()
        response = yield gw.post("/v1/chat/completions", chat(stream=True))
        text = yield response.text()
        self.assertGreaterEqual(time.monotonic() - started, 1.2)
        self.assertEqual(response.code, 200)
        events = sseEvents(text)
        self.assertEqual(events[-1], "data: [DONE]")
        content = "".join(
            (json.loads(e[len("data: "):])["choices"] or [{}])[0]
            .get("delta", {}).get("content") or "" for e in events[:-1])
        self.assertEqual(content, "abcde")
        self.assertEvents(gw, [("input", "allow", None),
                               ("output", "allow", 200)])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_slowTricklePastIdleTimeout(self):
        """
        A pause longer than the idle timeout mid-stream: the stream ends
        with an error event, never C{[DONE]}.
        """
        gw = Gateway(self, idle=0.4)
        gw.provider.script = Script(chunks=["a", "b", "c"],
                                    pauses=(0, 0, 1.5))
        response = yield gw.post("/v1/chat/completions", chat(stream=True))
        text = yield response.text()
        self.assertEqual(response.code, 200)
        last = json.loads(sseEvents(text)[-1][len("data: "):])
        self.assertEqual(last["error"]["type"], "upstream_timeout")
        self.assertNotIn("[DONE]", text)
        self.assertEvents(gw, [("input", "allow", None),
                               ("output", "error", 200)])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_malformedProviderJSON(self):
        yield self.assertRefusedAnswer(Script(malformed=True))

    @defer.inlineCallbacks
    def test_malformedProviderSSE(self):
        """
        A broken event after the first chunk: the first chunk reached the
        client, then an error event, never C{[DONE]}.
        """
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["fine ", "then"], malformed=True)
        response = yield gw.post("/v1/chat/completions", chat(stream=True))
        text = yield response.text()
        self.assertEqual(response.code, 200)
        events = sseEvents(text)
        self.assertIn("fine ", events[0])
        last = json.loads(events[-1][len("data: "):])
        self.assertEqual(last["error"]["type"], "upstream_error")
        self.assertNotIn("[DONE]", text)
        self.assertEvents(gw, [("input", "allow", None),
                               ("output", "error", 200)])
        yield gw.assertServes()


class ClientFaultTests(TestCase):
    """
    The client, or the bytes on the wire, misbehave.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_clientAbortMidStream(self):
        """
        The client goes away mid-stream: the provider's connection is
        closed and the output event says the client left.
        """
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["a", "b"], hold=True)
        client = yield gw.raw()
        client.write(requestBytes(json.dumps(chat(stream=True)).encode()))
        yield gw.provider.whenHeld()
        yield client.waitFor(lambda: b"data: " in client.data, 5)
        client.abort()
        yield _waitUntil(lambda: gw.provider.disconnects == 1, 5)
        yield _waitUntil(lambda: len(gw.events("output")) == 1, 5)
        [output] = gw.events("output")
        self.assertTrue(output.get("client_gone"))
        self.assertEqual(gw.provider.pending, 0)
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_clientAbortBeforeAnswer(self):
        """
        The client goes away while the provider thinks (an IDE cancelling a
        completion): the provider's connection is closed too, and the
        request still has its output event, marked C{client_gone}.
        """
        # Regression (fixed): no output event.  Call._clientGone cancels the upstream
        # Deferred; Call._upstreamFailed then returns at "if self.gone"
        # before journaling, so the journal holds an input event without an
        # outcome (README: "Every request writes an input and an output
        # event").  Fix: in _upstreamFailed (and _collected) journal
        # ("output", ERROR or ALLOW, (), status=None, client_gone=True)
        # when self.gone, before returning.
        gw = Gateway(self)
        gw.provider.script = Script(hang=True)
        client = yield gw.raw()
        client.write(requestBytes(json.dumps(chat()).encode()))
        yield _waitUntil(lambda: gw.provider.pending == 1, 5)
        client.abort()
        yield _waitUntil(lambda: gw.provider.disconnects == 1, 5)
        yield sleep(0.1)
        self.assertEqual([e["phase"] for e in gw.events()],
                         ["input", "output"])
        self.assertTrue(gw.events("output")[0].get("client_gone"))
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_headersTrickledThenIdle(self):
        """
        Half a request head, a byte at a time, then silence: the gateway
        closes the connection after C{client_idle_timeout_s}.
        """
        gw = Gateway(self, clientIdle=0.5)
        client = yield gw.raw()
        yield client.trickle(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 1",
                             0.01)
        silent = time.monotonic()
        yield client.whenClosed(5)
        self.assertLess(time.monotonic() - silent, 3.0)
        self.assertEqual(gw.events(), [])
        self.assertEqual(gw.provider.requests, [])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_headersTrickledSlowloris(self):
        """
        A request head trickled a byte every 0.05 s, short header lines
        (each complete well within the idle timeout), never finished: the
        gateway must still close the connection after a bounded time, or a
        few thousand such clients hold all its descriptors.
        """
        # Regression (fixed): nothing bounds the time a request head may take.  The Site's
        # idle timeout (client_idle_timeout_s) is reset by every byte
        # received on Twisted 26.10 (HTTPChannel.dataReceived calls
        # resetTimeout) and by every header line on 22.4 (lineReceived), so
        # a client sending a byte at a time keeps its connection for ever
        # (slowloris).  Fix: a deadline for the whole head, e.g. an
        # HTTPChannel subclass (GatewaySite.protocol, and FrontProtocol for
        # what it reads itself) that starts a
        # callLater(client_idle_timeout_s, transport.abortConnection) when a
        # request's first byte arrives and cancels it in allHeadersReceived.
        gw = Gateway(self, clientIdle=0.5)
        client = yield gw.raw()
        client.write(b"POST /v1/chat/completions HTTP/1.1\r\n"
                     b"Host: 127.0.0.1\r\n")
        started = time.monotonic()
        trickling = client.trickle(b"A:b\r\n" * 200, 0.05,
                                   until=lambda: time.monotonic() - started > 4)
        yield client.whenClosed(6).addErrback(lambda f: None)
        yield trickling
        closedAfter = time.monotonic() - started
        self.assertIsNotNone(client.lost, "still open after %.1f s of "
                             "trickled head" % (closedAfter,))
        self.assertLess(closedAfter, 3.0)
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_bodyOverLimitDeclared(self):
        """
        A Content-Length over the limit: 413 as soon as the head is in,
        though the body is not (and never will be) sent.
        """
        gw = Gateway(self, maxBody=1000)
        client = yield gw.raw()
        client.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: 50000000\r\n\r\n" + b"{" * 1024)
        yield client.whenClosed(5)
        status, _, body = parseResponse(client.data)
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body)["error"]["type"], "validation_error")
        self.assertEqual(gw.events(), [])
        self.assertEqual(gw.provider.requests, [])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_bodyOverLimitExpectingContinue(self):
        """
        A client that waits for "100 Continue" before an oversized body
        gets the 413 alone, not a 100 after it.
        """
        gw = Gateway(self, maxBody=1000)
        client = yield gw.raw()
        client.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Expect: 100-continue\r\n"
                     b"Content-Length: 50000000\r\n\r\n")
        yield client.whenClosed(5)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 413 "),
                        client.data[:100])
        self.assertNotIn(b"100 Continue", client.data)

    @defer.inlineCallbacks
    def test_methodNotAToken(self):
        """
        A method with bytes no HTTP method has is refused (400) before the
        forward proxy could pass it to Twisted's client, which raised.
        """
        gw = Gateway(self)
        client = yield gw.raw()
        client.write(b"P\x00ST http://127.0.0.1:9/x HTTP/1.1\r\n"
                     b"Host: 127.0.0.1:9\r\nContent-Length: 0\r\n\r\n")
        yield client.whenClosed(5)
        status, _, _ = parseResponse(client.data)
        self.assertEqual(status, 400)
        self.assertEqual(gw.provider.requests, [])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_unknownPathInTheEnvelope(self):
        """
        A path the gateway does not serve is a 404 in the JSON envelope
        (Twisted's own page is HTML), without its query.
        """
        gw = Gateway(self)
        for path in ["/", "/v2/chat?key=sk-1", "/keeptrusts/nothing"]:
            response = yield treq.get(gw.url + path, pool=gw._clientPool)
            body = yield response.json()
            self.assertEqual(response.code, 404, path)
            self.assertEqual(body["error"]["type"], "not_found")
            self.assertNotIn("sk-1", body["error"]["message"])
            self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                             [b"application/json"])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_bodyOverLimitChunked(self):
        """
        A chunked body that grows past the limit: 413 once it has, and the
        connection closed though the body never ended.
        """
        gw = Gateway(self, maxBody=1000)
        client = yield gw.raw()
        client.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        sent = 0
        # Up to 100 KB over 4 s; the limit is 1,000 bytes.
        for _ in range(200):
            if client.lost is not None:
                break
            client.write(b"200\r\n" + b" " * 0x200 + b"\r\n")
            sent += 0x200
            yield sleep(0.02)
        yield client.whenClosed(5)
        status, _, _ = parseResponse(client.data)
        self.assertEqual(status, 413)
        self.assertLess(sent, 200 * 0x200)
        self.assertEqual(gw.events(), [])
        self.assertEqual(gw.provider.requests, [])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_malformedJSON(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions", b'{"model": "gpt')
        body = yield response.json()
        self.assertEqual(response.code, 422)
        self.assertEqual(body["error"]["type"], "validation_error")
        self.assertEqual(gw.provider.requests, [])
        self.assertEqual([e for e in gw.events() if e["phase"] != "access"],
                         [])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_bodiesTwoParsersReadDifferently(self):
        """
        A body the policies and the provider could read differently is
        refused (422) before anything is sent: a key given twice (Python
        keeps the last, so a secret in the first went out unscanned), a
        lone surrogate (the journal and the metrics cannot encode it), a
        nesting deeper than the parser goes.
        """
        gw = Gateway(self)
        secret = "AKIA1234567890EXAMPLE"
        bodies = [
            b'{"model": "gpt-fake", "messages": [{"role": "user", "content": '
            b'"' + secret.encode() + b'"}], "messages": [{"role": "user", '
            b'"content": "hi"}]}',
            b'{"model": "gpt-fake", "messages": [{"role": "user", "content": '
            b'"' + secret.encode() + b'", "content": "hi"}]}',
            b'{"model": "gpt-fake\\ud800", "messages": [{"role": "user", '
            b'"content": "hi"}]}',
            b'{"model": "gpt-fake", "messages": ' + b"[" * 5000
            + b"]" * 5000 + b"}",
            # UTF-16 carries a surrogate as it is, without an escape.
            '{"model": "gpt-fake\ud800", "messages": [{"role": "user", '
            '"content": "hi"}]}'.encode("utf-16-le", "surrogatepass")]
        for data in bodies:
            response = yield gw.post("/v1/chat/completions", data)
            body = yield response.json()
            self.assertEqual(response.code, 422, data[:80])
            self.assertEqual(body["error"]["type"], "validation_error")
        self.assertEqual(gw.provider.requests, [])
        self.assertEqual(gw.events(), [])
        response = yield gw.post("/v1/chat/completions",
                                 b'{"model": "gpt-fake", "messages": [{"role":'
                                 b' "user", "content": "\\ud83d\\ude00"}]}')
        self.assertEqual(response.code, 200)
        yield response.text()
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_targetWithBytesAURLMayNotCarry(self):
        """
        A request target with a byte outside RFC 3986's (Twisted's client
        refused it with an error quoting the whole URL, query and all, into
        the log) is refused at once: 400 in the envelope, nothing logged of
        it, nothing sent.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        gw = Gateway(self)
        for target in [b"/v1/chat/completions?key=AKIA1234567890EXAMPLE&x=\x80",
                       b"/v1/models?key=AKIA1234567890EXAMPLE&x=\x7f"]:
            client = yield gw.raw()
            client.write(b"POST " + target + b" HTTP/1.1\r\nHost: gw\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: 2\r\n\r\n{}")
            yield client.whenClosed(5)
            status, _, body = parseResponse(client.data)
            self.assertEqual(status, 400)
            self.assertEqual(json.loads(body)["error"]["type"],
                             "validation_error")
        self.assertEqual(gw.provider.requests, [])
        self.assertEqual(gw.events(), [])
        logged = " ".join(str(e) for e in events)
        self.assertNotIn("AKIA", logged)
        yield gw.assertServes()

    @defer.inlineCallbacks
    def assertBadRequest(self, gw, data):
        client = yield gw.raw()
        client.write(data)
        yield client.whenClosed(5)
        status, _, body = parseResponse(client.data)
        self.assertEqual(status, 400)
        # In the envelope, like every refusal of the gateway's.
        self.assertEqual(json.loads(body)["error"]["type"], "validation_error")
        self.assertEqual(gw.provider.requests, [])
        self.assertEqual(gw.events(), [])
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_headLineTooLong(self):
        """
        A header line over Twisted's line limit: a 431 in the envelope, not
        a connection closed without a word.
        """
        gw = Gateway(self)
        client = yield gw.raw()
        client.write(b"GET /v1/models HTTP/1.1\r\nX-Big: " + b"a" * 20000
                     + b"\r\n\r\n")
        yield client.whenClosed(5)
        status, _, body = parseResponse(client.data)
        self.assertEqual(status, 431)
        self.assertEqual(json.loads(body)["error"]["type"], "validation_error")
        yield gw.assertServes()

    @defer.inlineCallbacks
    def test_requestLineTooLong(self):
        gw = Gateway(self)
        client = yield gw.raw()
        client.write(b"GET /v1/" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
        yield client.whenClosed(5)
        status, _, body = parseResponse(client.data)
        self.assertEqual(status, 414)
        self.assertEqual(json.loads(body)["error"]["type"], "validation_error")

    def test_contentLengthAndTransferEncoding(self):
        """
        Both framings at once (a smuggling vector): 400, connection closed.
        """
        gw = Gateway(self)
        body = json.dumps(chat()).encode()
        return self.assertBadRequest(gw, requestBytes(
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
            extra=b"Transfer-Encoding: chunked\r\n"))

    def test_transferEncodingAndContentLength(self):
        gw = Gateway(self)
        body = json.dumps(chat()).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        return self.assertBadRequest(gw, (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n"
            % (len(chunked),) + chunked))

    def test_duplicateContentLength(self):
        """
        Two different Content-Lengths: 400, connection closed.
        """
        gw = Gateway(self)
        body = json.dumps(chat()).encode()
        return self.assertBadRequest(gw, requestBytes(
            body, extra=b"Content-Length: %d\r\n" % (len(body) - 5,)))


def _waitUntil(predicate, timeout):
    deadline = time.monotonic() + timeout

    @defer.inlineCallbacks
    def poll():
        while not predicate():
            if time.monotonic() > deadline:
                raise defer.TimeoutError("condition not met in %s s"
                                         % (timeout,))
            yield sleep(0.01)
    return poll()


# -- ten thousand faulted requests

def _faultedRequests():
    """
    Raw requests the gateway must refuse or answer with an error, each on
    its own connection: C{(name, bytes, abort early)}.
    """
    good = json.dumps(chat()).encode()
    close = b"Connection: close\r\n"
    return [
        ("bad json", requestBytes(b'{"model": ', extra=close), False),
        ("missing messages", requestBytes(b'{"model": "gpt-fake"}',
                                          extra=close), False),
        ("not found", requestBytes(good, path=b"/v1/nothing", extra=close),
         False),
        ("cl+te", requestBytes(b"0\r\n\r\n", extra=b"Transfer-Encoding: "
                               b"chunked\r\n"), False),
        ("duplicate cl", requestBytes(good, extra=b"Content-Length: 3\r\n"),
         False),
        ("too large", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 99999999\r\n\r\n{", False),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
         False),
        ("abort mid-body", requestBytes(good)[:-10], True),
        ("abort mid-head", b"POST /v1/chat/completions HTTP/1.1\r\nHo", True),
    ]


class DescriptorTests(TestCase):
    """
    Faulted requests leave no descriptor behind.
    """

    # Bounded: about 20 s on a 2-core machine (Twisted 26.10).
    COUNT = 10000
    CONCURRENCY = 16
    timeout = 240

    @defer.inlineCallbacks
    def test_descriptorsAfterFaultedRequests(self):
        """
        Ten thousand faulted requests, client and provider faults mixed,
        sixteen at a time: afterwards the process has the descriptors it
        had before.
        """
        # Provider faults would open the target's circuit (5 in a row) and
        # turn most of them into quick 503s: keep it closed, so that every
        # provider fault reaches the provider.
        breaker = usedName("CircuitBreaker")
        patchUsed(self, "CircuitBreaker",
                  lambda clock: breaker(clock, threshold=10 ** 9))
        gw = Gateway(self, idle=2, maxBody=64 * 1024)
        yield gw.assertServes()
        yield self._quiesce(gw)
        start = openFDs()

        raw = _faultedRequests()
        scripts = [Script(status=500), Script(reset=True),
                   Script(malformed=True), Script(status=429),
                   Script(resetMidStream=0)]
        counts = {}
        began = time.monotonic()

        @defer.inlineCallbacks
        def one(i):
            if i % 3 == 2:
                # A provider fault, through treq; the script is shared, so
                # one kind per block of requests.
                gw.provider.script = scripts[(i // 600) % len(scripts)]
                response = yield gw.post("/v1/chat/completions", chat())
                yield response.content()
                key = "provider %d" % (response.code,)
            else:
                name, data, abortEarly = raw[(i // 3 * 2 + i % 3) % len(raw)]
                client = yield gw.raw()
                client.write(data)
                if abortEarly:
                    yield sleep(0)
                    client.abort()
                else:
                    yield client.whenClosed(5)
                key = name
            counts[key] = counts.get(key, 0) + 1

        work = iter(range(self.COUNT))

        @defer.inlineCallbacks
        def worker():
            for i in work:
                yield one(i)

        yield defer.gatherResults([worker() for _ in range(self.CONCURRENCY)])
        elapsed = time.monotonic() - began
        Logger().info("{count} faulted requests in {elapsed:.1f} s: {counts!r}",
                      count=self.COUNT, elapsed=elapsed, counts=counts)
        self.assertEqual(sum(counts.values()), self.COUNT)
        yield self._quiesce(gw)
        yield _waitUntil(lambda: openFDs() <= start, 10).addErrback(
            lambda f: None)
        self.assertEqual(openFDs(), start,
                         "%d descriptors before, %d after %d faulted "
                         "requests in %.1f s: %r" % (
                             start, openFDs(), self.COUNT, elapsed, counts))
        yield gw.assertServes()

    @defer.inlineCallbacks
    def _quiesce(self, gw):
        yield sleep(0.05)
        yield gw._clientPool.closeCachedConnections()
        yield gw.service._pool.closeCachedConnections()
        yield _waitUntil(lambda: gw.provider.pending == 0, 10)
        yield sleep(0.1)


# -- generated malformed requests, in memory


class _Errors:
    """
    Collects the error events logged while it is installed.
    """

    def __init__(self):
        self.events = []

    def __call__(self, event):
        if event.get("log_failure") is not None or event.get("isError"):
            self.events.append(event)


_ALLOWED = {200, 400, 401, 404, 405, 408, 409, 411, 413, 414, 415, 422, 429,
            431, 501, 502, 503, 504, 505}


class _LaterAgent:
    """
    An agent that starts each request on the next turn of C{clock}, as a
    network would: L{RequestTraversalAgent} answers within C{request}.
    """

    def __init__(self, agent, clock):
        self._agent = agent
        self._clock = clock

    def request(self, method, uri, headers=None, bodyProducer=None):
        def cancel(d):
            if call.active():
                call.cancel()

        result = defer.Deferred(cancel)

        def go():
            self._agent.request(method, uri, headers,
                                bodyProducer).chainDeferred(result)
        call = self._clock.callLater(0, go)
        return result


class MemoryGateway:
    """
    The gateway service's own listening factory, driven in memory: the
    service listens on a L{MemoryReactorClock}, its upstream agent is a
    L{RequestTraversalAgent} into a L{FakeProvider}.

    @param synchronous: let the upstream answer within C{IAgent.request}
        (as a failed cached connection can); by default it answers on the
        next turn of the clock, as a network would.
    """

    def __init__(self, testCase, synchronous=False):
        self.clock = MemoryReactorClock()
        self.provider = FakeProvider(self.clock)
        self.agent = RequestTraversalAgent(self.provider)
        agent = (self.agent if synchronous
                 else _LaterAgent(self.agent, self.clock))
        patchUsed(testCase, "KeptAgent", lambda *args, **kwargs: agent)
        self.service, self.journal = startService(
            testCase, self.clock, "http://127.0.0.1:9/v1", idle=5,
            clientIdle=5, maxBody=4096)
        # The gateway's own listener is the first the service opens.
        self.factory = self.clock.tcpServers[0][1]
        _useClock(self.factory, self.clock)

    def exchange(self, data, split=None):
        """
        Feed C{data} (in pieces of C{split} bytes, if given) to a new
        connection; let the provider answer; close the connection.

        @return: what the gateway wrote.
        """
        transport = StringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 41002))
        protocol = self.factory.buildProtocol(transport.getPeer())
        protocol.makeConnection(transport)
        pieces = ([data[i:i + split] for i in range(0, len(data), split)]
                  if split else [data])
        for piece in pieces:
            if transport.disconnecting:
                break
            protocol.dataReceived(piece)
        for _ in range(4):
            self.clock.advance(0)
            self.agent.flush()
        written = transport.value()
        if not transport.disconnected:
            protocol.connectionLost(Failure(ConnectionDone()))
        self.agent.flush()
        return written

    def stop(self):
        self.service.stopService()
        self.provider.stop()
        self.agent.flush()
        self.clock.advance(60)


def _useClock(factory, clock):
    """
    Give the listener's factories the memory clock for their timeouts (the
    service passes none: they would take the global reactor).
    """
    seen = set()
    todo = [factory]
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        if hasattr(f, "reactor"):
            f.reactor = clock
        if hasattr(f, "_clock"):
            f._clock = clock
        for name in ("httpFactory", "_httpFactory", "site", "_site",
                     "wrappedFactory"):
            inner = getattr(f, name, None)
            if inner is not None:
                todo.append(inner)


_METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD",
                            b"OPTIONS", b"CONNECT", b"TRACE", b"PATCH",
                            b"post", b"P\x00ST", b""])
_TARGETS = st.one_of(
    st.sampled_from([b"/v1/chat/completions", b"/v1/completions",
                     b"/v1/embeddings", b"/v1/models", b"/v1/messages",
                     b"/v1/responses", b"/v1/", b"/", b"*", b"//v1/chat",
                     b"/v1/chat/completions?x=%zz", b"/v1/../etc/passwd",
                     b"http://127.0.0.1:9/v1/chat/completions",
                     b"http://[::1/v1", b"/v1/chat/completions#frag"]),
    st.binary(max_size=40))
_VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0",
                             b"HTTP/1.1 extra", b"http/1.1", b"HTTP/1",
                             b"", b"HTTP/1.1\x00"])
_HEADER_NAMES = st.one_of(
    st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Host",
                     b"Content-Type", b"Authorization", b"X-User-ID",
                     b"X-Request-ID", b"Expect", b"Connection",
                     b"X-Keeptrusts-Agent-Id", b"content-length ",
                     b" Host", b"Proxy-Authorization", b"Upgrade"]),
    st.binary(min_size=0, max_size=20))
_HEADER_VALUES = st.one_of(
    st.sampled_from([b"0", b"5", b"-1", b"99999999999999999999", b"+5",
                     b"0x10", b"chunked", b"chunked, identity", b"identity",
                     b"gzip", b"application/json", b"100-continue",
                     b"close", b"keep-alive", b"Bearer x", b"\xff\xfe",
                     b"a" * 300, b"", b"5, 5", b"1\r\n\r\n"]),
    st.binary(max_size=30))
_JSON_KEYS = st.sampled_from(["model", "messages", "stream", "prompt",
                              "input", "content", "role", "n",
                              "stream_options", "include_usage", "tools",
                              "tool_calls", "function", "arguments", "text",
                              "type", "max_tokens", "system", "x"])
_JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 70,
                                          max_value=2 ** 70),
    st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["gpt-fake", "user", "assistant", "ACME-12345678",
                     "AKIAABCDEFGHIJKLMNOP", "\ud800".encode(
                         "utf-8", "surrogatepass").decode("utf-8", "replace")]))
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(_JSON_KEYS, children,
                                               max_size=5)),
    max_leaves=25)


@st.composite
def _heads(draw):
    line = draw(_METHODS) + b" " + draw(_TARGETS) + b" " + draw(_VERSIONS)
    headers = draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES),
                            max_size=8))
    body = draw(st.one_of(st.binary(max_size=200),
                          _JSON.map(lambda v: json.dumps(v).encode())))
    separator = draw(st.sampled_from([b"\r\n", b"\n", b"\r\n\r\n", b"\r"]))
    return (line + b"\r\n"
            + b"".join(name + b": " + value + b"\r\n"
                       for name, value in headers)
            + separator + body)


@st.composite
def _jsonRequests(draw):
    path = draw(st.sampled_from([b"/v1/chat/completions", b"/v1/completions",
                                 b"/v1/embeddings", b"/v1/messages",
                                 b"/v1/responses"]))
    value = draw(st.one_of(
        _JSON,
        st.fixed_dictionaries({"model": _JSON, "messages": _JSON}),
        st.fixed_dictionaries({
            "model": st.sampled_from(["gpt-fake", "gpt-fake-mini"]),
            "messages": st.lists(st.dictionaries(_JSON_KEYS, _JSON,
                                                 max_size=4), max_size=3),
            "stream": st.one_of(st.booleans(), _JSON)}),
        st.fixed_dictionaries({
            "model": st.just("gpt-fake"),
            "messages": st.lists(st.fixed_dictionaries({
                "role": st.sampled_from(["user", "system", "tool", 5]),
                "content": st.one_of(
                    st.text(max_size=50),
                    st.lists(st.fixed_dictionaries({
                        "type": st.sampled_from(["text", "image_url"]),
                        "text": _JSON}), max_size=3),
                    _JSON)}), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"model": st.just("gpt-fake"),
                               "prompt": _JSON, "input": _JSON})))
    body = json.dumps(value).encode("utf-8")
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(body),) + body)


class MemoryFaultTests(SynchronousTestCase):
    """
    Faults found by the generated requests below, one case each.
    """

    def setUp(self):
        self.errors = _Errors()
        globalLogPublisher.addObserver(self.errors)
        self.addCleanup(globalLogPublisher.removeObserver, self.errors)

    def assertNoErrorsLogged(self):
        self.assertEqual([e.get("log_format") for e in self.errors.events],
                         [])

    def test_upstreamAnswersSynchronously(self):
        """
        An upstream Deferred that has already fired when C{Call._send} gets
        it (an agent answering at once, or a failed cached connection:
        C{HTTP11ClientProtocol.request} returns C{fail(RequestNotSent())})
        is handled like any other.
        """
        # Found by this suite, fixed in 3d578d7: Call._send chained on
        # self.pending, which _answered/_upstreamFailed had already set to
        # None when the Deferred fired at once (AttributeError, logged as
        # "unexpected error in the request pipeline").
        gateway = MemoryGateway(self, synchronous=True)
        self.addCleanup(gateway.stop)
        body = json.dumps(chat()).encode()
        written = gateway.exchange(requestBytes(body))
        status, _, answer = parseResponse(written)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(answer)["choices"][0]["message"]
                         ["content"], "Hello from the fake provider.")
        self.assertNoErrorsLogged()

    def assertRefusedTarget(self, target):
        gateway = MemoryGateway(self)
        self.addCleanup(gateway.stop)
        written = gateway.exchange(b"GET " + target + b" HTTP/1.1\r\n"
                                   b"Host: example.com\r\n\r\n")
        status, headers, body = parseResponse(written)
        self.assertEqual(status, 400, written[:200])
        self.assertEqual(json.loads(body)["error"]["type"],
                         "validation_error")
        self.assertNoErrorsLogged()

    def test_unsupportedHTTPVersion(self):
        """
        A request line claiming HTTP/2.0 (or any version but 1.0 and 1.1)
        on this HTTP/1 listener: refused (505 or 400) with an HTTP/1.1
        status line, never an answer that claims to be HTTP/2.0.
        """
        # Regression (fixed; Twisted 22.4, the Debian 12 floor, only; 26.10 refuses these
        # itself): twisted.web 22.4 serves any "HTTP/x.y" request line and
        # echoes the client's version in the status line ("HTTP/2.0 200
        # OK" on an HTTP/1 connection), which no client can parse.  Fix:
        # in LimitedRequest.requestReceived (keeptrusts/api/site.py), when
        # version is not HTTP/1.0 or HTTP/1.1, set self.clientproto =
        # b"HTTP/1.1" and answer 505 the way _refuse answers 413 (then
        # close).
        gateway = MemoryGateway(self)
        self.addCleanup(gateway.stop)
        for version in (b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3"):
            written = gateway.exchange(b"GET /v1/models " + version +
                                       b"\r\nHost: x\r\n\r\n")
            self.assertTrue(written.startswith(b"HTTP/1.1 "), written[:80])
            self.assertIn(int(written.split(b" ")[1]), (400, 505),
                          written[:80])
        self.assertNoErrorsLogged()

    # Both cases below were found by this suite, fixed in 3d578d7:
    # ForwardProxy.resourceFor called urlsplit outside its try, so a target
    # urllib cannot split (a byte that is not ASCII: UnicodeDecodeError; an
    # unbalanced "[": ValueError) got Twisted's HTML "500 Processing
    # Failed" and an unhandled error in the log.

    def test_nonASCIIAbsoluteTarget(self):
        """
        An absolute-form target with a byte that is not ASCII: a 400 of
        the gateway's own, nothing logged as an error.
        """
        self.assertRefusedTarget(b"http://exa\x80mple.com/v1/models")

    def test_badIPv6AbsoluteTarget(self):
        """
        An absolute-form target with an unbalanced IPv6 bracket: a 400 of
        the gateway's own, nothing logged as an error.
        """
        self.assertRefusedTarget(b"http://[::1/v1/models")


class MalformedRequestTests(SynchronousTestCase):
    """
    Thousands of generated malformed requests: every one gets an answer
    that is not a 500 (or the connection closed), and nothing is logged as
    an unhandled error.
    """

    def setUp(self):
        self.errors = _Errors()
        globalLogPublisher.addObserver(self.errors)
        self.addCleanup(globalLogPublisher.removeObserver, self.errors)
        self.gateway = MemoryGateway(self)
        self.addCleanup(self.gateway.stop)

    def check(self, data, split=None):
        del self.errors.events[:]
        written = self.gateway.exchange(data, split)
        # An interim "100 Continue" (the request asked for it) may come
        # before the answer: the answer is what follows it.
        while written.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
            written = written[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        if written:
            if not written.startswith(b"HTTP/1."):
                self.fail("not an HTTP answer: %r" % (written[:80],))
            status = int(written.split(b" ", 2)[1])
            self.assertIn(status, _ALLOWED, written[:300])
        self.assertEqual(
            [e.get("log_format") or e.get("log_text") or
             e.get("log_failure") for e in self.errors.events], [],
            "errors logged for %r" % (data[:300],))

    def test_continueThenAnswer(self):
        """
        A request that asks to be told to go on gets "100 Continue", then
        its answer (found by the generated heads: the check took the
        interim status for the answer's).
        """
        data = (b"PUT /v1/models HTTP/1.1\r\nHost: a\r\nExpect: "
                b"100-continue\r\nContent-Length: 2\r\n\r\nab")
        self.assertTrue(self.gateway.exchange(data).startswith(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 405 "))
        self.check(data)

    @settings(max_examples=1500,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(min_size=1, max_size=300))
    def test_randomBytes(self, data):
        self.check(data)

    # Regression (fixed; Twisted 22.4 only): fails while an "HTTP/2.0" request line gets
    # an "HTTP/2.0" status line (see test_unsupportedHTTPVersion for the
    # cause and the fix).  It also found the absolute-form target crash
    # fixed in 3d578d7; beyond those, 39,000 examples (not derandomized)
    # found nothing more.
    @settings(max_examples=2000,
              suppress_health_check=list(HealthCheck))
    @given(_heads(), st.sampled_from([None, 1, 7]))
    def test_malformedHeads(self, data, split):
        self.check(data, split)

    @settings(max_examples=2000,
              suppress_health_check=list(HealthCheck))
    @given(_jsonRequests())
    def test_oddJSONBodies(self, data):
        self.check(data)
