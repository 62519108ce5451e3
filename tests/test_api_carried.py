"""
Credentials where the gateway does not rewrite: the headers a provider is
sent, by whichever of a call's targets (a fallback's too).
"""

import json
from types import SimpleNamespace

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers

from keeptrusts.api.carried import carriedCredentials
from keeptrusts.api.http1 import KeptConnections
from keeptrusts.api.upstream import UsableTarget
from keeptrusts.config import Target, parseConfig
from keeptrusts.parts import buildSite
from keeptrusts.policy.dlp import KIND as CREDENTIALS
from keeptrusts.policy.registry import policyFactories
from keeptrusts.testing import FakeProvider, MemoryJournal, Script, listenFake

TOKEN = "ghp_R8k2mQ9vX4tL7nP3wZ6yB1cF5hJ0dS2aG8eK"


def usable(id, keyHeader=None):
    target = Target(id=id, provider="openai-compatible",
                    base_url="https://%s.example/v1" % (id,),
                    api_key_header=keyHeader or "Authorization",
                    api_key_prefix="")
    if keyHeader is None:
        return UsableTarget(target)
    name = keyHeader.encode("ascii")
    return UsableTarget(target, (name, b"gateway-key"),
                        frozenset([name.lower()]))


class CarriedCredentialsTests(SynchronousTestCase):
    def blocked(self, attempts, method=b"POST", raw=(),
                uri=b"/v1/chat/completions", **headers):
        request = SimpleNamespace(uri=uri,
                                  method=method, requestHeaders=Headers())
        for name, value in headers.items():
            request.requestHeaders.setRawHeaders(name.replace("_", "-"),
                                                 [value])
        for name, value in raw:
            request.requestHeaders.setRawHeaders(name, [value])
        return carriedCredentials(
            SimpleNamespace(names=(CREDENTIALS,)), request,
            [(target, b"/v1/chat/completions") for target in attempts],
            True) is not None

    def test_headerOfAnyAttemptRead(self):
        """
        A header the first target is not sent, but a later one would be
        (after a 429), is read: a credential there blocks the call.
        """
        first = usable("first", "Ocp-Apim-Subscription-Key")
        self.assertFalse(self.blocked([first],
                                      Ocp_Apim_Subscription_Key=TOKEN))
        self.assertTrue(self.blocked([first, usable("second")],
                                     Ocp_Apim_Subscription_Key=TOKEN))
        self.assertTrue(self.blocked(
            [first, usable("second", "X-Api-Key-2")],
            Ocp_Apim_Subscription_Key=TOKEN))
        # Withheld from every attempt's target: unread.
        self.assertFalse(self.blocked(
            [first, usable("second", "Ocp-Apim-Subscription-Key")],
            Ocp_Apim_Subscription_Key=TOKEN))


    def test_methodRead(self):
        """
        A method is the client's to choose (any token; a proxied call goes
        out with it): a credential there, in any casing, blocks the call.
        """
        target = usable("first")
        self.assertFalse(self.blocked([target], method=b"PATCH"))
        self.assertTrue(self.blocked([target], method=TOKEN.encode()))
        self.assertTrue(self.blocked([target], method=TOKEN.upper().encode()))

    def test_pathRead(self):
        """
        A proxied call goes on with its own path: a credential there,
        percent-encoded or not, blocks it.
        """
        target = usable("first")
        self.assertFalse(self.blocked([target], uri=b"/v1/files/file-abc?x=1"))
        self.assertTrue(self.blocked(
            [target], uri=b"/v1/files/" + TOKEN.encode() + b"?x=1"))
        self.assertTrue(self.blocked(
            [target], uri=b"/keys/AKIA%49OSFODNN7EXAMPLE/x%20y"))
        self.assertTrue(self.blocked(
            [target], uri=b"http://api.example/k/" + TOKEN.encode()))

    def test_headerNameRead(self):
        """
        A header's name goes on with the call as well (in a casing of
        Twisted's choosing), even a header whose value is not read: a
        credential there blocks it.
        """
        target = usable("first")
        self.assertFalse(self.blocked([target], X_Team=b"ml"))
        self.assertTrue(self.blocked([target], raw=[(TOKEN, b"1")]))
        self.assertTrue(self.blocked([target], raw=[(TOKEN.upper(), b"1")]))


FALLBACK = """
pack: {name: carried, version: 1.0.0, enabled: true}
providers:
  targets:
    - {id: apim, provider: openai-compatible, base_url: "%(first)s",
       models: [gpt-fake], secret_key_ref: {env: APIM_KEY},
       api_key_header: Ocp-Apim-Subscription-Key}
    - {id: direct, provider: openai, base_url: "%(second)s",
       models: [gpt-fake], secret_key_ref: {env: OPENAI_KEY}}
  fallback: {triggers: [rate_limit, server_error, timeout], max_fallback_attempts: 1}
policies: {chain: [dlp-filter, audit-logger]}
"""


class FallbackHeadersTests(TestCase):
    @defer.inlineCallbacks
    def test_keyHeaderNotForwardedOnFallback(self):
        """
        A client's header by the name of the first target's key, where the
        gateway puts that target's key, goes on to the fallback target
        neither as it came nor unread (found by review: a GitHub token sent
        as C{Ocp-Apim-Subscription-Key} reached the second provider after a
        429 from the first).
        """
        first, second = FakeProvider(reactor), FakeProvider(reactor)
        _, a = listenFake(reactor, first, self.addCleanup)
        _, b = listenFake(reactor, second, self.addCleanup)
        factories = policyFactories()
        config = parseConfig(FALLBACK % dict(first=a, second=b), factories)
        journal = MemoryJournal()
        upstream = KeptConnections(reactor)
        self.addCleanup(upstream.closeCachedConnections)
        site = buildSite(config, reactor, journal, upstream, factories,
                         {"APIM_KEY": "apim-gw-key", "OPENAI_KEY": "sk-gw"})
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        first.script = Script(status=429)
        response = yield treq.post(
            "http://127.0.0.1:%d/v1/chat/completions" % port.getHost().port,
            data=json.dumps({"model": "gpt-fake", "messages": [
                {"role": "user", "content": "hi"}]}).encode(),
            pool=pool, headers={
                b"content-type": b"application/json",
                b"Ocp-Apim-Subscription-Key": TOKEN.encode()})
        yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(
            first.requests[-1].headers["ocp-apim-subscription-key"],
            "apim-gw-key")
        self.assertNotIn("ocp-apim-subscription-key",
                         second.requests[-1].headers)
        self.assertEqual(second.requests[-1].headers["authorization"],
                         "Bearer sk-gw")
        self.assertNotIn(TOKEN, json.dumps(journal.records))
