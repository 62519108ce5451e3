"""
Tests for L{keeptrusts.policy.literals}: both ways of finding literals
find exactly the literals a text holds.
"""

import random

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy import literals
from keeptrusts.policy.dlp import DlpOptions, namedPatterns
from keeptrusts.policy.literals import HYPERSCAN_FROM, LiteralIndex
from keeptrusts.policy.matcher import Matcher
from keeptrusts.policy.probe import leadingLiterals

LITERALS = {"akia": [0], "ghp_": [1], "sk-": [2, 3], ".": [4], "é€": [5],
            "token": [6], "to": [7], "a+": [8], "(?": [9]}
ALPHABET = "akighp_s-.é€tonAK \n\ud800x+(?"


def expected(byLiteral, text):
    found = set()
    for literal, indexes in byLiteral.items():
        if literal in text:
            found.update(indexes)
    return found


def needsHyperscan(case):
    if literals.hyperscan is None:
        case.skip = "the optional hyperscan package is not installed"
    return case


class BothWaysTests(SynchronousTestCase):
    def indexes(self):
        return [LiteralIndex(LITERALS, useHyperscan=False),
                LiteralIndex(LITERALS)]

    @given(st.text(alphabet=ALPHABET, max_size=600))
    @settings(max_examples=300, deadline=None)
    def test_sameAsSubstrings(self, text):
        """
        Short and long texts, lone surrogates and non-ASCII literals
        included: the literals found are those the text holds.
        """
        for index in self.indexes():
            self.assertEqual(index.found(text), expected(LITERALS, text))

    def test_longAndShort(self):
        rng = random.Random(7)
        for size in (0, 1, HYPERSCAN_FROM - 1, HYPERSCAN_FROM, 5000):
            text = "".join(rng.choice(ALPHABET) for _ in range(size))
            for index in self.indexes():
                self.assertEqual(index.found(text), expected(LITERALS, text),
                                 size)

    def test_literally(self):
        """
        A literal is a literal, not a regular expression: C{.} is a dot,
        C{a+} an a and a plus.
        """
        for text, found in [("k" * 300, set()), ("a" * 300, set()),
                            ("k" * 300 + ".", {4}), ("a+" * 100, {8}),
                            ("(" * 200 + "?", {9})]:
            for index in self.indexes():
                self.assertEqual(index.found(text), found)

    def test_withoutHyperscan(self):
        self.assertFalse(LiteralIndex(LITERALS, useHyperscan=False).hyperscan)

    @needsHyperscan
    def test_withHyperscan(self):
        self.assertTrue(LiteralIndex(LITERALS).hyperscan)

    def test_hyperscanUnusable(self):
        """
        Where Hyperscan cannot build its database, the automaton does it all
        and the log says why.
        """
        class Broken:
            HS_MODE_BLOCK = HS_FLAG_SINGLEMATCH = 0

            class Database:
                def __init__(self, mode):
                    raise RuntimeError("no SSSE3")
        self.patch(literals, "hyperscan", Broken)
        logged = []
        self.patch(literals.log, "warn", lambda *a, **kw: logged.append(kw))
        index = LiteralIndex(LITERALS)
        self.assertFalse(index.hyperscan)
        self.assertEqual(index.found("x" * 200 + "ghp_"), {1})
        self.assertEqual([str(kw["error"]) for kw in logged], ["no SSSE3"])


class CatalogueTests(SynchronousTestCase):
    @needsHyperscan
    def test_catalogueCandidates(self):
        """
        Over the credential catalogue's literals, a text holding each one
        among other words: Hyperscan and the automaton agree.
        """
        patterns = namedPatterns(DlpOptions())
        byLiteral = {}
        for n, pattern in enumerate(patterns):
            for literal in leadingLiterals(pattern.regex):
                byLiteral.setdefault(literal, []).append(n)
        rng = random.Random(3)
        words = list(byLiteral) + ["request", "gateway", "é", "\u2028"]
        fast, slow = LiteralIndex(byLiteral), LiteralIndex(
            byLiteral, useHyperscan=False)
        for _ in range(50):
            text = " ".join(rng.choice(words) for _ in range(rng.randrange(
                1, 400))).lower()
            self.assertEqual(fast.found(text), slow.found(text))
            self.assertEqual(fast.found(text), expected(byLiteral, text))
        matcher = Matcher(patterns)
        text = "token = 'AKIAIOSFODNN7EXAMPLE' " * 20
        self.assertEqual([h.type for h in matcher.hits(text)][:1],
                         ["aws_access_key_id"])
