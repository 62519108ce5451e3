# -*- test-case-name: tests.test_proxy_origin -*-
"""
Requests bound for their original destination: inside an intercepted TLS
tunnel (mode C{intercept}) or as absolute-form forward-proxy requests
(mode C{proxy}).  LLM calls go through the same pipeline as C{/v1}
requests, and so does any other JSON body (every string of it read), and
any other body that carries text: a form, a multipart upload, text
(L{keeptrusts.proxy.forms}).  Everything else (no body, a file's bytes) is
relayed as it is, once its query string and headers are read if it goes
to an LLM host.
"""

from typing import Optional
from urllib.parse import urlsplit

import attr
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from keeptrusts.api.carried import carriedCredentials
from keeptrusts.api.errors import GatewayError, validationError, writeError
from keeptrusts.api.paths import (
    isOtherJSON, llmEndpoint, normalizedPath, otherJSON)
from keeptrusts.api.gateway import journalFailed, recordAccess
from keeptrusts.api.pipeline import Call
from keeptrusts.api.relay import relay
from keeptrusts.api.resource import admit, header, parseBody, requestId
from keeptrusts.api.upstream import headersEncoded, outgoingHeaders
from keeptrusts.events import eventRecord, policyEntries
from keeptrusts.policy.scrub import scrubbedPath
from keeptrusts.policy.values import BLOCK, Exchange
from keeptrusts.proxy.formcall import FormCall
from keeptrusts.proxy.forms import readForm
from keeptrusts.proxy.jsonbody import readJSONBody


@attr.s(frozen=True, slots=True, auto_attribs=True)
class OriginTarget:
    """
    The original destination of a proxied request, in the place of a
    configured target.

    @ivar host: the host, lower case.
    @ivar configured: the L{UsableTarget} whose hosts include this one, if
        any: it names the provider and, unless it is a passthrough target,
        injects its key.
    @ivar sentHost: the host as the client wrote it, when its case differs:
        what records show (scrubbed), so that a key in it is found in its
        own case.
    """

    scheme: str
    host: str
    port: int
    configured: object = None
    sentHost: Optional[str] = None

    @property
    def shownHost(self):
        """
        The host as records show it (before they scrub it).
        """
        return self.sentHost or self.host

    @property
    def id(self):
        return self.configured.id if self.configured else self.shownHost

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
        An origin-form target is a path, whatever follows its first C{/}:
        C{//v1/chat/completions} is that path, not a host C{v1} and the
        path C{/chat/completions}.
    @raise GatewayError: a 400 for any other form: a path that does not
        begin with C{/} would extend the origin's host or port
        (C{.evil.example/v1/models}), and take its key there.
    """
    uri = request.uri
    if uri.startswith(b"/"):
        path, _, query = uri.partition(b"?")
        # A fragment is no part of a request target; urlsplit dropped it.
        return path.partition(b"#")[0], query.partition(b"#")[0]
    parts = urlsplit(uri)
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
        endpoint = llmEndpoint(request.method, path)
        exchange = Exchange(
            request_id=rid, mode=self._mode,
            # The surface names the provider (sourcegraph) before the host.
            provider=(endpoint and endpoint.provider) or origin.provider
            or "openai",
            target=origin.id, endpoint=_endpointName(endpoint, path),
            method=request.method.decode("ascii", "replace"),
            host=origin.shownHost, user=user,
            agent=header(request, b"x-keeptrusts-agent-id"))
        raw = request.content.read()
        if raw and headersEncoded(request.requestHeaders):
            # Any body may be JSON the policies must read (readJSONBody);
            # one the gateway cannot read does not go on unread.
            error = GatewayError(
                415, "validation_error", "the request body has a "
                "Content-Encoding, which the gateway cannot read: send it "
                "without one", code="unsupported_content_encoding")
            recordAccess(gateway, exchange, error)
            raise error
        form = None
        if endpoint is not None:
            body = parseBody(raw)
        else:
            body = readJSONBody(raw)
            if body is None and raw:
                # A form, a multipart body (a file upload, a transcription's
                # prompt), text: read as well, written back as it came.
                form = _readForm(gateway, exchange, request, raw)
                body = None if form is None else form.body
            if body is not None:
                # Any other JSON call, on any host (a provider's batches,
                # Sourcegraph's GraphQL, which carries Cody's chat text to
                # its context search, an OpenAI-shaped path of a host no
                # target names): every string of it is read all the same.
                endpoint = otherJSON(exchange.endpoint)
        # The client's own credentials belong to this destination.
        headers = outgoingHeaders(request.requestHeaders, origin, True)
        if endpoint is None:
            if origin.configured is not None or self._mode == "intercept":
                # Nothing to read in its body (none, a file as it is); its
                # query string and headers go to an LLM host all the same.
                self._checkCarried(gateway, request, exchange, path)
            self._relay(gateway, request, exchange, path, query, headers,
                        raw or None)
            return
        endpoint.validate(body)
        model = body.get("model")
        exchange = attr.evolve(
            exchange, model=model if isinstance(model, str) else None,
            stream=body.get("stream") is True or endpoint.name.endswith(
                "/stream"))
        if not isOtherJSON(endpoint):
            # Rate limits and budgets count LLM calls, not a provider's
            # other calls read on their way.
            admit(gateway, exchange, request)
        else:
            # The call goes out with its own method (PUT, PATCH).
            endpoint = attr.evolve(endpoint, method=request.method)
        args = (gateway, request, exchange, endpoint, body, raw,
                self._chain(gateway, request, path), [(origin, path)], True)
        (Call(*args) if form is None else FormCall(form, *args)).start()

    def _chain(self, gateway, request, path):
        # Routes read the path as the endpoint was read: a variant of one
        # call cannot pick another call's (lighter) chain.
        chain, _ = gateway.routes.select(
            request, normalizedPath(path).decode("utf-8", "replace"),
            self._origin.host)
        return chain

    def _checkCarried(self, gateway, request, exchange, path):
        """
        Refuse (409, journaled) a relayed call to an LLM host that carries
        a credential in its query string or in a header the destination is
        sent, as a call that is read is (L{carriedCredentials}).
        """
        result = carriedCredentials(self._chain(gateway, request, path),
                                    request, [(self._origin, path)], True)
        if result is None:
            return
        request.ktVerdict = BLOCK
        error = GatewayError(409, "policy_violation", result.message,
                             code="input_blocked", policy=result.policy)
        # Recorded as the pipeline records a request it blocks.
        gateway.journal.append(eventRecord(
            "input", BLOCK, exchange, gateway.configName,
            policyEntries(result.outcomes))).addErrback(journalFailed)
        raise error

    def _relay(self, gateway, request, exchange, path, query, headers, body):
        d = relay(gateway, request, request.method, self._origin.url(
            path, query), headers, body)
        d.addCallback(lambda outcome: recordAccess(gateway, exchange, outcome))


def _readForm(gateway, exchange, request, raw):
    """
    C{raw}, a body that is no JSON, read (L{readForm}), or L{None}; a body
    with an encoding the gateway does not read is refused, as a body with
    a C{Content-Encoding} is.
    """
    try:
        return readForm(request.requestHeaders.getRawHeaders(
            b"content-type"), raw)
    except GatewayError as error:
        if error.status == 415:
            recordAccess(gateway, exchange, error)
        raise


def _endpointName(endpoint, path):
    if endpoint is not None:
        return endpoint.name
    # Keys out before the cut: cut first, a key's tail would stay.  What
    # percent-encoding hides is found too (scrubbedPath).
    return scrubbedPath(path.decode("utf-8", "replace")).lstrip("/")[:200]
