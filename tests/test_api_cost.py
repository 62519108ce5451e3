"""
Usage and cost: tokens from JSON answers and streams of every surface, the
usage chunk the gateway asks for and takes out again, prices from the
target or the built-in table, estimates marked as such.
"""

import json

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from keeptrusts.api.cost import costOf, estimateTokens, pricesFor
from keeptrusts.config import Pricing
from keeptrusts.testing import Script
from tests.test_api import Gateway, chat


class PriceTests(SynchronousTestCase):
    def test_longestPrefix(self):
        self.assertEqual(pricesFor("gpt-4o-mini-2024-07-18"), (0.15, 0.60))
        self.assertEqual(pricesFor("gpt-4o-2024-08-06"), (2.50, 10.00))
        self.assertEqual(pricesFor("claude-sonnet-4-20250514"), (3.0, 15.0))
        self.assertIsNone(pricesFor("llama3"))

    def test_targetPricingWins(self):
        pricing = Pricing(input_per_million=1.0, output_per_million=2.0)
        self.assertEqual(pricesFor("gpt-4o", pricing), (1.0, 2.0))
        self.assertEqual(costOf({"input": 1000, "output": 500}, "x", pricing),
                         0.002)

    def test_cost(self):
        self.assertEqual(costOf({"input": 1_000_000, "output": 0}, "gpt-4o"),
                         2.5)
        self.assertIsNone(costOf({"input": 10}, "unknown-model"))
        self.assertIsNone(costOf(None, "gpt-4o"))

    def test_estimate(self):
        self.assertEqual(estimateTokens(["abcd" * 10]), 11)
        self.assertEqual(estimateTokens([""]), 0)


PRICED = """
    - id: priced
      provider: openai
      base_url: %(base)s/v1
      models: [priced-model]
      pricing: {input_per_million: 1000000, output_per_million: 2000000}
"""


class UsageTests(TestCase):
    @defer.inlineCallbacks
    def test_jsonCost(self):
        gw = Gateway(self, extraTargets=PRICED)
        response = yield gw.post("/v1/chat/completions",
                                 chat("two words", model="priced-model"))
        yield response.content()
        [out] = gw.events("output")
        self.assertEqual(out["tokens"], {"input": 2, "output": 5})
        self.assertEqual(out["cost_usd"], 2 * 1.0 + 5 * 2.0)

    @defer.inlineCallbacks
    def test_streamUsageAskedAndTakenOut(self):
        gw = Gateway(self, chain="[audit-logger]", extraTargets=PRICED)
        gw.provider.script = Script(chunks=["a b", " c"])
        response = yield gw.post("/v1/chat/completions", chat(
            "one two three", model="priced-model", stream=True))
        text = yield response.text()
        sent = gw.provider.requests[-1].json
        self.assertEqual(sent["stream_options"], {"include_usage": True})
        chunks = [json.loads(e[len("data: "):]) for e in text.split("\n\n")
                  if e.startswith("data: {")]
        self.assertTrue(all(c["choices"] for c in chunks), chunks)
        self.assertTrue(text.rstrip().endswith("data: [DONE]"))
        [out] = gw.events("output")
        self.assertEqual(out["tokens"], {"input": 3, "output": 3})
        self.assertEqual(out["cost_usd"], 3 * 1.0 + 3 * 2.0)

    @defer.inlineCallbacks
    def test_streamUsageAskedOfTheBodyAsItCame(self):
        """
        The usage is asked of the body as the client wrote it (its numbers,
        spaces and key order kept: it is not written anew); a body that
        asks something of the stream already, or that is written otherwise
        (a byte order mark), is written anew with the usage asked.
        """
        gw = Gateway(self, chain="[audit-logger]")
        raw = (b'{ "model": "gpt-fake", "temperature": 1.10,\n'
               b'  "messages": [{"role": "user", "content": "hi"}],'
               b' "stream": true }\n')
        response = yield gw.post("/v1/chat/completions", raw)
        yield response.text()
        self.assertEqual(gw.provider.requests[-1].body,
                         raw.rstrip()[:-1]
                         + b',"stream_options":{"include_usage":true}}')
        for body in (chat("hi", stream=True, stream_options={}),
                     b"\xef\xbb\xbf" + json.dumps(chat(
                         "hi", stream=True)).encode()):
            response = yield gw.post("/v1/chat/completions", body)
            yield response.text()
            self.assertEqual(gw.provider.requests[-1].json["stream_options"],
                             {"include_usage": True})

    @defer.inlineCallbacks
    def test_clientAskedUsageKeepsChunk(self):
        gw = Gateway(self, chain="[audit-logger]")
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", stream=True, stream_options={"include_usage": True}))
        text = yield response.text()
        self.assertIn('"choices": []', text)
        [out] = gw.events("output")
        self.assertEqual(out["tokens"]["input"], 1)

    @defer.inlineCallbacks
    def test_estimateWhenNoUsage(self):
        gw = Gateway(self)
        gw.provider.script = Script(answer="x" * 40)
        # A Sourcegraph answer carries no usage: through the forward proxy.
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint
        from twisted.web.client import ProxyAgent, readBody
        from twisted.web.http_headers import Headers
        from keeptrusts.api.upstream import BytesProducer
        origin = gw.config.providers.targets[0].base_url.rsplit("/v1", 1)[0]
        agent = ProxyAgent(TCP4ClientEndpoint(reactor, "127.0.0.1",
                                              gw.port.getHost().port))
        body = json.dumps({"messages": [{"speaker": "human",
                                         "text": "y" * 80}]}).encode()
        response = yield agent.request(
            b"POST", (origin + "/.api/completions/code").encode(),
            Headers({b"content-type": [b"application/json"]}),
            BytesProducer(body))
        yield readBody(response)
        [out] = gw.events("output")
        self.assertEqual(out["tokens"], {"input": 21, "output": 11,
                                         "estimated": True})
