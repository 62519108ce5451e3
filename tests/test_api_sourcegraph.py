"""
Tests for L{keeptrusts.api.sourcegraph}: Cody's completion streams
rewritten; the end-to-end cases (through the forward proxy) are in
tests/test_proxy_origin.py.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.sourcegraph import ENDPOINTS, CompletionRewriter
from keeptrusts.api.stream import Outcome
from tests.test_api_anthropic import acmeScanners
from tests.test_api_stream import checkKeptAsItCame, checkOnlyWhatWasRead


def completion(data):
    return b"event: completion\ndata: " + data + b"\n\n"


class CompletionRewriterTests(SynchronousTestCase):
    """
    Events the scanners leave as they are go on byte for byte; the others
    are written anew, and a cumulative completion never repeats what was
    taken out.
    """

    def rewriter(self):
        return CompletionRewriter(Outcome(), ENDPOINTS["completions/stream"],
                                  acmeScanners())

    def test_deltaTextKeptAsItCame(self):
        checkKeptAsItCame(self, self.rewriter(), completion(
            b'{"deltaText": "Hello there", "stopReason": ""}'))

    def test_onlyWhatWasReadGoesOn(self):
        checkOnlyWhatWasRead(self, self.rewriter(), completion(
            b'{"deltaText": "Hello there", "stopReason": ""}'), b"deltaText")

    def test_cumulativeKeptAsItCame(self):
        rewriter = self.rewriter()
        first = completion(b'{"completion": "Hello there", "stopReason": ""}')
        self.assertEqual(rewriter.feed(first), first)
        out = rewriter.feed(completion(
            b'{"completion": "Hello there ACME-12345678 ok", '
            b'"stopReason": ""}'))
        out += rewriter.feed(completion(
            b'{"completion": "Hello there ACME-12345678 ok.", '
            b'"stopReason": ""}')) + rewriter.end()
        self.assertNotIn(b"12345678", out)
        texts = [json.loads(e.split(b"data: ", 1)[1])["completion"]
                 for e in out.split(b"\n\n") if e]
        self.assertEqual(texts[-1],
                         "Hello there [REDACTED:CUSTOM_PATTERN] ok.")

    def test_otherEventsRead(self):
        """
        The end event and a completion event with neither form of text
        have their texts read too (found by review).
        """
        rewriter = self.rewriter()
        for raw in (b'event: done\ndata: {"completion": "ACME-12345678"}\n\n',
                    completion(b'{"text": "ACME-12345678"}')):
            out = rewriter.feed(raw)
            self.assertNotIn(b"12345678", out)
            self.assertIn(b"[REDACTED:CUSTOM_PATTERN]", out)
