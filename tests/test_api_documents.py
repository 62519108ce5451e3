"""
Tests for L{keeptrusts.api.documents}: the text a document holds
compressed, inflated for the credential search.
"""

import gzip
import io
import random
import zipfile
import zlib

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api import documents
from keeptrusts.api.documents import documentTexts
from keeptrusts.api.media import blobCredentials

KEY = "AKIAQYLPMN5HFIQZ7XYZ"


def pdf(content, flate=True, subtype=b""):
    """
    A PDF of one page whose content stream is C{content}.
    """
    data = zlib.compress(content) if flate else content
    return (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length " + str(
        len(data)).encode() + (b" /Filter /FlateDecode" if flate else b"")
        + subtype + b" >>\nstream\n" + data + b"\nendstream\nendobj\n"
        b"%%EOF\n")


def zipped(members, compression=zipfile.ZIP_DEFLATED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


class DocumentTextsTests(SynchronousTestCase):
    def test_pdfCompressedText(self):
        """
        A PDF's compressed content streams are inflated; their strings are
        read, a text array's pieces joined (kerning cuts a word), escapes
        and hexadecimal strings decoded (found by review: only a PDF's
        bytes as written were searched, and most PDFs compress their text).
        """
        for content in [
                b"BT /F1 12 Tf (key " + KEY.encode() + b") Tj ET",
                b"BT [(key AKIAQYLP) -20 (MN5HF) 3 (IQZ7XYZ)] TJ ET",
                b"BT <6b657920" + KEY.encode().hex().encode() + b"> Tj ET",
                b"BT (key \\101KIAQYLPMN5HF\\\nIQZ7XYZ) Tj ET",
                b"BT (\xfe\xff" + ("key " + KEY).encode("utf-16-be")
                + b") Tj ET"]:
            self.assertEqual(blobCredentials(pdf(content)), [KEY], content)
            self.assertEqual(blobCredentials(pdf(content, flate=False)),
                             [KEY], content)
        self.assertEqual(blobCredentials(pdf(b"BT (plain words) Tj ET")), [])

    def test_pdfPicturesNotInflated(self):
        """
        A picture's pixels, compressed, are not inflated (they hold no
        text, and cost).
        """
        content = b"key " + KEY.encode()
        self.assertIn(KEY, "".join(documentTexts(pdf(content))))
        self.assertNotIn(KEY, "".join(documentTexts(pdf(
            content, subtype=b" /Subtype /Image"))))

    def test_zipMembers(self):
        """
        A zip's members are inflated, read as they are and without their
        XML tags (Word cuts a line into runs); gzip too.
        """
        docx = zipped([
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w:p><w:r><w:t>key AKIAQ</w:t></w:r>"
             b"<w:r><w:t>YLPMN5HFIQZ7XYZ</w:t></w:r></w:p>")])
        self.assertEqual(blobCredentials(docx), [KEY])
        self.assertEqual(blobCredentials(zipped([(".env", "K=" + KEY)])),
                         [KEY])
        self.assertEqual(blobCredentials(gzip.compress(
            b"key " + KEY.encode())), [KEY])

    def test_bounded(self):
        """
        What one file inflates to is bounded: a zip bomb is read up to
        the bound, its members past it not at all.
        """
        self.patch(documents, "INFLATED", 1000)
        bomb = zipped([("a", b"\0" * 100000), ("b", "key " + KEY)])
        self.assertEqual(sum(len(t) for t in documentTexts(bomb)), 2000)
        self.assertEqual(blobCredentials(bomb), [])
        self.assertEqual(len(documentTexts(gzip.compress(b"x" * 5000))[0]),
                         1000)

    def test_brokenDocuments(self):
        """
        A document cut short, corrupt, or encrypted is read as far as it
        goes, never a crash.
        """
        whole = pdf(b"BT (key " + KEY.encode() + b") Tj ET")
        for raw in [whole[:60], whole.replace(b"x\x9c", b"x\x00"),
                    b"PK\x03\x04 not a zip", b"%PDF-1.7 stream\n",
                    b"%PDF-1.7 << /FlateDecode >> stream\nxx",
                    gzip.compress(b"text")[:-12], b"\x1f\x8b\x08\x00",
                    b"%PDF-1.7 (unclosed ((( <zz> <0> [(a) TJ"]:
            documentTexts(raw)
        # Any bytes after the signatures (found so: an escape of 9).
        noise = random.Random(7).randbytes(300000)
        for head in (b"%PDF-1.7\n", b"PK\x03\x04", b"\x1f\x8b"):
            documentTexts(head + noise)
        self.assertEqual(documentTexts(b"%PDF-1.7 (\\9\\8)"), ["98"])
        stored = zipped([("a.txt", "key " + KEY)], zipfile.ZIP_STORED)
        self.assertIn(KEY, blobCredentials(stored))
        self.assertEqual(documentTexts(b"plain bytes"), [])
