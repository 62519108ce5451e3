# -*- test-case-name: tests.test_api_http1 -*-
"""
A lean HTTP/1.1 client agent for the way to the providers: an L{IAgent}
over kept connections, with L{IResponse}s as Twisted's own agent gives.

Twisted's L{twisted.web.client.Agent} costs about 300 µs of CPU per request
here, more than the rest of the gateway's own work but the journal; this one
writes a request in one piece and reads an answer's head in one parse.  It
speaks what providers speak: one request at a time per connection (no
pipelining), bodies known in advance (L{IBodyProducer} with a length),
answers framed by C{Content-Length}, chunks or the connection's end.
"""

import re

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.web.client import URI, ResponseFailed, ResponseNeverReceived
from twisted.web.iweb import IAgent
from zope.interface import implementer

from keeptrusts.api.framing import (
    TOKEN, FramingError, KeptResponse, bodyFraming, parseHead)

# An answer's head may not exceed this (Twisted's own line limit is 16 KB).
MAX_HEAD = 64 * 1024
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
        body = b"" if bodyProducer is None else bodyProducer.body
        d = self._pool.connection(origin)
        return d.addCallback(lambda conn: conn.request(method, head + body))

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
        return cls((scheme, uri.host, uri.port), hostHeader,
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

    def connection(self, origin):
        """
        @return: a Deferred firing with an idle or new connection to
            C{origin}.
        """
        idle = self._idle.get(origin.key)
        while idle:
            conn = idle.pop()
            if conn.connected and not conn.closing:
                conn.taken()
                return defer.succeed(conn)
        d = origin.endpoint.connect(_ConnectionFactory(self, origin.key))
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


class _ConnectionFactory(Factory):
    def __init__(self, pool, key):
        self._pool = pool
        self._key = key

    def buildProtocol(self, addr):
        return _Connection(self._pool, self._key)


class _Connection(Protocol):
    """
    One kept connection: a request, its answer, again.

    @ivar closing: the connection is being closed: not to be used again.
    """

    closing = False

    def __init__(self, pool, key):
        self.key = key
        self._pool = pool
        self._timer = None
        self._waiting = None
        self._answering = False
        self._response = None
        self._head = bytearray()
        self.closed = defer.Deferred()

    def idle(self, clock, seconds):
        self._timer = clock.callLater(seconds, self._idleTooLong)

    def _idleTooLong(self):
        self._timer = None
        self.close()

    def taken(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self, abort=False):
        """
        Close the connection (at once, with C{abort}); it is not used again.
        """
        self.closing = True
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def request(self, method, data):
        self._method = method
        self._answering = False
        self._waiting = defer.Deferred(lambda _: self._abort())
        self.transport.write(data)
        return self._waiting

    def _abort(self):
        self._waiting = None
        self.close(abort=True)

    def dataReceived(self, data):
        if self._response is not None:
            self._response.bodyReceived(data)
            return
        if self._waiting is None:
            # Bytes nobody asked for: the connection cannot be trusted.
            self.close(abort=True)
            return
        self._answering = True
        head = self._head
        # The blank line may straddle what came before; nothing before
        # that holds it (a trickled head costs no rescans).
        start = max(0, len(head) - 3)
        head += data
        pos = 0
        end = head.find(b"\r\n\r\n", start)
        while end >= 0:
            try:
                status, phrase, version, headers = parseHead(
                    bytes(head[pos:end]))
            except ValueError as e:
                self._failHead(str(e))
                return
            if status == 101:
                self._failHead("the provider switched protocols unasked")
                return
            if not 100 <= status < 200:
                rest = bytes(head[end + 4:])
                self._head = bytearray()
                self._answer(status, phrase, version, headers, rest)
                return
            # An interim answer (100 Continue, 103 Early Hints): the real
            # one follows.
            pos = end + 4
            end = head.find(b"\r\n\r\n", pos)
        del head[:pos]
        if len(head) > MAX_HEAD:
            self._failHead("the answer's head is too long")

    def _answer(self, status, phrase, version, headers, rest):
        try:
            body = bodyFraming(self._method, status, version, headers)
        except FramingError as e:
            self._failHead(str(e))
            return
        self._response = response = KeptResponse(
            self, version, status, phrase, headers, body)
        waiting, self._waiting = self._waiting, None
        waiting.callback(response)
        if self._response is not response:
            return  # dropped meanwhile
        if body is None or body == 0:
            response.finished(not rest)
        elif rest:
            response.bodyReceived(rest)

    def _failHead(self, message):
        waiting, self._waiting = self._waiting, None
        self.close(abort=True)
        waiting.errback(Failure(ResponseFailed([Failure(
            FramingError(message))])))

    def drop(self):
        """
        The answer is given up: so is the connection.
        """
        self._response = None
        self.close(abort=True)

    def answered(self, reusable):
        """
        The answer is over; keep the connection if it can carry another.
        """
        self._response = None
        if reusable and self.connected and not self.closing:
            # A slow client may have paused it: the next answer must flow.
            self.transport.resumeProducing()
            self._pool.release(self)
        else:
            self.close()

    def connectionLost(self, reason):
        self.connected = False
        self.closing = True
        try:
            self.taken()
            self._pool.forget(self)
            waiting, self._waiting = self._waiting, None
            if waiting is not None:
                # Nothing of an answer came: a kept connection the provider
                # had closed meanwhile says so (the caller may try again).
                failed = ResponseFailed if self._answering else (
                    ResponseNeverReceived)
                waiting.errback(Failure(failed([reason])))
            elif self._response is not None:
                response, self._response = self._response, None
                response.lost(reason)
        finally:
            self.closed.callback(None)
