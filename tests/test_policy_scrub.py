"""
Tests for L{keeptrusts.policy.scrub}.
"""

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy import scrub
from keeptrusts.policy.matcher import Pattern
from keeptrusts.policy.scrub import Scrubber, scrubbed


class ScrubberTests(SynchronousTestCase):
    def test_catalogue(self):
        self.assertEqual(scrubbed("model-AKIAIOSFODNN7EXAMPLE"),
                         "model-[REDACTED:AWS_ACCESS_KEY_ID]")
        self.assertEqual(
            scrubbed("/bot123456789:AAHkJdmZ8cGvA4bHw3lFzL1ghRm0xNmVabc/getMe"),
            "/bot123456789[REDACTED:TELEGRAM_BOT_TOKEN]/getMe")
        self.assertEqual(scrubbed("gpt-4o-mini"), "gpt-4o-mini")

    def test_notText(self):
        for value in (None, "", 5, ["AKIAIOSFODNN7EXAMPLE"]):
            self.assertIs(scrubbed(value), value)

    def test_keptBounded(self):
        """
        Outcomes are kept for values that repeat, never more than
        L{scrub.MAX_KEPT}; the patterns compile once, at first use.
        """
        self.patch(scrub, "MAX_KEPT", 3)
        scrubber = Scrubber([Pattern("word", r"secret")])
        self.assertIsNone(scrubber._matcher)
        for n in range(5):
            self.assertEqual(scrubber("secret-%d" % (n,)),
                             "[REDACTED:WORD]-%d" % (n,))
            self.assertLessEqual(len(scrubber._kept), 3)
        matcher = scrubber._matcher
        self.assertEqual(scrubber("secret-4"), "[REDACTED:WORD]-4")
        self.assertIs(scrubber._matcher, matcher)

    def test_madeHere(self):
        """
        Text the gateway made passes unread and is not kept (its request
        ids are drawn anew each time); the same text from a client is read.
        """
        scrubber = Scrubber([Pattern("word", r"secret")])
        made = scrub.MadeHere("req_secret")
        self.assertIs(scrubber(made), made)
        self.assertIsNone(scrubber._matcher)
        self.assertEqual(scrubber._kept, {})
        self.assertEqual(scrubber("req_secret"), "req_[REDACTED:WORD]")
