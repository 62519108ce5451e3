# -*- test-case-name: tests.test_tls -*-
"""
Server-side TLS for intercepted connections: one pyOpenSSL context per host,
minted by the local CA and chosen by the name the client sends (SNI).

Every context carries the same servername callback.  A connection starts on
the context of its CONNECT host; when the client names another host, the
callback swaps that host's context in.  The callback is synchronous and runs
inside the handshake: minting costs one EC signature (the leaf key is shared)
and contexts are kept in a bounded LRU, each configured completely before its
first use (pyOpenSSL 26 refuses changes to a context once used).
"""

import inspect
from collections import OrderedDict

import attr
import OpenSSL
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from OpenSSL.crypto import PKey, X509
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from keeptrusts.interfaces import ICertificateStore
from keeptrusts.policy.scrub import scrubbedName
from keeptrusts.tls import loadPEMCertificates, parseHost

# Leaves live 90 days; a long-running gateway mints a fresh one well before.
RENEW_AFTER = 30 * 86400

HTTP11 = b"http/1.1"

# A server name the log shows: at most this many characters of it, and one
# report of the unusable ones per this many seconds.
SHOWN_NAME = 64
REPORT_EVERY = 60.0


def _pyOpenSSLVersion():
    return tuple(int(part) for part in OpenSSL.__version__.split(".")[:2])


# pyOpenSSL 24.3 takes cryptography's certificates and keys, and deprecates
# its own X509/PKey; older releases (23.0 on Debian 12) take only its own.
_TAKES_CRYPTOGRAPHY = _pyOpenSSLVersion() >= (24, 3)


def openSSLCertificate(certificate):
    """
    C{certificate} (L{cryptography.x509.Certificate}) as this pyOpenSSL's
    C{use_certificate}/C{add_extra_chain_cert} want it.
    """
    if _TAKES_CRYPTOGRAPHY:
        return certificate
    return X509.from_cryptography(certificate)


def openSSLKey(key):
    """
    C{key} (a cryptography private key) as this pyOpenSSL's
    C{use_privatekey} wants it.
    """
    if _TAKES_CRYPTOGRAPHY:
        return key
    return PKey.from_cryptography_key(key)


def _selectHTTP11(connection, offered):
    # HTTP/1.1 only: the interception pipeline speaks nothing else.
    if HTTP11 in offered:
        return HTTP11
    return SSL.NO_OVERLAPPING_PROTOCOLS


