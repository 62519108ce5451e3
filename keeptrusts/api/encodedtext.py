# -*- test-case-name: tests.test_api_encodedtext -*-
"""
Text sent as base64 where a surface carries files (a chat file's
C{file_data}, a Responses C{input_file}, Claude's base64 document source,
Gemini's C{inline_data}): the provider decodes it and the model reads the
text, so the policies read the text too, not only its base64, which hides
every credential.

The text is a slot like any other: a L{DecodedText} in the place of the
container.  Reading it gives the text; writing a changed text back encodes
it again, in the alphabet and encoding it came in, after the same data
URL head: a redacted C{.env} goes on as a valid file of the same type.
Base64 in a shape only a lenient decoder takes (stray characters, both
alphabets, padding inside), which decoders read differently, goes on as
canonical base64 of what the policies read, changed or not.  What other
readers may take the same bytes for (another encoding, NULs left out)
cannot be written back: a credential only such a reading shows blocks the
call, as one in a name does.
"""

import base64
import binascii
import codecs
import re
from urllib.parse import unquote

from keeptrusts.api.media import (
    BLOB, MEDIA, NUL_SPACED, blobCredentials, fileKind)
from keeptrusts.policy.matcher import marker
from keeptrusts.policy.scrub import credentialsFound, scrubbed

# A data URL's head, whatever its case (a lenient provider takes
# C{DATA:text/plain;BASE64,}), blanks before it and around C{base64} as
# WHATWG's parser takes them: its media type, the rest of its head.
# (Its parameters one by one: C{[^,]*;base64,} backtracked on a long string
# without a comma, its length squared.)
DATA_URL = re.compile(r"[ \t\r\n]*data:([^,;]*)(?:;[^,;]*)*?;[ \t]*base64"
                      r"[ \t]*,", re.IGNORECASE)
# What base64 of either alphabet may hold, line breaks and blanks aside.
_BLANKS = re.compile(r"[ \t\r\n]+")
_STANDARD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# Base64, line breaks and blanks aside: every decoder that takes it reads
# the same bytes.
_STRICT = re.compile(r"[A-Za-z0-9+/ \t\r\n]*(?:=[ \t\r\n]*){0,2}")
# What a lenient decoder (Node's Buffer, Python's default b64decode) skips:
# all but the two alphabets and padding.
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/\-_=]+")
_TO_STANDARD = str.maketrans("-_", "+/")
# The byte order marks a reader honours, the codec of what follows.
# (UTF-32's little-endian mark begins with UTF-16's: it comes first.)
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"))


class DecodedText:
    """
    The container of one decoded text's slot, C{(DecodedText, key)}: the
    text of C{node[key]}, base64 after C{head}.

    @ivar text: the text as decoded, what the slot reads.
    @ivar views: the texts other readers may decode the same data to (its
        bytes in another encoding, NULs left out, base64 read otherwise),
        once the credentials the slot's text holds are redacted.  None can
        be written back faithfully: a credential in one is a name of the
        request or answer, which blocks it.
    """

    __slots__ = ("node", "key", "head", "text", "views", "_bom", "_codec",
                 "_padded", "_written")

    def __init__(self, node, key, head, text, views, bom, codec, padded):
        self.node = node
        self.key = key
        self.head = head
        self.text = text
        self.views = views
        self._bom = bom
        self._codec = codec
        self._padded = padded
        self._written = node[key]

    def __getitem__(self, key):
        return self.text

    def __setitem__(self, key, text):
        # Written back only when a policy changed it: an unchanged file
        # goes on byte for byte.
        if text == self.text:
            return
        raw = self._bom + text.encode(self._codec, "replace")
        data = base64.b64encode(raw).decode("ascii")
        if not self._padded:
            data = data.rstrip("=")
        if self.node[self.key] != self._written:
            # The string as written held a credential too (characters a
            # lenient decoder reads as base64 of other bytes), redacted by
            # its own slot before: the encoding of the text may give them
            # back, where its bytes did not move.
            for secret, kind in credentialsFound(self._written):
                data = data.replace(secret, marker(kind))
        self.node[self.key] = self.head + data
        self.text = text


