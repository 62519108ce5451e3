# -*- test-case-name: tests.test_proxy_tunnel -*-
"""
What a C{CONNECT} gets, in this order: a 407 without a valid access key
(unless the proxy is open), a 403 for a port not in
C{gateway.proxy.allowed_ports}, for the gateway's own address or (off
loopback) for any address of its machine or link, then TLS interception
for the hosts listed for it and a blind tunnel for the rest.
"""

import os
from typing import Optional

import attr
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger
from zope.interface import directlyProvides, implementer, providedBy

from keeptrusts.api.errors import GatewayError, upstreamError
from keeptrusts.events import eventRecord
from keeptrusts.front import refuse
from keeptrusts.policy.scrub import MadeHere, scrubbedName
from keeptrusts.policy.values import Exchange
from keeptrusts.proxy.guard import isInternal, refuseInternal
from keeptrusts.proxy.resolve import pinnedEndpoint, resolve
from keeptrusts.proxy.tunnel import TunnelClient, TunnelOutcome

log = Logger()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ConnectEvent:
    """
    How one CONNECT ended.

    @ivar mode: C{tunnel} or C{intercept}.
    @ivar host: the host as the client wrote it (its case kept).
    @ivar user: L{None} when refused before the user was known.
    @ivar status: 200, a refusal's status, or L{None} when the client left
        before it was answered.
    @ivar duration: seconds from the CONNECT head to the last close.
    """

    mode: str
    host: str
    port: int
    user: Optional[str]
    status: Optional[int]
    bytesUp: int
    bytesDown: int
    duration: float


def accessRecord(event, configName):
    """
    The journal record (phase C{access}) of a L{ConnectEvent}.
    """
    status = event.status
    verdict = ("allow" if status == 200 else
               "block" if status in (403, 407) else "error")
    exchange = Exchange(request_id=MadeHere("conn_" + os.urandom(16).hex()),
                        mode=event.mode, method="CONNECT", host=event.host,
                        user=event.user or "")
    record = eventRecord("access", verdict, exchange, configName,
                         status=status, latency={
                             "policy": None, "upstream": None,
                             "total": round(event.duration * 1000, 3)})
    record.update(port=event.port,
                  bytes={"up": event.bytesUp, "down": event.bytesDown})
    return record


class ConnectHandler:
    """
    The C{connectHandler} of L{keeptrusts.front.FrontFactory}.

    @param reactor: for connections, timeouts and name resolution.
    @param policyInForce: C{() -> }
        L{keeptrusts.proxy.proxypolicy.ProxyPolicy}, asked once per CONNECT
        (a reload may change it).
    @param record: called with a L{ConnectEvent} when each CONNECT ends.
    @param intercept: the interception hook, or L{None} to tunnel every
        host: C{intercept(request, transport, leftover)} gets the
        L{ConnectRequest} (its C{user} known), a transport and the bytes
        that followed the head; it answers C{200} itself, connects its own
        protocol to C{transport}, feeds it C{leftover} and returns it; or it
        raises a L{GatewayError} to refuse.
    @param resolver: an L{IHostnameResolver}; the reactor's by default.
    @param splice: a L{keeptrusts.proxy.splice.Splicer} for the tunnels'
        bytes, or L{None} to move them through Twisted.
    """

    def __init__(self, reactor, policyInForce, record, intercept=None,
                 resolver=None, splice=None):
        self._reactor = reactor
        self._splice = splice
        self._policyInForce = policyInForce
        self._record = record
        self._intercept = intercept
        self._resolver = resolver

    def handleConnect(self, request, transport, leftover):
        started = self._reactor.seconds()
        policy = self._policyInForce()
        intercepting = (self._intercept is not None
                        and policy.interceptHost(request.host))
        mode = "intercept" if intercepting else "tunnel"
        try:
            request = attr.evolve(request, user=policy.authenticate(
                request.header(b"proxy-authorization")))
            if request.port not in policy.allowedPorts:
                raise _forbidden("CONNECT to port %d is not allowed"
                                 % (request.port,), "port_not_allowed")
            # Names are checked again once resolved, just before connecting.
            _refuseGateway(request.host, request)
            guarded = policy.guarded is not None and policy.guarded(
                None, request.host, request.port)
            if guarded:
                refuseInternal(request.host)
            if intercepting:
                return self._interceptWith(request, transport, leftover,
                                           started)
        except GatewayError as error:
            refuse(transport, error)
            self._done(request, mode, started, TunnelOutcome(error.status,
                                                             0, 0))
            return None
        return self._tunnel(request, transport, leftover, started, policy,
                            guarded)

    def _interceptWith(self, request, transport, leftover, started):
        meter = _Metered(transport, len(leftover))
        try:
            meter.wrappedProtocol = self._intercept(request, meter, leftover)
        except GatewayError:
            raise
        except Exception:
            # It may have answered 200 already: only an abort is safe.
            log.failure("intercepting {host}",
                        host=scrubbedName(request.shownHost))
            transport.abortConnection()
            self._done(request, "intercept", started,
                       TunnelOutcome(None, 0, 0))
            return None
        meter.whenLost = lambda: self._done(
            request, "intercept", started,
            TunnelOutcome(200, meter.bytesUp, meter.bytesDown))
        return meter

    def _tunnel(self, request, transport, leftover, started, policy,
                guarded):
        def connect(factory):
            d = resolve(self._resolver or self._reactor.nameResolver,
                        request.host, request.port)
            d.addCallback(_vetted, request, guarded)
            d.addCallback(lambda addresses: pinnedEndpoint(
                self._reactor, addresses, request.host, request.port,
                policy.connectTimeout).connect(factory))
            return d
        client = TunnelClient(self._reactor, connect, "%s:%d" % (
            request.host, request.port), leftover, policy.connectTimeout,
            policy.idleTimeout, self._splice)
        client.makeConnection(transport)
        client.finished.addCallback(
            lambda outcome: self._done(request, "tunnel", started, outcome))
        return client

    def _done(self, request, mode, started, outcome):
        try:
            self._record(ConnectEvent(
                mode=mode, host=request.shownHost, port=request.port,
                user=request.user, status=outcome.status,
                bytesUp=outcome.bytesUp, bytesDown=outcome.bytesDown,
                duration=self._reactor.seconds() - started))
        except Exception:
            log.failure("recording a CONNECT outcome")


