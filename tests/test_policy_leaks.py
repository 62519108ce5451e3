"""
No matched value leaves a policy other than in the text it redacts: not in
a Decision's message or findings, not in a journal record built from them,
not in a streamed block's message, not in the logs.
"""

import base64
import json
import random

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.events import eventRecord, policyEntries
from keeptrusts.policy.chain import PolicyChain
from keeptrusts.policy.registry import policyFactories
from keeptrusts.policy.values import Blocked, Exchange
from tests.test_policy_catalogue import TYPES, positives
from tests.test_policy_injection import ATTACKS
from tests.test_policy_pii import FOUND

OPTIONS = {
    "dlp-filter": [{"action": "redact"}, {"action": "block"}],
    "pii-detector": [{"action": "redact", "marker_format": "partial"}, {"action": "block"}],
    "code-sanitation": [{}, {"block_on_match": True}],
    "prompt-injection": [{}, {"response": {"action": "redact"}},
                         {"response": {"action": "allow"}}],
}


def samples():
    rng = random.Random(21)
    for kind in TYPES:
        for text, secret in positives(kind, rng, 2):
            yield text, secret
    for _, value in FOUND:
        yield "value: %s." % (value,), value
    for _, text in ATTACKS:
        yield text, text


class NoLeakTests(SynchronousTestCase):

    def setUp(self):
        self.logged = []
        observer = lambda event: self.logged.append(formatEvent(event))
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def chains(self):
        factories = policyFactories()
        for kind, variants in OPTIONS.items():
            for raw in variants:
                options = factories[kind].parseOptions(raw, "policy." + kind)
                yield PolicyChain([factories[kind].build(options, Clock())], "block", Clock())

    def assertNowhere(self, secret, *places):
        for place in places:
            self.assertNotIn(secret, place)

    def test_decisionsAndRecords(self):
        for chain in self.chains():
            for text, secret in samples():
                exchange = Exchange(request_id="r", texts=(text,))
                for phase, d in [("input", chain.checkInput(exchange)),
                                 ("output", chain.checkOutput(exchange, (text,)))]:
                    result = self.successResultOf(d)
                    record = eventRecord(phase, result.verdict, exchange, "t@1.0.0",
                                         policyEntries(result.outcomes))
                    self.assertNowhere(secret, repr(result.message),
                                       repr([o.findings for o in result.outcomes]),
                                       json.dumps(record))
        self.assertNowhere("AKIA", *self.logged)

    def test_streamBlocks(self):
        for chain in self.chains():
            for text, secret in samples():
                scanner = chain.scanOutput(Exchange(request_id="r"))
                if scanner is None:
                    continue
                try:
                    scanner.feed(text)
                    scanner.end()
                except Blocked as e:
                    self.assertNowhere(secret, e.message, str(e), repr(e.findings))
                self.assertNowhere(secret, repr(scanner.outcomes()))

    def test_jwtNestedTooDeepFailsClosed(self):
        """
        A JWT whose header nests 5,000 deep made C{dlp-filter} raise: with
        C{fail_mode: allow} the key beside it went out unread (found by
        review).  Now the policy redacts both, and nothing is degraded.
        """
        header = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"
        token = (base64.urlsafe_b64encode(header).rstrip(b"=").decode()
                 + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0."
                 "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
        factories = policyFactories()
        policy = factories["dlp-filter"].build(
            factories["dlp-filter"].parseOptions({}, "policy.dlp-filter"), Clock())
        chain = PolicyChain([policy], "allow", Clock())
        text = "deploy key AKIAQYLPMN5HFIQZ7XYZ, trace " + token
        result = self.successResultOf(chain.checkInput(
            Exchange(request_id="r", texts=(text,))))
        self.assertEqual((result.verdict, result.degraded), ("redact", False))
        self.assertEqual(result.texts, (
            "deploy key [REDACTED:AWS_ACCESS_KEY_ID], trace [REDACTED:JWT]",))
        self.assertFalse(self.logged)

    def test_logs(self):
        """
        A policy failing on a prompt is logged by its exception's type.
        """
        text, secret = next(samples())

        class Failing:
            name = "failing"

            def checkInput(self, exchange):
                raise ValueError("cannot parse " + exchange.texts[0])

        chain = PolicyChain([Failing()], "block", Clock())
        result = self.successResultOf(chain.checkInput(Exchange(request_id="r", texts=(text,))))
        self.assertEqual(result.verdict, "error")
        self.assertTrue(self.logged)
        self.assertNowhere(secret, result.message, *self.logged)
