# -*- test-case-name: tests.test_proxy_origin -*-
"""
Plain HTTP forward proxying: absolute-form requests (C{GET http://host/x})
on the shared listener.
"""

from urllib.parse import urlsplit

from keeptrusts.api.errors import ErrorResource, GatewayError
from keeptrusts.api.resource import requestId
from keeptrusts.proxy.origin import OriginResource, OriginTarget


class _Refusal(ErrorResource):
    """
    One gateway error, with the request's id.
    """

    def render(self, request):
        requestId(request)
        return ErrorResource.render(self, request)


class ForwardProxy:
    """
    Picks the resource of an absolute-form request.

    @param current: the L{Current} parts (their C{targetsByHost} name the
        provider and key of a known LLM host).
    @param identify: C{request -> (user, passClientAuth)} for proxy
        requests (C{Proxy-Authorization} off loopback); by default the
        parts' own.
    """

    def __init__(self, current, identify=None):
        self._current = current
        self._identify = identify

    def resourceFor(self, request):
        origin = None
        try:
            parts = urlsplit(request.uri)
            if (parts.scheme == b"http" and parts.hostname
                    and parts.port != 0):
                host = parts.hostname.decode("idna")
                origin = OriginTarget(
                    "http", host, 80 if parts.port is None else parts.port,
                    self._current.parts.targetsByHost.get(host),
                    _sentHost(parts.netloc, host))
                origin.url(b"/")  # the host is one IDNA can encode
        except (ValueError, UnicodeError):
            origin = None
        if origin is None:
            return _Refusal(GatewayError(
                400, "validation_error",
                "a forward-proxy request needs an http:// URL with a valid "
                "host and port (https goes through CONNECT)"))
        return OriginResource(self._current, origin, "proxy", self._identify)


def _sentHost(netloc, host):
    """
    The host of C{netloc} as the client wrote it, when only its case
    differs from C{host} (lower case): what records show, so that a key in
    it is found in its own case.
    """
    sent = netloc.rpartition(b"@")[2]
    if not sent.startswith(b"["):
        sent = sent.partition(b":")[0]
    sent = sent.decode("latin-1")
    return sent if sent != host and sent.lower() == host else None