def _forbidden(message, code):
    return GatewayError(403, "forbidden", message, code=code)


def _refuseGateway(host, request):
    """
    Refuse a target that is the gateway's own listening address and port.
    """
    if request.port != getattr(request.serverAddress, "port", None):
        return
    if host == "localhost" or isInternal(host):
        # Any address of this machine: a listener on all interfaces is
        # there too.
        raise _forbidden("the gateway does not tunnel to itself", "loop")


def _vetted(addresses, request, guarded):
    if not addresses:
        raise upstreamError("cannot resolve %s" % (request.host,))
    for address in addresses:
        _refuseGateway(address.host, request)
        if guarded:
            refuseInternal(address.host, shown=request.host)
    return addresses


@implementer(IHalfCloseableProtocol)
class _Metered:
    """
    Between an intercepted client connection and the interception's
    protocol: the protocol of the one, the transport of the other, counting
    the bytes that pass.

    @ivar whenLost: called once the connection is closed.
    """

    wrappedProtocol = None
    whenLost = None

    def __init__(self, transport, leftover):
        self.transport = transport
        self.bytesUp = leftover
        self.bytesDown = 0
        directlyProvides(self, providedBy(transport))

    def __getattr__(self, name):
        return getattr(self.transport, name)

    def write(self, data):
        self.bytesDown += len(data)
        self.transport.write(data)

    def writeSequence(self, data):
        self.write(b"".join(data))

    def makeConnection(self, transport):
        pass  # connected when made

    def dataReceived(self, data):
        self.bytesUp += len(data)
        self.wrappedProtocol.dataReceived(data)

    def _halfCloseable(self):
        # The class, not the instance: a protocol wrapper (TLS) copies its
        # transport's interfaces, this one's included, onto itself and
        # forwards what it lacks back here.
        protocol = self.wrappedProtocol
        if IHalfCloseableProtocol.implementedBy(type(protocol)):
            return protocol
        return None

    def readConnectionLost(self):
        halfCloseable = self._halfCloseable()
        if halfCloseable is not None:
            halfCloseable.readConnectionLost()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self):
        halfCloseable = self._halfCloseable()
        if halfCloseable is not None:
            halfCloseable.writeConnectionLost()

    def connectionLost(self, reason):
        try:
            self.wrappedProtocol.connectionLost(reason)
        finally:
            if self.whenLost is not None:
                self.whenLost()
