# -*- test-case-name: tests.test_proxy_origin -*-
"""
Which requests seen through the forward proxy are LLM calls, and in which
provider format: OpenAI-shaped paths on any host, Sourcegraph's Cody API.
"""

import re

from keeptrusts.api import anthropic, openai, responses, sourcegraph

_EXACT = {
    b"/v1/chat/completions": openai.ENDPOINTS["chat/completions"],
    b"/chat/completions": openai.ENDPOINTS["chat/completions"],
    b"/v1/completions": openai.ENDPOINTS["completions"],
    b"/completions": openai.ENDPOINTS["completions"],
    b"/v1/embeddings": openai.ENDPOINTS["embeddings"],
    b"/embeddings": openai.ENDPOINTS["embeddings"],
    b"/v1/messages": anthropic.MESSAGES,
    b"/v1/responses": responses.RESPONSES,
    b"/responses": responses.RESPONSES,
    b"/.api/completions/stream": sourcegraph.ENDPOINTS["completions/stream"],
    b"/.api/completions/code": sourcegraph.ENDPOINTS["completions/code"],
}

_ENGINES = re.compile(rb"^/(?:v1/)?engines/[^/]+/completions$")


def llmEndpoint(method, path):
    """
    @param path: the request path, without its query.
    @return: the L{Endpoint} of an LLM call, or L{None} for other traffic.
    """
    if method != b"POST":
        return None
    endpoint = _EXACT.get(path)
    if endpoint is None and _ENGINES.match(path):
        endpoint = openai.ENGINE_COMPLETIONS
    return endpoint