def decodedFile(node, key, mediaType=None, budget=None):
    """
    What C{node[key]} (a string) holds when it is base64 of a file: after
    a data URL head (its media type then says what it is claimed to be),
    or bare, of C{mediaType}.  Base64 is read as the most lenient decoder
    reads it (L{_decoded}); what the file is, its bytes decide with its
    label (L{fileKind}).  Text is what its byte order mark says; without
    one UTF-8, else Latin-1 (a credential is ASCII, and the bytes go back
    as they came), with the other readings of its bytes as its
    L{DecodedText.views}.

    @param budget: the L{keeptrusts.api.documents.Budget} of the request's
        files.
    @return: C{(slot, views)}: C{slot}, the C{(DecodedText, key)} slot of
        its text, or L{None} when it holds none (not base64, a picture or
        a sound, bytes that are no text: the string is read as it is, or
        not at all); C{views}, the texts that cannot be written back (its
        text's other readings; the credentials in bytes that are no text;
        a percent-encoded data URL decoded), to be read as names.
    """
    value = node[key]
    head = DATA_URL.match(value)
    if head is not None:
        mediaType = head.group(1)
        start = head.end()
    elif value.lstrip()[:5].lower() == "data:":
        # Percent-encoded: read as it is, and as a reader decodes it.
        data = value.partition(",")[2]
        decoded = unquote(data, "latin-1") if "%" in data else data
        return None, ((decoded,) if decoded != data else ())
    else:
        start = 0
        mediaType = mediaType or None  # bare, of no type said
    # A picture says so in its first bytes: its base64 is not decoded,
    # when it is base64 every decoder reads alike.
    if fileKind(mediaType, _lenient(_base64Head(value, start))) == MEDIA and (
            _STRICT.fullmatch(value, start) is not None):
        return None, ()
    raw, padded = _decoded(value[start:])
    if padded is None and raw:
        # A shape only a lenient decoder takes, which decoders read
        # differently: it goes on as canonical base64 of what the policies
        # read, changed or not.
        value = value[:start] + base64.b64encode(raw).decode("ascii")
        node[key] = value
        padded = True
    kind = fileKind(mediaType, raw)
    if kind == MEDIA:
        return None, ()
    if kind == BLOB:
        return None, tuple(blobCredentials(raw, budget))
    read = _read(raw) if raw else None
    if read is None:
        return None, ()
    text, views, bom, codec = read
    return (DecodedText(node, key, value[:start], text, views, bom, codec,
                        padded), key), views


def _base64Head(value, start):
    """
    The base64 of the first bytes of the data in C{value} from C{start}
    (enough to tell a picture), as L{_decoded} reads it.
    """
    return _NOT_BASE64.sub("", value[start:start + 704]).translate(
        _TO_STANDARD).split("=")[0]


def _decoded(data):
    """
    C{data} decoded as the most lenient decoder does: what is not of
    either alphabet left out, both alphabets at once, the pieces between
    padding each decoded on its own (base64 of pieces, put together), a
    last character that makes no byte ignored.

    @return: C{(bytes, padded)}: C{padded} says whether C{data} came as
        padded canonical base64 (True) or unpadded (False), which every
        decoder reads alike, and is written back so; L{None} for any other
        shape (the URL-safe alphabet among them: Python's default decoder
        skips its characters where Node's reads them).
    """
    data = _BLANKS.sub("", data)
    padded = None
    if len(data) % 4 != 1 and _STANDARD.fullmatch(data) is not None:
        padded = len(data) % 4 == 0
    data = _NOT_BASE64.sub("", data).translate(_TO_STANDARD)
    return b"".join(_lenient(piece) for piece in data.split("=")), padded


def _lenient(data):
    data = data[:len(data) - 1] if len(data) % 4 == 1 else data
    try:
        return binascii.a2b_base64(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover
        return b""


def _read(raw):
    """
    The text of C{raw}, and its other readings.

    @return: C{(text, views, bom, codec)}, or L{None} when it is no text.
    """
    text = None
    bom = b""
    for mark, codec in BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            try:
                text = raw[len(mark):].decode(codec)
            except UnicodeDecodeError:
                continue
            bom = mark
            break
    if text is None:
        try:
            text, codec = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    spaced = b"\0" in raw and NUL_SPACED.search(raw) is not None
    if text is None:
        text, codec = raw.decode("latin-1"), "latin-1"
    if not text:
        return None
    if codec != "latin-1" and not spaced:
        return text, (), bom, codec
    # The other readings of the bytes that go on once the text's
    # credentials are redacted: what they show besides, only they show.
    sent = bom + scrubbed(text).encode(codec, "replace")
    views = ()
    if codec == "latin-1":
        views += (sent.decode("utf-8", "replace"),)
    if spaced:
        views += (sent.replace(b"\0", b"").decode("latin-1"),)
    return text, views, bom, codec
