# -*- test-case-name: tests.test_proxy_origin -*-
"""
A request that no policy reads, relayed as it is: the provider's model
list, non-LLM paths of an intercepted host, plain forward-proxy traffic.
"""

from twisted.internet import defer

from keeptrusts.api.errors import GatewayError, writeError
from keeptrusts.api.stream import Outcome, Passthrough, ResponseBridge
from keeptrusts.api.upstream import copyResponseHeaders


def relay(gateway, request, method, url, headers, body=None):
    """
    Send C{request} upstream and stream the answer back unchanged; the
    gateway's own errors use the envelope.

    @return: a Deferred firing with the status of the answer passed on,
        the L{GatewayError} the gateway answered itself (the provider could
        not be reached, or the destination is refused), or L{None} when the
        client left first.
    """
    bridges = []
    d = gateway.upstream.request(method, url, headers, body)

    def answered(response):
        request.setResponseCode(response.code, response.phrase)
        copyResponseHeaders(response.headers, request.responseHeaders,
                            keepLength=True)
        bridge = ResponseBridge(request, Passthrough(Outcome()),
                                gateway.clock, gateway.idleTimeout)
        bridges.append(bridge)
        bridge.start(response)

        def delivered(outcome):
            if outcome.ending == "client_gone":
                return None
            request.finish()
            return response.code
        return bridge.finished.addCallback(delivered)

    def failed(reason):
        if reason.check(defer.CancelledError):
            return None
        reason.trap(GatewayError)
        writeError(request, reason.value)
        request.finish()
        return reason.value

    def clientGone(reason):
        if bridges:
            bridges[0].clientGone()
        else:
            d.cancel()

    request.notifyFinish().addErrback(clientGone)
    return d.addCallbacks(answered, failed)
