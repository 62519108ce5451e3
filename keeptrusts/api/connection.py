# -*- test-case-name: tests.test_api_http1 -*-
"""
One kept connection to a provider: a request, its answer, again (the
protocol of L{keeptrusts.api.http1}'s agent).
"""

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from keeptrusts.api.framing import (
    FramingError, KeptResponse, bodyFraming, parseHead)
from keeptrusts.api.sending import noDelay, sendOn, writeNow

# An answer's head may not exceed this (Twisted's own line limit is 16 KB).
MAX_HEAD = 64 * 1024


class KeptConnectionFactory(Factory):
    def __init__(self, pool, key):
        self._pool = pool
        self._key = key

    def buildProtocol(self, addr):
        return KeptConnection(self._pool, self._key)


class KeptConnection(Protocol):
    """
    One kept connection: a request, its answer, again.

    @ivar closing: the connection is being closed: not to be used again.
    @ivar reused: the connection carried an answer before this request.
    """

    closing = False
    reused = False

    def __init__(self, pool, key):
        self.key = key
        self._pool = pool
        self._timer = None
        self._waiting = None
        self._answering = False
        self._response = None
        self._head = bytearray()
        self.closed = defer.Deferred()

    def connectionMade(self):
        # A request whose body comes in pieces leaves as it comes.
        noDelay(self.transport)

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
        # To the provider now: it works on the request while the gateway
        # does what follows in this turn (the input record).
        writeNow(self.transport, data)
        sendOn(self.transport)
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
        # What of the body came with the head is the answer's before it is
        # handed on: its taker has both at once (the client, one send).
        if body is None or body == 0:
            response.finished(not rest)
        elif rest:
            response.bodyReceived(rest)
        waiting.callback(response)

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
