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

import html
import io
import re
import zipfile
import zlib

from keeptrusts.api.errors import validationError
from keeptrusts.api.pdftext import pdfTexts

# The bytes one request's files may decode to, in all.
INFLATED = 64 * 1024 * 1024
# The members of a zip, the streams of a PDF read at most; archives within
# archives read this deep.
MEMBERS = 1000
DEPTH = 2
# The entries a zip may list (a zip64 one lists 65,535).
ENTRIES = 10000

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
    XML tags: Word cuts a line into runs), gzip's members; what those hold
    in turn.  None for other bytes.

    @param budget: the L{Budget} of the request, or L{None} for one of
        this file's own.
    @return: a L{list} of texts (Latin-1 of the bytes, where they are not
        XML text).
    @raise GatewayError: 422 when the budget is spent.
    """
    budget = Budget() if budget is None else budget
    if b"%PDF-" in raw[:1024]:  # (what comes before it a reader skips)
        texts, streams = pdfTexts(raw, budget, _inflated)
        if depth < DEPTH:
            for data in streams:
                texts.extend(documentTexts(data, budget, depth + 1))
        return texts
    if raw.startswith(b"\x1f\x8b"):
        return _within(_gunzipped(raw, budget), budget, depth)
    if raw.startswith(b"PK") or b"PK\x05\x06" in raw[-66000:]:
        return _zipTexts(raw, budget, depth)
    return []


def _within(data, budget, depth):
    """
    C{data} as text, and what it holds if it is a document itself.
    """
    texts = [data.decode("latin-1")] if data else []
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


def _gunzipped(raw, budget):
    # A gzip file may hold several members, one after another: fed in
    # pieces, so that what follows a member is not copied for each.
    out = []
    view = memoryview(raw)
    offset = members = 0
    while raw[offset:offset + 2] == b"\x1f\x8b" and members < MEMBERS:
        members += 1
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            while not inflater.eof and offset < len(raw):
                data = view[offset:offset + _PIECE]
                offset += len(data)
                while data and not inflater.eof:
                    out.append(budget.spend(inflater.decompress(
                        data, max(budget.left, 0) + 1)))
                    data = inflater.unconsumed_tail
        except zlib.error:
            break
        offset -= len(inflater.unused_data)
    return b"".join(out)


_PIECE = 65536


def _zipTexts(raw, budget, depth):
    end = raw.rfind(b"PK\x05\x06", max(0, len(raw) - 66000))
    if end >= 0 and int.from_bytes(raw[end + 10:end + 12], "little") > (
            ENTRIES):
        # Python parses every entry before any is read.
        raise validationError("a zip of the request holds more than %d "
                              "entries, which the gateway does not read"
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
        if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
            # XML: its text between the tags, and its references decoded.
            text = _TAG.sub(b"", _BETWEEN_TAGS.sub(b"><", data))
            texts.append(html.unescape(text.decode("utf-8", "replace")))
    return texts
