"""
CONNECT on the shared listener: access control, refusals, and the blind
tunnel, in memory and over real loopback sockets with real clients (a TLS
client that checks the server's own certificate, curl).
"""

import base64
import datetime
import functools
import hashlib
import ipaddress
import json
import os
import socket
import time
from unittest import SkipTest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import reactor, ssl, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import (
    IHalfCloseableProtocol, IHandshakeListener, IPullProducer)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from keeptrusts.api.errors import GatewayError
from keeptrusts.api.site import GatewaySite
from keeptrusts.config import AccessKey, parseConfig
from keeptrusts.front import FrontFactory, parseConnect
from keeptrusts.identity import Identify
from keeptrusts.policy.registry import policyFactories
from keeptrusts.proxy.connect import ConnectEvent, ConnectHandler, accessRecord
from keeptrusts.proxy.guard import isLocalAddress
from keeptrusts.proxy.proxypolicy import ProxyPolicy, hostMatcher
from keeptrusts.proxy.splice import Splicer
from keeptrusts.proxy.resolve import FixedResolver
from keeptrusts.proxy.tunnel import ESTABLISHED, TunnelClient, TunnelOutcome
from keeptrusts.testing import waitUntil

CURL = "/usr/bin/curl"
MB = 1024 * 1024
WAIT = 60  # seconds; a bound for loaded machines, not a timing
def primaryAddress():
    """
    The machine's address towards the network (no packet is sent), or
    L{None} when it has none besides loopback.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if ipaddress.ip_address(address).is_loopback else address


# TEST-NET-2: no machine's own address.
REMOTE = "198.51.100.7"
CLIENT = IPv4Address("TCP", "127.0.0.1", 50123)
SERVER = IPv4Address("TCP", "127.0.0.1", 41002)
KEYS = (AccessKey(id="a", user="alice", key_env="KT_A"),)
ENVIRON = {"KT_A": "kt-alice-secret"}


def until(predicate):
    return waitUntil(reactor, predicate, timeout=WAIT)


def policy(**kwargs):
    identify = Identify(KEYS, ENVIRON, "anonymous")
    required = kwargs.pop("required", False)
    return ProxyPolicy(authenticate=functools.partial(
        identify.fromProxyAuthorization, required=required), **kwargs)


def connectHead(target, *headers):
    return b"\r\n".join((b"CONNECT %s HTTP/1.1" % (target,),
                         b"Host: %s" % (target,)) + headers) + b"\r\n\r\n"


def parseAnswer(data):
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


class Transport(StringTransport):
    aborted = writeClosed = False

    def abortConnection(self):
        self.aborted = True
        StringTransport.loseConnection(self)

    def loseWriteConnection(self):
        self.writeClosed = True


# -- in memory

class Opening:
    """
    A fake C{connect} for L{TunnelClient}: the test decides when it ends.
    """

    def __init__(self):
        self.cancelled = False
        self.deferred = Deferred(lambda d: setattr(self, "cancelled", True))

    def __call__(self, factory):
        self.factory = factory
        return self.deferred

    def connect(self):
        protocol = self.factory.buildProtocol(None)
        transport = Transport()
        protocol.makeConnection(transport)
        self.deferred.callback(protocol)
        return protocol, transport


class TunnelClientTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.opening = Opening()
        self.client = TunnelClient(self.clock, self.opening, "a.example:443",
                                   b"hello", 10, 300)
        self.outcomes = []
        self.client.finished.addCallback(self.outcomes.append)
        self.transport = Transport()
        self.client.makeConnection(self.transport)

    def test_leftoverAndEarlyBytesGoFirst(self):
        self.assertEqual(self.transport.producerState, "paused")
        self.client.dataReceived(b" early")
        upstream, upTransport = self.opening.connect()
        self.assertEqual(self.transport.value(), ESTABLISHED)
        self.assertEqual(upTransport.value(), b"hello early")
        self.assertEqual(self.transport.producerState, "producing")
        self.assertIs(self.transport.producer, upTransport)
        self.assertIs(upTransport.producer, self.transport)
        self.client.dataReceived(b"!")
        upstream.dataReceived(b"back")
        self.assertEqual(upTransport.value(), b"hello early!")
        self.assertEqual(self.transport.value(), ESTABLISHED + b"back")

    def test_idleTimeoutAbortsBothSides(self):
        upstream, upTransport = self.opening.connect()
        self.clock.advance(299)
        upstream.dataReceived(b"x")
        self.clock.advance(299)
        self.client.dataReceived(b"y")
        self.clock.advance(299)
        self.assertFalse(self.transport.aborted or upTransport.aborted)
        self.clock.advance(1)
        self.assertTrue(self.transport.aborted and upTransport.aborted)
        self.client.connectionLost(None)
        upstream.connectionLost(None)
        self.assertEqual(self.outcomes, [TunnelOutcome(200, 6, 1)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connectTimeout(self):
        self.clock.advance(10)
        status, headers, body = parseAnswer(self.transport.value())
        self.assertEqual(status, 504)
        self.assertEqual(json.loads(body)["error"]["type"], "upstream_timeout")
        self.assertTrue(self.opening.cancelled)
        self.assertTrue(self.transport.disconnecting)
        self.client.connectionLost(None)
        self.assertEqual(self.outcomes, [TunnelOutcome(504, 0, 0)])

    def test_refusedByTheTarget(self):
        self.opening.deferred.errback(GatewayError(403, "forbidden", "no"))
        self.assertEqual(parseAnswer(self.transport.value())[0], 403)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_clientLeavesWhileConnecting(self):
        self.client.connectionLost(None)
        self.assertTrue(self.opening.cancelled)
        self.assertEqual(self.outcomes, [TunnelOutcome(None, 0, 0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_halfCloseBothWays(self):
        upstream, upTransport = self.opening.connect()
        self.client.readConnectionLost()
        self.assertTrue(upTransport.writeClosed)
        self.assertIsNone(upTransport.producer)
        self.assertFalse(self.transport.disconnecting)
        upstream.dataReceived(b"still")
        self.assertEqual(self.transport.value(), ESTABLISHED + b"still")
        upstream.readConnectionLost()
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(upTransport.disconnecting)
        self.assertIsNone(self.transport.producer)


class RecordingTaker(Protocol):
    received = b""

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lostReason = reason


class ConnectHandlerTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.events = []
        self.intercepted = []

    def handler(self, intercept=None, **kwargs):
        kwargs.setdefault("allowedPorts", [443])
        kwargs.setdefault("interceptHost", hostMatcher(["*.openai.com"]))
        inForce = policy(**kwargs)
        return ConnectHandler(self.reactor, lambda: inForce,
                              self.events.append, intercept,
                              FixedResolver(["192.0.2.7"]))

    def connect(self, handler, target=b"api.example.com:443", *headers,
                leftover=b""):
        request = parseConnect(connectHead(target, *headers), CLIENT, SERVER)
        transport = Transport(hostAddress=SERVER, peerAddress=CLIENT)
        return handler.handleConnect(request, transport, leftover), transport

    def assertRefused(self, transport, status, type, code=None):
        got, headers, body = parseAnswer(transport.value())
        self.assertEqual(got, status)
        self.assertEqual(headers[b"Content-Type"], b"application/json")
        error = json.loads(body)["error"]
        self.assertEqual((error["type"], error["code"]), (type, code))
        self.assertTrue(transport.disconnecting)
        return headers

    def test_proxyAuthenticationRequired(self):
        handler = self.handler(required=True)
        protocol, transport = self.connect(handler)
        self.assertIsNone(protocol)
        headers = self.assertRefused(transport, 407, "authentication_error")
        self.assertEqual(headers[b"Proxy-Authenticate"],
                         b'Basic realm="keeptrusts"')
        self.assertEqual(self.events, [ConnectEvent(
            "tunnel", "api.example.com", 443, None, 407, 0, 0, 0.0)])

    def test_portNotAllowed(self):
        protocol, transport = self.connect(self.handler(),
                                           b"api.example.com:22")
        self.assertRefused(transport, 403, "forbidden", "port_not_allowed")
        self.assertEqual([(e.status, e.user) for e in self.events],
                         [(403, "anonymous")])

    def test_gatewayItself(self):
        handler = self.handler(allowedPorts=[41002])
        for target in (b"127.0.0.1:41002", b"localhost:41002",
                       b"[::1]:41002", b"0.0.0.0:41002",
                       b"[::ffff:127.0.0.1]:41002"):
            protocol, transport = self.connect(handler, target)
            self.assertRefused(transport, 403, "forbidden", "loop")
        # A name is checked once resolved, before connecting.
        inForce = policy(allowedPorts=[41002])
        handler = ConnectHandler(self.reactor, lambda: inForce,
                                 self.events.append,
                                 resolver=FixedResolver(["10.9.9.9",
                                                         "127.0.0.1"]))
        protocol, transport = self.connect(handler, b"gateway.test:41002")
        self.assertRefused(transport, 403, "forbidden", "loop")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_gatewayOnAnotherOfItsAddresses(self):
        """
        A gateway listening on all interfaces is on each of the machine's
        addresses: a CONNECT to another of them, on the gateway's port, is
        refused as a loop too; a remote address on that port is not.
        """
        local = primaryAddress()
        if local is None:
            raise SkipTest("this machine has no address besides loopback")
        self.assertTrue(isLocalAddress(ipaddress.ip_address(local)))
        self.assertFalse(isLocalAddress(ipaddress.ip_address(REMOTE)))
        handler = self.handler(allowedPorts=[41002])
        protocol, transport = self.connect(handler, b"%s:41002" % (
            local.encode(),))
        self.assertRefused(transport, 403, "forbidden", "loop")
        inForce = policy(allowedPorts=[41002])
        handler = ConnectHandler(self.reactor, lambda: inForce,
                                 self.events.append,
                                 resolver=FixedResolver([local]))
        protocol, transport = self.connect(handler, b"gateway.test:41002")
        self.assertRefused(transport, 403, "forbidden", "loop")
        handler = ConnectHandler(self.reactor, lambda: inForce,
                                 self.events.append,
                                 resolver=FixedResolver([REMOTE]))
        protocol, transport = self.connect(handler, b"remote.test:41002")
        self.assertIsInstance(protocol, TunnelClient)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        protocol.connectionLost(None)

    def test_guardedInternal(self):
        """
        Off loopback (C{guarded}), a CONNECT to the gateway's machine or its
        link is refused, literal or once resolved, on any allowed port; on
        loopback it is not (the caller is on the machine already).
        """
        matcher = hostMatcher(["*.test", "127.0.0.1", "[::1]", "::1",
                               "169.254.169.254", "0.0.0.0",
                               "::ffff:169.254.169.254"])

        def guarded(scheme, host, port):
            return matcher(host)
        handler = self.handler(guarded=guarded, allowedPorts=[443, 8443])
        for target in (b"127.0.0.1:443", b"[::1]:8443",
                       b"169.254.169.254:443", b"0.0.0.0:443",
                       b"[::ffff:169.254.169.254]:443"):
            protocol, transport = self.connect(handler, target)
            self.assertIsNone(protocol, target)
            self.assertRefused(transport, 403, "forbidden", "internal_address")
        inForce = policy(guarded=guarded)
        handler = ConnectHandler(self.reactor, lambda: inForce,
                                 self.events.append,
                                 resolver=FixedResolver(["169.254.169.254"]))
        protocol, transport = self.connect(handler, b"metadata.test:443")
        self.assertRefused(transport, 403, "forbidden", "internal_address")
        protocol.connectionLost(None)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual([e.status for e in self.events], [403] * 6)
        # A host the configuration names is the operator's choice.
        inForce = policy(
            guarded=lambda scheme, host, port: host != "local.test")
        handler = ConnectHandler(self.reactor, lambda: inForce,
                                 self.events.append,
                                 resolver=FixedResolver(["127.0.0.1"]))
        protocol, transport = self.connect(handler, b"local.test:443")
        self.assertIsInstance(protocol, TunnelClient)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        protocol.connectionLost(None)

    def test_guardedFromConfig(self):
        """
        Off loopback every destination but those the configuration names
        is guarded (a target's host on its own port only); on loopback none
        is.
        """
        identify = Identify(KEYS, ENVIRON, "anonymous")
        config = parseConfig(
            "pack: {name: t, version: 1.0.0, enabled: true}\n"
            "providers: {targets: [{id: t, provider: openai, base_url: "
            "'http://127.0.0.1:11434/v1', hosts: [llm.corp.example]}]}\n"
            "policies: {chain: [audit-logger]}\n", policyFactories())
        guarded = ProxyPolicy.fromConfig(config, identify,
                                         loopback=False).guarded
        self.assertEqual([guarded(None, h, p) for h, p in (
            ("127.0.0.1", 11434), ("llm.corp.example", 443),
            ("127.0.0.1", 443), ("llm.corp.example", 8443),
            ("localhost", 11434), ("example.com", 443))],
            [False, False, True, True, True, True])
        self.assertIsNone(ProxyPolicy.fromConfig(config, identify,
                                                 loopback=True).guarded)

    def test_unknownName(self):
        inForce = policy()
        handler = ConnectHandler(self.reactor, lambda: inForce,
                                 self.events.append,
                                 resolver=FixedResolver([]))
        protocol, transport = self.connect(handler, b"nowhere.example:443")
        self.assertRefused(transport, 502, "upstream_error")
        protocol.connectionLost(None)
        self.assertEqual(self.events[0].status, 502)

    def test_tunnelToTheVettedAddress(self):
        handler = self.handler(connectTimeout=7)
        protocol, transport = self.connect(handler, leftover=b"\x16\x03\x01")
        self.assertIsInstance(protocol, TunnelClient)
        [(host, port, factory, timeout, _)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("192.0.2.7", 443, 7))
        upTransport = Transport()
        upstream = factory.buildProtocol(None)
        upstream.makeConnection(upTransport)
        self.assertEqual(transport.value(), ESTABLISHED)
        self.assertEqual(upTransport.value(), b"\x16\x03\x01")
        protocol.connectionLost(None)
        upstream.connectionLost(None)
        [event] = self.events
        self.assertEqual((event.mode, event.status, event.bytesUp),
                         ("tunnel", 200, 3))

    def test_interceptHook(self):
        def intercept(request, transport, leftover):
            self.intercepted.append((request, leftover))
            transport.write(ESTABLISHED)
            taker = RecordingTaker()
            taker.makeConnection(transport)
            return taker
        handler = self.handler(intercept)
        protocol, transport = self.connect(
            handler, b"api.openai.com:443", b"Proxy-Authorization: Basic " +
            base64.b64encode(b"x:kt-alice-secret"),
            leftover=b"hello")
        [(request, leftover)] = self.intercepted
        self.assertEqual((request.host, request.user, leftover),
                         ("api.openai.com", "alice", b"hello"))
        protocol.dataReceived(b"more")
        self.assertEqual(protocol.wrappedProtocol.received, b"more")
        self.assertEqual(self.events, [])
        self.reactor.advance(2)
        protocol.connectionLost(None)
        self.assertEqual(self.events, [ConnectEvent(
            "intercept", "api.openai.com", 443, "alice", 200, 9,
            len(ESTABLISHED), 2.0)])
        # Hosts not listed for interception are tunnelled.
        protocol, transport = self.connect(handler, b"openai.com:443")
        self.assertIsInstance(protocol, TunnelClient)

    def test_interceptHookRefuses(self):
        def intercept(request, transport, leftover):
            raise GatewayError(503, "unavailable", "no CA")
        protocol, transport = self.connect(self.handler(intercept),
                                           b"api.openai.com:443")
        self.assertIsNone(protocol)
        self.assertRefused(transport, 503, "unavailable")
        self.assertEqual(self.events[0].status, 503)

    def test_interceptHookFails(self):
        def intercept(request, transport, leftover):
            transport.write(ESTABLISHED)
            raise RuntimeError("bug")
        protocol, transport = self.connect(self.handler(intercept),
                                           b"api.openai.com:443")
        self.assertIsNone(protocol)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.events[0].status, None)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_keyInTheHostNotRecorded(self):
        """
        A CONNECT's host is recorded as the client wrote it, and scrubbed in
        any casing: a key in it is not kept, lower-cased or not (found by
        review: C{akiaiosfodnn7example.invalid} was journaled).
        """
        for target in (b"AKIAIOSFODNN7EXAMPLE.invalid:22",
                       b"akiaiosfodnn7example.invalid:22"):
            self.connect(self.handler(), target)
        self.assertEqual([e.host for e in self.events],
                         ["AKIAIOSFODNN7EXAMPLE.invalid",
                          "akiaiosfodnn7example.invalid"])
        for event in self.events:
            record = accessRecord(event, "t@1")
            self.assertEqual(
                (record["host"], record["target"], record["status"]),
                ("[REDACTED:AWS_ACCESS_KEY_ID].invalid", "", 403))

    def test_accessRecord(self):
        record = accessRecord(ConnectEvent("tunnel", "example.com", 443,
                                           "alice", 200, 10, 20, 1.5), "t@1")
        self.assertEqual(
            {k: record[k] for k in ("phase", "verdict", "mode", "method",
                                    "host", "port", "user", "status",
                                    "bytes", "config")},
            {"phase": "access", "verdict": "allow", "mode": "tunnel",
             "method": "CONNECT", "host": "example.com", "port": 443,
             "user": "alice", "status": 200, "bytes": {"up": 10, "down": 20},
             "config": "t@1"})
        self.assertEqual(record["latency_ms"]["total"], 1500.0)
        for status, verdict in ((407, "block"), (403, "block"),
                                (502, "error"), (None, "error")):
            self.assertEqual(accessRecord(ConnectEvent(
                "tunnel", "h", 443, None, status, 0, 0, 0), "t@1")["verdict"],
                verdict)


class PolicyTests(SynchronousTestCase):
    def test_hostMatcher(self):
        matches = hostMatcher(["api.openai.com", "*.anthropic.com",
                               "Sourcegraph.com."])
        for host in ("api.openai.com", "API.OPENAI.COM.", "x.anthropic.com",
                     "a.b.anthropic.com", "sourcegraph.com"):
            self.assertTrue(matches(host), host)
        for host in ("openai.com", "anthropic.com", "xanthropic.com",
                     "api.openai.com.evil", "www.sourcegraph.com"):
            self.assertFalse(matches(host), host)
        for bad in ("*", "a.*.com", "*x.com", ""):
            self.assertRaises(ValueError, hostMatcher, [bad])
        self.assertFalse(hostMatcher([])("a.com"))

    def config(self, gateway):
        return parseConfig("""
pack: {name: t, version: 1.0.0, enabled: true}
gateway: %s
providers:
  targets:
    - {id: o, provider: openai}
    - {id: s, provider: sourcegraph, type: passthrough,
       hosts: [sourcegraph.example]}
policies: {chain: [dlp-filter]}
""" % (gateway,), policyFactories())

    def test_fromConfig(self):
        identify = Identify(KEYS, ENVIRON, "anonymous")
        config = self.config("{}")
        local = ProxyPolicy.fromConfig(config, identify, loopback=True)
        self.assertEqual(local.allowedPorts, frozenset([443]))
        self.assertEqual((local.connectTimeout, local.idleTimeout), (10, 300))
        self.assertEqual(local.authenticate(None), "anonymous")
        for host in ("api.openai.com", "sourcegraph.com",
                     "sourcegraph.example"):
            self.assertTrue(local.interceptHost(host), host)
        self.assertFalse(local.interceptHost("github.com"))
        remote = ProxyPolicy.fromConfig(self.config(
            "{intercept: {hosts: [github.com]}, proxy: {allowed_ports: "
            "[443, 8443]}, limits: {client_idle_timeout_s: 5}}"),
            identify, loopback=False)
        self.assertRaises(GatewayError, remote.authenticate, None)
        self.assertEqual(remote.allowedPorts, frozenset([443, 8443]))
        self.assertEqual(remote.idleTimeout, 5)
        self.assertTrue(remote.interceptHost("github.com"))
        self.assertFalse(remote.interceptHost("api.openai.com"))


# -- over loopback

def certificates():
    """
    A test CA, and a leaf for localhost and 127.0.0.1 that it signed.

    @return: (CA certificate PEM, leaf certificate, leaf key PEM)
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def builder(subject, key):
        return (x509.CertificateBuilder().subject_name(subject)
                .issuer_name(name("keeptrusts test CA"))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - day).not_valid_after(now + day))
    caKey = ec.generate_private_key(ec.SECP256R1())
    ca = (builder(name("keeptrusts test CA"), caKey)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
          .add_extension(x509.KeyUsage(False, False, False, False, False,
                                       True, True, False, False), True)
          .sign(caKey, hashes.SHA256()))
    leafKey = ec.generate_private_key(ec.SECP256R1())
    leaf = (builder(name("localhost"), leafKey)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(caKey, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), leaf,
            leafKey.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


@implementer(IHalfCloseableProtocol)
class Peer(Protocol):
    """
    A loopback test connection, either end: it keeps what it gets (or only
    counts and hashes it), and can echo.
    """

    echo = False
    keep = True
    eof = writeClosed = False

    def onFIN(self):
        # Like most programs: close on the other side's FIN.
        self.transport.loseConnection()

    def __init__(self, head=b""):
        self.head = head
        self.received = bytearray()
        self.count = 0
        self.digest = hashlib.sha256()
        self.lost = Deferred()
        self.connected = False

    def connectionMade(self):
        self.connected = True
        if self.head:
            self.transport.write(self.head)

    def dataReceived(self, data):
        self.count += len(data)
        if self.keep:
            self.received += data
        else:
            self.digest.update(data)
        if self.echo:
            self.transport.write(data)

    def readConnectionLost(self):
        self.eof = True
        if self.onFIN is not None:
            self.onFIN()
        elif self.writeClosed:
            self.transport.loseConnection()

    def writeConnectionLost(self):
        self.writeClosed = True
        if self.eof:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.connected = False
        self.lost.callback(None)

    def answer(self):
        """
        The status, headers and body received so far, once a head came.
        """
        if b"\r\n\r\n" not in self.received:
            return None
        return parseAnswer(self.received)


@implementer(IPullProducer)
class Source:
    """
    C{total} deterministic bytes, one chunk each time the consumer asks.
    """

    def __init__(self, consumer, total, chunk=65536):
        self.consumer = consumer
        self.left = total
        self.digest = hashlib.sha256()
        self.chunk = chunk
        self.index = 0
        consumer.registerProducer(self, False)

    def resumeProducing(self):
        if self.left <= 0:
            return
        data = (hashlib.sha256(b"%d" % (self.index,)).digest() *
                (self.chunk // 32))[:self.left]
        self.index += 1
        self.left -= len(data)
        self.digest.update(data)
        self.consumer.write(data)
        if self.left <= 0:
            self.consumer.unregisterProducer()

    def stopProducing(self):
        self.left = 0


class Upstreams(Factory):
    """
    The targets' side: every accepted connection is a L{Peer}.
    """

    def __init__(self, configure=lambda peer: None):
        self.peers = []
        self.configure = configure

    def buildProtocol(self, addr):
        peer = Peer()
        peer.echo = True
        self.configure(peer)
        self.peers.append(peer)
        return peer


class CapturingHandler(ConnectHandler):
    def __init__(self, *args, **kwargs):
        ConnectHandler.__init__(self, *args, **kwargs)
        self.calls = []

    def handleConnect(self, request, transport, leftover):
        protocol = ConnectHandler.handleConnect(self, request, transport,
                                                leftover)
        self.calls.append((request, leftover, protocol))
        return protocol


class GatewayCase(TestCase):
    """
    A gateway on loopback in front of echoing targets, and the tunnels'
    clients; every connection is closed and every CONNECT recorded when a
    test ends.
    """

    def setUp(self):
        self.upstreams = Upstreams()
        self.upPort = self.listen(self.upstreams)
        self.clients = []
        self.events = []
        self.factory = FrontFactory(GatewaySite(Resource(), 1024), None,
                                    reactor)
        self.gateway = self.listen(self.factory)
        self.configure(allowedPorts=[self.upPort])
        self.addCleanup(self.closeAll)

    def listen(self, factory, tls=None):
        if tls is None:
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        else:
            port = reactor.listenSSL(0, factory, tls, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    splicer = None  # set: the kernel moves the tunnels' bytes

    def configure(self, intercept=None, resolver=None, **kwargs):
        inForce = policy(**kwargs)
        self.handler = CapturingHandler(reactor, lambda: inForce,
                                        self.events.append, intercept,
                                        resolver, self.splicer)
        self.factory.connectHandler = self.handler

    @inlineCallbacks
    def closeAll(self):
        peers = self.clients + self.upstreams.peers
        for peer in peers:
            if peer.connected:
                peer.transport.abortConnection()
        for peer in peers:
            yield peer.lost
        # Each CONNECT is recorded once both of the gateway's sockets closed.
        yield until(lambda: len(self.events) == len(self.handler.calls))
        if self.splicer is not None:
            self.assertEqual(self.splicer.active, 0)

    def client(self, head, peer=None):
        peer = peer or Peer(head)
        self.clients.append(peer)
        return connectProtocol(TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.gateway), peer).addCallback(
                lambda _: peer)

    @inlineCallbacks
    def tunnel(self, target=None, *headers):
        target = target or b"127.0.0.1:%d" % (self.upPort,)
        client = yield self.client(connectHead(target, *headers))
        yield until(client.answer)
        self.assertEqual(client.answer()[0], 200)
        del client.received[:len(ESTABLISHED)]
        if self.splicer is not None:
            self.assertTrue(self.handler.calls[-1][2]._pump)
        return client

    @inlineCallbacks
    def refused(self, target, *headers):
        client = yield self.client(connectHead(target, *headers))
        yield client.lost
        status, headers, body = client.answer()
        self.assertEqual(headers[b"Connection"], b"close")
        return status, headers, json.loads(body)["error"]


class LoopbackTests(GatewayCase):
    @inlineCallbacks
    def test_bytesIdenticalBothWays(self):
        client = yield self.tunnel()
        payload = b"".join(hashlib.sha256(b"%d" % i).digest()
                           for i in range(20000))
        client.transport.write(payload)
        yield until(lambda: len(client.received) >= len(payload))
        self.assertEqual(client.received, payload)
        [upstream] = self.upstreams.peers
        self.assertEqual(upstream.received, payload)
        upstream.transport.write(b"from the target")
        yield until(lambda: client.received.endswith(b"from the target"))
        client.transport.loseConnection()
        yield until(lambda: self.events)
        [event] = self.events
        self.assertEqual(
            (event.mode, event.host, event.port, event.user, event.status,
             event.bytesUp, event.bytesDown),
            ("tunnel", "127.0.0.1", self.upPort, "anonymous", 200,
             len(payload), len(payload) + 15))

    @inlineCallbacks
    def test_noDelay(self):
        """
        Both of a tunnel's sockets have Nagle's algorithm off: a client's
        small TLS records go on as they came.
        """
        client = yield self.tunnel()
        tunnel = self.handler.calls[0][2]
        for transport in (tunnel.transport, tunnel.upstream.transport):
            handle = transport.getHandle()
            self.assertTrue(handle.getsockopt(socket.IPPROTO_TCP,
                                              socket.TCP_NODELAY))
        client.transport.loseConnection()
        yield until(lambda: self.events)

    @inlineCallbacks
    def test_eagerBytesArriveFirst(self):
        self.upstreams.configure = lambda peer: setattr(peer, "echo", False)
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"r" * 32
        client = yield self.client(
            connectHead(b"127.0.0.1:%d" % (self.upPort,)) + hello)
        yield until(lambda: self.upstreams.peers and
                    len(self.upstreams.peers[0].received) >= len(hello))
        self.assertEqual(self.handler.calls[0][1], hello)
        client.transport.write(b"then this")
        yield until(lambda: self.upstreams.peers[0].received.endswith(
            b"then this"))
        self.assertEqual(self.upstreams.peers[0].received, hello + b"then this")

    def transfer(self, sender, receiver, consumerTransport):
        """
        20 MB from C{sender} to C{receiver}, which does not read until the
        gateway has stopped reading from the sender's side.
        """
        total = 20 * MB
        receiver.keep = False
        receiver.count = 0
        receiver.transport.pauseProducing()
        source = Source(sender.transport, total)
        # The gateway's buffer towards the receiver filled up: it paused
        # the transport it reads the sender from.  (Until the kernel's
        # buffers stop growing, it may resume and pause again.)
        tunnel = self.handler.calls[0][2]
        yield from self.stalled(tunnel, consumerTransport)
        self.assertLess(tunnel.bytesUp + tunnel.bytesDown, total // 2)
        receiver.transport.resumeProducing()
        yield until(lambda: receiver.count == total)
        self.assertEqual(receiver.digest.hexdigest(), source.digest.hexdigest())

    def stalled(self, tunnel, consumerTransport):
        """
        Wait until the gateway stops reading the sender: its buffer
        towards the receiver filled up and paused the sender's transport.
        (Until the kernel's buffers stop growing, it may resume and pause
        again.)
        """
        for _ in range(3):
            yield until(lambda: consumerTransport().producerPaused)
            yield deferLater(reactor, 0.1, lambda: None)
        yield until(lambda: consumerTransport().producerPaused)
        buffered = consumerTransport()
        self.assertLess(len(buffered.dataBuffer) - buffered.offset
                        + buffered._tempDataLen, 1 * MB)

    @inlineCallbacks
    def test_largeDownloadBounded(self):
        client = yield self.tunnel()
        client.transport.getHandle().setsockopt(socket.SOL_SOCKET,
                                                socket.SO_RCVBUF, 65536)
        [upstream] = self.upstreams.peers
        upstream.echo = False
        tunnel = self.handler.calls[0][2]
        yield from self.transfer(upstream, client, lambda: tunnel.transport)
        self.assertEqual(tunnel.bytesDown, 20 * MB)

    @inlineCallbacks
    def test_largeUploadBounded(self):
        client = yield self.tunnel()
        [upstream] = self.upstreams.peers
        upstream.echo = False
        upstream.transport.getHandle().setsockopt(socket.SOL_SOCKET,
                                                  socket.SO_RCVBUF, 65536)
        tunnel = self.handler.calls[0][2]
        yield from self.transfer(client, upstream,
                                 lambda: tunnel.upstream.transport)
        self.assertEqual(tunnel.bytesUp, 20 * MB)

    @inlineCallbacks
    def test_clientHalfClose(self):
        """
        The client's FIN reaches the target, which can still answer.
        """
        def afterFIN(peer):
            peer.onFIN = lambda: (peer.transport.write(b" and goodbye"),
                                  peer.transport.loseConnection())
        self.upstreams.configure = afterFIN
        client = yield self.tunnel()
        client.transport.write(b"ping")
        yield until(lambda: client.received == b"ping")
        client.transport.loseWriteConnection()
        yield until(lambda: client.eof)
        self.assertEqual(client.received, b"ping and goodbye")
        self.assertTrue(self.upstreams.peers[0].eof)
        client.transport.loseConnection()
        yield until(lambda: self.events)
        self.assertEqual(self.events[0].bytesDown, 16)

    @inlineCallbacks
    def test_targetResetAfterData(self):
        """
        A target that resets after sending: the client still gets all the
        gateway had taken, then a FIN, not a reset.
        """
        total = 1 * MB
        client = yield self.tunnel()
        client.transport.getHandle().setsockopt(socket.SOL_SOCKET,
                                                socket.SO_RCVBUF, 65536)
        client.transport.pauseProducing()
        [upstream] = self.upstreams.peers
        upstream.echo = False
        upstream.transport.write(b"r" * total)
        tunnel = self.handler.calls[0][2]
        yield until(lambda: tunnel.bytesDown == total)
        upstream.transport.abortConnection()
        yield upstream.lost
        client.transport.resumeProducing()
        yield client.lost
        self.assertEqual(len(client.received), total)
        self.assertTrue(client.eof)

    @inlineCallbacks
    def test_targetSpeaksFirstWhileTheReactorIsBusy(self):
        """
        The connection to the target completes, and its first bytes arrive,
        while the reactor is busy: one event says both.  An eager upload
        still reaches the target whole.
        """
        total = 1 * MB
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        received = []

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"220 hello\r\n")
                conn.settimeout(WAIT)
                count = 0
                while count < total:
                    data = conn.recv(65536)
                    if not data:
                        break
                    count += len(data)
                received.append(count)
        self.configure(allowedPorts=[port])
        doConnect = tcp.BaseClient.doConnect

        def busy(transport):
            first = "doRead" not in transport.__dict__
            result = doConnect(transport)
            if first:
                time.sleep(0.2)  # the reactor is busy: both events pile up
            return result
        def upload():
            # In one go, so that the gateway reads a large first part with
            # the head (the bytes to send before splicing).
            with socket.create_connection(("127.0.0.1", self.gateway)) as c:
                c.sendall(connectHead(b"127.0.0.1:%d" % (port,))
                          + b"u" * total)
                c.settimeout(WAIT)
                while received == [] and c.recv(65536):
                    pass
        self.patch(tcp.BaseClient, "doConnect", busy)
        served = deferToThread(serve)
        uploaded = deferToThread(upload)
        yield served
        self.assertEqual(received, [total])
        yield uploaded

    @inlineCallbacks
    def test_targetHalfClose(self):
        """
        The target's FIN reaches the client, which can still send.
        """
        client = yield self.tunnel()
        client.onFIN = None
        [upstream] = self.upstreams.peers
        upstream.echo = False
        upstream.transport.write(b"that is all")
        upstream.transport.loseWriteConnection()
        yield until(lambda: client.eof)
        self.assertEqual(client.received, b"that is all")
        client.transport.write(b"one more thing")
        yield until(lambda: upstream.received == b"one more thing")
        self.assertTrue(client.connected and upstream.connected)
        client.transport.loseWriteConnection()
        yield client.lost
        yield upstream.lost

    @inlineCallbacks
    def test_connectionRefused(self):
        closed = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        port = closed.getHost().port
        yield closed.stopListening()
        self.configure(allowedPorts=[port])
        status, headers, error = yield self.refused(b"127.0.0.1:%d" % (port,))
        self.assertEqual((status, error["type"]), (502, "upstream_error"))
        yield until(lambda: self.events)
        self.assertEqual(self.events[0].status, 502)

    @inlineCallbacks
    def test_disallowedPort(self):
        status, headers, error = yield self.refused(b"127.0.0.1:22")
        self.assertEqual((status, error["type"], error["code"]),
                         (403, "forbidden", "port_not_allowed"))
        self.assertEqual(self.upstreams.peers, [])

    @inlineCallbacks
    def test_gatewayItself(self):
        self.configure(allowedPorts=[self.gateway, self.upPort],
                       resolver=FixedResolver(["127.0.0.1"]))
        for target in (b"127.0.0.1", b"localhost", b"gateway.test"):
            status, headers, error = yield self.refused(
                b"%s:%d" % (target, self.gateway))
            self.assertEqual((status, error["code"]), (403, "loop"))
        self.assertEqual(len(self.handler.calls), 3)

    @inlineCallbacks
    def test_proxyAuthorization(self):
        self.configure(allowedPorts=[self.upPort], required=True)
        target = b"127.0.0.1:%d" % (self.upPort,)
        for headers in ((), (b"Proxy-Authorization: Basic " +
                             base64.b64encode(b"alice:wrong"),)):
            status, answer, error = yield self.refused(target, *headers)
            self.assertEqual((status, error["type"]),
                             (407, "authentication_error"))
            self.assertEqual(answer[b"Proxy-Authenticate"],
                             b'Basic realm="keeptrusts"')
        client = yield self.tunnel(target, b"Proxy-Authorization: Basic " +
                                   base64.b64encode(
                                       b"anyone:kt-alice-secret"))
        client.transport.write(b"hi")
        yield until(lambda: client.received == b"hi")
        client.transport.loseConnection()
        yield until(lambda: len(self.events) == 3)
        self.assertEqual([(e.status, e.user) for e in self.events],
                         [(407, None), (407, None), (200, "alice")])

    @inlineCallbacks
    def test_idleTimeout(self):
        self.configure(allowedPorts=[self.upPort], idleTimeout=0.3)
        client = yield self.tunnel()
        client.transport.write(b"x")
        yield until(lambda: client.received == b"x")
        yield client.lost
        yield self.upstreams.peers[0].lost
        yield until(lambda: self.events)
        self.assertEqual(self.events[0].status, 200)


class Spliced:
    """
    For a L{GatewayCase}: the tunnels' bytes moved by splice(2).
    """

    if not hasattr(os, "splice"):
        skip = "no os.splice here (Linux, Python 3.10 and later)"

    def setUp(self):
        self.splicer = Splicer(reactor, 8)
        super().setUp()


class SplicedLoopbackTests(Spliced, LoopbackTests):
    """
    The same, the bytes moved by splice(2).
    """

    def stalled(self, tunnel, consumerTransport):
        """
        Wait until the tunnel stops moving bytes: the kernel's buffers
        towards the receiver are full, and a pipe holds the rest.
        """
        moved = -1
        while moved != tunnel.bytesUp + tunnel.bytesDown:
            moved = tunnel.bytesUp + tunnel.bytesDown
            yield deferLater(reactor, 0.3, lambda: None)
        self.assertTrue(tunnel._pump)


class TunnelledTLS(Protocol):
    """
    A client that sends CONNECT, then speaks TLS through the tunnel: with
    its ClientHello written with the head (C{eager}), or after the 200.
    """

    def __init__(self, target, options, app, eager):
        self.target = target
        self.options = options
        self.app = app
        self.eager = eager
        self.head = bytearray()
        self.status = None
        self.tls = None
        self.lost = Deferred()
        self.connected = False

    def connectionMade(self):
        self.connected = True
        self.transport.write(connectHead(self.target))
        if self.eager:
            self.startTLS()

    def startTLS(self):
        factory = TLSMemoryBIOFactory(self.options, True,
                                      Factory.forProtocol(lambda: self.app))
        self.tls = factory.buildProtocol(self.transport.getPeer())
        self.tls.makeConnection(self.transport)

    def dataReceived(self, data):
        if self.status is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = bytes(self.head).partition(b"\r\n\r\n")
            self.status = int(head.split()[1])
            if self.tls is None:
                self.startTLS()
            if not data:
                return
        self.tls.dataReceived(data)

    def connectionLost(self, reason):
        self.connected = False
        if self.tls is not None:
            self.tls.connectionLost(reason)
        self.lost.callback(None)


@implementer(IHandshakeListener)
class HTTPGet(Protocol):
    peerCertificate = None

    def __init__(self, version=b"HTTP/1.0"):
        self.received = b""
        self.version = version

    def connectionMade(self):
        self.transport.write(b"GET /hello %s\r\nHost: localhost\r\n\r\n"
                             % (self.version,))

    def handshakeCompleted(self):
        self.peerCertificate = self.transport.getPeerCertificate()

    def dataReceived(self, data):
        self.received += data


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello over tls"


class TLSTests(GatewayCase):
    """
    A TLS server behind the tunnel: clients check its own certificate.
    """

    def setUp(self):
        GatewayCase.setUp(self)
        caPEM, self.leaf, keyPEM = certificates()
        leafPEM = self.leaf.public_bytes(serialization.Encoding.PEM)
        site = Site(Hello())
        site.noisy = False
        server = ssl.PrivateCertificate.loadPEM(leafPEM + keyPEM).options()
        self.serverOptions = server
        self.tlsPort = self.listen(site, server)
        self.configure(allowedPorts=[self.tlsPort])
        self.caPEM = caPEM
        self.clientOptions = ssl.optionsForClientTLS(
            "localhost", trustRoot=ssl.Certificate.loadPEM(caPEM))

    @inlineCallbacks
    def throughTunnel(self, eager):
        app = HTTPGet()
        client = TunnelledTLS(b"127.0.0.1:%d" % (self.tlsPort,),
                              self.clientOptions, app, eager)
        yield self.client(None, client)
        yield client.lost
        self.assertEqual(client.status, 200)
        self.assertTrue(app.received.endswith(b"hello over tls"), app.received)
        # The certificate the client checked is the server's own.
        self.assertEqual(app.peerCertificate.to_cryptography(), self.leaf)
        return client

    @inlineCallbacks
    def test_serverCertificateThroughTheTunnel(self):
        yield self.throughTunnel(eager=False)

    @inlineCallbacks
    def test_clientHelloWithTheHead(self):
        yield self.throughTunnel(eager=True)
        leftover = self.handler.calls[0][1]
        self.assertEqual(leftover[:1], b"\x16")  # a TLS handshake record

    @inlineCallbacks
    def test_interceptionHook(self):
        """
        The interception hook gets the client's bytes, eager ClientHello
        first, and serves TLS itself on the client's connection.
        """
        site = GatewaySite(Hello(), 1024)
        serverOptions = self.serverOptions

        def intercept(request, transport, leftover):
            transport.write(ESTABLISHED)
            tls = TLSMemoryBIOFactory(serverOptions, False, site
                                      ).buildProtocol(request.clientAddress)
            tls.makeConnection(transport)
            if leftover:
                tls.dataReceived(leftover)
            return tls
        self.configure(allowedPorts=[443], intercept=intercept,
                       interceptHost=hostMatcher(["*.intercepted.test"]))
        for eager in (True, False):
            app = HTTPGet()
            client = TunnelledTLS(b"api.intercepted.test:443",
                                  self.clientOptions, app, eager)
            yield self.client(None, client)
            yield client.lost
            self.assertTrue(app.received.endswith(b"hello over tls"))
        self.assertEqual(self.handler.calls[0][1][:1], b"\x16")
        self.assertEqual(self.handler.calls[1][1], b"")
        # A keep-alive client that sends its FIN: the connection ends there.
        app = HTTPGet(b"HTTP/1.1")
        client = TunnelledTLS(b"api.intercepted.test:443",
                              self.clientOptions, app, True)
        yield self.client(None, client)
        yield until(lambda: app.received.endswith(b"hello over tls"))
        client.transport.loseWriteConnection()
        yield client.lost
        yield until(lambda: len(self.events) == 3)
        self.assertEqual([(e.mode, e.status) for e in self.events],
                         [("intercept", 200)] * 3)
        self.assertTrue(all(e.bytesUp > 100 and e.bytesDown > 100
                            for e in self.events))

    def curl(self, *args):
        if not os.path.exists(CURL):
            raise self.skipTest("no curl")  # pragma: no cover
        ca = FilePath(self.mktemp())
        ca.setContent(self.caPEM)
        return getProcessOutputAndValue(CURL, (
            "--silent", "--show-error", "--max-time", str(WAIT),
            "--proxy", "http://127.0.0.1:%d" % (self.gateway,),
            "--cacert", ca.path) + args
            + ("https://localhost:%d/hello" % (self.tlsPort,),), env={})

    @inlineCallbacks
    def test_curl(self):
        out, err, code = yield self.curl()
        self.assertEqual((out, code), (b"hello over tls", 0), err)
        yield until(lambda: self.events)
        self.assertEqual((self.events[0].host, self.events[0].status),
                         ("localhost", 200))

    @inlineCallbacks
    def test_curlProxyCredentials(self):
        self.configure(allowedPorts=[self.tlsPort], required=True)
        out, err, code = yield self.curl()
        self.assertNotEqual(code, 0)
        self.assertIn(b"407", err)
        out, err, code = yield self.curl("--proxy-user",
                                         "dev:kt-alice-secret")
        self.assertEqual((out, code), (b"hello over tls", 0), err)
        yield until(lambda: len(self.events) == 2)
        self.assertEqual([e.user for e in self.events], [None, "alice"])


class SplicedTLSTests(Spliced, TLSTests):
    """
    The same through a tunnel whose bytes splice(2) moves.
    """
