"""
Routing: model-based selection, round robin, fallback on the configured
triggers while nothing was sent, and the per-target circuit breaker.
"""

import json

import attr

import treq
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from keeptrusts.api.errors import GatewayError
from keeptrusts.api.openai import ENDPOINTS
from keeptrusts.api.anthropic import MESSAGES
from keeptrusts.api.routing import CircuitBreaker, Router, providerOf
from keeptrusts.api.upstream import UsableTarget
from keeptrusts.config import Fallback, Routing, Target, parseConfig
from keeptrusts.policy.registry import policyFactories
from keeptrusts.api.http1 import KeptConnections
from keeptrusts.parts import buildSite
from keeptrusts.testing import FakeProvider, MemoryJournal, Script, listenFake

CHAT = ENDPOINTS["chat/completions"]


def target(id, provider="openai", models=()):
    return UsableTarget(Target(id=id, provider=provider,
                               base_url="http://x/v1", api_key_header="a",
                               api_key_prefix="", models=tuple(models)))


class BreakerTests(SynchronousTestCase):
    def test_opensAfterThresholdAndHalfOpens(self):
        clock = Clock()
        breaker = CircuitBreaker(clock, threshold=2, cooldown=10)
        breaker.failed("a")
        self.assertTrue(breaker.allows("a"))
        breaker.failed("a")
        self.assertFalse(breaker.allows("a"))
        clock.advance(10)
        self.assertTrue(breaker.allows("a"))   # the one trial
        self.assertFalse(breaker.allows("a"))
        breaker.failed("a")                    # the trial failed
        self.assertFalse(breaker.allows("a"))
        clock.advance(10)
        self.assertTrue(breaker.allows("a"))
        breaker.succeeded("a")
        self.assertTrue(breaker.allows("a"))
        self.assertTrue(breaker.allows("a"))

    def test_successResetsCount(self):
        breaker = CircuitBreaker(Clock(), threshold=2)
        breaker.failed("a")
        breaker.succeeded("a")
        breaker.failed("a")
        self.assertTrue(breaker.allows("a"))


class RouterTests(SynchronousTestCase):
    def router(self, targets, strategy="ordered", attempts=2, clock=None):
        return Router(targets, Routing(strategy=strategy),
                      Fallback(max_fallback_attempts=attempts),
                      CircuitBreaker(clock or Clock(), threshold=1))

    def ids(self, targets):
        return [t.id for t in targets]

    def test_listedModelFirst(self):
        router = self.router([target("a", models=["m1"]),
                              target("b", models=["m2"]), target("c")])
        self.assertEqual(self.ids(router.candidates("m2", CHAT)), ["b"])

    def test_providerOfModel(self):
        self.assertEqual(providerOf("claude-3-5-sonnet"), "anthropic")
        self.assertEqual(providerOf("gpt-4o"), "openai")
        self.assertIsNone(providerOf("llama3"))
        router = self.router([target("oa"), target("an", "anthropic")])
        self.assertEqual(self.ids(router.candidates("claude-x", MESSAGES)),
                         ["an"])
        self.assertEqual(self.ids(router.candidates("gpt-4o", CHAT)), ["oa"])

    def test_attemptsBounded(self):
        router = self.router([target(n) for n in "abcd"], attempts=2)
        self.assertEqual(self.ids(router.candidates("x", CHAT)),
                         ["a", "b", "c"])

    def test_roundRobin(self):
        router = self.router([target(n) for n in "abc"], "round_robin",
                             attempts=0)
        self.assertEqual([self.ids(router.candidates("x", CHAT))[0]
                          for _ in range(4)], ["a", "b", "c", "a"])

    def test_openCircuitSkipped(self):
        router = self.router([target("a"), target("b")])
        router.breaker.failed("a")
        self.assertEqual(self.ids(router.candidates("x", CHAT)), ["b"])
        router.breaker.failed("b")
        error = self.assertRaises(GatewayError, router.candidates, "x", CHAT)
        self.assertEqual((error.status, error.type), (503, "unavailable"))

    def test_noTargetForFormat(self):
        router = self.router([target("a")])
        error = self.assertRaises(GatewayError, router.candidates, "claude",
                                  MESSAGES)
        self.assertEqual(error.status, 503)


CONFIG = """
pack: {name: routing, version: 1.0.0, enabled: true}
gateway:
  limits: {upstream_idle_timeout_s: 0.5}
providers:
  targets:
    - {id: first, provider: openai, base_url: "%(first)s", models: [gpt-fake]}
    - {id: second, provider: openai, base_url: "%(second)s", models: [gpt-fake]}
  fallback: {triggers: [%(triggers)s], max_fallback_attempts: 1}
policies: {chain: [audit-logger]}
"""


