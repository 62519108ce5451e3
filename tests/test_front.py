"""
The shared listener's first line: CONNECT heads go to the connect handler
with every byte that followed them, everything else to the site, which
keeps working as if it had accepted the connection itself.
"""

import hashlib
import io
import json
import socket

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import Clock
from twisted.internet.testing import (
    MemoryReactorClock, StringTransport, StringTransportWithDisconnection)
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.resource import Resource
from zope.interface import implementer

from keeptrusts.api.site import GatewaySite
from keeptrusts.api.errors import GatewayError
from keeptrusts.front import ConnectRequest, FrontFactory, parseConnect
from keeptrusts.testing import waitUntil

CLIENT = IPv4Address("TCP", "127.0.0.1", 50123)
SERVER = IPv4Address("TCP", "127.0.0.1", 41002)


class Echo(Resource):
    """
    Says what it got, and who carries the connection now.
    """

    isLeaf = True

    def render(self, request):
        body = request.content.read()
        transport = request.channel.transport
        return json.dumps({
            "method": request.method.decode(), "path": request.path.decode(),
            "length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "port": request.getClientAddress().port,
            "protocol": type(getattr(transport, "protocol", None)).__name__,
        }).encode()


@implementer(IHalfCloseableProtocol)
class Taker(Protocol):
    """
    What a connect handler hands the connection to: it keeps every event.
    """

    def __init__(self):
        self.received = []
        self.events = []

    def dataReceived(self, data):
        self.received.append(data)

    def readConnectionLost(self):
        self.events.append("readConnectionLost")

    def writeConnectionLost(self):
        self.events.append("writeConnectionLost")

    def connectionLost(self, reason):
        self.events.append("connectionLost")


class Handler:
    def __init__(self):
        self.calls = []

    def handleConnect(self, request, transport, leftover):
        taker = Taker()
        taker.makeConnection(transport)
        self.calls.append((request, transport, leftover, taker))
        return taker


class StartStop(ServerFactory):
    started = stopped = 0

    def startFactory(self):
        self.started += 1

    def stopFactory(self):
        self.stopped += 1


class FrontTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.site = GatewaySite(Echo(), 1024 * 1024,
                                reactor=MemoryReactorClock())
        self.handler = Handler()
        self.factory = FrontFactory(self.site, self.handler, self.clock,
                                    headTimeout=30, maxLine=100, maxHead=400)

    def connect(self, transport=None):
        protocol = self.factory.buildProtocol(CLIENT)
        transport = transport or StringTransport(hostAddress=SERVER,
                                                 peerAddress=CLIENT)
        if isinstance(transport, StringTransportWithDisconnection):
            transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol, transport

    def responses(self, transport):
        return [json.loads(part.split(b"\r\n\r\n", 1)[1])
                for part in transport.value().split(b"HTTP/1.1 200 OK")[1:]]

    def test_originFormReachesTheSite(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        [answer] = self.responses(transport)
        self.assertEqual((answer["method"], answer["path"]),
                         ("GET", "/v1/models"))
        self.assertEqual(self.handler.calls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_decidedOnTheFirstBytes(self):
        """
        A request that does not start with C{CONNECT } is the site's as
        soon as that is clear, however short its first segment.
        """
        protocol, transport = self.connect()
        for data in (b"\r\n", b"P", b"OST /a HTTP/1.1\r\nHost: x\r\n",
                     b"Content-Length: 3\r\n\r\nabc"):
            protocol.dataReceived(data)
        [answer] = self.responses(transport)
        self.assertEqual((answer["method"], answer["length"]), ("POST", 3))

    def test_keepAliveAndPipelining(self):
        protocol, transport = self.connect()
        requests = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i,)
                            for i in range(3))
        protocol.dataReceived(requests)
        for i in range(3, 6):
            protocol.dataReceived(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i,))
        self.assertEqual([a["path"] for a in self.responses(transport)],
                         ["/%d" % (i,) for i in range(6)])
        self.assertFalse(transport.disconnecting)

    def test_postBodySplitAcrossSegments(self):
        protocol, transport = self.connect()
        body = bytes(range(256)) * 40
        data = (b"POST /upload HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: %d\r\n\r\n" % (len(body),) + body)
        for i in range(0, len(data), 7):
            protocol.dataReceived(data[i:i + 7])
        [answer] = self.responses(transport)
        self.assertEqual((answer["length"], answer["sha256"]),
                         (len(body), hashlib.sha256(body).hexdigest()))

    def test_transportProtocolReplaced(self):
        """
        On a transport that calls C{transport.protocol} (TCP, UNIX), the
        site's protocol takes the front's place; its events then skip the
        front.
        """
        protocol, transport = self.connect(StringTransportWithDisconnection(
            hostAddress=SERVER, peerAddress=CLIENT))
        protocol.dataReceived(b"GET /a HTTP/1.1\r\n")
        self.assertIsNot(transport.protocol, protocol)
        transport.protocol.dataReceived(b"Host: x\r\n\r\n")
        [answer] = self.responses(transport)
        self.assertEqual(answer["protocol"], type(transport.protocol).__name__)

    def test_connectHeadSplitByteByByte(self):
        protocol, transport = self.connect()
        head = (b"CONNECT api.openai.com:443 HTTP/1.1\r\n"
                b"Host: api.openai.com:443\r\n"
                b"proxy-AUTHORIZATION: Basic eDp5\r\n\r\n")
        for i in range(len(head)):
            self.assertEqual(self.handler.calls, [])
            protocol.dataReceived(head[i:i + 1])
        [(request, given, leftover, taker)] = self.handler.calls
        self.assertEqual((request.host, request.port), ("api.openai.com", 443))
        self.assertEqual(request.header(b"Proxy-Authorization"), b"Basic eDp5")
        self.assertEqual((request.clientAddress, request.serverAddress),
                         (CLIENT, SERVER))
        self.assertIsNone(request.user)
        self.assertIs(given, transport)
        self.assertEqual(leftover, b"")
        protocol.dataReceived(b"\x16\x03\x01")
        self.assertEqual(taker.received, [b"\x16\x03\x01"])
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_bytesAfterTheHeadKeepTheirOrder(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNECT [::1]:8443 HTTP/1.0\r\n\r\n"
                              b"\x16\x03\x01hello\r\n\r\nmore")
        [(request, _, leftover, taker)] = self.handler.calls
        self.assertEqual((request.host, request.port, request.headers),
                         ("::1", 8443, ()))
        self.assertEqual(leftover, b"\x16\x03\x01hello\r\n\r\nmore")
        protocol.dataReceived(b"next")
        protocol.readConnectionLost()
        protocol.connectionLost(None)
        self.assertEqual(taker.received, [b"next"])
        self.assertEqual(taker.events, ["readConnectionLost", "connectionLost"])

    def test_handedOverEvenWhenClosedDuringTheHandOver(self):
        """
        A handler that closes the connection while it takes it over still
        sees the loss.
        """
        class Closing(Handler):
            def handleConnect(self, request, transport, leftover):
                taker = Handler.handleConnect(self, request, transport, leftover)
                transport.loseConnection()
                return taker
        self.factory.connectHandler = handler = Closing()
        protocol, transport = self.connect(StringTransportWithDisconnection())
        protocol.dataReceived(b"CONNECT a.example:443 HTTP/1.1\r\n\r\n")
        self.assertEqual(handler.calls[0][3].events, ["connectionLost"])

    def assertRefused(self, transport, status, code=None):
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 %d " % (status,)), head)
        self.assertIn(b"Connection: close", head)
        error = json.loads(body)["error"]
        self.assertEqual(error["type"], "validation_error")
        if code is not None:
            self.assertEqual(error["code"], code)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.handler.calls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_malformedConnect(self):
        for line in (b"CONNECT api.openai.com HTTP/1.1",
                     b"CONNECT api.openai.com:0 HTTP/1.1",
                     b"CONNECT api.openai.com:65536 HTTP/1.1",
                     b"CONNECT user@api.openai.com:443 HTTP/1.1",
                     b"CONNECT [nope]:443 HTTP/1.1",
                     b"CONNECT a..b:443 HTTP/1.1",
                     b"CONNECT a.example:443 HTTP/2.0",
                     b"CONNECT a.example:443",
                     b"CONNECT  a.example:443 HTTP/1.1"):
            protocol, transport = self.connect()
            protocol.dataReceived(line + b"\r\n\r\n")
            self.assertRefused(transport, 400)
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNECT a.example:443 HTTP/1.1\r\n"
                              b"Host: a\r\n folded\r\n\r\n")
        self.assertRefused(transport, 400)

    def test_overlongRequestLine(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNECT " + b"a" * 100)
        self.assertRefused(transport, 414, "request_line_too_long")
        protocol.dataReceived(b"ignored")
        self.assertEqual(self.handler.calls, [])

    def test_overlongHead(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNECT a.example:443 HTTP/1.1\r\n")
        for _ in range(20):
            protocol.dataReceived(b"X-Filler: " + b"f" * 20 + b"\r\n")
        self.assertRefused(transport, 431, "headers_too_large")

    def test_overlongHeadInOneSegment(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNECT a.example:443 HTTP/1.1\r\n"
                              + b"X: y\r\n" * 80 + b"\r\n")
        self.assertRefused(transport, 431)

    def test_headAtTheLimitIsAccepted(self):
        protocol, transport = self.connect()
        line = b"CONNECT a.example:443 HTTP/1.1\r\n"
        filler = b"X: " + b"y" * (400 - len(line) - 7) + b"\r\n\r\n"
        protocol.dataReceived(line + filler + b"after")
        self.assertEqual(len(line + filler), 400)
        self.assertEqual(self.handler.calls[0][2], b"after")

    def test_overlongOriginLineIsTheSites(self):
        """
        The site applies its own limits to the requests it gets.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /" + b"a" * 20000)
        self.assertTrue(transport.disconnecting)
        self.assertNotIn(b"200 OK", transport.value())

    def test_disconnectMidLine(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNE")
        protocol.connectionLost(None)
        self.assertEqual(self.handler.calls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_finMidHead(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNECT a.example:443 HTTP/1.1\r\n")
        protocol.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.handler.calls, [])

    def test_headTimeout(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"CONNECT a.example:443 HTTP/1.1\r\n")
        self.clock.advance(29)
        protocol.dataReceived(b"Host: a\r\n")
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)  # a deadline for the head, not an idle timer
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_startsAndStopsTheSite(self):
        site = StartStop()
        factory = FrontFactory(site, self.handler, self.clock)
        factory.doStart()
        factory.doStop()
        self.assertEqual((site.started, site.stopped), (1, 1))


class ParseTests(SynchronousTestCase):
    def test_parse(self):
        request = parseConnect(
            b"CONNECT API.OpenAI.com.:443 HTTP/1.1\r\nHost: a\r\n"
            b"X-Two: 1\r\nx-two: 2 \r\n\r\n", CLIENT, SERVER)
        self.assertEqual(request, ConnectRequest(
            host="api.openai.com", port=443,
            headers=((b"host", b"a"), (b"x-two", b"1"), (b"x-two", b"2")),
            clientAddress=CLIENT, serverAddress=SERVER,
            sentHost="API.OpenAI.com"))
        self.assertEqual(request.header(b"X-TWO"), b"2")
        self.assertIsNone(request.header(b"missing"))
        self.assertEqual(parseConnect(b"CONNECT 10.0.0.1:8443 HTTP/1.0\n\n",
                                      CLIENT, SERVER).host, "10.0.0.1")

    def test_sentHost(self):
        """
        The host is kept as the client wrote it too, for records: a key in
        it is found in its own case (found by review: the journal kept
        C{akiaiosfodnn7example.invalid}, a key once upper-cased).
        """
        request = parseConnect(b"CONNECT AKIAIOSFODNN7EXAMPLE.invalid:443 "
                               b"HTTP/1.1\r\n\r\n", CLIENT, SERVER)
        self.assertEqual(request.host, "akiaiosfodnn7example.invalid")
        self.assertEqual(request.shownHost, "AKIAIOSFODNN7EXAMPLE.invalid")
        request = parseConnect(b"CONNECT api.openai.com:443 HTTP/1.1\r\n\r\n",
                               CLIENT, SERVER)
        self.assertIsNone(request.sentHost)
        self.assertEqual(request.shownHost, "api.openai.com")

    def test_longestName(self):
        """
        A host name longer than DNS allows (253 characters) is a 400 here,
        before anything (a certificate for an intercepted host) is made of
        it; the longest one is taken, with or without its final dot.
        """
        longest = ".".join(["a" * 63] * 3 + ["b" * 61])
        for name in (longest, longest + "."):
            request = parseConnect(b"CONNECT %s:443 HTTP/1.1\r\n\r\n"
                                   % (name.encode(),), CLIENT, SERVER)
            self.assertEqual(request.host, longest)
        error = self.assertRaises(
            GatewayError, parseConnect,
            b"CONNECT c.%s:443 HTTP/1.1\r\n\r\n" % (longest.encode(),),
            CLIENT, SERVER)
        self.assertEqual(error.status, 400)
        self.assertIn("longer than a DNS name", error.message)


class LoopbackTests(TestCase):
    """
    The front on a real listener, in front of the real site.
    """

    def setUp(self):
        site = GatewaySite(Echo(), 16 * 1024 * 1024)
        self.factory = FrontFactory(site, Handler(), reactor)
        port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        self.url = b"http://127.0.0.1:%d" % (self.port,)
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=pool)

    @inlineCallbacks
    def request(self, method, path, body=None):
        response = yield self.agent.request(
            method, self.url + path, None,
            None if body is None else FileBodyProducer(io.BytesIO(body)))
        self.assertEqual(response.code, 200)
        return json.loads((yield readBody(response)))

    @inlineCallbacks
    def test_keepAlive(self):
        """
        Several requests on one connection, which the site's protocol then
        holds directly (the front is off the path).
        """
        answers = []
        for path in (b"/a", b"/b", b"/c"):
            answers.append((yield self.request(b"GET", path)))
        self.assertEqual([a["path"] for a in answers], ["/a", "/b", "/c"])
        self.assertEqual(len({a["port"] for a in answers}), 1)
        self.assertNotIn("Front", answers[0]["protocol"])
        self.assertEqual(answers[0]["protocol"], "GatewayChannel")

    @inlineCallbacks
    def connected(self):
        """
        A client connected to the listener, and the list the listener's
        protocols go to as they are built.
        """
        accepted = []
        buildProtocol = self.factory.buildProtocol
        self.factory.buildProtocol = lambda addr: accepted.append(
            buildProtocol(addr)) or accepted[-1]
        client = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.port),
            Protocol())
        return accepted, client

    @inlineCallbacks
    def test_noDelay(self):
        """
        An accepted connection has Nagle's algorithm off: a streamed event
        does not wait for the acknowledgement of the one before it.
        """
        accepted, client = yield self.connected()
        self.addCleanup(client.transport.loseConnection)
        yield waitUntil(reactor, lambda: accepted and
                        accepted[0].transport is not None, timeout=60)
        handle = accepted[0].transport.getHandle()
        self.assertTrue(handle.getsockopt(socket.IPPROTO_TCP,
                                          socket.TCP_NODELAY))

    @inlineCallbacks
    def test_clientLeavesMidLine(self):
        """
        A client that goes away in the middle of its first line leaves
        nothing behind: no handler call, no timer.
        """
        accepted, client = yield self.connected()
        client.transport.write(b"CONNE")
        client.transport.loseConnection()
        yield waitUntil(reactor, lambda: accepted and
                        accepted[0].transport.disconnected, timeout=60)
        self.assertEqual(self.factory.connectHandler.calls, [])
        self.assertEqual([call for call in reactor.getDelayedCalls()
                          if getattr(call.func, "__self__", None)
                          is accepted[0]], [])

    @inlineCallbacks
    def test_largePost(self):
        body = hashlib.sha256(b"x").digest() * 65536  # 2 MB
        answer = yield self.request(b"POST", b"/upload", body)
        self.assertEqual((answer["length"], answer["sha256"]),
                         (len(body), hashlib.sha256(body).hexdigest()))
