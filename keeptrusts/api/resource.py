# -*- test-case-name: tests.test_api -*-
"""
The C{/v1} resource: OpenAI-format requests in, L{Call}s out.
"""

import json
import os

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from keeptrusts.api.endpoint import Endpoint
from keeptrusts.api.errors import GatewayError, validationError, writeError
from keeptrusts.api import anthropic, openai, responses
from keeptrusts.api.gateway import recordRefusal
from keeptrusts.api.pipeline import Call
from keeptrusts.api.strictjson import (
    DuplicateKey, hasLoneSurrogate, loadsStrict)
from keeptrusts.api.translate import upstreamPath
from keeptrusts.policy.scrub import MadeHere
from keeptrusts.policy.values import Exchange

ENDPOINTS = dict(openai.ENDPOINTS, messages=anthropic.MESSAGES,
                 responses=responses.RESPONSES)
ENDPOINTS["messages/count_tokens"] = anthropic.COUNT_TOKENS


def header(request, name):
    """
    A request header as text, or L{None}.
    """
    value = request.requestHeaders.getRawHeaders(name)
    return value[-1].decode("utf-8", "replace") if value else None


def requestId(request):
    """
    Echo the client's C{x-request-id}, or make one.
    """
    given = header(request, b"x-request-id")
    rid = given if given and len(given) <= 200 else MadeHere(
        "req_" + os.urandom(16).hex())
    request.setHeader(b"x-request-id", rid.encode("utf-8"))
    return rid


class V1Resource(Resource):
    """
    C{/v1/chat/completions}, C{/v1/completions}, C{/v1/embeddings},
    C{/v1/messages} (Anthropic), C{/v1/responses}, C{/v1/models}.

    @param current: the L{Current} parts: each request uses the parts in
        force when it arrives.
    """

    isLeaf = True

    def __init__(self, current):
        Resource.__init__(self)
        self._current = current

    def render(self, request):
        rid = requestId(request)
        try:
            return self._dispatch(request, rid)
        except GatewayError as error:
            writeError(request, error)
            request.finish()
            return NOT_DONE_YET

    def _dispatch(self, request, rid):
        parts = self._current.parts
        path = b"/".join(request.postpath).decode("utf-8", "replace")
        user, passClientAuth = parts.identify(request)
        if path == "models":
            if request.method != b"GET":
                raise _notAllowed()
            return self._models(parts, request, rid, user, passClientAuth)
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            raise GatewayError(404, "not_found",
                               "no such endpoint: /v1/%s" % (path,))
        if request.method != b"POST":
            raise _notAllowed()
        raw = request.content.read()
        body = parseBody(raw)
        endpoint.validate(body)
        gateway = parts.gateway
        host = header(request, b"host") or ""
        chain, routeTarget = _route(gateway, request, path, host)
        targets = gateway.router.candidates(body["model"], endpoint,
                                            only=routeTarget)
        exchange = Exchange(
            request_id=rid, mode="api", provider=targets[0].provider,
            target=targets[0].id, endpoint=endpoint.name,
            method=request.method.decode("ascii"),
            host=host, user=user,
            agent=header(request, b"x-keeptrusts-agent-id"),
            model=body["model"], stream=body.get("stream") is True)
        admit(gateway, exchange, request)
        attempts = [(t, upstreamPath(endpoint, t)) for t in targets]
        Call(gateway, request, exchange, endpoint, body, raw, chain, attempts,
             passClientAuth).start()
        return NOT_DONE_YET

    def _models(self, parts, request, rid, user, passClientAuth):
        listed = [(model, t.target.provider) for t in parts.targets
                  for model in t.target.models]
        if listed or not parts.targets:
            seen = set()
            data = []
            for model, owner in listed:
                if model not in seen:
                    seen.add(model)
                    data.append({"id": model, "object": "model",
                                 "created": 0, "owned_by": owner})
            body = json.dumps({"object": "list", "data": data}).encode()
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"content-length", b"%d" % (len(body),))
            return body
        return self._forwardModels(parts, request, rid, user, passClientAuth)

    def _forwardModels(self, parts, request, rid, user, passClientAuth):
        """
        No target lists its models: ask the first provider for its own, a
        call like any other (journaled, its answer read by the chain).
        """
        target = parts.targets[0]
        if target.target.provider == "anthropic":
            path = anthropic.MESSAGES.pathFor(target.target.base_url)
            path = path[:-len(b"messages")] + b"models"
        else:
            path = b"/models"
        gateway = parts.gateway
        host = header(request, b"host") or ""
        chain, _ = _route(gateway, request, "models", host)
        exchange = Exchange(
            request_id=rid, mode="api", provider=target.provider,
            target=target.id, endpoint=MODELS.name, method="GET", host=host,
            user=user, agent=header(request, b"x-keeptrusts-agent-id"))
        Call(gateway, request, exchange, MODELS, {}, b"", chain,
             [(target, path)], passClientAuth).start()
        return NOT_DONE_YET


# A provider's own model list (GET): no prompt, an answer read whole.
MODELS = Endpoint("models", validate=lambda body: None,
                  requestSlots=lambda body: (),
                  answerSlots=lambda answer: (), method=b"GET")


def _route(gateway, request, path, host):
    """
    The chain and the route's target, if any, of a call to C{/v1/<path>}.
    """
    return gateway.routes.select(
        request, "/v1/" + path, host.rsplit(":", 1)[0] if not
        host.endswith("]") else host)


def admit(gateway, exchange, request):
    """
    Count the request against the rate limits and budgets, or refuse it
    (and journal the refusal).
    """
    if gateway.limits is None:
        return
    try:
        gateway.limits.admit(exchange.user, exchange.agent, request)
    except GatewayError as error:
        recordRefusal(gateway, exchange, error)
        raise


def _notAllowed():
    return GatewayError(405, "validation_error", "method not allowed")


def parseBody(raw):
    """
    The request's JSON object, read as strictly as the provider may read
    it: a body that two parsers could read differently (a key given twice,
    a lone surrogate) is refused, since the policies would read one text
    and the provider another.
    """
    try:
        body = loadsStrict(raw)
    except DuplicateKey as e:
        raise validationError("the request body gives the key %s twice"
                              % (json.dumps(e.key)[:64],))
    except RecursionError:
        raise validationError("the request body is nested too deeply")
    except ValueError as e:
        raise validationError("the request body is not valid JSON: line %d "
                              "column %d" % (e.lineno, e.colno)
                              if hasattr(e, "lineno") else
                              "the request body is not valid JSON")
    if not isinstance(body, dict):
        raise validationError("the request body must be a JSON object")
    if hasLoneSurrogate(raw, body):
        raise validationError("the request body has a lone UTF-16 surrogate "
                              "(\\ud800-\\udfff), which is not text")
    return body




