"""
Who is calling: access keys, X-User-ID, the default user.
"""

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


class IdentifyTests(SynchronousTestCase):
    def test_noKeys(self):
        identify = Identify((), {}, "anonymous")
        self.assertEqual(identify(request()), ("anonymous", True))
        self.assertEqual(identify(request(x_user_id="dev1")), ("dev1", True))

    def keyed(self):
        return Identify(
            (AccessKey(id="a", user="alice", key_env="KT_A"),
             AccessKey(id="b", user="bob", key_sha256=hashlib.sha256(
                 b"kt-bob-secret").hexdigest())),
            {"KT_A": "kt-alice-secret"}, "anonymous")

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
