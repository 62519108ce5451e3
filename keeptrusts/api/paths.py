# -*- test-case-name: tests.test_proxy_origin -*-
"""
Which requests seen through the forward proxy are LLM calls, and in which
provider format: OpenAI-shaped paths on any host, Sourcegraph's Cody API.
"""

import re
from urllib.parse import unquote_to_bytes

import attr

from keeptrusts.api import anthropic, openai, responses, sourcegraph
from keeptrusts.api.endpoint import Endpoint

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


def llmEndpoint(method, path):
    """
    @param path: the request path, without its query.
    @return: the L{Endpoint} of an LLM call, or L{None} for other traffic.
    """
    if method != b"POST":
        return None
    path = normalizedPath(path)
    endpoint = _EXACT.get(path)
    if endpoint is not None:
        return endpoint
    if _ENGINES.match(path):
        return openai.ENGINE_COMPLETIONS
    deployment = _DEPLOYMENTS.match(path)
    if deployment:
        return _AZURE[deployment.group(1).decode("ascii")]
    return None


def otherJSON(name):
    """
    An L{Endpoint} for a JSON call no surface knows (a provider's batches,
    assistants' threads, legacy completions): every string of its body is
    read all the same (L{requestTextSlots} walks them all), and its answer
    goes back as it is.
    """
    return Endpoint(name=name, validate=_anything, requestSlots=_noSlots)


def isOtherJSON(endpoint):
    """
    Whether C{endpoint} is one L{otherJSON} made.
    """
    return endpoint.requestSlots is _noSlots


def _anything(body):
    pass


def _noSlots(body):
    return ()


def _modelInThePath(validate):
    # Azure names the model by the deployment in the path, not the body.
    return lambda body: validate(body if "model" in body
                                 else dict(body, model="deployment"))


_AZURE = {name: attr.evolve(endpoint, validate=_modelInThePath(
              endpoint.validate))
          for name, endpoint in openai.ENDPOINTS.items()}


def normalizedPath(path):
    """
    The path as the most lenient server may read it: what one router reads
    as the call itself (C{/v1//chat/completions/}, C{chat%2Fcompletions},
    C{/v1/x/../chat/completions}, C{completions;v=1}, C{/V1/Chat/...}),
    the gateway must too, or the call would pass without its policies.
    Percent-decoded, backslashes taken for slashes, C{;} parameters
    dropped, dot segments resolved (RFC 3986 section 5.2.4), empty segments
    dropped, lower case.
    """
    text = unquote_to_bytes(path).replace(b"\\", b"/").lower()
    segments = []
    for segment in text.split(b"/"):
        segment = segment.split(b";", 1)[0]
        if segment == b"..":
            segments[-1:] = []
        elif segment not in (b"", b"."):
            segments.append(segment)
    return b"/" + b"/".join(segments)
