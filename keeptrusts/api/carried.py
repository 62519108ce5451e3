# -*- test-case-name: tests.test_api -*-
"""
Credentials where the gateway does not rewrite: the names of a request or
an answer (object keys, the model, ids), the query string, the headers
the provider is sent.  A name or a parameter cannot be redacted without
making another call, so a call carrying a credential there is blocked.
"""

from urllib.parse import unquote, unquote_plus

from keeptrusts.api.upstream import (
    CLIENT_CREDENTIALS, DROPPED_HEADERS, withheldHeaders)
from keeptrusts.policy.chain import ChainResult, PolicyOutcome
from keeptrusts.policy.dlp import KIND as CREDENTIALS
from keeptrusts.policy.scrub import credentialTypes, scrubbedName
from keeptrusts.policy.values import BLOCK, countFindings


def namedCredentials(chain, names, what):
    """
    A credential of the catalogue among a request's or an answer's C{names}
    (an object key, the model, a tool's or a message's name, an id), when
    the chain has the credential policy: a name cannot be rewritten without
    making another call (or breaking the client's), so the request or the
    answer is blocked (a L{ChainResult}); else L{None}.

    @param names: a request's, one per line; or an answer's, each on its
        own (most repeat from answer to answer: the scrubber keeps their
        outcomes).
    @param what: C{"request"} or C{"answer"}.
    """
    if CREDENTIALS not in chain.names:
        return None
    types = credentialTypes(names) if isinstance(names, str) else [
        found for name in names for found in credentialTypes(name)]
    return _blocked(
        types, "a name of the %s (an object key, an id, the model, a file "
        "name) or a reading of a file it carries that cannot be rewritten "
        "(its bytes decoded otherwise)" % (what,))


# Headers not read: those the provider is not sent (outgoingHeaders), and
# the client's credentials, which go on only as its own for the destination.
_UNREAD_HEADERS = DROPPED_HEADERS | CLIENT_CREDENTIALS


def carriedCredentials(chain, request, attempts, passClientAuth):
    """
    A credential of the catalogue in the request's method or a header's
    name (in any casing: tokens the client chooses, which go on with the
    call), its path (percent-encoded or not), its query string or a header
    the provider is sent (but the credentials meant for it), when the
    chain has the credential policy: the gateway does not rewrite them, so
    the request is blocked (a L{ChainResult}); else L{None}.

    @param attempts: the C{(target, path)} pairs the call may go to.

    @param passClientAuth: whether the client's own credentials go on: then
        a C{key} parameter (Google's API key) is one, and is not read.
    """
    if CREDENTIALS not in chain.names:
        return None
    types = _caselessTypes(request.method.decode("ascii", "replace"))
    # The path a proxied call goes on with (a /v1 call's is the gateway's
    # own), percent-encoded or not.
    target = request.uri.partition(b"?")[0].decode("utf-8", "surrogateescape")
    types.extend(credentialTypes(target) or credentialTypes(
        unquote(target, errors="surrogateescape")))
    query = queryOf(request)
    for parameter in query.decode("utf-8", "surrogateescape").split(
            "&") if query else ():
        plain = unquote_plus(parameter, errors="surrogateescape")
        if passClientAuth and plain.partition("=")[0].lower() == "key":
            continue
        types.extend(credentialTypes(plain) or (
            credentialTypes(parameter) if plain != parameter else ()))
    # A header one attempt's target is not sent may go to the next one's
    # (a fallback): only what none of them is sent goes unread.
    skipped = _UNREAD_HEADERS | frozenset.intersection(*(
        withheldHeaders(target) for target, _ in attempts))
    for name, values in request.requestHeaders.getAllRawHeaders():
        # A name goes on too, in a casing of Twisted's choosing.
        types.extend(_caselessTypes(name.decode("ascii", "replace")))
        if name.lower() not in skipped:
            for value in values:
                types.extend(credentialTypes(
                    value.decode("utf-8", "surrogateescape")))
    return _blocked(types, "the method, the path, the query string or a "
                             "header of the request")


def _caselessTypes(text):
    """
    The types found in C{text} in any of its casings (once): a method or a
    header name, which the client or Twisted may have cased anew.
    """
    if scrubbedName(text) == text:
        return []  # (the usual answer, kept: names repeat)
    for variant in dict.fromkeys((text, text.lower(), text.upper())):
        found = credentialTypes(variant)
        if found:
            return list(found)
    return []


def _blocked(types, where):
    if not types:
        return None
    return ChainResult(
        BLOCK, (), (PolicyOutcome(CREDENTIALS, BLOCK, 0.0,
                                  countFindings(types)),),
        policy=CREDENTIALS, message="Blocked by %s: a credential in %s, "
        "which the gateway does not rewrite" % (CREDENTIALS, where))


def queryOf(request):
    """
    The query string of C{request}'s target (bytes), without its C{?}.
    """
    _, _, query = request.uri.partition(b"?")
    return query
