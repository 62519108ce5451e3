"""
C{routes:}: a matching rule's lighter chain and its target.
"""

import json

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest

from keeptrusts.api.http1 import KeptConnections
from keeptrusts.api.routes import RouteTable, Rule
from keeptrusts.config import RouteMatch, parseConfig
from keeptrusts.policy.registry import policyFactories
from keeptrusts.parts import buildSite
from keeptrusts.testing import FakeProvider, MemoryJournal, listenFake


def request(method=b"POST", headers=()):
    r = DummyRequest([b""])
    r.method = method
    r.requestHeaders = Headers({k: [v] for k, v in headers})
    return r


class RuleTests(SynchronousTestCase):
    def test_firstFitWins(self):
        table = RouteTable((
            Rule(RouteMatch(path_prefix="/.api/completions/code"), "light"),
            Rule(RouteMatch(method="GET"), "gets"),
            Rule(RouteMatch(header=(("x-team", "ml"),)), "ml", "t2"),
            Rule(RouteMatch(host="api.example.com"), "host")), "main")
        self.assertEqual(table.select(request(), "/.api/completions/code",
                                      "sourcegraph.com"), ("light", None))
        self.assertEqual(table.select(request(b"GET"), "/x", "h"),
                         ("gets", None))
        self.assertEqual(table.select(request(headers=[(b"X-Team", b"ml")]),
                                      "/x", "h"), ("ml", "t2"))
        self.assertEqual(table.select(request(), "/x", "api.example.com"),
                         ("host", None))
        self.assertEqual(table.select(request(), "/x", "other"),
                         ("main", None))


    def test_namesNotCased(self):
        """
        Paths come in lower case (as the gateway reads a proxied call) and
        host names are not cased: a rule written in capitals still fits.
        """
        table = RouteTable((
            Rule(RouteMatch(path_prefix="/.API/Completions/Code"), "light"),
            Rule(RouteMatch(host="API.Example.com"), "host")), "main")
        self.assertEqual(table.select(request(), "/.api/completions/code",
                                      "h"), ("light", None))
        self.assertEqual(table.select(request(), "/x", "api.example.COM"),
                         ("host", None))

    def test_prefixReadAsPathsAre(self):
        """
        A prefix is read as the paths it is matched against are (found by
        review: a prefix with an escape, a doubled slash or a dot segment
        no longer fitted anything).
        """
        for prefix, path in [
                ("/openai/deployments/my%20dep",
                 "/openai/deployments/my dep/chat/completions"),
                ("/.api/completions/code/", "/.api/completions/code/x"),
                ("/v1//chat/./completions", "/v1/chat/completions")]:
            table = RouteTable((Rule(RouteMatch(path_prefix=prefix), "r"),),
                               "main")
            self.assertEqual(table.select(request(), path, "h"),
                             ("r", None), prefix)
        table = RouteTable((Rule(RouteMatch(
            path_prefix="/.api/completions/code/"), "r"),), "main")
        self.assertEqual(table.select(request(), "/.api/completions/codex",
                                      "h"), ("main", None))


CONFIG = """
pack: {name: routes, version: 1.0.0, enabled: true}
providers:
  targets:
    - {id: one, provider: openai, base_url: "%(one)s"}
    - {id: two, provider: openai, base_url: "%(two)s"}
policies: {chain: [dlp-filter, audit-logger]}
policy:
  dlp-filter: {blocked_terms: [bluebird]}
routes:
  - match: {path_prefix: /v1/completions}
    chain: [audit-logger]
  - match: {header: {x-team: ml}}
    target: two
"""


class RouteEndToEndTests(TestCase):
    def setUp(self):
        self.one = FakeProvider(reactor)
        self.two = FakeProvider(reactor)
        _, one = listenFake(reactor, self.one, self.addCleanup)
        _, two = listenFake(reactor, self.two, self.addCleanup)
        factories = policyFactories()
        config = parseConfig(CONFIG % dict(one=one, two=two), factories)
        self.journal = MemoryJournal()
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        upstream = KeptConnections(reactor)
        self.addCleanup(upstream.closeCachedConnections)
        site = buildSite(config, reactor, self.journal, upstream, factories,
                         {})
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = "http://127.0.0.1:%d/v1/" % (port.getHost().port,)
        self.pool = pool

    def post(self, path, body, headers=None):
        return treq.post(self.url + path, data=json.dumps(body).encode(),
                         headers=headers, pool=self.pool)

    @defer.inlineCallbacks
    def test_lighterChain(self):
        response = yield self.post("completions", {
            "model": "m", "prompt": "bluebird"})
        yield response.content()
        self.assertEqual(self.one.requests[-1].json["prompt"], "bluebird")
        [event] = [e for e in self.journal.records if e["phase"] == "input"]
        self.assertEqual([p["name"] for p in event["policies"]],
                         ["audit-logger"])
        response = yield self.post("chat/completions", {
            "model": "m", "messages": [{"role": "user",
                                        "content": "bluebird"}]})
        yield response.content()
        self.assertEqual(
            self.one.requests[-1].json["messages"][0]["content"],
            "[REDACTED:BLOCKED_TERM]")

    @defer.inlineCallbacks
    def test_routeTarget(self):
        response = yield self.post("chat/completions", {
            "model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers={b"x-team": b"ml"})
        yield response.content()
        self.assertEqual(len(self.two.requests), 1)
        self.assertEqual(self.one.requests, [])
