"""
Tests for L{keeptrusts.api.media}: what a file is, by its label and its
first bytes.
"""

import codecs

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api import media
from keeptrusts.api.media import (
    BLOB, HEAD, MEDIA, TEXT, blobCredentials, fileKind, signature, textMedia)

KEY = "AKIAQYLPMN5HFIQZ7XYZ"
ENV = ("AWS_ACCESS_KEY_ID=%s\n" % (KEY,)).encode()
# Bytes no text holds, as a picture's after its signature.
BINARY = bytes(range(256)) * 2

PICTURES_AND_SOUNDS = [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xff\xd8\xff\xe0\x00\x10JFIF",
    b"GIF89a\x01\x00", b"RIFF\x10\x00\x00\x00WEBPVP8 ",
    b"RIFF\x10\x00\x00\x00WAVEfmt ", b"ID3\x04\x00\x00", b"\xff\xfb\x90\x00",
    b"\xff\xf1\x50\x80", b"OggS\x00\x02", b"fLaC\x00\x00\x00\x22",
    b"\x00\x00\x00\x20ftypisom", b"\x00\x00\x00\x1cftypavif",
    b"\x1aE\xdf\xa3\x01\x00", b"BM\x36\x00\x0c\x00\x00\x00\x00\x00",
    b"II*\x00\x08\x00", b"\x00\x00\x01\x00\x01\x00"]
OTHER_FORMATS = [
    b"%PDF-1.7\n", b"PK\x03\x04\x14\x00", b"\x1f\x8b\x08\x00",
    b"\xfd7zXZ\x00\x00", b"\x7fELF\x02\x01", b"SQLite format 3\x00",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"]


class FileKindTests(SynchronousTestCase):
    def test_signatures(self):
        """
        A picture's or a sound's signature is told from another format's;
        text has none, nor do UTF-16's byte order marks.
        """
        for head in PICTURES_AND_SOUNDS:
            self.assertIs(signature(head + ENV), True, head)
        for head in OTHER_FORMATS:
            self.assertIs(signature(head + ENV), False, head)
        for head in (ENV, b"", b"BMW 320d", b"ID3 tags", b"RIFF is a format",
                     codecs.BOM_UTF16_LE + "hi".encode("utf-16-le"),
                     codecs.BOM_UTF32_LE + "hi".encode("utf-32-le")):
            self.assertIsNone(signature(head), head)

    def test_picturesAndSounds(self):
        """
        A picture or a sound is L{MEDIA} only when labelled so and its
        bytes after its signature are no text: with another label it is
        L{BLOB} (searched), with a label of text it is text.
        """
        for head in PICTURES_AND_SOUNDS:
            raw = head.ljust(16, b"\x00") + BINARY + ENV
            self.assertEqual(fileKind("image/png", raw), MEDIA, head)
            self.assertEqual(fileKind("Audio/MPEG; x=y", raw), MEDIA, head)
            self.assertEqual(fileKind("application/octet-stream", raw),
                             BLOB, head)
            self.assertEqual(fileKind(None, raw), BLOB, head)
            self.assertEqual(fileKind("text/plain", raw), TEXT, head)

    def test_textBehindASignature(self):
        """
        Text behind a picture's signature is no picture (found by review:
        C{GIF89a} before a .env labelled image/gif left it unread): bytes
        that are searched (a credential in them blocks), as text in another
        script (UTF-8) and bytes mostly text are.
        """
        for head in PICTURES_AND_SOUNDS:
            self.assertEqual(fileKind("image/gif", head + b" " + ENV * 20),
                             BLOB, head)
            self.assertEqual(fileKind("image/gif", head.ljust(16, b"\x00")
                                      + ENV * 20), BLOB, head)
        self.assertEqual(fileKind("image/png", PICTURES_AND_SOUNDS[0] + (
            "\u5bc6\u94a5 " * 60).encode() + ENV), BLOB)
        self.assertEqual(fileKind("image/png", PICTURES_AND_SOUNDS[0] + (
            b"\xff" * 40 + ENV * 20)), BLOB)
        self.assertEqual(fileKind(5, PICTURES_AND_SOUNDS[0] + BINARY), BLOB)

    def test_labelAloneLeavesNothingUnread(self):
        """
        Text labelled as a picture, a sound, a document or bytes is text
        (found by review: a .env labelled image/png went on unread).
        """
        for label in ("image/png", "audio/wav", "video/mp4",
                      "application/pdf", "application/octet-stream", None,
                      "application/zip"):
            for raw in (ENV, ENV.decode().encode("utf-16"),
                        ENV.decode().encode("utf-16-le"),
                        ENV + "caf\xe9".encode("cp1252")):
                self.assertEqual(fileKind(label, raw), TEXT, (label, raw))

    def test_bytesThatAreNoText(self):
        """
        Another format's signature, or a NUL in the head that no UTF-16 or
        UTF-32 text explains, makes bytes L{BLOB} whatever their label but
        one of text.
        """
        for head in OTHER_FORMATS:
            self.assertEqual(fileKind("image/png", head + ENV), BLOB, head)
        for raw in (ENV + b"\x00", b"\x00\x01\x02" + ENV,
                    b"x" * (HEAD - 1) + b"\x00"):
            self.assertEqual(fileKind(None, raw), BLOB, raw[:20])
            self.assertEqual(fileKind("text/plain", raw), TEXT, raw[:20])
        # Past the head, a NUL says nothing.
        self.assertEqual(fileKind(None, b"x" * HEAD + b"\x00"), TEXT)


class BlobCredentialsTests(SynchronousTestCase):
    def test_found(self):
        """
        Credentials are found in the bytes as Latin-1 and with their NULs
        left out (UTF-16 text inside a file), each once.
        """
        raw = (b"\x00\x01 " + KEY.encode() + b" \x00\xff "
               + KEY.encode() + b" " + " AKIAIOSFODNN7EXAMPLE ".encode(
                   "utf-16-le"))
        self.assertEqual(blobCredentials(raw),
                         [KEY, "AKIAIOSFODNN7EXAMPLE"])
        self.assertEqual(blobCredentials(b"\x00\x01\x02 plain"), [])

    def test_kept(self):
        """
        A file's outcome is kept by its digest: a chat's file, sent again
        on every turn, is searched once.
        """
        searched = []

        def found(text):
            searched.append(text)
            return [(KEY, "aws_access_key_id")]
        self.patch(media, "credentialsFound", found)
        raw = b"\x00\x01 kept " + KEY.encode()
        self.assertEqual(blobCredentials(raw), [KEY])
        count = len(searched)
        self.assertEqual(blobCredentials(bytes(bytearray(raw))), [KEY])
        self.assertEqual(len(searched), count)
        blobCredentials(raw + b" ")
        self.assertGreater(len(searched), count)


class TextMediaTests(SynchronousTestCase):
    def test_textMedia(self):
        for mediaType in ["text/plain", "text/x-python", "application/json",
                          "application/ld+json", "application/x-yaml",
                          "application/yaml", "application/x-sh",
                          "application/jsonl", "application/xml; charset=x",
                          "APPLICATION/TOML", "", "image/svg+xml",
                          "model/gltf+json"]:
            self.assertTrue(textMedia(mediaType), mediaType)
        for mediaType in ["image/png", "application/zip", None,
                          "application/vnd.openxmlformats-officedocument."
                          "wordprocessingml.document", "font/woff2",
                          "application/octet-stream", "audio/wav"]:
            self.assertFalse(textMedia(mediaType), mediaType)
