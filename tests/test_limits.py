"""
Rate limits and budgets, on a L{Clock}; and end to end through the
gateway.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.test.requesthelper import DummyRequest

from keeptrusts.api.errors import GatewayError
from keeptrusts.config import Agent, Config, Pack, RateLimit, TokenRateLimit
from keeptrusts.limits import DAY, MINUTE, Limits, MemoryCounters
from tests.test_api import Gateway, chat


def config(**kwargs):
    return Config(pack=Pack(name="t", version="1.0.0", enabled=True),
                  chain=("audit-logger",), policy={}, **kwargs)


def retryAfter(error):
    return dict(error.headers)[b"retry-after"]


class CounterTests(SynchronousTestCase):
    def test_fixedWindows(self):
        counters = MemoryCounters()
        counters.add("k", 10, 3.0, 2)
        self.assertEqual(counters.count("k", 10, 9.9), 2)
        self.assertEqual(counters.count("k", 10, 10.0), 0)
        counters.add("k", 10, 12.0, 1)
        self.assertEqual(counters.count("k", 10, 12.0), 1)
        self.assertEqual(counters.count("other", 10, 12.0), 0)

    def test_endedWindowsForgotten(self):
        """
        Keys are the clients' own: the counts of a window that has ended
        go when the next one begins, so a client naming a new user on every
        request cannot grow the counters past one window's worth; the
        windows of another length keep theirs.
        """
        counters = MemoryCounters()
        for n in range(1000):
            counters.add("user-%d" % (n,), MINUTE, 30.0, 1)
        counters.add("daily", DAY, 30.0, 5)
        self.assertEqual(len(counters), 1001)
        counters.add("user-0", MINUTE, 61.0, 1)
        self.assertEqual(len(counters), 2)
        self.assertEqual(counters.count("user-0", MINUTE, 61.0), 1)
        self.assertEqual(counters.count("user-1", MINUTE, 61.0), 0)
        self.assertEqual(counters.count("daily", DAY, 61.0), 5)


class LimitTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)

    def limits(self, **kwargs):
        return Limits(config(**kwargs), MemoryCounters(), self.clock)

    def test_userRateLimit(self):
        limits = self.limits(user_rate_limit=RateLimit(2, 60))
        limits.admit("u", None, None)
        limits.admit("u", None, None)
        limits.admit("other", None, None)
        error = self.assertRaises(GatewayError, limits.admit, "u", None, None)
        self.assertEqual((error.status, error.type), (429, "rate_limit"))
        # 1000 is 40 s into the window [960, 1020).
        self.assertEqual(retryAfter(error), b"20")
        self.clock.advance(20)
        limits.admit("u", None, None)

    def test_userKeyedOnHeaders(self):
        limits = self.limits(user_rate_limit=RateLimit(
            1, 60, header_names=("x-team",)))
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"x-team", [b"ml"])
        limits.admit("a", None, request)
        self.assertRaises(GatewayError, limits.admit, "b", None, request)

    def test_globalRateLimit(self):
        limits = self.limits(global_rate_limit=RateLimit(1, 10))
        limits.admit("a", None, None)
        error = self.assertRaises(GatewayError, limits.admit, "b", None, None)
        self.assertEqual(error.status, 429)

    def test_refusedRequestNotCounted(self):
        limits = self.limits(global_rate_limit=RateLimit(5, 60),
                             user_rate_limit=RateLimit(1, 60))
        limits.admit("a", None, None)
        for _ in range(10):
            self.assertRaises(GatewayError, limits.admit, "a", None, None)
        for user in "bcde":
            limits.admit(user, None, None)

    def test_tokenRateLimit(self):
        limits = self.limits(token_rate_limit=TokenRateLimit(100, 60))
        limits.admit("u", None, None)
        limits.account("u", None, {"input": 60, "output": 40}, None)
        error = self.assertRaises(GatewayError, limits.admit, "u", None, None)
        self.assertEqual(error.status, 429)

    def test_costBudgetByAgent(self):
        limits = self.limits(agents=(Agent(id="ci-bot",
                                           max_cost_usd_per_day=1.0),))
        limits.admit("alice", "ci-bot", None)
        limits.account("alice", "ci-bot", {"input": 1}, 0.6)
        limits.admit("bob", "ci-bot", None)
        limits.account("bob", "ci-bot", {"input": 1}, 0.6)
        error = self.assertRaises(GatewayError, limits.admit, "carol",
                                  "ci-bot", None)
        self.assertEqual((error.status, error.code),
                         (409, "budget_exceeded"))
        limits.admit("carol", None, None)  # not the agent: no budget
        self.clock.advance(86400)
        limits.admit("carol", "ci-bot", None)

    def test_tokenBudgetByUser(self):
        limits = self.limits(agents=(Agent(id="dev1",
                                           max_tokens_per_day=10),))
        limits.account("dev1", None, {"input": 6, "output": 4}, None)
        error = self.assertRaises(GatewayError, limits.admit, "dev1", None,
                                  None)
        self.assertEqual(error.code, "budget_exceeded")

    def test_requestsPerMinute(self):
        limits = self.limits(agents=(Agent(id="bot",
                                           max_requests_per_minute=1),))
        limits.admit("u", "bot", None)
        error = self.assertRaises(GatewayError, limits.admit, "u", "bot", None)
        self.assertEqual(error.status, 429)


class EndToEndTests(TestCase):
    @defer.inlineCallbacks
    def test_rateLimitedWithRetryAfter(self):
        gw2 = Gateway(self, extraTop="user_rate_limit: "
                      "{max_requests: 1, window_seconds: 3600}")
        first = yield gw2.post("/v1/chat/completions", chat("hi"))
        yield first.content()
        second = yield gw2.post("/v1/chat/completions", chat("hi"))
        body = yield second.json()
        self.assertEqual((second.code, body["error"]["type"]),
                         (429, "rate_limit"))
        retry = int(second.headers.getRawHeaders(b"retry-after")[0])
        self.assertTrue(0 < retry <= 3600, retry)
        self.assertEqual(len(gw2.provider.requests), 1)
        refusal = gw2.events("input")[-1]
        self.assertEqual((refusal["verdict"], refusal["status"],
                          refusal["policies"][0]["findings"]),
                         ("block", 429, [{"type": "rate_limited",
                                          "count": 1}]))

    @defer.inlineCallbacks
    def test_budgetExceeded(self):
        gw = Gateway(self, extraTop="agents: [{id: dev1, "
                     "max_tokens_per_day: 5}]")
        headers = {b"content-type": b"application/json",
                   b"x-user-id": b"dev1"}
        first = yield gw.post("/v1/chat/completions", chat("a b c"),
                              headers=headers)
        yield first.content()
        second = yield gw.post("/v1/chat/completions", chat("hi"),
                               headers=headers)
        body = yield second.json()
        self.assertEqual((second.code, body["error"]["code"]),
                         (409, "budget_exceeded"))
