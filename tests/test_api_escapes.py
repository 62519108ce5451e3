"""
Tests for L{keeptrusts.api.escapes}: a JSON text's escapes written plainly,
whole and in pieces.
"""

import json

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.anthropic import MESSAGES
from keeptrusts.api.escapes import Unescaping, plainEscapes, plainJSONText
from keeptrusts.api.texts import readAnswer, readRequest

from tests.test_api_sse import PROFILE

# What arguments hold: letters, the characters JSON must escape, slashes,
# a character beyond the BMP (a surrogate pair once escaped).
_VALUES = st.recursive(
    st.text(alphabet="AKIa0 \"\\/\n\u00e9\u20ac\U0001f600", max_size=12)
    | st.integers(),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet="kAé", max_size=3), inner,
                      max_size=3),
    max_leaves=6)


class Echo:
    """
    A scanner that releases what it is fed.
    """

    def feed(self, text):
        return text

    def end(self):
        return ""

    def outcomes(self):
        return ()


class PlainEscapesTests(SynchronousTestCase):
    def test_keyWrittenPlainly(self):
        text = '{"k": "\\u0041KIAIOSFODNN7EXAMPLE", "p": "a\\/b"}'
        self.assertEqual(plainEscapes(text),
                         '{"k": "AKIAIOSFODNN7EXAMPLE", "p": "a/b"}')

    def test_whatMustStayEscaped(self):
        """
        A quote, a backslash, a control character, a lone surrogate stay
        escaped: written plainly they would change the value or break it.
        """
        for text in ('"\\u0022"', '"\\u005c"', '"\\u000a"', '"\\ud800"',
                     '"\\\\u0041"'):
            self.assertEqual(plainEscapes(text), text)

    def test_surrogatePair(self):
        self.assertEqual(plainEscapes('"\\ud83d\\ude00"'), '"\U0001f600"')

    @settings(PROFILE, max_examples=300)
    @given(_VALUES)
    def test_sameValue(self, value):
        """
        Whatever the value, its JSON text written plainly decodes to it.
        """
        text = json.dumps(value)
        self.assertEqual(json.loads(plainEscapes(text)), value)


class UnescapingTests(SynchronousTestCase):
    @settings(PROFILE, max_examples=300)
    @given(_VALUES, st.data())
    def test_inPieces(self, value, data):
        """
        A JSON text fed in pieces cut anywhere is released as the whole
        text written plainly, holding back no more than an unfinished
        escape (a surrogate pair's first half and the start of its second:
        at most 11 characters).
        """
        text = json.dumps(value)
        cuts = sorted(data.draw(st.lists(
            st.integers(0, len(text)), max_size=6)))
        stage = Unescaping(Echo())
        released, fed, start = "", 0, 0
        for cut in cuts + [len(text)]:
            released += stage.feed(text[start:cut])
            fed, start = cut, cut
            self.assertLessEqual(len(plainEscapes(text[:fed]))
                                 - len(released), 11)
        released += stage.end()
        self.assertEqual(released, plainEscapes(text))

    def test_escapeCutBetweenPieces(self):
        stage = Unescaping(Echo())
        self.assertEqual(stage.feed('{"k": "\\u00'), '{"k": "')
        self.assertEqual(stage.feed('41KIA"}'), 'AKIA"}')


class PlainJSONTextTests(SynchronousTestCase):
    """
    L{plainJSONText} writes escapes plainly only in what is JSON (found by
    review: any string under a key named C{arguments} was rewritten).
    """

    COMMAND = "printf '\\u00e9\\n' | sed 's\\/a\\/b\\/'"

    def test_json(self):
        self.assertEqual(plainJSONText('{"k": "\\u0041KIA"}'),
                         '{"k": "AKIA"}')

    def test_notJSON(self):
        self.assertEqual(plainJSONText(self.COMMAND), self.COMMAND)

    def test_toolInputKeptAsItIs(self):
        """
        A tool's input with an C{arguments} field of its own (a shell
        command) stays as it is, in a request and in an answer.
        """
        block = {"type": "tool_use", "id": "t", "name": "run",
                 "input": {"program": "bash", "arguments": self.COMMAND}}
        body = {"model": "m", "max_tokens": 1, "messages": [
            {"role": "assistant", "content": [block]}]}
        self.assertFalse(readRequest(MESSAGES, body).rewritten)
        answer = {"type": "message", "role": "assistant",
                  "content": [dict(block)]}
        self.assertFalse(readAnswer(MESSAGES, answer).rewritten)
        self.assertEqual(answer["content"][0]["input"]["arguments"],
                         self.COMMAND)
