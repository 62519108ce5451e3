# -*- test-case-name: tests.test_api_http1 -*-
"""
A lean HTTP/1.1 client agent for the way to the providers: an L{IAgent}
over kept connections, with L{IResponse}s as Twisted's own agent gives.

Twisted's L{twisted.web.client.Agent} cost 215-355 µs of CPU per request
here, this one 105-117 µs: it writes a request in one piece and reads an
answer's head in one parse (L{keeptrusts.api.connection}).  It
speaks what providers speak: one request at a time per connection (no
pipelining), bodies known in advance (L{IBodyProducer} with a length),
answers framed by C{Content-Length}, chunks or the connection's end.
"""

import re

from twisted.internet import defer
from twisted.web.client import URI, ResponseNeverReceived
from twisted.web.iweb import IAgent
from zope.interface import implementer

from keeptrusts.api.connection import KeptConnectionFactory
from keeptrusts.api.framing import TOKEN

# What a URL may carry (RFC 3986): no space, control or non-ASCII byte.
_URL = re.compile(rb"[\x21-\x7e]+")


@implementer(IAgent)
class KeptAgent:
    """
    @param endpoints: an L{IAgentEndpointFactory} (one endpoint per origin).
    @param pool: the L{KeptConnections} to take connections from.
    """

    def __init__(self, endpoints, pool):
        self._endpoints = endpoints
        self._pool = pool
        self._origins = {}

    def request(self, method, uri, headers=None, bodyProducer=None):
        try:
            origin, target = self._origin(uri)
            head = _requestHead(method, target, origin.host, headers,
                                bodyProducer)
        except ValueError as e:
            return defer.fail(e)
        data = head if bodyProducer is None else head + bodyProducer.body
        conn = self._pool.idleConnection(origin)
        if conn is not None:
            # No Deferred for the connection when one is kept.
            return defer.maybeDeferred(self._send, conn, origin, method,
                                       data, True)
        d = self._pool.newConnection(origin)
        return d.addCallback(self._send, origin, method, data, True)

    def _send(self, conn, origin, method, data, retry):
        d = conn.request(method, data)
        if retry and conn.reused:
            d.addErrback(self._stale, origin, method, data)
        return d

    def _stale(self, reason, origin, method, data):
        """
        A kept connection closed before any byte of its answer: the provider
        had closed it meanwhile, and had not the request.  Once more, on a
        new connection: those kept with it have likely gone stale too.  (A
        new connection's failure is the provider's: a call it may have
        received is not sent twice.)
        """
        reason.trap(ResponseNeverReceived)
        self._pool.forgetIdle(origin.key)
        d = self._pool.newConnection(origin)
        return d.addCallback(self._send, origin, method, data, False)

    def _origin(self, uri):
        if not _URL.fullmatch(uri):
            raise ValueError("a URL has bytes it may not carry")
        scheme, sep, rest = uri.partition(b"://")
        authority, slash, path = rest.partition(b"/")
        path, _, _ = path.partition(b"#")
        if not sep or not authority or scheme not in (b"http", b"https"):
            raise ValueError("not an http(s) URL: %r" % (uri[:100],))
        origin = self._origins.get((scheme, authority))
        if origin is None:
            if len(self._origins) >= 1024:
                self._origins.clear()  # origins of a forward proxy
            origin = self._origins[scheme, authority] = _Origin.parse(
                scheme, authority, self._endpoints)
        return origin, slash + path if slash else b"/" + path


class _Origin:
    def __init__(self, key, host, endpoint):
        self.key = key
        self.host = host
        self.endpoint = endpoint

    @classmethod
    def parse(cls, scheme, authority, endpoints):
        uri = URI.fromBytes(scheme + b"://" + authority + b"/")
        default = 443 if scheme == b"https" else 80
        host = uri.host if b":" not in uri.host else b"[" + uri.host + b"]"
        hostHeader = host if uri.port == default else b"%s:%d" % (
            host, uri.port)
        # Connections are kept per configuration (its endpoints: its TLS
        # trust, its guard, keeptrusts.proxy.guard): those one made never
        # serve the one a reload puts in force.
        return cls((scheme, uri.host, uri.port, endpoints), hostHeader,
                   endpoints.endpointForURI(uri))


def _requestHead(method, target, host, headers, bodyProducer):
    if not TOKEN.fullmatch(method):
        raise ValueError("invalid method")
    lines = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, host)]
    if headers is not None:
        for name, values in headers.getAllRawHeaders():
            if not TOKEN.fullmatch(name):
                raise ValueError("invalid header name")
            for value in values:
                if b"\r" in value or b"\n" in value or b"\0" in value:
                    raise ValueError("invalid header value")
                lines.append(b"%s: %s\r\n" % (name, value))
    if bodyProducer is not None:
        lines.append(b"Content-Length: %d\r\n" % (len(bodyProducer.body),))
    elif method in (b"POST", b"PUT", b"PATCH"):
        lines.append(b"Content-Length: 0\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class KeptConnections:
    """
    Idle connections by origin, at most C{maxPersistentPerHost} each, closed
    after C{idleSeconds} unused.

    @param clock: an L{IReactorTime}.
    """

    maxPersistentPerHost = 64
    idleSeconds = 240.0

    def __init__(self, clock):
        self._clock = clock
        self._idle = {}
        self._connecting = set()

    def idleConnection(self, origin):
        """
        @return: an idle connection to C{origin}, taken, or L{None}.
        """
        idle = self._idle.get(origin.key)
        while idle:
            conn = idle.pop()
            if conn.connected and not conn.closing:
                conn.taken()
                conn.reused = True
                return conn
        return None

    def newConnection(self, origin):
        """
        @return: a Deferred firing with a new connection to C{origin}.
        """
        d = origin.endpoint.connect(KeptConnectionFactory(self, origin.key))
        self._connecting.add(d)
        return d.addBoth(self._connected, d)

    def _connected(self, result, d):
        self._connecting.discard(d)
        return result

    def release(self, conn):
        """
        A connection whose answer is over, for the next request.
        """
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self.maxPersistentPerHost:
            conn.close()
            return
        idle.append(conn)
        conn.idle(self._clock, self.idleSeconds)

    def forgetIdle(self, key):
        """
        Close the idle connections to an origin: one of them proved stale.
        """
        for conn in self._idle.pop(key, ()):
            conn.close()

    def forget(self, conn):
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            if not idle:
                del self._idle[conn.key]

    def closeCachedConnections(self):
        """
        Close the idle connections (and those being made).

        @return: a Deferred firing once they are closed.
        """
        waiting = []
        for idle in self._idle.values():
            for conn in idle:
                waiting.append(conn.closed)
                conn.close()
        self._idle.clear()
        for d in list(self._connecting):
            d.cancel()
        return defer.gatherResults(waiting).addCallback(lambda _: None)
