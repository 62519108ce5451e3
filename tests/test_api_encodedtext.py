"""
Tests for L{keeptrusts.api.encodedtext}: base64 of text read as the text it
decodes to, and written back encoded.
"""

import base64

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.encodedtext import decodedFile

ENV = "AWS_ACCESS_KEY_ID=AKIAQYLPMN5HFIQZ7XYZ\nREGION=eu-west-1\n"


def b64(text, encoding="utf-8"):
    return b64enc(text.encode(encoding))


def b64enc(raw):
    return base64.b64encode(raw).decode("ascii")


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 2


def decodedSlot(node, key, mediaType=None):
    return decodedFile(node, key, mediaType)[0]


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
        What decodes to nothing has no decoded slot: the string alone is
        read, as it is (percent-encoded, empty, one character).
        """
        for value in ["data:text/plain,AKIAQYLPMN5HFIQZ7XYZ",
                      "data:text/plain;base64,", "data:text/plain;base64,Q",
                      "data:text/plain;base64,!! ??"]:
            self.assertIsNone(decodedSlot({"file_data": value}, "file_data"),
                              value)

    def test_lenientBase64(self):
        """
        Base64 is read as the most lenient decoder reads it (review s9b
        M1): what is of neither alphabet left out, both alphabets at once,
        a last character that makes no byte ignored, padding skipped.  A
        changed text goes back as canonical base64.
        """
        text = "token??>>" + ENV
        data = b64(text)
        self.assertIn("/", data)
        for variant in [data[:8] + "!" + data[8:],
                        data[:8] + "\f" + data[8:],
                        data.replace("/", "_", 1),
                        data + "A",
                        b64(text[:9]) + b64(text[9:])]:
            node = {"file_data": "data:text/plain;base64," + variant}
            self.assertIn(ENV, readWrite(node, "file_data", "[X]"), variant)
            self.assertEqual(node["file_data"],
                             "data:text/plain;base64," + b64("[X]"))

    def test_piecesBetweenPadding(self):
        """
        Base64 of pieces put together (padding before more data), which
        one decoder stops at, another skips, another decodes piece by
        piece: read piece by piece, it goes on as canonical base64 of what
        was read, unchanged or not (found by review: a reading the gateway
        did not write back showed a key).  So does any shape only a lenient
        decoder takes (both alphabets mixed, stray characters).
        """
        for data, text in [(b64("a") + b64(ENV), "a" + ENV),
                           ("!" + b64(ENV), ENV), ("--" + b64(ENV), None),
                           ("-_-_" + b64(ENV), None), ("-" + b64(ENV), None)]:
            node = {"data": data}
            container, key = decodedSlot(node, "data", "text/plain")
            sent = base64.b64decode(node["data"], validate=True)
            self.assertEqual(base64.b64encode(sent).decode(), node["data"])
            if text is not None:
                self.assertEqual((container[key], sent.decode()),
                                 (text, text))
            # "-" read as "+", the text after shifted or not (as Node reads
            # it; Python's decoder skips it, review s10b): the key goes on
            # only if the policies read it.
            self.assertEqual(b"AKIA" in sent, "AKIA" in container[key], data)

    def test_dataURLHeads(self):
        """
        A data URL's head is read as WHATWG's parser reads it: blanks
        before it, and around C{base64} (review s10b: read as percent-
        encoded text, its base64 unread).
        """
        for head in (" data:text/plain;base64,", "data:text/plain; base64,",
                     "data:text/plain;base64 ,", "\r\nDATA:;BASE64,"):
            node = {"url": head + b64(ENV)}
            self.assertEqual(readWrite(node, "url", "[X]"), ENV, head)
            self.assertEqual(node["url"], head + b64("[X]"))

    def test_byteOrderMark(self):
        """
        A byte order mark says the text's encoding (review s9b H1: UTF-16
        was read as Latin-1, its key never matched); a changed text goes
        back in it, after the same mark.
        """
        for encoding in ["utf-16", "utf-16-be", "utf-32", "utf-32-be",
                         "utf-8-sig"]:
            raw = ENV.encode(encoding)
            if encoding.endswith("-be"):
                raw = "\ufeff".encode(encoding) + raw
            node = {"file_data": "data:text/plain;base64," + base64.b64encode(
                raw).decode()}
            container, key = decodedSlot(node, "file_data")
            self.assertEqual(container[key], ENV, encoding)
            container[key] = "[X]"
            sent = base64.b64decode(node["file_data"].partition(",")[2])
            self.assertEqual(sent[:len(raw) - len(ENV.encode(encoding))],
                             raw[:len(raw) - len(ENV.encode(encoding))])
            self.assertEqual(sent, raw.replace(ENV.encode(encoding), b"")
                             + "[X]".encode(encoding), encoding)

    def test_otherReadings(self):
        """
        Bytes without a byte order mark are read in more than one view: as
        written back (UTF-8, or Latin-1), and as UTF-8 and NULs left out
        (UTF-16 without its mark), once the text's credentials are
        redacted: a key only those show is in a view; one the text shows
        too is not.
        """
        key = "AKIAQYLPMN5HFIQZ7XYZ"
        for encoding in ["utf-16-le", "utf-16-be", "utf-32-le"]:
            container, _ = decodedSlot(
                {"data": b64(ENV, encoding)}, "data", None)
            self.assertNotIn(key, container.text)
            self.assertTrue(any(key in view for view in container.views),
                            encoding)
        latin = "# cl\xe9\n" + ENV
        container, _ = decodedSlot({"data": b64(latin, "latin-1")}, "data",
                                   "text/plain")
        self.assertEqual(container.text, latin)
        self.assertEqual(container.views, (
            "# cl\ufffd\nAWS_ACCESS_KEY_ID=[REDACTED:AWS_ACCESS_KEY_ID]\n"
            "REGION=eu-west-1\n",))
        self.assertEqual(decodedSlot({"data": b64(ENV)}, "data")[0].views, ())

    def test_picturesLeftAlone(self):
        """
        A picture or a sound, labelled so and bearing its format's
        signature, is not read: no slot, no view.
        """
        for value, mediaType in [
                ("data:image/png;base64," + b64enc(PNG + ENV.encode()), None),
                ("data:image/png;base64," + "\r\n" * 40 + b64enc(
                    PNG + ENV.encode()), None),
                (b64enc(b"RIFF\x10\x00\x00\x00WAVEfmt " + PNG[16:]
                        + ENV.encode()), "audio/wav"),
                (b64enc(b"ID3\x04\x00" + PNG + ENV.encode()), "audio/mpeg")]:
            self.assertEqual(decodedFile({"data": value}, "data", mediaType),
                             (None, ()), (value, mediaType))

    def test_textLabelledBinaryRead(self):
        """
        The label alone never leaves a file unread (review s9c: a .env
        labelled image/png went on unread): a text of any label is read as
        the text it is, in UTF-8 or Latin-1, written back re-encoded.
        """
        for value, mediaType in [
                ("data:image/png;base64," + b64(ENV), None),
                ("data:application/pdf;base64," + b64(ENV), None),
                (b64(ENV), "audio/wav"),
                (b64(ENV), "application/octet-stream"),
                (b64(ENV, "latin-1"), "video/mp4")]:
            node = {"data": value}
            self.assertEqual(readWrite(node, "data", ENV.replace(
                "AKIA", "[X]"), mediaType), ENV, (value, mediaType))
            self.assertIn(b"[X]", base64.b64decode(
                node["data"].partition(",")[2] or node["data"]))
        latin = "# cl\xe9\n" + ENV
        node = {"data": b64(latin, "latin-1")}
        self.assertEqual(readWrite(node, "data", latin.replace("AKIA", "[X]"),
                                   "text/plain"), latin)
        self.assertEqual(base64.b64decode(node["data"]),
                         latin.replace("AKIA", "[X]").encode("latin-1"))

    def test_bytesSearched(self):
        """
        Bytes that are no text (a document, an archive, bytes holding
        NULs) have no slot: the credentials in them are their views, which
        block the call, whatever their label.
        """
        key = "AKIAQYLPMN5HFIQZ7XYZ"
        for raw, mediaType in [
                (b"%PDF-1.7\n1 0 obj (" + key.encode() + b") endobj", None),
                (b"PK\x03\x04\x14\x00" + key.encode(), "application/zip"),
                (b"\x00\x01\x02" + key.encode() + b"\x00", "image/png"),
                (b"\x00\x01\x02\x03" * 2100 + key.encode("utf-16-le"),
                 None)]:
            self.assertEqual(
                decodedFile({"data": b64enc(raw)}, "data", mediaType),
                (None, (key,)), raw)
        self.assertEqual(decodedFile(
            {"data": "data:application/pdf;base64," + b64enc(
                b"%PDF-1.7\n")}, "data"), (None, ()))
        # A picture's bytes not labelled as one are searched too.
        self.assertEqual(
            decodedFile({"data": b64enc(PNG + b" " + key.encode())}, "data",
                        "application/octet-stream"), (None, (key,)))

    def test_percentEncodedDataURL(self):
        """
        A data URL that is no base64 is read as it is, and as a reader
        decodes its percent-encoding: a credential only that shows is a
        view (found by review: C{%41KIA...} passed).
        """
        key = "AKIAQYLPMN5HFIQZ7XYZ"
        value = "data:text/plain,key%3D%41" + key[1:]
        self.assertEqual(decodedFile({"url": value}, "url"),
                         (None, ("key=" + key,)))
        self.assertEqual(decodedFile({"url": "data:,plain"}, "url"),
                         (None, ()))


class BothReadingsRedactedTests(SynchronousTestCase):
    def test_stringAsWrittenStaysRedacted(self):
        """
        When the string as written held a credential too (its characters,
        which a lenient decoder reads as base64 of other bytes) and the
        decoded text is written back, the encoding of the redacted text
        does not give those characters back (found by review: the write
        of the decoded text came last and re-encoded them).
        """
        key = "AKIAQYLPMN5HFIQZ7XYZ"
        env = ENV + "x" * (-len(ENV) % 3)  # no padding before the key
        value = "data:text/plain;base64," + b64(env) + "//" + key
        node = {"file_data": value}
        container, slotKey = decodedSlot(node, "file_data")
        text = container[slotKey]
        self.assertIn(key, text)
        # The slots are written in order: the string as written, then what
        # it decodes to.
        node["file_data"] = value.replace(key, "[REDACTED:AWS_ACCESS_KEY_ID]")
        # (A marker that keeps the bytes after it where they were: they
        # encode to the same characters.)
        container[slotKey] = text.replace(key, "[" + "X" * 18 + "]", 1)
        self.assertNotIn(key, node["file_data"])
