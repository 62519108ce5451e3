"""
Who is calling: access keys, X-User-ID, the default user, and proxy
credentials.
"""

import base64
import hashlib

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from keeptrusts.api.errors import GatewayError
from keeptrusts.config import AccessKey
from keeptrusts.identity import Identify


def request(**headers):
    r = DummyRequest([b""])
    for name, value in headers.items():
        r.requestHeaders.setRawHeaders(name.replace("_", "-").encode(),
                                       [value.encode()])
    return r


def keyed():
    return Identify(
        (AccessKey(id="a", user="alice", key_env="KT_A"),
         AccessKey(id="b", user="bob", key_sha256=hashlib.sha256(
             b"kt-bob-secret").hexdigest())),
        {"KT_A": "kt-alice-secret"}, "anonymous")


class IdentifyTests(SynchronousTestCase):
    def test_noKeys(self):
        identify = Identify((), {}, "anonymous")
        self.assertEqual(identify(request()), ("anonymous", True))
        self.assertEqual(identify(request(x_user_id="dev1")), ("dev1", True))

    def keyed(self):
        return keyed()

    def test_keys(self):
        identify = self.keyed()
        self.assertEqual(identify(request(authorization="Bearer kt-alice-secret")),
                         ("alice", False))
        self.assertEqual(identify(request(x_api_key="kt-bob-secret")),
                         ("bob", False))
        self.assertEqual(identify(request(x_keeptrusts_key="kt-bob-secret",
                                          x_user_id="mallory")),
                         ("bob", False))

    def test_missingOrWrongKey(self):
        identify = self.keyed()
        for r in (request(), request(authorization="Bearer nope"),
                  request(x_user_id="alice")):
            error = self.assertRaises(GatewayError, identify, r)
            self.assertEqual((error.status, error.type),
                             (401, "authentication_error"))

    def test_missingKeyEnvMakesKeyUnusable(self):
        identify = Identify((AccessKey(id="a", user="alice", key_env="KT_A"),),
                            {}, "anonymous")
        self.assertRaises(GatewayError, identify,
                          request(authorization="Bearer "))
        self.assertTrue(identify.required)
        self.flushLoggedErrors()

    def test_missingKeyEnvLoggedScrubbed(self):
        """
        A key pasted where its variable's name goes is not logged (found by
        review: "$sk-proj-... is not set" at every start).
        """
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        key = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9o"
        Identify((AccessKey(id="a", user="alice", key_env=key),), {},
                 "anonymous")
        [line] = [formatEvent(e) for e in events
                  if e.get("log_namespace") == "keeptrusts.identity"]
        self.assertEqual(line, "access key a: $[REDACTED:OPENAI_API_KEY] "
                               "is not set; key unusable")


def basic(name, key):
    return b"Basic " + base64.b64encode(name + b":" + key)


class ProxyAuthorizationTests(SynchronousTestCase):
    """
    C{Proxy-Authorization: Basic base64(name:key)}: the key says who calls,
    the name is ignored.
    """

    def assertRefused(self, identify, value, required=True):
        error = self.assertRaises(GatewayError, identify.fromProxyAuthorization,
                                  value, required)
        self.assertEqual((error.status, error.type),
                         (407, "authentication_error"))
        self.assertEqual(error.headers,
                         ((b"Proxy-Authenticate", b'Basic realm="keeptrusts"'),))
        self.assertEqual(error.envelope()["error"]["type"],
                         "authentication_error")

    def test_keyGivesTheUser(self):
        identify = keyed()
        for name in (b"alice", b"anyone", b""):
            self.assertEqual(identify.fromProxyAuthorization(
                basic(name, b"kt-alice-secret")), "alice")
        self.assertEqual(identify.fromProxyAuthorization(
            b"basic " + base64.b64encode(b"x:kt-bob-secret")), "bob")
        self.assertEqual(identify.fromProxyAuthorization(
            basic(b"x", b"kt-bob-secret").decode("ascii")), "bob")

    def test_requiredAndMissingOrWrong(self):
        identify = keyed()
        for value in (None, b"", basic(b"alice", b"nope"),
                      basic(b"alice", b""), b"Bearer kt-alice-secret",
                      b"Basic !!!", b"Basic " + base64.b64encode(
                          b"kt-alice-secret")):
            self.assertRefused(identify, value)

    def test_notRequired(self):
        """
        On a loopback listener a key is optional, but a wrong one is still
        refused: whoever presents one wants to be known.
        """
        identify = keyed()
        self.assertEqual(identify.fromProxyAuthorization(None, False),
                         "anonymous")
        self.assertEqual(identify.fromProxyAuthorization(
            basic(b"", b"kt-bob-secret"), False), "bob")
        self.assertRefused(identify, basic(b"", b"nope"), required=False)

    def test_noKeys(self):
        identify = Identify((), {}, "someone")
        self.assertEqual(identify.fromProxyAuthorization(None, False),
                         "someone")
        self.assertEqual(identify.fromProxyAuthorization(
            basic(b"a", b"whatever"), False), "someone")
        self.assertRefused(identify, None)
        self.assertRefused(identify, basic(b"a", b"whatever"))

    def test_forProxy(self):
        identify = keyed().forProxy(required=True)
        r = request(proxy_authorization=basic(b"x", b"kt-alice-secret")
                    .decode("ascii"), authorization="token sgp_client")
        self.assertEqual(identify(r), ("alice", True))
        error = self.assertRaises(GatewayError, identify,
                                  request(authorization="Bearer kt-alice-secret"))
        self.assertEqual(error.status, 407)
        self.assertEqual(keyed().forProxy(required=False)(request()),
                         ("anonymous", True))
