# -*- test-case-name: tests.test_api_documents -*-
"""
The text a document's bytes hold where no byte of it shows: a PDF's
encoded streams (its pages' text, as its fonts' ToUnicode maps spell it),
the members of a zip (Word, Excel, PowerPoint, OpenDocument files,
archives), gzip; an archive or a document inside one.  A provider extracts
that text for its model; the gateway decodes it to search it for
credentials (L{keeptrusts.api.media.blobCredentials}).  What it holds
cannot be rewritten in place: a credential found there blocks the call.

Every reading is one pass over its bytes, and what one request's files
decode to is bounded (a L{Budget}): past it, the request is refused.
"""

import base64
import binascii
import html
import io
import re
import zipfile
import zlib

from keeptrusts.api.errors import validationError

# The bytes one request's files may decode to, in all.
INFLATED = 64 * 1024 * 1024
# The members of a zip, the streams of a PDF read at most; archives within
# archives read this deep.
MEMBERS = 1000
STREAMS = 10000
DEPTH = 2

_STREAM = re.compile(rb"stream\r?\n")
_ENDSTREAM = b"endstream"
_DICTIONARY_BACK = 2048
_FILTERS = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[A-Za-z0-9]+)")
_NAME = re.compile(rb"/([A-Za-z0-9]+)")
# Where a PDF string may begin; inside a literal one, what matters.
_STRING_START = re.compile(rb"[(<]")
_HEX = re.compile(rb"<([0-9A-Fa-f\s]*)>")
_IN_LITERAL = re.compile(rb"\\(?:[0-7]{1,3}|\r\n|[\s\S])|[()]")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_BLANKS = re.compile(rb"\s+")
# A ToUnicode map's entries: one code, or a range of them.
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_BFRANGE = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_SECTION = re.compile(rb"begin(bfchar|bfrange)(.*?)end\1", re.DOTALL)
_TAG = re.compile(rb"<[^<>]*>")
_BETWEEN_TAGS = re.compile(rb">\s+<")


