"""
Tests for L{keeptrusts.proxy.forms}: bodies that are no JSON (forms,
multipart bodies, text) read as JSON for the policies and written back as
they came.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.endpoint import readRequest, readSlots, writeSlots
from keeptrusts.api.errors import GatewayError
from keeptrusts.api.paths import otherJSON
from keeptrusts.proxy.forms import MAX_FIELDS, readForm

KEY = "AKIAQYLPMN5HFIQZ7XYZ"
MULTIPART = [b"multipart/form-data; boundary=b"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + KEY.encode()


def texts(form):
    return readSlots(readRequest(otherJSON("x"), form.body).slots)


def names(form):
    return readRequest(otherJSON("x"), form.body).names.split("\n")


def redacted(form, old=KEY, new="[R]"):
    """
    The body as a policy that replaces C{old} by C{new} has it written.
    """
    reading = readRequest(otherJSON("x"), form.body)
    writeSlots(reading.slots, [t.replace(old, new)
                               for t in readSlots(reading.slots)])
    body, contentType = form.encoded()
    return body


def part(head, content):
    return b"--b\r\n" + head + b"\r\n\r\n" + content + b"\r\n"


class URLEncodedTests(SynchronousTestCase):
    def test_fieldsRead(self):
        """
        A form's values are texts, decoded as its server decodes them; its
        names are names; a changed value is quoted again, the rest stays
        byte for byte.
        """
        raw = (b"model=whisper-1&prompt=deploy+with+AKIA%51YLPMN5HFIQZ7XYZ"
               b"&flag&note=caf%C3%A9+%FF")
        form = readForm([b"application/x-www-form-urlencoded"], raw)
        self.assertEqual(texts(form), ("deploy with " + KEY,
                                       "caf\xe9 \udcff"))
        self.assertIn("whisper-1", names(form))
        self.assertIn("flag", names(form))
        self.assertEqual(redacted(form), (
            b"model=whisper-1&prompt=deploy+with+%5BR%5D&flag"
            b"&note=caf%C3%A9+%FF"))

    def test_unchanged(self):
        raw = b"a=%41KIA&b=1"
        form = readForm([b"application/x-www-form-urlencoded"], raw)
        self.assertEqual(redacted(form, "nothing"), raw)

    def test_tooMany(self):
        raw = b"&".join([b"a=1"] * (MAX_FIELDS + 1))
        error = self.assertRaises(
            GatewayError, readForm, [b"application/x-www-form-urlencoded"],
            raw)
        self.assertEqual(error.status, 422)


class TextBodyTests(SynchronousTestCase):
    def test_textRead(self):
        """
        A body of text, whatever its media type says, is read (as text, or
        JSON lines: L{keeptrusts.proxy.textbody}); one that is no text is
        not.
        """
        raw = b"key " + KEY.encode() + b"\r\nmore"
        for contentTypes in (None, [b"text/plain"],
                             [b"application/octet-stream"]):
            form = readForm(contentTypes, raw)
            self.assertEqual(texts(form), (raw.decode(),))
            self.assertEqual(redacted(form), b"key [R]\r\nmore")
            self.assertEqual(form.encoded()[1], None)
        for binary in (PNG, b"\x00" + KEY.encode(), b" \r\n"):
            self.assertIsNone(readForm([b"text/plain"], binary))


class MultipartTests(SynchronousTestCase):
    def test_batchFile(self):
        """
        A JSON lines file's every line is read as JSON (its escapes
        decoded), written anew only where it changed; a text field is
        read; an image is left as it is; each part's head is a name; the
        boundary and every byte but the change stay.
        """
        lines = [json.dumps({"custom_id": "1", "body": {"messages": [
                    {"role": "user", "content": "deploy with " + KEY}]}}),
                 '{"custom_id": "2", "body": {"prompt": "ok"}}',
                 '{"custom_id":"3","note":"\\u0041KIAQYLPMN5HFIQZ7XYZ"}']
        jsonl = ("\n".join(lines) + "\n").encode()
        raw = (part(b'Content-Disposition: form-data; name="purpose"',
                    b"batch")
               + part(b'Content-Disposition: form-data; name="file"; '
                      b'filename="b.jsonl"\r\nContent-Type: '
                      b'application/octet-stream', jsonl)
               + part(b'Content-Disposition: form-data; name="image"; '
                      b'filename="a.png"\r\nContent-Type: image/png', PNG)
               + b"--b--\r\n")
        form = readForm(MULTIPART, raw)
        read = texts(form)
        self.assertIn("batch", read)
        self.assertIn("deploy with " + KEY, read)
        self.assertIn(KEY, read)
        self.assertNotIn(PNG.decode("latin-1"), read)
        self.assertIn('Content-Disposition: form-data; name="file"; '
                      'filename="b.jsonl"', "\n".join(names(form)))
        self.assertIn("custom_id", names(form))
        out = redacted(form)
        expected = raw.replace(lines[0].encode(), json.dumps(
            {"custom_id": "1", "body": {"messages": [
                {"role": "user", "content": "deploy with [R]"}]}}).encode()
        ).replace(lines[2].encode(), b'{"custom_id": "3", "note": "[R]"}')
        self.assertEqual(out, expected)
        self.assertIn(PNG, out)

    def test_unchangedByteForByte(self):
        raw = (b"preamble\r\n" + part(b'Content-Disposition: form-data; '
                                      b'name="a"', b"x y") + b"--b--")
        form = readForm(MULTIPART, raw)
        self.assertEqual(redacted(form, "nothing"), raw)

    def test_lenientShapes(self):
        """
        What a lenient server takes for parts is read: line breaks alone,
        a part with no head, blanks after a delimiter, no close, a quoted
        boundary; and the preamble and epilogue.
        """
        raw = (b"pre " + KEY.encode() + b"\n--x y \n\nfirst " +
               KEY.encode() + b"\n--x y\nContent-Disposition: form-data; "
               b"name=\"p\"\n\nsecond " + KEY.encode() + b"\n--x y--\n"
               b"post " + KEY.encode())
        form = readForm([b'multipart/mixed; boundary="x y"'], raw)
        self.assertEqual(sorted(texts(form)), sorted(
            [w + " " + KEY for w in ("pre", "first", "second", "post")]))
        self.assertEqual(redacted(form), raw.replace(KEY.encode(), b"[R]"))
        raw = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n" + (
            KEY.encode())
        self.assertEqual(texts(readForm(MULTIPART, raw)), (KEY,))

    def test_charset(self):
        """
        A part in another charset is read in it, and written back in it.
        """
        raw = part(b"Content-Type: text/plain; charset=utf-16",
                   ("key " + KEY).encode("utf-16")) + b"--b--"
        form = readForm(MULTIPART, raw)
        self.assertEqual(texts(form), ("key " + KEY,))
        self.assertIn("key [R]".encode("utf-16"), redacted(form))

    def test_newBoundaryWhenNeeded(self):
        """
        A change that would put the boundary on a line of its own (never
        with the gateway's markers and a boundary of RFC 2046) gets the
        body a new boundary, and the call a new Content-Type.
        """
        raw = part(b"", b"x\r\n--b" + KEY.encode() + b"\r\ny") + b"--b--"
        form = readForm(MULTIPART, raw)
        out = redacted(form, KEY, "")
        body, contentType = form.encoded()
        self.assertEqual(out, body)
        self.assertTrue(contentType.startswith(
            b'multipart/form-data; boundary="keeptrusts-'))
        boundary = contentType.split(b'"')[1]
        self.assertEqual(out, b"--%s\r\n\r\n\r\nx\r\n--b\r\ny\r\n--%s--" % (
            boundary, boundary))

    def test_refused(self):
        """
        What the gateway cannot read as the destination may is refused: a
        part with a transfer encoding (415), no boundary, two content types,
        too many parts, JSON giving a key twice (422).
        """
        for contentTypes, raw, status in [
                (MULTIPART, part(b"Content-Transfer-Encoding: base64",
                                 b"QUtJQQ==") + b"--b--", 415),
                (MULTIPART, part(b"Content-Encoding: gzip", b"x") + b"--b--",
                 415),
                ([b"multipart/form-data"], part(b"", b"x"), 422),
                (MULTIPART, b"no delimiter", 422),
                ([b"text/plain", b"multipart/form-data; boundary=b"],
                 part(b"", b"x"), 422),
                (MULTIPART, part(b"", b"x") * (MAX_FIELDS + 1), 422),
                (MULTIPART, part(b"", b'{"a": 1, "a": 2}'), 422),
                ([b"text/plain"], b'x\n{"a": 1, "a": 2}', 200)]:
            if status == 200:
                readForm(contentTypes, raw)
                continue
            error = self.assertRaises(GatewayError, readForm, contentTypes,
                                      raw)
            self.assertEqual(error.status, status, raw)
