"""
Tests for L{keeptrusts.tls}: the local CA, per-host server contexts chosen by
SNI, and verified upstream TLS.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity import VerificationError
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import (
    Agent, HTTPConnectionPool, ResponseDone, ResponseNeverReceived)
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from keeptrusts.interfaces import ICertificateStore
from keeptrusts.tls import (
    TLSSetupError, notValidAfter, notValidBefore, parseHost)
from keeptrusts.tls.ca import CertificateAuthority, certificatePath
from keeptrusts.tls.sni import (
    RENEW_AFTER, FixedServerCreator, LeafContexts, tlsFactory)
from keeptrusts.tls.trust import (
    UpstreamPolicy, checkCAFile, clientCreator, trustRoot, upstreamPolicy)

# 2026-11-17T03:33:20Z
NOW = 1795000000
UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)


def at(seconds):
    return datetime.datetime.fromtimestamp(seconds, UTC)


def makeCA(testCase, clock=None):
    if clock is None:
        clock = Clock()
        clock.advance(NOW)
    return CertificateAuthority.loadOrCreate(testCase.mktemp(), clock)


def extension(certificate, kind):
    return certificate.extensions.get_extension_for_class(kind)


def altNames(certificate):
    san = extension(certificate, x509.SubjectAlternativeName).value
    return (san.get_values_for_type(x509.DNSName),
            san.get_values_for_type(x509.IPAddress))


def commonName(certificate):
    return certificate.subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)[0].value


def publicBytes(key):
    """
    The SubjectPublicKeyInfo of a public key, or of a private key's.
    """
    if hasattr(key, "private_bytes"):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def mode(path):
    return os.stat(path).st_mode & 0o777


class CertificateAuthorityFileTests(SynchronousTestCase):
    """
    L{CertificateAuthority.loadOrCreate} makes the CA once, privately, and
    refuses a key others can read.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.stateDir = self.mktemp()

    def load(self):
        return CertificateAuthority.loadOrCreate(self.stateDir, self.clock)

    def test_createsPrivately(self):
        """
        The key is 0600 in a 0700 directory, whatever the umask; the
        certificate is where L{certificatePath} says.
        """
        old = os.umask(0)
        self.addCleanup(os.umask, old)
        ca = self.load()
        directory = os.path.join(self.stateDir, "ca")
        self.assertEqual(ca.certPath,
                         os.path.join(directory, "keeptrusts-ca.pem"))
        self.assertEqual(ca.keyPath,
                         os.path.join(directory, "keeptrusts-ca.key"))
        self.assertEqual(certificatePath(self.stateDir), ca.certPath)
        self.assertEqual((mode(directory), mode(ca.keyPath)), (0o700, 0o600))
        self.assertEqual(sorted(os.listdir(directory)),
                         ["keeptrusts-ca.key", "keeptrusts-ca.pem"])
        # No staging directory left behind.
        self.assertEqual(os.listdir(self.stateDir), ["ca"])
        with open(ca.certPath, "rb") as f:
            self.assertEqual(f.read(), ca.certificatePEM())

    def test_reload(self):
        """
        A second load gives the same CA, and a leaf key of its own.
        """
        first, second = self.load(), self.load()
        self.assertEqual(second.certificatePEM(), first.certificatePEM())
        self.assertEqual(publicBytes(second.key), publicBytes(first.key))
        self.assertNotEqual(publicBytes(second.leafKey),
                            publicBytes(first.leafKey))

    def test_widerKeyModeRefused(self):
        """
        A key with any permission beyond 0600 is refused, naming the chmod
        that fixes it; the file is left as it was.
        """
        ca = self.load()
        for wider in (0o644, 0o640, 0o604, 0o700):
            os.chmod(ca.keyPath, wider)
            e = self.assertRaises(TLSSetupError, self.load)
            self.assertIn("chmod 600 %s" % (ca.keyPath,), str(e))
            self.assertIn("%04o" % (wider,), str(e))
            self.assertEqual(mode(ca.keyPath), wider)
        os.chmod(ca.keyPath, 0o400)
        self.assertEqual(self.load().certificatePEM(), ca.certificatePEM())

    def test_incomplete(self):
        """
        A CA directory with one of its files missing is an error, not a
        reason to make a new CA behind the users' backs.
        """
        ca = self.load()
        os.remove(ca.keyPath)
        e = self.assertRaises(TLSSetupError, self.load)
        self.assertIn("%s is missing" % (ca.keyPath,), str(e))

    def test_foreignKey(self):
        ca = self.load()
        other = CertificateAuthority.loadOrCreate(self.mktemp(), self.clock)
        os.chmod(ca.keyPath, 0o600)
        with open(other.keyPath, "rb") as f, open(ca.keyPath, "wb") as g:
            g.write(f.read())
        e = self.assertRaises(TLSSetupError, self.load)
        self.assertIn("does not belong to", str(e))

    def test_expired(self):
        self.load()
        self.clock.advance(3651 * 86400)
        e = self.assertRaises(TLSSetupError, self.load)
        self.assertIn("expired", str(e))

    def test_cannotCreate(self):
        """
        A state directory that cannot be made is a L{TLSSetupError} naming
        it (a path under a regular file: refused even to root).
        """
        with open(self.stateDir, "w"):
            pass
        self.stateDir = os.path.join(self.stateDir, "state")
        e = self.assertRaises(TLSSetupError, self.load)
        self.assertIn(self.stateDir, str(e))


