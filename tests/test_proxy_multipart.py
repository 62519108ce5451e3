"""
Tests for L{keeptrusts.proxy.multipart}: multipart bodies split into their
parts, each read as names and text, and written back as they came.
"""

import base64
import json

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.errors import GatewayError
from keeptrusts.proxy.forms import readForm
from keeptrusts.proxy.multipart import MAX_FIELDS, MAX_HEAD
from tests.test_proxy_forms import (
    KEY, MULTIPART, PNG, names, part, redacted, texts)


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
        a parameter of the content type given twice (a boundary: the first
        to some parsers, the last to others), a boundary in RFC 2231's form
        or not ASCII, a part giving a header that says how to read it twice
        (one parser takes the first, another the last), a part head longer
        than L{MAX_HEAD}, too many parts, JSON giving a key twice (422).
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
                ([b"multipart/form-data; boundary=a; boundary=b"],
                 part(b"", b"x") + b"--b--", 422),
                ([b"multipart/form-data; boundary=b; BOUNDARY=b"],
                 part(b"", b"x") + b"--b--", 422),
                ([b"multipart/form-data; boundary=b; charset=x; charset=y"],
                 part(b"", b"x") + b"--b--", 422),
                ([b"multipart/form-data; boundary*=utf-8''b"],
                 part(b"", b"x") + b"--b--", 422),
                ([b"multipart/form-data; boundary*0=b"],
                 part(b"", b"x") + b"--b--", 422),
                ([b"multipart/form-data; boundary*=utf-8''%E2%82%AC"],
                 b"--\xe2\x82\xac\r\n\r\nx\r\n--\xe2\x82\xac--", 422),
                ([b"multipart/form-data; boundary=\xe9"],
                 b"--\xe9\r\n\r\nx\r\n--\xe9--", 422),
                ([b"text/plain; charset=utf-8; charset=utf-16"], b"x", 422),
                (MULTIPART, part(b"Content-Transfer-Encoding: binary\r\n"
                                 b"Content-Transfer-Encoding: base64",
                                 b"QUtJQQ==") + b"--b--", 422),
                (MULTIPART, part(b"Content-Type: image/png\r\n"
                                 b"content-type: text/plain", b"x")
                 + b"--b--", 422),
                (MULTIPART, part(b'Content-Disposition: form-data; name=a'
                                 b'\r\nContent-Disposition: form-data; '
                                 b'name=b', b"x") + b"--b--", 422),
                (MULTIPART, part(b"Content-Encoding: identity\r\n"
                                 b"Content-Encoding: gzip", b"x")
                 + b"--b--", 422),
                (MULTIPART, part(b"X-Filler: " + b"a" * (MAX_HEAD - 10),
                                 b"x") + b"--b--", 422),
                (MULTIPART, part(b"X-Filler: " + b"a" * (MAX_HEAD - 10),
                                 b"x")[:-4] + b"\r\n--b--", 422),
                ([b"text/plain"], b'x\n{"a": 1, "a": 2}', 200)]:
            if status == 200:
                readForm(contentTypes, raw)
                continue
            error = self.assertRaises(GatewayError, readForm, contentTypes,
                                      raw)
            self.assertEqual(error.status, status, raw[:80])
        # A head as long as the cap is read.
        readForm(MULTIPART, part(b"X-Filler: " + b"a" * (MAX_HEAD - 20),
                                 b"x") + b"--b--")

    def test_dispositionNamesDecoded(self):
        """
        Every parameter of a part's Content-Disposition is among the names,
        as it came and as servers decode it: RFC 2231 (filename*, name*),
        RFC 2047 encoded words, percent-encoding.
        """
        hidden = b"".join(b"%%%02X" % c for c in KEY.encode())
        encodedWord = b"=?utf-8?b?" + base64.b64encode(KEY.encode()) + b"?="
        for disposition in [
                b"name=\"file\"; filename*=UTF-8''" + hidden + b".txt",
                b"name*=utf-8''" + hidden,
                b"name*0*=utf-8''" + hidden[:30] + b"; name*1*=" + hidden[30:],
                b"name=\"f\"; filename=\"" + encodedWord + b"\"",
                b"name=\"f\"; filename=\"" + hidden + b"\""]:
            raw = part(b"Content-Disposition: form-data; " + disposition,
                       b"hello") + b"--b--"
            found = [n for n in names(readForm(MULTIPART, raw)) if KEY in n]
            self.assertTrue(found, disposition)

    def test_lineBreaksDiffer(self):
        """
        A body whose delimiter lines end in different line breaks is
        refused (422): a parser that holds to the first delimiter's (Go's
        mime/multipart) reads a line that ends otherwise as content, here
        a part head saying UTF-16 that would have the gateway read the key
        as other text.
        """
        for raw in [
                b"--b\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n"
                b"hello\n--b\nContent-Type: text/plain; charset=utf-16\n\n"
                + KEY.encode() + b"\r\n--b--\r\n",
                b"--b\nContent-Disposition: form-data; name=\"p\"\n\n"
                b"hello\r\n--b\r\n\r\n" + KEY.encode() + b"\n--b--\n",
                part(b"", b"x") + b"\n--b--"]:
            error = self.assertRaises(GatewayError, readForm, MULTIPART, raw)
            self.assertEqual(error.status, 422, raw)
        for raw in [b"--b\n\nx\n--b--", part(b"", b"x") + b"--b--\n",
                    b"pre\r\n--b\r\n\r\nx\r\n--b\r\n\r\n\r\n--b--"]:
            readForm(MULTIPART, raw)

    def test_partsOfAnyBytesRead(self):
        """
        A part is read whatever its bytes (UTF-16, cp1252) and whatever
        its label claims (found by review: a .env labelled image/png went
        on unread) unless it is a picture or a sound (labelled so, bearing
        its format's signature: left as it is); a credential that only
        another reading than the written one shows (ASCII under
        charset=cp037, which reads it as other text) is among the names.
        """
        text = "key=%s\r\n" % (KEY,)
        png = PNG + b"\xff"
        raw = (part(b'Content-Disposition: form-data; name="a"',
                    text.encode("utf-16"))
               + part(b'Content-Disposition: form-data; name="b"',
                      text.encode("cp1252") + b"\xe9")
               + part(b"Content-Type: image/png", png)
               + part(b"Content-Type: image/png", b"env " + text.encode())
               + part(b"Content-Type: text/plain; charset=cp037",
                      b"hidden " + KEY.encode()) + b"--b--")
        form = readForm(MULTIPART, raw)
        self.assertEqual(len([t for t in texts(form) if KEY in t]), 3)
        self.assertIn("hidden " + KEY, names(form))
        out = redacted(form)
        self.assertEqual(out, raw.replace(
            KEY.encode("utf-16-le"), "[R]".encode("utf-16-le")).replace(
                b"key=" + KEY.encode(), b"key=[R]"))
        self.assertIn(png, out)

    def test_bytesSearched(self):
        """
        A part whose bytes are no text (a document's, an archive's, bytes
        holding NULs) is left as it is, the credentials in it among the
        names (which block the request); a picture's are not searched.
        """
        other = "AKIAIOSFODNN7EXAMPLE"
        raw = (part(b"Content-Type: application/pdf",
                    b"%PDF-1.4\n(" + KEY.encode() + b")")
               + part(b"Content-Type: application/x-thing", b"\x00\x01 "
                      + other.encode() + b"\x00")
               + part(b"Content-Type: image/png", PNG)
               + part(b'Content-Disposition: form-data; name="p"', b"plain")
               + b"--b--")
        form = readForm(MULTIPART, raw)
        self.assertEqual(texts(form), ("plain",))
        self.assertIn(KEY, names(form))
        self.assertIn(other, names(form))
        self.assertEqual(redacted(form), raw)
        self.assertIsNone(readForm([b"application/zip"], b"PK\x03\x04 x"))
        form = readForm([b"application/zip"], b"PK\x03\x04 " + KEY.encode())
        self.assertEqual((texts(form), names(form)), ((), [KEY]))

    def test_nestedMultipartRefused(self):
        """
        A part that is a multipart body itself is refused (415): its parts
        may carry transfer encodings of their own, which the gateway does
        not read.
        """
        raw = part(b"Content-Type: multipart/mixed; boundary=c",
                   b"--c\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                   b"QUtJQQ==\r\n--c--") + b"--b--"
        error = self.assertRaises(GatewayError, readForm, MULTIPART, raw)
        self.assertEqual(error.status, 415)
        self.assertIn("multipart body itself", error.message)

    def test_labelNotASCII(self):
        """
        A part's Content-Type with bytes not ASCII (an email Header, not a
        string) is read as a label, not a crash (found by review).
        """
        raw = part(b"Content-Type: image/png; x=\xff",
                   b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2) + b"--b--"
        self.assertEqual(texts(readForm(MULTIPART, raw)), ())
        # Its label honoured: text, whatever bytes it holds.
        raw = part(b"Content-Type: text/plain; x=\xff",
                   b"\x00 " + KEY.encode()) + b"--b--"
        self.assertEqual(texts(readForm(MULTIPART, raw)), ("\x00 " + KEY,))
