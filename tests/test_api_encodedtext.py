"""
Tests for L{keeptrusts.api.encodedtext}: base64 of text read as the text it
decodes to, and written back encoded.
"""

import base64

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.encodedtext import (
    binaryMedia, decodedSlot, textMedia)

ENV = "AWS_ACCESS_KEY_ID=AKIAQYLPMN5HFIQZ7XYZ\nREGION=eu-west-1\n"


def b64(text, encoding="utf-8"):
    return base64.b64encode(text.encode(encoding)).decode("ascii")


def readWrite(node, key, text, mediaType=None):
    """
    Read C{node[key]} through its decoded slot, write C{text} back: the
    text read.
    """
    container, slotKey = decodedSlot(node, key, mediaType)
    read = container[slotKey]
    container[slotKey] = text
    return read


class DecodedSlotTests(SynchronousTestCase):
    def test_dataURLOfText(self):
        """
        A base64 data URL of a text type reads as its text; a changed text
        goes back encoded after the same head, which a decoder takes.
        """
        for head in ("data:text/plain;base64,",
                     "data:text/plain;charset=utf-8;base64,",
                     "data:application/json;base64,", "data:;base64,",
                     "DATA:application/x-sh;BASE64,",
                     "data:application/x-yaml;base64,"):
            node = {"file_data": head + b64(ENV)}
            read = readWrite(node, "file_data",
                             ENV.replace("AKIAQYLPMN5HFIQZ7XYZ", "[X]"))
            self.assertEqual(read, ENV, head)
            self.assertTrue(node["file_data"].startswith(head))
            self.assertEqual(
                base64.b64decode(node["file_data"][len(head):]).decode(),
                "AWS_ACCESS_KEY_ID=[X]\nREGION=eu-west-1\n")

    def test_unchangedStaysAsItCame(self):
        """
        A text no policy changed is not written back: the file goes on
        byte for byte (its line breaks, its padding).
        """
        data = "data:text/plain;base64," + b64(ENV)[:8] + "\r\n" + b64(
            ENV)[8:]
        node = {"file_data": data}
        self.assertEqual(readWrite(node, "file_data", ENV), ENV)
        self.assertEqual(node, {"file_data": data})

    def test_bareBase64(self):
        """
        Bare base64 (a file's data, Claude's and Gemini's sources) is read
        as the text it decodes to, in either alphabet, padded or not; it
        goes back in the alphabet it came in, unpadded if it came so.
        """
        text = "token??>>" + ENV
        urlSafe = base64.urlsafe_b64encode(text.encode()).decode()
        self.assertIn("_", urlSafe)
        node = {"data": urlSafe.rstrip("=")}
        self.assertEqual(readWrite(node, "data", text + "x"), text)
        self.assertNotIn("=", node["data"])
        self.assertEqual(base64.urlsafe_b64decode(
            node["data"] + "=" * (-len(node["data"]) % 4)).decode(),
            text + "x")
        node = {"data": b64(ENV)}
        self.assertEqual(readWrite(node, "data", "y", "text/plain"), ENV)
        self.assertEqual(node["data"], b64("y"))

    def test_notBase64ReadAsItIs(self):
        """
        What no decoder takes whole has no decoded slot: the string alone
        is read, as it is (not base64, percent-encoded, a length no base64
        has, both alphabets at once).
        """
        for value in ["data:text/plain;base64,AKIA QYLP MN5H!",
                      "data:text/plain,AKIAQYLPMN5HFIQZ7XYZ",
                      "data:text/plain;base64,QUJDR",
                      "data:text/plain;base64,ab+c-d==",
                      "data:text/plain;base64,", "plain words, a file"]:
            self.assertIsNone(decodedSlot({"file_data": value}, "file_data"),
                              value)

    def test_binaryLeftAlone(self):
        """
        Binary media are not decoded (images, audio, video, PDF, bytes);
        bytes that are no UTF-8 are text only when their type says so, and
        are read as Latin-1, written back as they came but for the change.
        """
        for value, mediaType in [
                ("data:image/png;base64," + b64(ENV), None),
                ("data:application/pdf;base64," + b64(ENV), None),
                (b64(ENV), "audio/wav"),
                (b64(ENV), "application/octet-stream"),
                ("data:application/zip;base64,UEsDBBQACAC36Zw=", None),
                ("UEsDBBQACAC36Zw=", None)]:
            self.assertIsNone(decodedSlot({"data": value}, "data", mediaType),
                              (value, mediaType))
        latin = "# cl\xe9\n" + ENV
        node = {"data": b64(latin, "latin-1")}
        self.assertEqual(readWrite(node, "data", latin.replace("AKIA", "[X]"),
                                   "text/plain"), latin)
        self.assertEqual(base64.b64decode(node["data"]),
                         latin.replace("AKIA", "[X]").encode("latin-1"))

    def test_mediaTypes(self):
        for mediaType in ["text/plain", "text/x-python", "application/json",
                          "application/ld+json", "application/x-yaml",
                          "application/yaml", "application/x-sh",
                          "application/jsonl", "application/xml; charset=x",
                          "APPLICATION/TOML", ""]:
            self.assertTrue(textMedia(mediaType), mediaType)
        for mediaType in ["image/png", "application/zip", None,
                          "application/vnd.openxmlformats-officedocument."
                          "wordprocessingml.document", "font/woff2"]:
            self.assertFalse(textMedia(mediaType), mediaType)
        for mediaType in ["image/png", " Image/PNG", "audio/wav", "video/mp4",
                          "application/pdf", "application/octet-stream"]:
            self.assertTrue(binaryMedia(mediaType), mediaType)
        self.assertFalse(binaryMedia("text/plain"))
        self.assertFalse(binaryMedia(None))