class FallbackTests(TestCase):
    def setUp(self):
        self.first = FakeProvider(reactor)
        self.second = FakeProvider(reactor)
        _, first = listenFake(reactor, self.first, self.addCleanup)
        _, second = listenFake(reactor, self.second, self.addCleanup)
        self.bases = dict(first=first, second=second)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    def start(self, triggers="rate_limit, server_error, timeout"):
        factories = policyFactories()
        config = parseConfig(CONFIG % dict(self.bases, triggers=triggers),
                             factories)
        self.journal = MemoryJournal()
        upstreamPool = KeptConnections(reactor)
        self.addCleanup(upstreamPool.closeCachedConnections)
        site = buildSite(config, reactor, self.journal, upstreamPool,
                         factories, {})
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = "http://127.0.0.1:%d/v1/chat/completions" % (
            port.getHost().port,)

    def chat(self, stream=False):
        return treq.post(self.url, pool=self.pool, data=json.dumps({
            "model": "gpt-fake", "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}).encode())

    @defer.inlineCallbacks
    def assertFallsBack(self, script):
        self.start()
        self.first.script = script
        self.second.script = Script(answer="from second")
        response = yield self.chat()
        body = yield response.json()
        self.assertEqual(response.code, 200)
        self.assertEqual(body["choices"][0]["message"]["content"],
                         "from second")
        [output] = [e for e in self.journal.records if e["phase"] == "output"]
        self.assertEqual(output["target"], "second")
        defer.returnValue(output["attempts"])

    @defer.inlineCallbacks
    def test_serverError(self):
        attempts = yield self.assertFallsBack(Script(status=500))
        self.assertEqual(attempts, [{"target": "first", "status": 500},
                                    {"target": "second", "status": 200}])

    @defer.inlineCallbacks
    def test_rateLimit(self):
        attempts = yield self.assertFallsBack(Script(status=429))
        self.assertEqual(attempts[0], {"target": "first", "status": 429})

    @defer.inlineCallbacks
    def test_hang(self):
        attempts = yield self.assertFallsBack(Script(hang=True))
        self.assertEqual(attempts[0], {"target": "first", "status": 504})

    @defer.inlineCallbacks
    def test_reset(self):
        attempts = yield self.assertFallsBack(Script(reset=True))
        self.assertEqual(attempts[0], {"target": "first", "status": 502})

    @defer.inlineCallbacks
    def test_triggerNotConfigured(self):
        self.start(triggers="timeout")
        self.first.script = Script(status=429)
        response = yield self.chat()
        yield response.content()
        self.assertEqual(response.code, 429)
        self.assertEqual(self.second.requests, [])

    @defer.inlineCallbacks
    def test_noFallbackOnceSent(self):
        """
        A stream that fails after its first bytes ends with an error event:
        nothing is retried elsewhere.
        """
        self.start()
        self.first.script = Script(chunks=["a", "b", "c"], resetMidStream=1)
        response = yield self.chat(stream=True)
        text = yield response.text()
        self.assertIn('"error"', text)
        self.assertEqual(self.second.requests, [])


class DataRoutingTests(SynchronousTestCase):
    def router(self, targets, **options):
        from keeptrusts.policy.datarouting import DataRoutingOptions
        return Router(targets, Routing(), Fallback(),
                      CircuitBreaker(Clock()), DataRoutingOptions(**options))

    def target(self, id, **policy):
        from keeptrusts.config import DataPolicy
        usable = target(id)
        return UsableTarget(attr.evolve(
            usable.target, data_policy=DataPolicy(**policy) if policy
            else None))

    def test_nonCompliantDropped(self):
        router = self.router(
            [self.target("plain"),
             self.target("zdr", zero_data_retention=True,
                         training_opt_out=True, retention_days=0)],
            require_zero_data_retention=True)
        self.assertEqual([t.id for t in router.candidates("x", CHAT)],
                         ["zdr"])

    def test_noneLeftBlocks(self):
        router = self.router([self.target("a", retention_days=30)],
                             max_retention_days=7)
        error = self.assertRaises(GatewayError, router.candidates, "x", CHAT)
        self.assertEqual((error.status, error.code, error.policy),
                         (409, "no_compliant_provider",
                          "data-routing-policy"))

    def test_noneLeftAllowed(self):
        router = self.router([self.target("a")], require_no_training=True,
                             on_no_compliant_provider="allow")
        self.assertEqual([t.id for t in router.candidates("x", CHAT)], ["a"])