def serverContext(certificate, key, chain=()):
    """
    A server context as the gateway serves TLS: TLS 1.2 or newer, ALPN
    C{http/1.1} only.  Nothing else is set: a caller may still add to it
    before its first use.

    @param certificate: the server's certificate, from L{openSSLCertificate}.
    @param key: its private key, from L{openSSLKey}.
    @param chain: certificates sent after it (L{openSSLCertificate} each).
    @rtype: L{OpenSSL.SSL.Context}
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.use_certificate(certificate)
    context.use_privatekey(key)
    for extra in chain:
        context.add_extra_chain_cert(extra)
    context.set_alpn_select_callback(_selectHTTP11)
    return context


@implementer(IOpenSSLServerConnectionCreator)
@attr.s(frozen=True, slots=True, auto_attribs=True)
class FixedServerCreator:
    """
    Server connections on one context, whatever name the client sends:
    e.g. a fake provider served over TLS in tests, with a certificate from
    L{keeptrusts.tls.ca.CertificateAuthority.issueServerCertificate}.
    Works with C{listenSSL} as with L{TLSMemoryBIOFactory}.
    """

    context: SSL.Context

    @classmethod
    def fromPEM(cls, certificatePEM, keyPEM):
        """
        @param certificatePEM: the certificate, then any chain, PEM.
        @param keyPEM: its private key, PEM, unencrypted.
        """
        certificates = loadPEMCertificates(certificatePEM)
        if not certificates:
            raise ValueError("no PEM certificate")
        key = serialization.load_pem_private_key(keyPEM, password=None)
        return cls(serverContext(
            openSSLCertificate(certificates[0]), openSSLKey(key),
            [openSSLCertificate(c) for c in certificates[1:]]))

    def serverConnectionForTLS(self, tlsProtocol):
        return SSL.Connection(self.context, None)


@implementer(ICertificateStore)
class LeafContexts:
    """
    Server contexts for intercepted hosts, cached in a bounded LRU.

    @ivar ca: the L{keeptrusts.tls.ca.CertificateAuthority}; its clock
        decides when a cached leaf is renewed.
    """

    log = Logger()

    def __init__(self, ca, maxCached=1024):
        if maxCached < 1:
            raise ValueError("maxCached must be at least 1")
        self.ca = ca
        self._maxCached = maxCached
        # host -> (context, renewAt); most recently used last.
        self._cache = OrderedDict()
        # Converted once: every context shares the key and the chain.
        self._key = openSSLKey(ca.leafKey)
        self._chain = openSSLCertificate(ca.certificate)
        # Unusable server names since the last report, and when it was.
        self._unusable = 0
        self._reportedAt = None

    def __len__(self):
        return len(self._cache)

    def contextFor(self, host):
        """
        See L{ICertificateStore.contextFor}.
        """
        name = parseHost(host)
        now = self.ca.clock.seconds()
        entry = self._cache.get(name)
        if entry is not None and now < entry[1]:
            self._cache.move_to_end(name)
            return entry[0]
        context = self._newContext(name)
        self._cache[name] = (context, now + RENEW_AFTER)
        self._cache.move_to_end(name)
        while len(self._cache) > self._maxCached:
            self._cache.popitem(last=False)
        return context

    def serverConnectionCreator(self, defaultHost):
        """
        See L{ICertificateStore.serverConnectionCreator}.
        """
        return _ServerConnectionCreator(self, parseHost(defaultHost))

    def _newContext(self, name):
        context = serverContext(openSSLCertificate(self.ca.mintLeaf(name)),
                                self._key, [self._chain])
        context.set_tlsext_servername_callback(self._serverName)
        return context

    def _serverName(self, connection):
        """
        The servername callback: swap in the context of the host the client
        names.  A name that is not a host, or a failure to mint, keeps the
        CONNECT host's certificate rather than killing the handshake.
        """
        sent = connection.get_servername()
        if not sent:
            return
        try:
            context = self.contextFor(sent)
        except ValueError:
            self._reportUnusable(sent)
            return
        except Exception:
            self.log.failure("Cannot mint a certificate for {name}",
                             name=shownName(sent))
            return
        if context is not connection.get_context():
            connection.set_context(context)

    def _reportUnusable(self, sent):
        """
        Log an unusable server name, at most once per L{REPORT_EVERY}
        seconds (any client may send one per handshake), scrubbed and cut
        short (a client's text: a key sent as a name is still a key).
        """
        self._unusable += 1
        now = self.ca.clock.seconds()
        if (self._reportedAt is not None
                and now - self._reportedAt < REPORT_EVERY):
            return
        self.log.info("TLS clients sent {count} unusable server name(s) "
                      "since the last report; the last, {length} bytes: "
                      "{name}", count=self._unusable, length=len(sent),
                      name=shownName(sent))
        self._unusable = 0
        self._reportedAt = now


def shownName(sent):
    """
    A server name (L{bytes}) as the log shows it: its keys replaced by
    their markers, in any casing (a host name has none), at most
    L{SHOWN_NAME} characters, escaped.
    """
    text = scrubbedName(sent.decode("latin-1"))
    # repr escapes what a terminal would act on (latin-1 has no bidi marks).
    return repr(text[:SHOWN_NAME]) + ("..." if len(text) > SHOWN_NAME else "")


@implementer(IOpenSSLServerConnectionCreator)
@attr.s(frozen=True, slots=True, auto_attribs=True)
class _ServerConnectionCreator:
    """
    Server connections for one CONNECT host: they start on its context, and
    the servername callback moves them to the context of the name sent.
    """

    store: LeafContexts
    defaultHost: object

    def serverConnectionForTLS(self, tlsProtocol):
        return SSL.Connection(self.store.contextFor(self.defaultHost), None)


def _acceptsClock():
    try:
        parameters = inspect.signature(TLSMemoryBIOFactory).parameters
    except (TypeError, ValueError):
        return False
    return "clock" in parameters


# Twisted 23.10 batches small TLS writes on a clock; 22.4 has no clock.
_FACTORY_TAKES_CLOCK = _acceptsClock()


def tlsFactory(creator, isClient, wrappedFactory, clock=None):
    """
    C{TLSMemoryBIOFactory(creator, isClient, wrappedFactory)}, given C{clock}
    for its write batching when this Twisted batches (23.10 and later), so
    that in-memory tests can drive it with a L{twisted.internet.task.Clock}.
    """
    if clock is not None and _FACTORY_TAKES_CLOCK:
        return TLSMemoryBIOFactory(creator, isClient, wrappedFactory,
                                   clock=clock)
    return TLSMemoryBIOFactory(creator, isClient, wrappedFactory)
