# -*- test-case-name: tests.test_api_upstream,tests.test_api -*-
"""
The way out: which targets can be used, the headers they get, one request
through the service's agent (L{keeptrusts.api.http1.KeptAgent}), and what
its answer says of itself.
"""

import attr
from twisted.internet import defer, error as ierror
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from keeptrusts.api.errors import GatewayError, upstreamError, upstreamTimeout
from keeptrusts.policy.scrub import scrubbed
from keeptrusts.proxy.guard import GuardedEndpoint

log = Logger()

# Never forwarded: hop-by-hop headers, what the gateway sets itself, and
# the identity headers that only the gateway reads.
DROPPED_HEADERS = frozenset(
    name.encode("ascii") for name in (
        "connection", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "proxy-connection", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "host",
        "content-length", "accept-encoding", "x-user-id", "x-user-role",
        "x-keeptrusts-agent-id", "x-keeptrusts-key"))

# The client's own credentials for a provider: passed on only when the
# target has no key of its own and the client's may go on (a key the client
# sent a keyed target went on unread: found by review).
CLIENT_CREDENTIALS = frozenset([
    b"authorization", b"x-api-key", b"api-key", b"x-goog-api-key",
    b"cookie"])

_HOP_BY_HOP = frozenset([
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-connection",
    b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade"])


@attr.s(frozen=True, slots=True, auto_attribs=True)
class UsableTarget:
    """
    A configured target whose key, if it needs one, was found.

    @ivar credential: the header name and value to inject, or L{None} to
        pass the client's own.
    @ivar keyHeaders: the names (lower case) of the client's headers this
        target is never sent as they came, but L{DROPPED_HEADERS} and
        L{CLIENT_CREDENTIALS}: the key headers of the configured targets,
        its own among them (its key takes that name's place).
    """

    target: object
    credential: object = None
    keyHeaders: frozenset = frozenset()

    @property
    def id(self):
        return self.target.id

    @property
    def provider(self):
        return self.target.provider

    @property
    def pricing(self):
        return self.target.pricing

    def url(self, path, query=b""):
        url = self.target.base_url.encode("ascii") + path
        return url + b"?" + query if query else url


def usableTargets(targets, environ):
    """
    Resolve each target's C{secret_key_ref}; a missing key makes the target
    unavailable, with a warning, and does not stop the gateway.
    """
    # A client's header by the name of one target's key went unread to the
    # next target when the call fell back (found by review): by the name of
    # any target's key, a client's header goes nowhere (the client's own
    # credentials go on as they did).
    keyHeaders = frozenset(
        target.api_key_header.lower().encode("ascii") for target in targets
        if target.secret_key_ref is not None) - CLIENT_CREDENTIALS
    usable = []
    for target in targets:
        ref = target.secret_key_ref
        if ref is None or ref.env is None:
            usable.append(UsableTarget(target, keyHeaders=keyHeaders))
            continue
        key = environ.get(ref.env)
        if not key:
            log.warn("target {target}: ${env} is not set; target unavailable",
                     target=scrubbed(target.id), env=ref.env)
            continue
        name = target.api_key_header.encode("ascii")
        usable.append(UsableTarget(
            target, (name, (target.api_key_prefix + key).encode("utf-8")),
            keyHeaders | {name.lower()}))
    return tuple(usable)


def withheldHeaders(target):
    """
    The names (lower case) of the client's headers that C{target} is never
    sent as they came, but L{DROPPED_HEADERS} and L{CLIENT_CREDENTIALS}.

    @param target: a L{UsableTarget} (its C{keyHeaders}), or the original
        destination of a proxied request
        (L{keeptrusts.proxy.origin.OriginTarget}): the name of the key it
        is given, if any.
    """
    withheld = getattr(target, "keyHeaders", None)
    if withheld is None:
        credential = target.credential
        withheld = frozenset() if credential is None else frozenset(
            [credential[0].lower()])
    return withheld


def outgoingHeaders(clientHeaders, target, passClientAuth):
    """
    @param clientHeaders: the client request's L{Headers}.
    @param passClientAuth: whether the client's own credentials may go on.
    """
    headers = Headers()
    withheld = withheldHeaders(target)
    for name, values in clientHeaders.getAllRawHeaders():
        lower = name.lower()
        if lower in DROPPED_HEADERS or lower in withheld:
            continue
        if lower in CLIENT_CREDENTIALS and (target.credential
                                             or not passClientAuth):
            continue
        headers.setRawHeaders(name, values)
    if target.credential is not None:
        name, value = target.credential
        headers.setRawHeaders(name, [value])
    # Policies must read answers as they are: no compression.
    headers.setRawHeaders(b"accept-encoding", [b"identity"])
    return headers


def copyResponseHeaders(source, target, keepLength):
    """
    Copy a provider's response headers but the hop-by-hop ones, and its
    C{Content-Length} only when the body goes on unchanged.
    """
    for name, values in source.getAllRawHeaders():
        lower = name.lower()
        if lower in _HOP_BY_HOP or (lower == b"content-length"
                                    and not keepLength):
            continue
        target.setRawHeaders(name, values)


@implementer(IBodyProducer)
class BytesProducer:
    """
    A body already in memory, written at once.
    """

    def __init__(self, body):
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


@implementer(IAgentEndpointFactory)
class KeptEndpoints:
    """
    One endpoint per scheme, host and port, made once (Twisted's own agent
    made a new one for every request, even when a kept connection served
    it; endpoints are dear: IDNA, TLS options).

    @param tlsPolicy: the L{IPolicyForHTTPS} of C{https} URIs.
    @param guarded: C{(scheme, host, port) -> bool}, whether that origin is
        reached only at addresses that are not the gateway's machine's or
        link's (L{keeptrusts.proxy.guard.GuardedEndpoint}); L{None}: none is.
    """

    def __init__(self, reactor, tlsPolicy, connectTimeout, maxKept=256,
                 guarded=None):
        self._reactor = reactor
        self._guarded = guarded
        self._tlsPolicy = tlsPolicy
        self._connectTimeout = connectTimeout
        self._maxKept = maxKept
        self._kept = {}

    def endpointForURI(self, uri):
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._kept.get(key)
        if endpoint is None:
            if uri.scheme not in (b"http", b"https"):
                raise SchemeNotSupported("unsupported scheme: %r"
                                         % (uri.scheme,))
            host = uri.host.decode("ascii")
            if self._guarded is not None and self._guarded(
                    uri.scheme.decode("ascii"), host, uri.port):
                endpoint = GuardedEndpoint(self._reactor, host, uri.port,
                                           self._connectTimeout)
            else:
                endpoint = HostnameEndpoint(self._reactor, uri.host, uri.port,
                                            timeout=self._connectTimeout)
            if uri.scheme == b"https":
                endpoint = wrapClientTLS(self._tlsPolicy.creatorForNetloc(
                    uri.host, uri.port), endpoint)
            if len(self._kept) >= self._maxKept:
                self._kept.clear()  # origins of a forward proxy: unbounded
            self._kept[key] = endpoint
        return endpoint


class Upstream:
    """
    Requests to providers through one pooled agent.

    @param agent: an L{IAgent}, built with the connect timeout.
    @param clock: an L{IReactorTime}.
    @param headersTimeout: seconds to wait for the answer's headers.
    """

    def __init__(self, agent, clock, headersTimeout):
        self._agent = agent
        self._clock = clock
        self._headersTimeout = headersTimeout

    def request(self, method, url, headers, body=None):
        """
        @return: a cancellable Deferred firing with an L{IResponse}, or
            failing with a L{GatewayError} (502 or 504).
        """
        producer = BytesProducer(body) if body is not None else None
        d = self._agent.request(method, url, headers, producer)
        d.addTimeout(self._headersTimeout, self._clock)
        return d.addErrback(_translate)


def _translate(reason):
    if reason.check(GatewayError):
        return reason  # the gateway's own refusal (a guarded address)
    if reason.check(defer.TimeoutError):
        raise upstreamTimeout("the provider did not answer in time")
    if reason.check(defer.CancelledError):
        return reason
    if reason.check(ierror.TimeoutError):
        raise upstreamError("the provider could not be reached (timeout)")
    if reason.check(ierror.DNSLookupError):
        raise upstreamError("the provider's host name did not resolve")
    if reason.check(ierror.ConnectError):
        raise upstreamError("the provider could not be reached")
    if reason.check(ResponseNeverReceived):
        raise upstreamError("the provider closed the connection without answering")
    raise upstreamError("the provider's answer failed")


class _Discard(Protocol):
    def connectionMade(self):
        self.transport.stopProducing()


def discard(response):
    """
    Drop an answer that will not be used, and its connection.
    """
    response.deliverBody(_Discard())


def mediaType(response):
    """
    An answer's media type, lower case, without its parameters.
    """
    return headersMediaType(response.headers)


def headersMediaType(headers):
    """
    The media type C{headers} give, lower case, without its parameters.
    """
    contentType = (headers.getRawHeaders(b"content-type") or [b""])[0]
    return contentType.split(b";", 1)[0].strip().lower()


def isJSON(media):
    return media == b"application/json" or media.endswith(b"+json")


def isEncoded(response):
    """
    Whether an answer came compressed (a C{Content-Encoding} but identity).
    """
    return headersEncoded(response.headers)


def headersEncoded(headers):
    """
    Whether C{headers} (L{Headers}) give a C{Content-Encoding} but
    identity: the body they head is compressed.
    """
    return any(coding.strip().lower() not in (b"", b"identity")
               for value in headers.getRawHeaders(b"content-encoding", [])
               for coding in value.split(b","))
