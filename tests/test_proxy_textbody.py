"""
Tests for L{keeptrusts.proxy.textbody}: a text in a body read as JSON, JSON
lines or text, and written back as it came but for what changed.
"""

import json
import time

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.endpoint import readRequest, readSlots, writeSlots
from keeptrusts.api.errors import GatewayError
from keeptrusts.api.paths import otherJSON
from keeptrusts.proxy.textbody import JSONList, readText

KEY = "AKIAQYLPMN5HFIQZ7XYZ"


def read(raw, charset=None):
    """
    C{raw} read: C{(holder, piece, texts)}.
    """
    holder = JSONList()
    piece = readText(raw, charset, holder, None)
    return holder, piece, readSlots(readRequest(otherJSON("x"),
                                                holder).slots)


def redacted(holder, piece, old=KEY, new="[R]"):
    reading = readRequest(otherJSON("x"), holder)
    writeSlots(reading.slots, [t.replace(old, new)
                               for t in readSlots(reading.slots)])
    return piece.encoded()


class ReadTextTests(SynchronousTestCase):
    def test_jsonLines(self):
        """
        JSON lines are read line by line, their escapes decoded; a changed
        line is written anew, the others, blank lines and line breaks as
        they came.
        """
        raw = (b'{"a": "\\u0041KIAQYLPMN5HFIQZ7XYZ"}\r\n\r\n'
               b'  {"b":   1, "c": ["x"]}  \n[1, "' + KEY.encode() + b'"]\n')
        holder, piece, texts = read(raw)
        self.assertEqual(sorted(texts), [KEY, KEY, "x"])
        self.assertEqual(redacted(holder, piece), (
            b'{"a": "[R]"}\r\n\r\n  {"b":   1, "c": ["x"]}  \n'
            b'[1, "[R]"]\n'))

    def test_wholeJSON(self):
        """
        One JSON value written over many lines is read whole.
        """
        value = {"messages": [{"content": "key " + KEY}]}
        raw = b"\n" + json.dumps(value, indent=2).encode() + b"\n"
        holder, piece, texts = read(raw)
        self.assertEqual(texts, ("key " + KEY,))
        self.assertEqual(json.loads(redacted(holder, piece)),
                         {"messages": [{"content": "key [R]"}]})

    def test_text(self):
        """
        A text whose lines are not all JSON is one text (a private key's
        lines stay together); unchanged, it goes back byte for byte.
        """
        raw = b'{"a": 1}\n[INFO] key ' + KEY.encode() + b"\n"
        holder, piece, texts = read(raw)
        self.assertEqual(texts, (raw.decode(),))
        self.assertEqual(redacted(holder, piece, "nothing"), raw)
        self.assertEqual(redacted(holder, piece),
                         raw.replace(KEY.encode(), b"[R]"))

    def test_charsets(self):
        """
        A text is read in its charset, written back in it; an unknown
        charset is UTF-8; bytes that are not text in it are no text.
        """
        raw = ("cl\xe9 " + KEY).encode("latin-1")
        holder, piece, texts = read(raw, "latin-1")
        self.assertEqual(texts, ("cl\xe9 " + KEY,))
        self.assertEqual(redacted(holder, piece),
                         "cl\xe9 [R]".encode("latin-1"))
        self.assertEqual(read(KEY.encode(), "x-unknown")[2], (KEY,))
        self.assertIs(read(raw)[1], raw)

    def test_ambiguousJSONRefused(self):
        """
        JSON two readers could read differently is refused (422), as a JSON
        body is.
        """
        for raw in (b'{"a": 1, "a": "' + KEY.encode() + b'"}',
                    b'{"ok": 1}\n{"a": 1, "a": 2}',
                    b'{"a": "\\ud800"}', b"[" * 100000 + b"]" * 100000):
            error = self.assertRaises(GatewayError, read, raw)
            self.assertEqual(error.status, 422)

    def test_blanksInsideALineCostLittle(self):
        """
        A changed JSON line is written back with the blanks that lead and
        trail it, found in time linear in the line (a long run of blanks
        inside it cost its length squared).
        """
        line = b'  {"a": "' + KEY.encode() + b'",' + b" " * 50000 + (
            b'"b": 2}\t\r\n')
        holder, piece, texts = read(line + b'{"c": 1}\n')
        started = time.perf_counter()
        out = redacted(holder, piece)
        self.assertLess(time.perf_counter() - started, 1.0)
        self.assertEqual(out, b'  {"a": "[R]", "b": 2}\t\r\n{"c": 1}\n')
