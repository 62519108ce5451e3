# -*- test-case-name: tests.test_identity -*-
"""
Who is calling: an access key when the gateway has them, else the
C{X-User-ID} header, else C{gateway.default_user}.  Proxy traffic (CONNECT
and absolute-form requests) presents its key as the password of
C{Proxy-Authorization: Basic}.
"""

import binascii
import hashlib
import hmac

from twisted.logger import Logger

from keeptrusts.api.errors import GatewayError
from keeptrusts.policy.scrub import scrubbed

log = Logger()


def _presentedKey(request):
    headers = request.requestHeaders
    auth = headers.getRawHeaders(b"authorization")
    if auth and auth[-1][:7].lower() == b"bearer ":
        return auth[-1][7:].strip()
    for name in (b"x-api-key", b"x-keeptrusts-key"):
        value = headers.getRawHeaders(name)
        if value:
            return value[-1].strip()
    return None


PROXY_AUTHENTICATE = (b"Proxy-Authenticate", b'Basic realm="keeptrusts"')


def proxyAuthenticationError(message):
    """
    The 407 that asks a proxy client for its access key.
    """
    return GatewayError(407, "authentication_error", message,
                        headers=(PROXY_AUTHENTICATE,))


def _basicPassword(value):
    """
    The password of a C{Basic} credential, or L{None} when C{value} is not
    one.  The user name is not used: the key alone says who is calling.
    """
    scheme, _, encoded = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = binascii.a2b_base64(encoded.strip())
    except binascii.Error:
        return None
    _, colon, password = decoded.partition(b":")
    return password if colon and password else None


class Identify:
    """
    C{request -> (user, passClientAuth)}: with access keys, the client's
    credentials are the gateway's key and never go to a provider.

    @param accessKeys: L{AccessKey} values from the configuration.
    @param environ: where C{key_env} names are looked up.
    """

    def __init__(self, accessKeys, environ, defaultUser):
        self._defaultUser = defaultUser
        self._digests = []
        for key in accessKeys:
            digest = key.key_sha256
            if key.key_env is not None:
                secret = environ.get(key.key_env)
                if not secret:
                    # Scrubbed: a key pasted where its variable's name goes
                    # was logged whole at every start (found by review).
                    log.warn("access key {id}: ${env} is not set; key unusable",
                             id=scrubbed(key.id), env=scrubbed(key.key_env))
                    continue
                digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
            self._digests.append((bytes.fromhex(digest), key.user))
        self.required = bool(accessKeys)

    def __call__(self, request):
        if not self.required:
            user = request.requestHeaders.getRawHeaders(b"x-user-id")
            return (user[-1].decode("utf-8", "replace") if user
                    else self._defaultUser), True
        presented = _presentedKey(request)
        user = self._userOf(presented) if presented else None
        if user is not None:
            return user, False
        raise GatewayError(401, "authentication_error",
                           "a valid gateway access key is required")

    def _userOf(self, presented):
        digest = hashlib.sha256(presented).digest()
        for known, user in self._digests:
            if hmac.compare_digest(digest, known):
                return user
        return None

    def fromProxyAuthorization(self, value, required=True):
        """
        Who sent a proxy request: the user of the access key given as the
        password of C{Proxy-Authorization: Basic base64(name:key)}; the name
        is ignored.

        @param value: the raw header value (L{bytes}), or L{None}.
        @param required: whether a key must be presented: C{True} on a
            listener that is not on loopback.  When it is not required, a
            missing header means C{default_user}, and a header is ignored
            if the gateway has no access keys at all.
        @raise GatewayError: 407 with C{Proxy-Authenticate} when a required
            key is missing, or when a presented one is wrong.
        """
        if isinstance(value, str):
            value = value.encode("latin-1", "replace")
        if not (required or self.required):
            return self._defaultUser  # an open proxy with no keys to check
        if not value:
            if required:
                raise proxyAuthenticationError(
                    "Proxy-Authorization with a gateway access key is required")
            return self._defaultUser
        presented = _basicPassword(value)
        user = self._userOf(presented) if presented else None
        if user is None:
            raise proxyAuthenticationError(
                "a valid gateway access key is required in Proxy-Authorization")
        return user

    def forProxy(self, required):
        """
        C{request -> (user, passClientAuth)} for absolute-form proxy
        requests, like L{__call__} for C{/v1}: the key travels in
        C{Proxy-Authorization}, so the client's own C{Authorization} is
        its business with the origin and passes.

        @param required: see L{fromProxyAuthorization}.
        """
        def identify(request):
            value = request.requestHeaders.getRawHeaders(b"proxy-authorization")
            return self.fromProxyAuthorization(value[-1] if value else None,
                                               required), True
        return identify
