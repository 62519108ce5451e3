"""
Tests for L{keeptrusts.policy.plainview}: a text read with its JSON
escapes written plainly, and the way back to where each character was
written.
"""

import json

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.escapes import plainEscapes
from keeptrusts.policy.hits import Hit
from keeptrusts.policy.plainview import PlainView, settledLength

settings.register_profile("keeptrusts", derandomize=True, deadline=None,
                          database=None)
PROFILE = settings.get_profile("keeptrusts")

# Backslashes, escapes whole and cut, surrogate halves, what stays escaped.
_PIECES = st.sampled_from([
    "\\", "\\\\", "\\/", "/", "\\u0041", "\\u00e9", "\\u20ac", "\\ud83d",
    "\\ude00", "\\u001f", "\\u0022", "\\u005c", "\\u00", "u", "0", "A", "KIA",
    "\\n", "\"", "x"])
TEXTS = st.lists(_PIECES, max_size=20).map("".join)


class PlainViewTests(SynchronousTestCase):

    def test_nothingToWritePlainly(self):
        """
        A text without C{\\u} or C{\\/}, or whose escapes all stay as they
        are, has no view.
        """
        for text in ["", "plain", "a\\nb \\\"q\\\"", "\\\\u0041", "\\u001f",
                     "\\\\/", "\\ud83d alone"]:
            self.assertIsNone(PlainView.of(text), text)

    def test_plainText(self):
        view = PlainView.of('{"k":"q8Tz\\/3n\\u0041\\ud83d\\ude00!"}')
        self.assertEqual(view.text, '{"k":"q8Tz/3nA\U0001f600!"}')

    def test_positions(self):
        text = "ab\\/cd\\u0041e\\ud83d\\ude00f"
        view = PlainView.of(text)
        self.assertEqual(view.text, "ab/cdAe\U0001f600f")
        self.assertEqual([view.written(p) for p in range(len(view.text) + 1)],
                         [0, 1, 2, 4, 5, 6, 12, 13, 25, 26])
        # A position inside an escape: the character after it.
        self.assertEqual([view.plain(w) for w in (0, 2, 3, 4, 7, 12, 20, 26)],
                         [0, 2, 3, 3, 6, 6, 8, 9])

    @settings(PROFILE, max_examples=300)
    @given(TEXTS)
    def test_everyCharacterBackWhereItWasWritten(self, text):
        """
        Each plain character is what the part of the text it maps back to
        reads as; the parts follow each other and cover the text.
        """
        view = PlainView.of(text)
        if view is None:
            self.assertEqual(plainEscapes(text), text)
            return
        self.assertEqual(view.text, plainEscapes(text))
        ends = [view.written(p) for p in range(len(view.text) + 1)]
        self.assertEqual(ends[0], 0)
        self.assertEqual(ends[-1], len(text))
        self.assertEqual("".join(plainEscapes(text[a:b]) for a, b in
                                 zip(ends, ends[1:])), view.text)
        for p, w in enumerate(ends):
            self.assertEqual(view.plain(w), p)

    def test_hitPlacedWhereWritten(self):
        """
        A hit in the plain text covers the escapes its characters were
        written as, its inner hits too.
        """
        text = 'k=\\"q\\/\\/x\\" t=\\u0041B'
        view = PlainView.of(text)
        self.assertEqual(view.text, 'k=\\"q//x\\" t=AB')
        inner = Hit("t", 13, 15, ((13, 15),))
        self.assertEqual(view.hit(Hit("k", 0, 15, ((4, 7),), (inner,))),
                         Hit("k", 0, 22, ((4, 9),),
                             (Hit("t", 15, 22, ((15, 22),)),)))

    def test_jsonEncodeOutput(self):
        """
        What PHP's C{json_encode} writes (every slash escaped) reads as the
        value it encodes.
        """
        value = {"aws_secret_access_key": "q8Tz/3nVbR+7kLm2Wp9Xy/4HcJd6FgA1sE5uNo0K"}
        written = json.dumps(value).replace("/", "\\/")
        self.assertEqual(json.loads(PlainView.of(written).text), value)


class SettledLengthTests(SynchronousTestCase):

    def test_nothingUnfinished(self):
        for text in ["", "abc", "a\\u0041", "a\\/", "\\ud83d\\ude00",
                     "\\u0041" + "x" * 11]:
            self.assertEqual(settledLength(text), len(text), text)

    def test_unfinishedEscapeHeld(self):
        """
        An escape a piece ends in the middle of, or a high surrogate's a
        low one's may follow, is held from its backslash.
        """
        for head, tail in [("ab", "\\"), ("ab", "\\u"), ("ab", "\\u00"),
                           ("ab", "\\u004"), ("ab", "\\ud83d"),
                           ("ab", "\\ud83d\\"), ("ab", "\\ud83d\\ude0"),
                           ("a\\\\", "\\")]:
            self.assertEqual(settledLength(head + tail), len(head), tail)
