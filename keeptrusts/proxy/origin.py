# -*- test-case-name: tests.test_proxy_origin -*-
"""
Requests bound for their original destination: inside an intercepted TLS
tunnel (mode C{intercept}) or as absolute-form forward-proxy requests
(mode C{proxy}).  LLM calls go through the same pipeline as C{/v1}
requests; everything else is relayed as it is.
"""

from urllib.parse import urlsplit

import attr
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from keeptrusts.api.errors import GatewayError, validationError, writeError
from keeptrusts.api.paths import (
    isOtherJSON, llmEndpoint, normalizedPath, otherJSON)
from keeptrusts.api.gateway import recordAccess
from keeptrusts.api.pipeline import Call
from keeptrusts.api.relay import relay
from keeptrusts.api.resource import admit, header, parseBody, requestId
from keeptrusts.api.upstream import (
    headersMediaType, isJSON, outgoingHeaders)
from keeptrusts.policy.scrub import scrubbed
from keeptrusts.policy.values import Exchange


@attr.s(frozen=True, slots=True, auto_attribs=True)
class OriginTarget:
    """
    The original destination of a proxied request, in the place of a
    configured target.

    @ivar configured: the L{UsableTarget} whose hosts include this one, if
        any: it names the provider and, unless it is a passthrough target,
        injects its key.
    """

    scheme: str
    host: str
    port: int
    configured: object = None

    @property
    def id(self):
        return self.configured.id if self.configured else self.host

    @property
    def credential(self):
        configured = self.configured
        if configured is None or configured.target.type == "passthrough":
            return None
        if self.scheme != "https" and not self._isBaseURL():
            # A key goes in clear only where the target itself says so:
            # never to http://api.openai.com because its host matched.
            return None
        return configured.credential

    def _isBaseURL(self):
        base = urlsplit(self.configured.target.base_url)
        port = base.port or {"https": 443, "http": 80}.get(base.scheme)
        return (base.scheme, base.hostname, port) == (
            self.scheme, self.host.lower(), self.port)

    @property
    def provider(self):
        return self.configured.target.provider if self.configured else None

    @property
    def pricing(self):
        return self.configured.target.pricing if self.configured else None

    def url(self, path, query=b""):
        """
        @raise UnicodeError: the host is not ASCII, nor a name IDNA can
            encode.
        @raise ValueError: C{path} does not begin with C{/}.
        """
        if not path.startswith(b"/"):
            raise ValueError("a path must begin with /")
        default = {"https": 443, "http": 80}[self.scheme]
        host = self.host.encode("ascii" if self.host.isascii() else "idna")
        if b":" in host and not host.startswith(b"["):
            host = b"[" + host + b"]"
        netloc = host if self.port == default else b"%s:%d" % (host,
                                                               self.port)
        url = self.scheme.encode("ascii") + b"://" + netloc + path
        return url + b"?" + query if query else url


def splitTarget(request):
    """
    @return: C{(path, query)} of an origin-form or absolute-form request.
    @raise GatewayError: a 400 for any other form: a path that does not
        begin with C{/} would extend the origin's host or port
        (C{.evil.example/v1/models}), and take its key there.
    """
    parts = urlsplit(request.uri)
    path = parts.path or b"/"
    if not path.startswith(b"/") or (parts.scheme and not parts.netloc):
        raise validationError("the request target is neither a path nor an "
                              "absolute URL", status=400)
    return path, parts.query


class OriginResource(Resource):
    """
    Serves every request for one origin.

    @param current: the L{Current} parts.
    @param origin: the L{OriginTarget}.
    @param mode: C{intercept} or C{proxy}.
    @param identify: C{request -> (user, passClientAuth)}; by default the
        parts' own.
    """

    isLeaf = True

    def __init__(self, current, origin, mode, identify=None):
        Resource.__init__(self)
        self._current = current
        self._origin = origin
        self._mode = mode
        self._identify = identify

    def render(self, request):
        rid = requestId(request)
        try:
            self._serve(request, rid)
        except GatewayError as error:
            writeError(request, error)
            request.finish()
        return NOT_DONE_YET

    def _serve(self, request, rid):
        parts = self._current.parts
        gateway = parts.gateway
        user, _ = (self._identify or parts.identify)(request)
        path, query = splitTarget(request)
        origin = self._origin
        endpoint = (llmEndpoint(request.method, path)
                    or _providerJSON(request, origin, path))
        exchange = Exchange(
            request_id=rid, mode=self._mode,
            # The surface names the provider (sourcegraph) before the host.
            provider=(endpoint and endpoint.provider) or origin.provider
            or "openai",
            target=origin.id, endpoint=_endpointName(endpoint, path),
            method=request.method.decode("ascii", "replace"),
            host=origin.host, user=user,
            agent=header(request, b"x-keeptrusts-agent-id"))
        # The client's own credentials belong to this destination.
        headers = outgoingHeaders(request.requestHeaders, origin, True)
        if endpoint is None:
            self._relay(gateway, request, exchange, path, query, headers)
            return
        raw = request.content.read()
        body = parseBody(raw)
        endpoint.validate(body)
        exchange = attr.evolve(
            exchange, model=body.get("model") if isinstance(
                body.get("model"), str) else None,
            stream=body.get("stream") is True or endpoint.name.endswith(
                "/stream"))
        if not isOtherJSON(endpoint):
            # Rate limits and budgets count LLM calls, not a provider's
            # other calls read on their way.
            admit(gateway, exchange, request)
        # Routes read the path as the endpoint was read: a variant of one
        # call cannot pick another call's (lighter) chain.
        chain, _ = gateway.routes.select(
            request, normalizedPath(path).decode("utf-8", "replace"),
            origin.host)
        Call(gateway, request, exchange, endpoint, body, raw, chain,
             [(origin, path)], True).start()

    def _relay(self, gateway, request, exchange, path, query, headers):
        body = request.content.read() or None
        d = relay(gateway, request, request.method, self._origin.url(
            path, query), headers, body)
        d.addCallback(lambda outcome: recordAccess(gateway, exchange, outcome))


def _providerJSON(request, origin, path):
    """
    Any other JSON call to a configured provider's host: its prompts are
    read all the same (L{otherJSON}), not relayed unread.
    """
    if (origin.configured is None or request.method != b"POST"
            or origin.provider == "sourcegraph"):
        # Sourcegraph's LLM calls are known by their paths; its others
        # (GraphQL, many a minute from Cody) carry no prompt.
        return None
    if not isJSON(headersMediaType(request.requestHeaders)):
        return None
    # A call's empty body (the SDK's cancels), a JSON list: relayed.
    opening = request.content.read().lstrip()[:1]
    request.content.seek(0)
    if opening != b"{":
        return None
    return otherJSON(_endpointName(None, path))


def _endpointName(endpoint, path):
    if endpoint is not None:
        return endpoint.name
    # Keys out before the cut: cut first, a key's tail would stay.
    return scrubbed(path.decode("utf-8", "replace").lstrip("/"))[:200]
