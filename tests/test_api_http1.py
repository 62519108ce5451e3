"""
L{keeptrusts.api.http1}, L{keeptrusts.api.connection} and
L{keeptrusts.api.framing}: the lean HTTP/1.1 agent, byte by byte over
in-memory connections (the whole suite drives it over real sockets).
"""

from types import SimpleNamespace

from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import (
    ResponseDone, ResponseFailed, ResponseNeverReceived)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from keeptrusts.api.framing import ChunkedBody, FramingError
from keeptrusts.api.connection import MAX_HEAD
from keeptrusts.api.http1 import KeptAgent, KeptConnections
from keeptrusts.api.upstream import BytesProducer, discard


class NoDelayTransport(StringTransport):
    noDelay = False

    def setTcpNoDelay(self, enabled):
        self.noDelay = enabled


class NewEndpoint:
    """
    A new endpoint object each time, to the same connections.
    """

    def __init__(self, endpoints):
        self.connect = endpoints.connect


class Endpoints:
    """
    An endpoint factory whose connections are L{StringTransport}s.
    """

    def __init__(self):
        self.connections = []
        self.uris = []

    def endpointForURI(self, uri):
        self.uris.append(uri)
        return self

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        transport = NoDelayTransport()
        transport.abortConnection = lambda: self.close(protocol, True)
        transport.loseConnection = lambda: self.close(protocol, False)
        protocol.makeConnection(transport)
        self.connections.append(protocol)
        return defer.succeed(protocol)

    def close(self, protocol, aborted):
        protocol.transport.disconnecting = True
        protocol.transport.aborted = aborted


def RawHeaders(name, value):
    """
    Headers as they could be: newer Twisted refuses such names itself.
    """
    return SimpleNamespace(getAllRawHeaders=lambda: [(name, [value])])


def lose(protocol, reason=ConnectionDone):
    protocol.connectionLost(Failure(reason()))


class Body(Protocol):
    def __init__(self):
        self.data = []
        self.reason = None

    def dataReceived(self, data):
        self.data.append(data)

    def connectionLost(self, reason):
        self.reason = reason


OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
      b"Content-Length: 2\r\n\r\n{}")


