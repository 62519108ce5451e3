# -*- test-case-name: tests.test_service -*-
"""
The operations endpoints of the shared listener: C{/healthz} (alive),
C{/readyz} (serving), C{/health} (JSON status), C{/metrics} (Prometheus),
C{/keeptrusts/config} (the configuration in force, secrets masked) and
C{POST /keeptrusts/config/reload}.
"""

import ipaddress
import json
from types import MappingProxyType

import attr
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

import keeptrusts
from keeptrusts.api.errors import GatewayError, writeError


def _json(request, status, body):
    data = json.dumps(body, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return _body(request, data)


def _body(request, data):
    """
    C{data}, or nothing for a C{HEAD} (its length told all the same): a
    resource returning a body for a HEAD makes twisted.web log a warning
    quoting the request's URI, query string and all.
    """
    if request.method == b"HEAD":
        request.setHeader(b"content-length", b"%d" % (len(data),))
        return b""
    return data


def jsonable(value):
    """
    A configuration value as plain JSON data; key digests masked.
    """
    if attr.has(type(value)):
        return {a.name: ("***" if a.name == "key_sha256" and getattr(
            value, a.name) else jsonable(getattr(value, a.name)))
            for a in attr.fields(type(value))}
    if isinstance(value, (dict, MappingProxyType)):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [jsonable(v) for v in value]
    return value


def _isLoopback(request):
    host = getattr(request.getClientAddress(), "host", None)
    try:
        return ipaddress.ip_address(host).is_loopback
    except (TypeError, ValueError):
        return False


class _Leaf(Resource):
    isLeaf = True

    def __init__(self, service):
        Resource.__init__(self)
        self.service = service


class Healthz(_Leaf):
    def render_GET(self, request):
        return _json(request, 200, {"status": "ok"})


class Readyz(_Leaf):
    def render_GET(self, request):
        ready = self.service.ready
        return _json(request, 200 if ready else 503,
                     {"status": "ready" if ready else "starting"})


class Health(_Leaf):
    def render_GET(self, request):
        return _json(request, 200, self.service.health())


class Metrics(_Leaf):
    def render_GET(self, request):
        body, contentType = self.service.metrics.render()
        request.setHeader(b"content-type", contentType)
        return _body(request, body)


class ConfigResource(_Leaf):
    """
    C{GET /keeptrusts/config} and C{POST /keeptrusts/config/reload}:
    loopback callers, or callers with an access key when the gateway has
    them.
    """

    def render(self, request):
        parts = self.service.current.parts
        try:
            if parts.identify.required:
                parts.identify(request)
            elif not _isLoopback(request):
                raise GatewayError(403, "authentication_error",
                                   "configuration endpoints answer loopback "
                                   "callers only")
        except GatewayError as error:
            writeError(request, error)
            request.finish()
            return NOT_DONE_YET
        if request.postpath in ([b"config"], [b"config", b""]) and \
                request.method == b"GET":
            return _json(request, 200, {"name": parts.config.name,
                                        "config": jsonable(parts.config)})
        if request.postpath == [b"config", b"reload"] and \
                request.method == b"POST":
            problems = self.service.reload()
            if problems:
                return _json(request, 422, {"error": {
                    "type": "validation_error", "code": "config_invalid",
                    "message": problems, "policy": None}})
            return _json(request, 200, {"status": "reloaded",
                                        "config": self.service.current.parts
                                        .config.name})
        writeError(request, GatewayError(404, "not_found", "no such endpoint"))
        request.finish()
        return NOT_DONE_YET


def adminRoot(service):
    """
    @param service: has C{ready}, C{health()}, C{metrics}, C{current} and
        C{reload()} (returning the problems of a refused configuration).
    """
    root = Resource()
    root.putChild(b"healthz", Healthz(service))
    root.putChild(b"readyz", Readyz(service))
    root.putChild(b"health", Health(service))
    root.putChild(b"metrics", Metrics(service))
    root.putChild(b"keeptrusts", ConfigResource(service))
    return root


def healthReport(service, now):
    parts = service.current.parts
    breaker = parts.gateway.router.breaker
    usable = {t.id for t in parts.targets}
    return {
        "status": "ok" if service.ready else "starting",
        "version": keeptrusts.__version__,
        "uptime_s": round(now - service.startedAt, 3)
        if service.startedAt is not None else 0.0,
        "config": parts.config.name,
        "targets": [{"id": t.id, "provider": t.provider,
                     "available": t.id in usable,
                     "circuit": "open" if breaker.isOpen(t.id) else "closed"}
                    for t in parts.config.providers.targets],
    }
