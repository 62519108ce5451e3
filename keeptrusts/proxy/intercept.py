# -*- test-case-name: tests.test_proxy_intercept -*-
"""
TLS interception: a CONNECT to a host listed in C{gateway.intercept.hosts}
is answered by the gateway itself, with a certificate from the local CA
for the name the client asks for; the requests inside go through the same
pipeline as C{/v1} requests and on to the original destination over
verified TLS.
"""

from keeptrusts.api.site import GatewaySite
from keeptrusts.proxy.origin import OriginResource, OriginTarget
from keeptrusts.tls.sni import tlsFactory

_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


class Interceptor:
    """
    The C{intercept} hook of L{keeptrusts.proxy.connect.ConnectHandler}.

    @param current: the L{Current} parts.
    @param certificates: an L{ICertificateStore}.
    @param clock: an L{IReactorTime} for TLS write batching.
    @param accessLines: the L{IAccessLog} of the access log, or L{None}
        for twisted.logger.
    """

    def __init__(self, current, certificates, maxBodyBytes, clientTimeout,
                 clock, active=None, accessLines=None):
        self._current = current
        self._accessLines = accessLines
        self._certificates = certificates
        self._active = active
        self._maxBodyBytes = maxBodyBytes
        self._clientTimeout = clientTimeout
        self._clock = clock

    def __call__(self, connect, transport, leftover):
        parts = self._current.parts
        origin = OriginTarget("https", connect.host, connect.port,
                              parts.targetsByHost.get(connect.host),
                              connect.sentHost)
        # The proxy credentials of the CONNECT, if any, name the caller.
        identify = None if connect.user is None else _fixedUser(connect.user)
        site = GatewaySite(
            OriginResource(self._current, origin, "intercept", identify),
            self._maxBodyBytes, active=self._active,
            accessLog=parts.config.gateway.access_log,
            accessLines=self._accessLines, timeout=self._clientTimeout)
        creator = self._certificates.serverConnectionCreator(connect.host)
        tls = tlsFactory(creator, False, site, clock=self._clock)
        protocol = tls.buildProtocol(connect.clientAddress)
        transport.write(_ESTABLISHED)
        protocol.makeConnection(transport)
        if leftover:
            protocol.dataReceived(leftover)
        return protocol


def _fixedUser(user):
    def identify(request):
        return user, True
    return identify
