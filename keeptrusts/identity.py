# -*- test-case-name: tests.test_identity -*-
"""
Who is calling: an access key when the gateway has them, else the
C{X-User-ID} header, else C{gateway.default_user}.
"""

import hashlib
import hmac

from twisted.logger import Logger

from keeptrusts.api.errors import GatewayError

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
                    log.warn("access key {id}: ${env} is not set; key unusable",
                             id=key.id, env=key.key_env)
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
        if presented:
            digest = hashlib.sha256(presented).digest()
            for known, user in self._digests:
                if hmac.compare_digest(digest, known):
                    return user, False
        raise GatewayError(401, "authentication_error",
                           "a valid gateway access key is required")
