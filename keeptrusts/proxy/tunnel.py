# -*- test-case-name: tests.test_proxy_tunnel -*-
"""
The blind tunnel: after a C{CONNECT}, bytes pass unread between the client
and the host it named, so the client sees that host's own certificate.

Modelled on L{twisted.protocols.portforward}: the client's transport is
paused until the target accepts the connection, then each transport is the
other's streaming producer, so a slow reader on either side slows the
writer on the other side instead of filling the gateway's memory.  Where the
kernel can (L{keeptrusts.proxy.splice}), it moves the bytes instead.
"""

import errno
from typing import Optional

import attr
from twisted.internet.defer import Deferred
from twisted.internet.error import TimeoutError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from keeptrusts.api.errors import GatewayError, upstreamError, upstreamTimeout
from keeptrusts.api.sending import noDelay
from keeptrusts.front import refuse

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TunnelOutcome:
    """
    @ivar status: 200 once the target accepted the connection, the status
        of the refusal otherwise, or L{None} when the client left first.
    @ivar bytesUp: bytes passed to the target.
    @ivar bytesDown: bytes passed back to the client (not counting the 200).
    """

    status: Optional[int]
    bytesUp: int
    bytesDown: int


@implementer(IHalfCloseableProtocol)
class TunnelClient(Protocol, TimeoutMixin):
    """
    The client's end of a tunnel; it owns the tunnel's state.

    @param clock: an L{IReactorTime} for both timeouts.
    @param connect: C{factory -> Deferred} that connects a protocol built by
        C{factory} to the target and fires with it, or fails: with a
        L{GatewayError} to answer as it is, else with a connection error.
    @param target: C{host:port}, for messages.
    @param leftover: the bytes that followed the CONNECT head.
    @param connectTimeout: seconds for C{connect}; then 504.
    @param idleTimeout: seconds without a byte either way before both
        connections are aborted.
    @param splice: a L{keeptrusts.proxy.splice.Splicer}, to have the kernel
        move the bytes when it can, or L{None}.
    @ivar finished: a L{Deferred} firing with a L{TunnelOutcome} once both
        connections are closed.
    """

    upstream = None
    status = None
    bytesUp = bytesDown = 0
    _clientDone = _upstreamDone = False  # a FIN came from that side
    _lost = _upstreamLost = False
    _producing = frozenset()  # the transports that have a producer
    _pump = None  # a SplicePump while the kernel moves the bytes

    def __init__(self, clock, connect, target, leftover, connectTimeout,
                 idleTimeout, splice=None):
        self.callLater = clock.callLater
        self.finished = Deferred()
        self._connect = connect
        self._target = target
        self._pending = [leftover] if leftover else []
        self._connectTimeout = connectTimeout
        self._idleTimeout = idleTimeout
        self._splice = splice
        self._opening = None

    def connectionMade(self):
        # Read nothing more from the client until there is somewhere to
        # send it.
        self.transport.pauseProducing()
        self.setTimeout(self._connectTimeout)
        self._opening = self._connect(_UpstreamFactory(self))
        self._opening.addCallbacks(self._connected, self._failed)

    def _connected(self, upstream):
        self._opening = None
        self.upstream = upstream
        if self._lost:
            upstream.transport.loseConnection()
            return
        self.status = 200
        self.setTimeout(self._idleTimeout)
        pending, self._pending = self._pending, None
        self.bytesUp += sum(len(data) for data in pending)
        if self._splice is not None and not self._clientDone:
            # The sockets go to the kernel while neither transport reads
            # (the client's is paused) or has anything to write.
            upstream.transport.pauseProducing()
            self._pump = self._splice(
                self.transport, upstream.transport, b"".join(pending),
                ESTABLISHED, self._spliced, self._spliceEnded)
            if self._pump is not None:
                # Not in this turn: the reactor may still be about to call
                # the upstream transport for the event that connected it.
                self.callLater(0, self._pump.start)
                return
            upstream.transport.resumeProducing()
        self.transport.write(ESTABLISHED)
        for data in pending:  # an eager TLS ClientHello goes first
            upstream.transport.write(data)
        upstream.transport.registerProducer(self.transport, True)
        self.transport.registerProducer(upstream.transport, True)
        self._producing = {self.transport, upstream.transport}
        if self._clientDone:
            self._passFIN(upstream.transport)
        else:
            self.transport.resumeProducing()

    def _spliced(self, up, down):
        self.bytesUp += up
        self.bytesDown += down
        self.resetTimeout()

    def _spliceEnded(self, end):
        self._pump = None
        client, upstream = self.transport, self.upstream.transport
        if end.error is None:
            client.loseConnection()
            upstream.loseConnection()
        elif end.now:
            # The reactor dropped the sockets (it is stopping); the pump had
            # them, so it is for us to tell the transports, in this turn.
            reason = Failure(end.error)
            client.connectionLost(reason)
            upstream.connectionLost(reason)
        elif end.failed is None:
            client.abortConnection()
            upstream.abortConnection()
        else:
            # One side failed: the other still gets what was on its way.
            broken, sound = ((client, upstream) if end.failed == "client"
                             else (upstream, client))
            broken.abortConnection()
            sound.write(end.rest)
            sound.loseConnection()

    def _failed(self, reason):
        self._opening = None
        if self._lost or self.status is not None:
            return  # the client left, or was answered already
        if reason.check(GatewayError):
            error = reason.value
        elif reason.check(TimeoutError):
            error = upstreamTimeout("%s did not accept the connection in time"
                                    % (self._target,))
        else:
            error = upstreamError("cannot connect to %s: %s"
                                  % (self._target, reason.getErrorMessage()))
        self._refuse(error)

    def _refuse(self, error):
        self.status = error.status
        self._pending = None
        self.setTimeout(None)
        refuse(self.transport, error)

    def timeoutConnection(self):
        if self.upstream is None:
            self._refuse(upstreamTimeout("%s did not accept the connection "
                                         "in time" % (self._target,)))
            self._opening.cancel()
        elif self._pump is not None:
            self._pump.stop(OSError(errno.ETIMEDOUT, "idle"))
        else:
            # Idle both ways.  Abort: a close would wait for a peer that
            # may never read what is still buffered for it.
            self.upstream.transport.abortConnection()
            self.transport.abortConnection()

    def dataReceived(self, data):
        upstream = self.upstream
        if upstream is None:
            if self._pending is not None:
                # A paused transport may still deliver what it had read.
                self._pending.append(data)
            return
        self.bytesUp += len(data)
        upstream.transport.write(data)
        self.resetTimeout()

    def readConnectionLost(self):
        self._clientDone = True
        if self.upstream is not None:
            self._passFIN(self.upstream.transport)

    def upstreamReadConnectionLost(self):
        self._upstreamDone = True
        self._passFIN(self.transport)

    def writeConnectionLost(self):
        pass

    def _unregister(self, consumer):
        # A registered producer that is paused would keep C{consumer} from
        # ever closing (FileDescriptor.doWrite resumes it instead).
        if consumer in self._producing:
            self._producing.discard(consumer)
            consumer.unregisterProducer()

    def _passFIN(self, transport):
        """
        One side sent its FIN: half-close C{transport}, the other side's,
        or close both when each side has sent one.
        """
        self._unregister(transport)
        if self._clientDone and self._upstreamDone:
            self.upstream.transport.loseConnection()
            self.transport.loseConnection()
        else:
            transport.loseWriteConnection()

    def connectionLost(self, reason):
        self._lost = True
        self.setTimeout(None)
        if self._opening is not None:
            self._opening.cancel()
        elif self.upstream is not None:
            self._unregister(self.upstream.transport)
            self.upstream.transport.loseConnection()
        self._maybeFinished()

    def upstreamConnectionLost(self):
        self._upstreamLost = True
        if not self._lost:
            self._unregister(self.transport)
            self.transport.loseConnection()
        self._maybeFinished()

    def _maybeFinished(self):
        if (self._lost and (self.upstream is None or self._upstreamLost)
                and not self.finished.called):
            self.finished.callback(TunnelOutcome(self.status, self.bytesUp,
                                                 self.bytesDown))


@implementer(IHalfCloseableProtocol)
class _Upstream(Protocol):
    """
    The target's end of a tunnel: everything goes to the client's end.
    """

    def __init__(self, client):
        self.client = client

    def connectionMade(self):
        # The client's small writes (TLS records) go on as they came.
        noDelay(self.transport)

    def dataReceived(self, data):
        client = self.client
        client.bytesDown += len(data)
        client.transport.write(data)
        client.resetTimeout()

    def readConnectionLost(self):
        self.client.upstreamReadConnectionLost()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.client.upstreamConnectionLost()


class _UpstreamFactory(Factory):
    noisy = False

    def __init__(self, client):
        self.client = client

    def buildProtocol(self, addr):
        return _Upstream(self.client)