class _AgentCase(SynchronousTestCase):
    """
    An agent over in-memory connections, on a clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.endpoints = Endpoints()
        self.pool = KeptConnections(self.clock)
        self.agent = KeptAgent(self.endpoints, self.pool)


class AgentTests(_AgentCase):

    def request(self, url=b"http://api.example:8080/v1/chat?x=1",
                method=b"POST", body=b"{}", headers=None):
        d = self.agent.request(method, url, headers or Headers(
            {b"content-type": [b"application/json"]}),
            None if body is None else BytesProducer(body))
        results = []
        d.addBoth(results.append)
        return self.endpoints.connections[-1], results

    def answer(self, data, **kwargs):
        connection, results = self.request(**kwargs)
        connection.dataReceived(data)
        self.assertEqual(len(results), 1)
        return connection, results[0]

    def answered(self, count):
        """
        C{count} answered requests in flight together: as many kept
        connections.
        """
        pending = [self.request() for _ in range(count)]
        for connection, results in pending:
            connection.dataReceived(OK)
            self.body(results[0])
        return [c for c, _ in pending]

    def body(self, response):
        body = Body()
        response.deliverBody(body)
        return body

    def test_requestBytes(self):
        connection, _ = self.request(headers=Headers({
            b"X-Api-Key": [b"k1"], b"Accept": [b"a", b"b"]}))
        self.assertEqual(
            connection.transport.value(),
            b"POST /v1/chat?x=1 HTTP/1.1\r\nHost: api.example:8080\r\n"
            b"X-Api-Key: k1\r\nAccept: a\r\nAccept: b\r\n"
            b"Content-Length: 2\r\n\r\n{}")

    def test_hostHeader(self):
        for url, host in [(b"https://api.example/v1", b"api.example"),
                          (b"http://api.example:80/", b"api.example"),
                          (b"http://[::1]:9/x", b"[::1]:9"),
                          (b"http://api.example", b"api.example")]:
            connection, _ = self.request(url=url, method=b"GET", body=None)
            line, host_ = connection.transport.value().split(b"\r\n")[:2]
            self.assertEqual(host_, b"Host: " + host)
            self.assertTrue(line.startswith(b"GET /"), line)

    def test_emptyPostHasLength(self):
        connection, _ = self.request(body=None)
        self.assertIn(b"Content-Length: 0\r\n", connection.transport.value())

    def test_refusedBeforeSending(self):
        for kwargs in [dict(method=b"GET\r\nX"), dict(url=b"ftp://x/"),
                       dict(url=b"/relative"),
                       dict(url=b"http://a/v1 HTTP/1.1\r\nX-Injected: 1"),
                       dict(url=b"http://a\r\nX: 1/"),
                       dict(url=b"http://a/\0"), dict(url=b"http://a/\xc3\xa9"),
                       dict(headers=RawHeaders(b"bad name", b"v")),
                       dict(headers=RawHeaders(b"X", b"a\r\nB: c"))]:
            d = self.agent.request(kwargs.get("method", b"GET"),
                                   kwargs.get("url", b"http://a/"),
                                   kwargs.get("headers"))
            self.failureResultOf(d, ValueError)
        self.assertEqual(self.endpoints.connections, [])

    def test_answerAndKeptConnection(self):
        connection, response = self.answer(OK)
        self.assertEqual((response.code, response.phrase, response.version),
                         (200, b"OK", (b"HTTP", 1, 1)))
        self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                         [b"application/json"])
        body = self.body(response)
        self.assertEqual(b"".join(body.data), b"{}")
        body.reason.trap(ResponseDone)
        again, results = self.request()
        self.assertIs(again, connection)
        self.assertEqual(len(self.endpoints.connections), 1)

    def test_keptAcrossManyOrigins(self):
        """
        A provider's kept connection serves it again after the agent has
        met a thousand other origins (a forward proxy's), even when the
        endpoint factory makes a new endpoint for it by then (found by
        review: keyed by endpoint, every provider's connections were
        orphaned once the caches were cleared).
        """
        fresh = Endpoints()
        fresh.endpointForURI = lambda uri: NewEndpoint(fresh)
        self.agent = KeptAgent(fresh, self.pool)
        self.endpoints = fresh
        connection, response = self.answer(OK)
        self.body(response).reason.trap(ResponseDone)
        for n in range(1100):
            self.agent.request(b"GET", b"http://host%d.example/" % (n,))
        made = len(fresh.connections)
        connection.transport.clear()
        self.request()
        self.assertEqual(len(fresh.connections), made)
        self.assertTrue(connection.transport.value().startswith(
            b"POST /v1/chat?x=1 HTTP/1.1\r\n"))

    def test_noDelay(self):
        """
        Nagle's algorithm is off on connections to providers.
        """
        connection, _ = self.request()
        self.assertTrue(connection.transport.noDelay)

    def test_keptPerEndpointFactory(self):
        """
        An agent of another configuration (its endpoints: its TLS trust,
        its proxy guard) sharing the pool does not reuse the connections
        kept for this one, though they go to the same origin (found by
        review: a reload that guarded an origin went on reusing the
        connection the old configuration had kept to it).
        """
        connection, response = self.answer(OK)
        self.body(response).reason.trap(ResponseDone)
        other = Endpoints()
        KeptAgent(other, self.pool).request(
            b"GET", b"http://api.example:8080/v1/models")
        self.assertEqual(len(other.connections), 1)
        again, _ = self.request()
        self.assertIs(again, connection)

    def test_bodyBeforeDeliverBody(self):
        """
        What comes before C{deliverBody} waits for it.
        """
        connection, results = self.request()
        connection.dataReceived(OK[:-1])
        connection.dataReceived(OK[-1:])
        body = self.body(results[0])
        self.assertEqual(b"".join(body.data), b"{}")
        body.reason.trap(ResponseDone)

    def test_bodyWithHeadHandedOnWithIt(self):
        """
        What of the body came with the head is the answer's when it is
        handed on: a body protocol given it then has those bytes, and the
        end, before the answer's callback returns (the gateway sends the
        client the head and the first event together).
        """
        seen = []

        def answered(response):
            body = self.body(response)
            seen.append((list(body.data), body.reason))
        d = self.agent.request(b"POST", b"http://api.example:8080/v1/chat",
                               Headers(), BytesProducer(b"{}"))
        d.addCallback(answered)
        connection = self.endpoints.connections[-1]
        connection.dataReceived(OK)
        [(data, reason)] = seen
        self.assertEqual(data, [b"{}"])
        reason.trap(ResponseDone)
        self.assertIs(self.request()[0], connection)

    def test_byteByByte(self):
        data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n")
        connection, results = self.request()
        for i in range(len(data)):
            connection.dataReceived(data[i:i + 1])
        body = self.body(results[0])
        self.assertEqual(b"".join(body.data), b"abcde")
        body.reason.trap(ResponseDone)
        self.assertIs(self.request()[0], connection)

    def test_untilClose(self):
        connection, response = self.answer(
            b"HTTP/1.1 200 OK\r\n\r\nsome")
        body = self.body(response)
        connection.dataReceived(b" more")
        lose(connection)
        self.assertEqual(b"".join(body.data), b"some more")
        body.reason.trap(PotentialDataLoss)
        self.assertIsNot(self.request()[0], connection)

    def test_noBody(self):
        for status, method in [(b"204 No Content", b"POST"),
                               (b"304 Not Modified", b"GET"),
                               (b"200 OK", b"HEAD")]:
            connection, response = self.answer(
                b"HTTP/1.1 " + status + b"\r\nContent-Length: 10\r\n\r\n",
                method=method, body=None)
            body = self.body(response)
            self.assertEqual(body.data, [])
            body.reason.trap(ResponseDone)
            self.assertIs(self.request()[0], connection)

    def test_interimAnswersSkipped(self):
        connection, response = self.answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
            b"Link: x\r\n\r\n" + OK)
        self.assertEqual(response.code, 200)
        self.assertEqual(b"".join(self.body(response).data), b"{}")

    def test_manyInterimAnswers(self):
        """
        Interim answers are skipped in a loop, however many come at once.
        """
        connection, response = self.answer(
            b"HTTP/1.1 100 Continue\r\n\r\n" * 5000 + OK)
        self.assertEqual(response.code, 200)
        self.assertEqual(b"".join(self.body(response).data), b"{}")

    def test_notKept(self):
        for head in [b"HTTP/1.1 200 OK\r\nConnection: close\r\n",
                     b"HTTP/1.0 200 OK\r\n",
                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Length: 2\r\n"]:
            framed = b"2\r\n{}\r\n0\r\n\r\n" if b"chunked" in head else b"{}"
            if b"Content-Length" not in head:
                head += b"Content-Length: 2\r\n"
            connection, response = self.answer(head + b"\r\n" + framed)
            body = self.body(response)
            self.assertEqual(b"".join(body.data), b"{}")
            body.reason.trap(ResponseDone)
            self.assertTrue(connection.transport.disconnecting, head)
            self.assertIsNot(self.request()[0], connection)

    def test_extraBytesAfterAnswer(self):
        connection, response = self.answer(OK + b"HTTP/1.1 200 OK\r\n")
        self.body(response).reason.trap(ResponseDone)
        self.assertTrue(connection.transport.disconnecting)

    def test_malformedHeads(self):
        for head in [b"HTTP/1.1 2000 OK\r\n\r\n", b"ICY 200 OK\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
                     b"HTTP/1.1 101 Switching Protocols\r\n\r\n"]:
            connection, failure = self.answer(head)
            failure.trap(ResponseFailed)
            self.assertTrue(connection.transport.aborted, head)

    def test_headTooLong(self):
        connection, results = self.request()
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD)
        results[0].trap(ResponseFailed)

    def test_malformedChunk(self):
        connection, response = self.answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n")
        body = self.body(response)
        body.reason.trap(ResponseFailed)
        self.assertTrue(connection.transport.aborted)

    def test_shortBody(self):
        connection, response = self.answer(OK[:-1])
        body = self.body(response)
        lose(connection, ConnectionLost)
        body.reason.trap(ResponseFailed)

    def test_closedBeforeAnswer(self):
        """
        A connection closed before any byte of an answer: the request may
        be tried again (L{ResponseNeverReceived}); after some: not.
        """
        connection, results = self.request()
        lose(connection)
        results[0].trap(ResponseNeverReceived)
        connection, results = self.request()
        connection.dataReceived(b"HTTP/1.1 2")
        lose(connection)
        self.assertFalse(results[0].check(ResponseNeverReceived))
        results[0].trap(ResponseFailed)

    def test_staleKeptConnection(self):
        connection, response = self.answer(OK)
        self.body(response)
        lose(connection)
        self.assertIsNot(self.request()[0], connection)

    def test_staleConnectionTriedAgain(self):
        """
        A kept connection closed before any byte of its answer had gone
        stale: the request goes again, once, on a new connection, and the
        other kept connections to that origin are closed.
        """
        first = self.answered(2)
        connection, results = self.request()
        self.assertIn(connection, first)
        lose(connection)
        self.assertEqual(results, [])
        fresh = self.endpoints.connections[-1]
        self.assertNotIn(fresh, first)
        self.assertIn(b"POST /v1/chat", fresh.transport.value())
        other = [c for c in first if c is not connection][0]
        self.assertTrue(other.transport.disconnecting)
        fresh.dataReceived(OK)
        self.assertEqual(results[0].code, 200)

    def test_triedAgainOnce(self):
        self.answered(1)
        connection, results = self.request()
        lose(connection)
        lose(self.endpoints.connections[-1])
        results[0].trap(ResponseNeverReceived)
        self.assertEqual(len(self.endpoints.connections), 2)

    def test_newConnectionNotTriedAgain(self):
        """
        A new connection closed before its answer: the provider may have
        the call, which is not sent twice.
        """
        connection, results = self.request()
        lose(connection)
        results[0].trap(ResponseNeverReceived)
        self.assertEqual(self.endpoints.connections, [connection])

    def test_requestHandedDownUnderTLS(self):
        """
        What a request wrote through a TLS layer that gathers small writes
        (Twisted 23.10 and later) is handed down to the socket at once.
        """
        connection = self.answered(1)[0]
        flushed = []
        connection.transport._aggregator = SimpleNamespace(
            flush=lambda: flushed.append(connection.transport.value()))
        self.request()
        self.assertEqual(len(flushed), 1)
        self.assertTrue(flushed[0].endswith(b"\r\n\r\n{}"))

    def test_cancelled(self):
        connection, results = self.request()
        d = self.agent.request(b"GET", b"http://other/", None)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertTrue(self.endpoints.connections[-1].transport.aborted)

    def test_stopProducing(self):
        """
        A body's protocol that stops the answer gets no more of it, and
        learns it is over as the connection closes.
        """
        connection, response = self.answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        body = self.body(response)
        body.transport.stopProducing()
        self.assertTrue(connection.transport.aborted)
        connection.dataReceived(b"defghij")
        self.assertEqual(body.data, [b"abc"])
        self.assertIsNone(body.reason)
        lose(connection, ConnectionLost)
        body.reason.trap(ResponseFailed)
        self.assertIsNot(self.request()[0], connection)

    def test_flowControl(self):
        connection, response = self.answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        body = self.body(response)
        body.transport.pauseProducing()
        self.assertEqual(connection.transport.producerState, "paused")
        body.transport.resumeProducing()
        self.assertEqual(connection.transport.producerState, "producing")

    def test_emptyBody(self):
        """
        An answer of length 0 is over with its head.
        """
        connection, response = self.answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        body = self.body(response)
        self.assertEqual(body.data, [])
        body.reason.trap(ResponseDone)
        self.assertIs(self.request()[0], connection)

    def test_pausedNotKeptPaused(self):
        """
        A connection a slow client paused is resumed as its answer ends:
        the next answer on it must flow.
        """
        connection, response = self.answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        body = self.body(response)
        body.transport.pauseProducing()
        connection.dataReceived(b"cd")
        body.reason.trap(ResponseDone)
        self.assertEqual(connection.transport.producerState, "producing")
        self.assertIs(self.request()[0], connection)

    def test_overAnswerLeavesItsConnection(self):
        """
        Once an answer is over, its connection may carry another's: what
        its body's protocol (or a discarded answer) does then is nothing.
        """
        connection, response = self.answer(OK)
        body = self.body(response)
        body.reason.trap(ResponseDone)
        again, _ = self.request()
        self.assertIs(again, connection)
        body.transport.pauseProducing()
        body.transport.stopProducing()
        self.assertEqual(connection.transport.producerState, "producing")
        self.assertFalse(getattr(connection.transport, "aborted", False))

    def test_discardedOverAnswer(self):
        connection, response = self.answer(
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}")
        discard(response)
        self.assertFalse(getattr(connection.transport, "aborted", False))
        self.assertIs(self.request()[0], connection)

    def test_abortedNotTaken(self):
        """
        A connection being aborted is never handed out again (a plain
        socket's abort does not say it is disconnecting).
        """
        connection, response = self.answer(OK)
        self.body(response)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\n")  # unasked for
        self.assertTrue(connection.transport.aborted)
        connection.transport.disconnecting = False
        self.assertIsNot(self.request()[0], connection)

    def test_bytesNobodyAskedFor(self):
        connection, response = self.answer(OK)
        self.body(response)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.assertTrue(connection.transport.aborted)


class PoolTests(_AgentCase):

    def answered(self, url=b"http://a/"):
        d = self.agent.request(b"GET", url)
        connection = self.endpoints.connections[-1]
        connection.dataReceived(OK)
        self.successResultOf(d).deliverBody(Body())
        return connection

    def test_idleClosed(self):
        connection = self.answered()
        self.clock.advance(self.pool.idleSeconds - 1)
        self.assertFalse(connection.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(connection.transport.disconnecting)

    def test_idleClosedThenLost(self):
        """
        A connection closed for idling leaves the pool cleanly when it is
        lost, and closing the pool does not wait for it.
        """
        connection = self.answered()
        self.clock.advance(self.pool.idleSeconds)
        lose(connection)
        self.successResultOf(connection.closed)
        self.successResultOf(self.pool.closeCachedConnections())
        self.assertIsNot(self.answered(), connection)

    def test_takenNotClosed(self):
        connection = self.answered()
        self.agent.request(b"GET", b"http://a/")
        self.clock.advance(self.pool.idleSeconds)
        self.assertFalse(connection.transport.disconnecting)

    def test_atMostPerHost(self):
        self.pool.maxPersistentPerHost = 1
        ds = [self.agent.request(b"GET", b"http://a/") for _ in range(2)]
        first, second = self.endpoints.connections
        for connection, d in zip((first, second), ds):
            connection.dataReceived(OK)
            self.successResultOf(d).deliverBody(Body())
        self.assertFalse(first.transport.disconnecting)
        self.assertTrue(second.transport.disconnecting)

    def test_perOrigin(self):
        first = self.answered(b"http://a/")
        second = self.answered(b"https://a/")
        self.assertIsNot(first, second)
        self.assertEqual([(u.scheme, u.host, u.port)
                          for u in self.endpoints.uris],
                         [(b"http", b"a", 80), (b"https", b"a", 443)])

    def test_closeCachedConnections(self):
        connection = self.answered()
        d = self.pool.closeCachedConnections()
        self.assertTrue(connection.transport.disconnecting)
        self.assertNoResult(d)
        lose(connection)
        self.successResultOf(d)
        self.assertIsNot(self.answered(), connection)


class ChunkedBodyTests(SynchronousTestCase):

    def test_pieces(self):
        body = ChunkedBody()
        data = b"4\r\nWiki\r\n5;a=b\r\npedia\r\n0\r\n\r\nNEXT"
        out, over, rest = [], False, b""
        for i in range(0, len(data), 3):
            pieces, over, rest = body.feed(data[i:i + 3])
            out.extend(pieces)
            if over:
                rest += data[i + 3:]
                break
        self.assertEqual((b"".join(out), over, rest),
                         (b"Wikipedia", True, b"NEXT"))

    def test_malformed(self):
        for data in [b"g\r\n", b"3\r\nabcXY", b"-1\r\n",
                     b"1" * 5000, b"12345678901234567\r\n"]:
            self.assertRaises(FramingError, ChunkedBody().feed, data)