class Budget:
    """
    What the files of one request may still decode to.
    """

    def __init__(self, left=None):
        self.left = INFLATED if left is None else left

    def spend(self, data):
        self.left -= len(data)
        if self.left < 0:
            raise validationError(
                "the request's files decode to more than %d MB, which the "
                "gateway does not read" % (INFLATED // 2**20,))
        return data


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
        return _pdfTexts(raw, budget, depth)
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
    # A gzip file may hold several members, one after another.
    out = []
    while raw[:2] == b"\x1f\x8b" and len(out) < MEMBERS:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            out.append(budget.spend(inflater.decompress(
                raw, max(budget.left, 0) + 1)))
        except zlib.error:
            break
        raw = inflater.unused_data
    return b"".join(out)


def _pdfTexts(raw, budget, depth):
    contents = [raw]
    position = streams = 0
    for match in _STREAM.finditer(raw):
        if match.start() < position:
            continue  # inside the stream before
        streams += 1
        if streams > STREAMS:
            break
        end = raw.find(_ENDSTREAM, match.end())
        end = len(raw) if end < 0 else end
        position = end + len(_ENDSTREAM)  # (which holds "stream" too)
        head = raw[max(0, match.start() - _DICTIONARY_BACK):match.start()]
        head = head[head.rfind(b"<<"):]
        if b"/Image" in head:
            continue  # a picture's pixels
        data = _decoded(raw[match.end():end], head, budget)
        if data is not None:
            contents.append(data)
    maps = [cmap for cmap in map(_toUnicode, contents[1:]) if cmap]
    texts = [data.decode("latin-1") for data in contents[1:]]
    for content in contents:
        strings = _strings(content)
        if strings:
            texts.extend(_spelled(strings, maps))
    if depth < DEPTH:
        for data in contents[1:]:
            texts.extend(documentTexts(data, budget, depth + 1))
    return texts


def _decoded(data, head, budget):
    """
    A stream's C{data} through the filters its dictionary C{head} names;
    L{None} when one is none the gateway reads (a picture's).
    """
    found = _FILTERS.search(head)
    for name in _NAME.findall(found.group(1)) if found else ():
        try:
            if name in (b"FlateDecode", b"Fl"):
                data = _inflated(data, budget)
            elif name in (b"ASCIIHexDecode", b"AHx"):
                digits = _BLANKS.sub(b"", data.partition(b">")[0])
                data = budget.spend(binascii.unhexlify(
                    digits + b"0" * (len(digits) % 2)))
            elif name in (b"ASCII85Decode", b"A85"):
                data = budget.spend(base64.a85decode(
                    _BLANKS.sub(b"", data.partition(b"~>")[0])))
            else:
                return None
        except (ValueError, binascii.Error):
            return None
    return data


def _strings(content):
    """
    The strings of PDF C{content}, literal and hexadecimal, in order, in
    one pass: a literal string left open ends the reading.
    """
    found = []
    position = 0
    while True:
        start = _STRING_START.search(content, position)
        if start is None:
            return found
        at = start.start()
        if content[at:at + 1] == b"(":
            string, position = _literal(content, at)
            if string is None:
                return found
            if string[:2] == b"\xfe\xff":  # a text string in UTF-16
                string = string[2:].decode("utf-16-be", "replace").encode(
                    "latin-1", "replace")
            found.append(string)
        elif content[at + 1:at + 2] == b"<":
            position = at + 2  # a dictionary
        else:
            hexadecimal = _HEX.match(content, at)
            if hexadecimal is None:
                position = at + 1
                continue
            digits = _BLANKS.sub(b"", hexadecimal.group(1))
            found.append(binascii.unhexlify(digits + b"0" * (
                len(digits) % 2)))
            position = hexadecimal.end()


def _literal(content, at):
    """
    The literal string at C{at} (its parentheses balanced, its escapes
    decoded) and where it ends; C{(None, None)} if it never closes.
    """
    depth = 0
    pieces = []
    last = at + 1
    for token in _IN_LITERAL.finditer(content, at + 1):
        pieces.append(content[last:token.start()])
        last = token.end()
        text = token.group(0)
        if text == b")":
            if depth == 0:
                return b"".join(pieces), last
            depth -= 1
        elif text == b"(":
            depth += 1
        else:
            text = _unescaped(text[1:])
        pieces.append(text)
    return None, None


def _unescaped(escaped):
    if b"0" <= escaped[:1] <= b"7":
        return bytes([int(escaped, 8) & 0xFF])
    if escaped in (b"\n", b"\r", b"\r\n"):
        return b""  # a line continued
    return _ESCAPES.get(escaped, escaped)


def _toUnicode(content):
    """
    The map a ToUnicode CMap in C{content} gives, code to text; L{None}
    if it is none.
    """
    if b"begincmap" not in content:
        return None
    mapping = {}
    for kind, entries in _SECTION.findall(content):
        if kind == b"bfchar":
            for code, text in _BFCHAR.findall(entries):
                mapping[_code(code)] = _utf16(text)
            continue
        for low, high, first in _BFRANGE.findall(entries):
            width, digits = len(_code(low)), len(first)
            start = int(first, 16)
            for offset in range(min(int(high, 16) - int(low, 16) + 1,
                                    _MAPPED - len(mapping))):
                mapping[(int(low, 16) + offset).to_bytes(width, "big")] = (
                    _utf16(b"%0*X" % (digits, start + offset)))
        if len(mapping) >= _MAPPED:
            break
    return mapping or None


# The codes one map gives at most (a font has at most 65,536 glyphs).
_MAPPED = 65536


def _code(digits):
    return binascii.unhexlify(digits + b"0" * (len(digits) % 2))


def _utf16(digits):
    return _code(digits).decode("utf-16-be", "replace")


def _spelled(strings, maps):
    """
    The readings of a content's C{strings}: each on its own line, all
    joined (a word a generator cut in two), and as each ToUnicode map
    spells them (fonts that write glyph numbers, not characters).
    """
    texts = [b"\n".join(strings).decode("latin-1"),
             b"".join(strings).decode("latin-1")]
    for mapping in maps:
        width = len(next(iter(mapping)))
        texts.append("".join(
            mapping.get(string[i:i + width], "")
            for string in strings for i in range(0, len(string), width)))
    return texts


def _zipTexts(raw, budget, depth):
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
        if data[:1] == b"<":
            # XML: its text between the tags, and its references decoded.
            text = _TAG.sub(b"", _BETWEEN_TAGS.sub(b"><", data))
            texts.append(html.unescape(text.decode("utf-8", "replace")))
    return texts
