# -*- test-case-name: tests.test_api_documents -*-
"""
The text a document's bytes hold where no byte of it shows: a PDF's
encoded streams (L{keeptrusts.api.pdftext}), the members of a zip (Word, Excel, PowerPoint, OpenDocument files,
archives), gzip; an archive or a document inside one.  A provider extracts
that text for its model; the gateway decodes it to search it for
credentials (L{keeptrusts.api.media.blobCredentials}).  What it holds
cannot be rewritten in place: a credential found there blocks the call.

Every reading is one pass over its bytes, and what one request's files
decode to is bounded (a L{Budget}): past it, the request is refused.
"""

import bz2
import html
import io
import lzma
import re
import zipfile
import zlib

from keeptrusts.api.errors import validationError
from keeptrusts.api.pdftext import pdfTexts

# The bytes one request's files may decode to, in all (a 12 MB
# spreadsheet's parts are 60 MB).
INFLATED = 128 * 1024 * 1024
# The members of a zip, the streams of a PDF read at most; archives within
# archives read this deep.
MEMBERS = 1000
DEPTH = 2
# The entries a zip may list, fewer than (a zip64 one lists 65,535).
ENTRIES = 65535

_TAG = re.compile(rb"<[^<>]*>")
_BETWEEN_TAGS = re.compile(rb">\s+<")


class Budget:
    """
    What the files of one request may still decode to.
    """

    def __init__(self, left=None):
        self.left = INFLATED if left is None else left

    def spend(self, data):
        """
        Charge C{data}'s length.

        @return: C{data}.
        """
        self.charge(len(data))
        return data

    def charge(self, size):
        self.left -= size
        if self.left < 0:
            raise validationError(
                "the request's files decode to more than %d MB, which the "
                "gateway does not read" % (INFLATED // 2**20,))


def documentTexts(raw, budget=None, depth=0):
    """
    The texts the document C{raw} holds encoded: a PDF's streams decoded
    (and their strings: each on its own, all joined, and as the PDF's
    ToUnicode maps spell them), a zip's members (and their text without
    XML tags: Word cuts a line into runs), gzip's, bzip2's and xz's
    members; what those hold in turn.  None for other bytes.

    @param budget: the L{Budget} of the request, or L{None} for one of
        this file's own.
    @return: a L{list} of texts (Latin-1 of the bytes, where they are not
        XML text).
    @raise GatewayError: 422 when the budget is spent, or for an archive
        the gateway cannot open (7z, RAR, Zstandard).
    """
    budget = Budget() if budget is None else budget
    if b"%PDF-" in raw[:1024]:  # (what comes before it a reader skips)
        texts, streams = pdfTexts(raw, budget, _inflated)
        if depth < DEPTH:
            for data in streams:
                texts.extend(documentTexts(data, budget, depth + 1))
        return texts
    for magic, decompressor in _COMPRESSED:
        if raw.startswith(magic):
            return _within(_decompressed(raw, budget, decompressor), budget,
                           depth)
    if raw.startswith(_UNREAD):
        raise validationError("a file of the request is a 7z, RAR or "
                              "Zstandard archive, which the gateway does "
                              "not read: send it as zip or tar.gz")
    if raw.startswith(b"PK") or b"PK\x05\x06" in raw[-66000:]:
        return _zipTexts(raw, budget, depth)
    return []


def bytesReadings(data):
    """
    C{data} as text however its bytes are: Latin-1 (every byte a
    character, ASCII where it is), and without its NULs (UTF-16 or UTF-32
    of ASCII, as Windows writes a text).
    """
    texts = [data.decode("latin-1")] if data else []
    if b"\0" in data:
        texts.append(data.replace(b"\0", b"").decode("latin-1"))
    return texts


def _within(data, budget, depth):
    """
    C{data} as text (L{bytesReadings}), and what it holds if it is a
    document itself.
    """
    texts = bytesReadings(data)
    if depth < DEPTH:
        texts.extend(documentTexts(data, budget, depth + 1))
    return texts


def _inflated(data, budget, wbits=zlib.MAX_WBITS):
    """
    C{data} inflated within C{budget}; as much as inflates when it is cut
    or corrupt.
    """
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, max(budget.left, 0) + 1)
    except zlib.error:
        out = b""
    return budget.spend(out)


def _decompressed(raw, budget, decompressor):
    """
    The members of a gzip, bzip2 or xz file, one after another, through
    new C{decompressor}s, within C{budget}: fed in pieces, so that what
    follows a member is not copied for each.
    """
    out = []
    view = memoryview(raw)
    offset = members = 0
    magic = raw[:3]
    while raw[offset:offset + 3] == magic and members < MEMBERS:
        members += 1
        engine = decompressor()
        try:
            while not engine.eof and offset < len(raw):
                data = view[offset:offset + _PIECE]
                offset += len(data)
                while not engine.eof:
                    out.append(budget.spend(engine.decompress(
                        data, max(budget.left, 0) + 1)))
                    # What is left of the piece: zlib hands it back, the
                    # others keep it until asked with nothing more.
                    data = getattr(engine, "unconsumed_tail", b"")
                    if not data and getattr(engine, "needs_input", True):
                        break
        except (zlib.error, OSError, EOFError, lzma.LZMAError):
            break
        offset -= len(engine.unused_data)
    return b"".join(out)


_PIECE = 65536
# Compressed files by their magic: their members' decompressors.
_COMPRESSED = (
    (b"\x1f\x8b", lambda: zlib.decompressobj(zlib.MAX_WBITS | 16)),
    (b"BZh", bz2.BZ2Decompressor), (b"\xfd7zXZ\x00", lzma.LZMADecompressor))
# Archives Python cannot open: 7z, RAR, Zstandard.
_UNREAD = (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x28\xb5\x2f\xfd")


def _zipTexts(raw, budget, depth):
    end = raw.rfind(b"PK\x05\x06", max(0, len(raw) - 66000))
    if end >= 0 and int.from_bytes(raw[end + 10:end + 12], "little") >= (
            ENTRIES):
        # Python parses every entry before any is read.
        raise validationError("a zip of the request lists %d entries or "
                              "more, which the gateway does not read"
                              % (ENTRIES,))
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()[:MEMBERS]
    except Exception:  # what is no zip, or one Python cannot open
        return []
    texts = []
    for member in members:
        try:
            with archive.open(member) as opened:
                data = opened.read(max(budget.left, 0) + 1)
        except Exception:
            continue  # encrypted, corrupt, a method Python does not read
        budget.spend(data)
        texts.extend(_within(data, budget, depth))
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # XML in UTF-16
            data = data.decode("utf-16", "replace").encode("utf-8")
        if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
            # XML: its text between the tags, and its references decoded.
            text = _TAG.sub(b"", _BETWEEN_TAGS.sub(b"><", data))
            texts.append(html.unescape(text.decode("utf-8", "replace")))
    return texts