class CertificateAuthorityTests(SynchronousTestCase):
    """
    The CA certificate and the leaves it mints.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.ca = makeCA(self, self.clock)

    def test_caCertificate(self):
        cert = self.ca.certificate
        constraints = extension(cert, x509.BasicConstraints)
        self.assertTrue(constraints.critical)
        self.assertEqual((constraints.value.ca, constraints.value.path_length),
                         (True, 0))
        usage = extension(cert, x509.KeyUsage)
        self.assertTrue(usage.critical)
        self.assertTrue(usage.value.key_cert_sign)
        self.assertTrue(usage.value.crl_sign)
        self.assertFalse(usage.value.digital_signature)
        self.assertEqual(
            extension(cert, x509.SubjectKeyIdentifier).value.digest,
            x509.SubjectKeyIdentifier.from_public_key(
                cert.public_key()).digest)
        self.assertTrue(commonName(cert).startswith("keeptrusts local CA ("))
        self.assertEqual(cert.issuer, cert.subject)
        self.assertIsInstance(self.ca.key, ec.EllipticCurvePrivateKey)
        self.assertEqual(notValidBefore(cert), at(NOW) - DAY)
        self.assertEqual(notValidAfter(cert), at(NOW) + 3650 * DAY)

    def assertLeaf(self, leaf, dnsNames, ipAddresses):
        self.assertEqual(altNames(leaf), (dnsNames, ipAddresses))
        self.assertEqual(leaf.issuer, self.ca.certificate.subject)
        eku = extension(leaf, x509.ExtendedKeyUsage).value
        self.assertEqual(list(eku), [ExtendedKeyUsageOID.SERVER_AUTH])
        self.assertFalse(extension(leaf, x509.BasicConstraints).value.ca)
        self.assertEqual(
            extension(leaf, x509.AuthorityKeyIdentifier).value.key_identifier,
            extension(self.ca.certificate,
                      x509.SubjectKeyIdentifier).value.digest)
        self.ca.certificate.public_key().verify(
            leaf.signature, leaf.tbs_certificate_bytes,
            ec.ECDSA(leaf.signature_hash_algorithm))

    def test_leafForName(self):
        """
        A leaf for a DNS name: DNS SAN and CN, serverAuth, AKI of the CA,
        valid from a day before the clock's time for 90 days.
        """
        leaf = self.ca.mintLeaf("API.Example.test.")
        self.assertLeaf(leaf, ["api.example.test"], [])
        self.assertEqual(commonName(leaf), "api.example.test")
        self.assertEqual(notValidBefore(leaf), at(NOW) - DAY)
        self.assertEqual(notValidAfter(leaf), at(NOW) + 90 * DAY)
        self.clock.advance(3600)
        later = self.ca.mintLeaf("api.example.test")
        self.assertEqual(notValidBefore(later), at(NOW + 3600) - DAY)
        self.assertNotEqual(later.serial_number, leaf.serial_number)

    def test_leafForAddress(self):
        """
        A leaf for an IP address names it in an IP SAN, not a DNS one.
        """
        self.assertLeaf(self.ca.mintLeaf("127.0.0.1"), [],
                        [ipaddress.ip_address("127.0.0.1")])
        self.assertLeaf(self.ca.mintLeaf("[::1]"), [],
                        [ipaddress.ip_address("::1")])

    def test_sharedLeafKey(self):
        """
        Every leaf of one CA instance carries the same key, made at load.
        """
        key = self.ca.leafKey
        self.assertIsInstance(key, ec.EllipticCurvePrivateKey)
        self.assertEqual(key.curve.name, "secp256r1")
        for host in ("a.example.test", "b.example.test", "10.0.0.1"):
            self.assertEqual(publicBytes(self.ca.mintLeaf(host).public_key()),
                             publicBytes(key))
        self.assertIs(self.ca.leafKey, key)

    def test_leafEndsWithTheCA(self):
        self.clock.advance(3650 * 86400 - 30 * 86400)
        leaf = self.ca.mintLeaf("api.example.test")
        self.assertEqual(notValidAfter(leaf),
                         notValidAfter(self.ca.certificate))

    def test_badHosts(self):
        for host in ("", "a..b", "-a.example", "*.example.com", "a b",
                     "ex\u00e4mple.com", "a" * 64 + ".com"):
            self.assertRaises(ValueError, self.ca.mintLeaf, host)

    def test_parseHost(self):
        self.assertEqual(parseHost(b"Sourcegraph.COM."), "sourcegraph.com")
        self.assertEqual(parseHost("[2001:db8::1]"),
                         ipaddress.ip_address("2001:db8::1"))
        self.assertEqual(parseHost("_acme.example"), "_acme.example")

    def test_issueServerCertificate(self):
        """
        A certificate with a key of its own, for serving a fake upstream.
        """
        certPEM, keyPEM = self.ca.issueServerCertificate(
            ["localhost", "127.0.0.1"])
        cert = x509.load_pem_x509_certificate(certPEM)
        key = serialization.load_pem_private_key(keyPEM, None)
        self.assertEqual(publicBytes(cert.public_key()), publicBytes(key))
        self.assertNotEqual(publicBytes(key), publicBytes(self.ca.leafKey))
        self.assertLeaf(cert, ["localhost"],
                        [ipaddress.ip_address("127.0.0.1")])


class LeafContextsTests(SynchronousTestCase):
    """
    L{LeafContexts} keeps one context per host in a bounded LRU.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.ca = makeCA(self, self.clock)

    def test_interfaces(self):
        store = LeafContexts(self.ca)
        self.assertTrue(verifyObject(ICertificateStore, store))
        self.assertTrue(verifyObject(
            IOpenSSLServerConnectionCreator,
            store.serverConnectionCreator("api.example.test")))

    def test_cached(self):
        store = LeafContexts(self.ca)
        context = store.contextFor("api.example.test")
        self.assertIsInstance(context, SSL.Context)
        self.assertIs(store.contextFor("API.example.test."), context)
        self.assertIsNot(store.contextFor("other.example.test"), context)

    def test_bounded(self):
        """
        With C{maxCached=2} a third host evicts the least recently used.
        """
        store = LeafContexts(self.ca, maxCached=2)
        a = store.contextFor("a.test")
        b = store.contextFor("b.test")
        store.contextFor("c.test")
        self.assertEqual(len(store), 2)
        self.assertIs(store.contextFor("b.test"), b)
        self.assertIsNot(store.contextFor("a.test"), a)  # a was evicted
        # Using b moved it ahead of c: c went when a came back.
        self.assertIs(store.contextFor("b.test"), b)
        self.assertEqual(len(store), 2)

    def test_renewed(self):
        """
        A cached leaf is replaced once it is L{RENEW_AFTER} old.
        """
        store = LeafContexts(self.ca)
        context = store.contextFor("a.test")
        self.clock.advance(RENEW_AFTER - 1)
        self.assertIs(store.contextFor("a.test"), context)
        self.clock.advance(1)
        self.assertIsNot(store.contextFor("a.test"), context)

    def test_badHost(self):
        store = LeafContexts(self.ca)
        self.assertRaises(ValueError, store.contextFor, "bad host")
        self.assertRaises(ValueError, store.serverConnectionCreator, "")
        self.assertRaises(ValueError, LeafContexts, self.ca, maxCached=0)


