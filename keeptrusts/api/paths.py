# -*- test-case-name: tests.test_proxy_origin -*-
"""
Which requests seen through the forward proxy are LLM calls, and in which
provider format: OpenAI-shaped paths on any host, Sourcegraph's Cody API.
"""

import re
from urllib.parse import unquote_to_bytes

import attr

from keeptrusts.api import anthropic, openai, responses, sourcegraph

_EXACT = {
    b"/v1/chat/completions": openai.ENDPOINTS["chat/completions"],
    b"/chat/completions": openai.ENDPOINTS["chat/completions"],
    b"/v1/completions": openai.ENDPOINTS["completions"],
    b"/completions": openai.ENDPOINTS["completions"],
    b"/v1/embeddings": openai.ENDPOINTS["embeddings"],
    b"/embeddings": openai.ENDPOINTS["embeddings"],
    b"/v1/messages": anthropic.MESSAGES,
    b"/v1/messages/count_tokens": anthropic.COUNT_TOKENS,
    b"/openai/v1/chat/completions": openai.ENDPOINTS["chat/completions"],
    b"/openai/v1/responses": responses.RESPONSES,
    # Sourcegraph's OpenAI-compatible API.
    b"/.api/llm/chat/completions": openai.ENDPOINTS["chat/completions"],
    b"/v1/responses": responses.RESPONSES,
    b"/responses": responses.RESPONSES,
    b"/.api/completions/stream": sourcegraph.ENDPOINTS["completions/stream"],
    b"/.api/completions/code": sourcegraph.ENDPOINTS["completions/code"],
}

_ENGINES = re.compile(rb"^/(?:v1/)?engines/[^/]+/completions$")
# Azure OpenAI: /openai/deployments/<deployment>/chat/completions etc.
_DEPLOYMENTS = re.compile(
    rb"^/openai/deployments/[^/]+/(chat/completions|completions|embeddings)$")
_SLASHES = re.compile(rb"/{2,}")


def llmEndpoint(method, path):
    """
    @param path: the request path, without its query.
    @return: the L{Endpoint} of an LLM call, or L{None} for other traffic.
    """
    if method != b"POST":
        return None
    path = _normalized(path)
    endpoint = _EXACT.get(path)
    if endpoint is not None:
        return endpoint
    if _ENGINES.match(path):
        return openai.ENGINE_COMPLETIONS
    deployment = _DEPLOYMENTS.match(path)
    if deployment:
        return _AZURE[deployment.group(1).decode("ascii")]
    return None


def _modelInThePath(validate):
    # Azure names the model by the deployment in the path, not the body.
    return lambda body: validate(body if "model" in body
                                 else dict(body, model="deployment"))


_AZURE = {name: attr.evolve(endpoint, validate=_modelInThePath(
              endpoint.validate))
          for name, endpoint in openai.ENDPOINTS.items()}


def _normalized(path):
    # A server may well read /v1//chat/completions/ or chat%2Fcompletions
    # as the call itself: so must the gateway, or policies are skipped.
    path = _SLASHES.sub(b"/", unquote_to_bytes(path))
    return path[:-1] if len(path) > 1 and path.endswith(b"/") else path
