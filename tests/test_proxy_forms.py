"""
Tests for L{keeptrusts.proxy.forms}: bodies that are no JSON (forms,
multipart bodies, text) read as JSON for the policies and written back as
they came.
"""

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.endpoint import readSlots, writeSlots
from keeptrusts.api.errors import GatewayError
from keeptrusts.api.paths import otherJSON
from keeptrusts.api.texts import readRequest
from keeptrusts.proxy.forms import MAX_FIELDS, readForm

KEY = "AKIAQYLPMN5HFIQZ7XYZ"
MULTIPART = [b"multipart/form-data; boundary=b"]
# A picture: its signature, then bytes no text has (a key inside is not
# read: what a model sees of a picture is no text).
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 2
       + KEY.encode())


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
        A body of text, whatever its media type says but images, audio,
        video and PDF, is read (as text, or JSON lines:
        L{keeptrusts.proxy.textbody}), whatever bytes it holds; one of
        blanks, or of binary media, is not.
        """
        raw = b"key " + KEY.encode() + b"\r\nmore"
        for contentTypes in (None, [b"text/plain"],
                             [b"application/octet-stream"]):
            form = readForm(contentTypes, raw)
            self.assertEqual(texts(form), (raw.decode(),))
            self.assertEqual(redacted(form), b"key [R]\r\nmore")
            self.assertEqual(form.encoded()[1], None)
        for contentTypes, raw in [([b"text/plain"], PNG),
                                  ([b"text/plain"], b"\x00" + KEY.encode())]:
            self.assertIn(KEY, texts(readForm(contentTypes, raw))[0])
        for contentTypes, raw in [([b"image/png"], PNG),
                                  ([b"text/plain"], b" \r\n")]:
            self.assertIsNone(readForm(contentTypes, raw))

    def test_otherViewsAreNames(self):
        """
        A text body's readings that show a credential the written one does
        not are among its names.
        """
        form = readForm([b"text/plain; charset=cp037"], b"key " + (
            KEY.encode()))
        self.assertIn("key " + KEY, names(form))