class EchoProtocol(Protocol):

    def dataReceived(self, data):
        self.transport.write(data)


class ProbeProtocol(Protocol):
    """
    Send a ping; on the echo, note what the TLS layer negotiated.
    """

    def __init__(self, message=b"ping"):
        self.message = message
        self.received = b""
        self.peer = self.alpn = None
        self.done = Deferred()

    def connectionMade(self):
        self.transport.write(self.message)

    def dataReceived(self, data):
        self.received += data
        self.peer = self.transport.getPeerCertificate()
        self.alpn = self.transport.negotiatedProtocol
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.peer is None:
            self.done.errback(reason)
        else:
            self.done.callback(self)


def peerCertificate(probe):
    """
    The certificate the server presented, as L{x509.Certificate}.
    """
    cert = probe.peer
    return cert.to_cryptography() if isinstance(cert, X509) else cert


@implementer(IOpenSSLClientConnectionCreator)
class RawClient:
    """
    A client that sends whatever server name it is given, and checks
    nothing: to see what a server presents to odd clients.
    """

    def __init__(self, serverName):
        self.serverName = serverName

    def clientConnectionForTLS(self, tlsProtocol):
        connection = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
        connection.set_tlsext_host_name(self.serverName)
        return connection


class SNIMemoryTests(SynchronousTestCase):
    """
    The connection creator, driven in memory with a L{Clock}.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.ca = makeCA(self, self.clock)
        self.store = LeafContexts(self.ca)
        self.root = ssl.Certificate.loadPEM(self.ca.certificatePEM())

    def exchange(self, serverCreator, clientOptions):
        """
        Connect a client with C{clientOptions} to an echo server behind
        C{serverCreator}, in memory; both batch their writes on the test's
        clock.

        @return: the client's L{ProbeProtocol}, done.
        """
        server = tlsFactory(serverCreator, False,
                            Factory.forProtocol(EchoProtocol),
                            self.clock).buildProtocol(None)
        probe = ProbeProtocol()
        client = tlsFactory(clientOptions, True,
                            Factory.forProtocol(lambda: probe),
                            self.clock).buildProtocol(None)
        pump = iosim.connect(server, iosim.makeFakeServer(server),
                             client, iosim.makeFakeClient(client),
                             greet=False)
        for _ in range(20):
            pump.pump()
            self.clock.advance(0)
        self.assertEqual(probe.received, b"ping")
        self.successResultOf(probe.done)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        return probe

    def handshake(self, clientOptions, defaultHost="fallback.test"):
        return self.exchange(
            self.store.serverConnectionCreator(defaultHost), clientOptions)

    def test_serverName(self):
        probe = self.handshake(ssl.optionsForClientTLS(
            "api.example.test", trustRoot=self.root))
        self.assertEqual(altNames(peerCertificate(probe)),
                         (["api.example.test"], []))

    def test_noServerName(self):
        """
        A client that sends no name (it connected to an IP address) gets
        the CONNECT host's certificate.
        """
        probe = self.handshake(ssl.CertificateOptions(trustRoot=self.root),
                               defaultHost="10.1.2.3")
        self.assertEqual(altNames(peerCertificate(probe)),
                         ([], [ipaddress.ip_address("10.1.2.3")]))

    def test_unusableServerName(self):
        """
        A server name that is no host name keeps the CONNECT host's
        certificate rather than failing the handshake.
        """
        probe = self.handshake(RawClient(b"not a host!"))
        self.assertEqual(altNames(peerCertificate(probe)),
                         (["fallback.test"], []))

    def test_unusableServerNameLogged(self):
        """
        An unusable server name is logged scrubbed of keys, cut short, and
        no more than once a minute (L{sni.REPORT_EVERY}), with the count of
        the others (found by review: each was logged whole, once per
        handshake).
        """
        logged = []
        self.store.log = Logger(observer=logged.append)
        names = [b"ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5 x",
                 b"AKIAIOSFODNN7EXAMPLE..x", b"x y", b"a b" * 66]
        for name in names:
            probe = self.handshake(RawClient(name))
            self.assertEqual(altNames(peerCertificate(probe)),
                             (["fallback.test"], []))
        self.clock.advance(60)
        self.handshake(RawClient(b"a b" * 66))
        lines = [formatEvent(event) for event in logged]
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("[REDACTED:GITHUB_TOKEN] x", lines[0])
        self.assertIn("4 unusable server name(s)", lines[1])
        self.assertIn("198 bytes", lines[1])
        self.assertLess(len(lines[1]), 250)
        for line in lines:
            self.assertNotIn("aB3dE5fG7hI9", line)

    def test_addressAsServerName(self):
        """
        An IP address sent as a server name (clients should not, some do)
        gets an IP address certificate.
        """
        probe = self.handshake(RawClient(b"192.0.2.7"))
        self.assertEqual(altNames(peerCertificate(probe)),
                         ([], [ipaddress.ip_address("192.0.2.7")]))

    def test_fixedServerCreator(self):
        """
        L{FixedServerCreator} serves one certificate, with its chain, to
        any name; ALPN is http/1.1 only there too.
        """
        certPEM, keyPEM = self.ca.issueServerCertificate(["upstream.test"])
        creator = FixedServerCreator.fromPEM(
            certPEM + self.ca.certificatePEM(), keyPEM)
        self.assertTrue(verifyObject(IOpenSSLServerConnectionCreator, creator))
        probe = self.exchange(creator, ssl.optionsForClientTLS(
            "upstream.test", trustRoot=self.root,
            acceptableProtocols=[b"h2", b"http/1.1"]))
        self.assertEqual(altNames(peerCertificate(probe)),
                         (["upstream.test"], []))
        self.assertEqual(probe.alpn, b"http/1.1")
        self.assertRaises(ValueError, FixedServerCreator.fromPEM, b"", keyPEM)


class Tracking(WrappingFactory):
    """
    Tell when every connection it served is closed, so that a test ends
    with a clean reactor.
    """

    def __init__(self, wrappedFactory):
        WrappingFactory.__init__(self, wrappedFactory)
        self._waiting = []

    def unregisterProtocol(self, p):
        WrappingFactory.unregisterProtocol(self, p)
        if not self.protocols:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def whenClosed(self):
        if not self.protocols:
            return succeed(None)
        d = Deferred()
        self._waiting.append(d)
        return d


class LoopbackMixin:

    def serve(self, factory, listen):
        tracked = Tracking(factory)
        port = listen(tracked)
        # Cleanups run last first: connections close, then the port.
        self.addCleanup(port.stopListening)
        self.addCleanup(tracked.whenClosed)
        return port.getHost().port


class ProbeFactory(ClientFactory):
    """
    Hand out one TLS-wrapped L{ProbeProtocol} and forward its outcome, or
    the failure to connect.
    """

    def __init__(self, options, message):
        self.tls = TLSMemoryBIOFactory(options, True, Factory.forProtocol(
            lambda: ProbeProtocol(message)))
        self.done = Deferred()

    def buildProtocol(self, addr):
        protocol = self.tls.buildProtocol(addr)
        protocol.wrappedProtocol.done.chainDeferred(self.done)
        return protocol

    def clientConnectionFailed(self, connector, reason):
        self.done.errback(reason)


def connectProbe(port, options, message=b"ping"):
    """
    Connect to C{port} on loopback over TLS with C{options}, send
    C{message}, and fire with the L{ProbeProtocol} once the answer came
    and the connection closed.
    """
    factory = ProbeFactory(options, message)
    reactor.connectTCP("127.0.0.1", port, factory)
    return factory.done


class SNILoopbackTests(LoopbackMixin, TestCase):
    """
    Real handshakes over loopback with the connection creator in front of
    an echo server.
    """

    def setUp(self):
        self.ca = makeCA(self, reactor)
        store = LeafContexts(self.ca)
        self.port = self.serve(
            Factory.forProtocol(EchoProtocol),
            lambda factory: reactor.listenTCP(
                0, TLSMemoryBIOFactory(
                    store.serverConnectionCreator("fallback.test"),
                    False, factory),
                interface="127.0.0.1"))
        self.root = ssl.Certificate.loadPEM(self.ca.certificatePEM())

    def probe(self, options):
        return connectProbe(self.port, options)

    def test_serverName(self):
        """
        The client's name picks the certificate, which it verifies against
        the CA (chain and name).
        """
        d = self.probe(ssl.optionsForClientTLS("api.example.test",
                                               trustRoot=self.root))

        def check(probe):
            cert = peerCertificate(probe)
            self.assertEqual(altNames(cert), (["api.example.test"], []))
            self.assertEqual(commonName(cert), "api.example.test")
            self.assertEqual(probe.received, b"ping")
        return d.addCallback(check)

    def test_noServerName(self):
        d = self.probe(ssl.CertificateOptions(trustRoot=self.root))

        def check(probe):
            self.assertEqual(altNames(peerCertificate(probe)),
                             (["fallback.test"], []))
        return d.addCallback(check)

    def test_alpn(self):
        """
        A client offering h2 and http/1.1 gets http/1.1.
        """
        d = self.probe(ssl.optionsForClientTLS(
            "api.example.test", trustRoot=self.root,
            acceptableProtocols=[b"h2", b"http/1.1"]))

        def check(probe):
            self.assertEqual(probe.alpn, b"http/1.1")
        return d.addCallback(check)


class TrustFileTests(SynchronousTestCase):
    """
    The extra CA bundle is checked when the policy is made.
    """

    def test_missing(self):
        path = self.mktemp()
        e = self.assertRaises(TLSSetupError, upstreamPolicy, path)
        self.assertIn(path, str(e))
        self.assertRaises(TLSSetupError, clientCreator, "a.test", path)

    def test_noCertificate(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a certificate\n")
        e = self.assertRaises(TLSSetupError, trustRoot, path)
        self.assertIn("no PEM certificate", str(e))

    def test_bundle(self):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(makeCA(self).certificatePEM()
                    + makeCA(self).certificatePEM())
        self.assertEqual(checkCAFile(path), 2)
        self.assertTrue(verifyObject(IPolicyForHTTPS, upstreamPolicy(path)))


class UpstreamPolicyTests(SynchronousTestCase):

    def test_creatorsKept(self):
        """
        The options of a host are made once and reused for every port and
        connection, for a bounded number of hosts.
        """
        policy = UpstreamPolicy(trustRoot(), maxCached=2)
        a = policy.creatorForNetloc(b"a.example.test", 443)
        self.assertTrue(verifyObject(IOpenSSLClientConnectionCreator, a))
        self.assertIs(policy.creatorForNetloc(b"a.example.test", 8443), a)
        b = policy.creatorForNetloc(b"b.example.test", 443)
        policy.creatorForNetloc(b"a.example.test", 443)
        policy.creatorForNetloc(b"c.example.test", 443)  # evicts b
        self.assertIs(policy.creatorForNetloc(b"a.example.test", 443), a)
        self.assertIsNot(policy.creatorForNetloc(b"b.example.test", 443), b)


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


class BodyCollector(Protocol):
    """
    Collect a response body (readBody warns on Twisted 26 about the TLS
    transport under the Agent).
    """

    def __init__(self, done):
        self.done = done
        self.data = []

    def dataReceived(self, data):
        self.data.append(data)

    def connectionLost(self, reason):
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.data))
        else:
            self.done.errback(reason)


def collectBody(response):
    done = Deferred()
    response.deliverBody(BodyCollector(done))
    return done


class UpstreamTrustTests(LoopbackMixin, TestCase):
    """
    An L{Agent} with L{upstreamPolicy} against a fake provider served over
    TLS with a test CA's certificate.
    """

    def setUp(self):
        self.ca = makeCA(self, reactor)
        # A bundle of several certificates: another CA, then the test CA.
        self.caFile = self.mktemp()
        with open(self.caFile, "wb") as f:
            f.write(makeCA(self, reactor).certificatePEM()
                    + self.ca.certificatePEM())

    def serveHTTPS(self, hosts):
        creator = FixedServerCreator.fromPEM(
            *self.ca.issueServerCertificate(hosts))
        return self.serve(Site(Hello()), lambda factory: reactor.listenSSL(
            0, factory, creator, interface="127.0.0.1"))

    def get(self, policy, port):
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        agent = Agent(reactor, contextFactory=policy, pool=pool)
        url = "https://localhost:%d/" % (port,)
        return agent.request(b"GET", url.encode("ascii")).addCallback(
            collectBody)

    def test_extraCA(self):
        port = self.serveHTTPS(["localhost"])
        d = self.get(upstreamPolicy(self.caFile), port)
        return d.addCallback(self.assertEqual, b"hello")

    def assertRefused(self, d, kind):
        def check(failure):
            failure.trap(ResponseNeverReceived)
            reasons = failure.value.reasons
            self.assertTrue(reasons[0].check(kind), reasons)
        return d.addCallbacks(
            lambda body: self.fail("fetched %r" % (body,)), check)

    def test_unknownCA(self):
        """
        Without the extra CA the platform's store does not know the test
        CA: the handshake fails verification.
        """
        port = self.serveHTTPS(["localhost"])
        return self.assertRefused(self.get(upstreamPolicy(), port), SSL.Error)

    def test_otherName(self):
        """
        A certificate from a trusted CA for another name is refused.
        """
        port = self.serveHTTPS(["other.example.test"])
        return self.assertRefused(self.get(upstreamPolicy(self.caFile), port),
                                  VerificationError)

    def test_clientCreator(self):
        """
        L{clientCreator} verifies the same way for code that opens TLS
        itself.
        """
        port = self.serveHTTPS(["127.0.0.1"])
        d = connectProbe(port, clientCreator("127.0.0.1", self.caFile),
                         b"GET / HTTP/1.0\r\n\r\n")

        def check(probe):
            self.assertTrue(probe.received.startswith(b"HTTP/1.0 200 "))
            self.assertEqual(altNames(peerCertificate(probe)),
                             ([], [ipaddress.ip_address("127.0.0.1")]))
        return d.addCallback(check)
