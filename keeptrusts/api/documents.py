# -*- test-case-name: tests.test_api_documents -*-
"""
The text a document's bytes hold where no byte of it shows: a PDF's
compressed streams (its pages' text, its objects), the members of a zip
(Word, Excel, PowerPoint, OpenDocument files, archives), gzip.  A provider
extracts that text for its model; the gateway inflates it to search it for
credentials (L{keeptrusts.api.media.blobCredentials}).  What it holds
cannot be rewritten in place: a credential found there blocks the call.

Inflating is bounded (L{INFLATED}, shared by all of one file's parts): a
file that inflates to more (a zip bomb) is read up to it.
"""

import io
import re
import zipfile
import zlib

# The bytes one file may inflate to, in all.
INFLATED = 64 * 1024 * 1024
# The members of a zip read at most.
MEMBERS = 1000

# A PDF stream's keyword, and the dictionary before it (up to 2 KB back).
_STREAM = re.compile(rb"stream\r?\n")
_ENDSTREAM = b"endstream"
_DICTIONARY_BACK = 2048
# A PDF's strings: literal (balanced parentheses, escapes) or hexadecimal;
# a text array (TJ) whose strings are one word apart from kerning.
_LITERAL = re.compile(rb"\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\)", re.DOTALL)
_HEX = re.compile(rb"<([0-9A-Fa-f\s]+)>")
_ARRAY = re.compile(rb"\[([^\[\]]*)\]\s*TJ")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|[\s\S])")
_STRING = re.compile(_LITERAL.pattern + rb"|" + _HEX.pattern, re.DOTALL)
_TAG = re.compile(rb"<[^<>]*>")


def documentTexts(raw):
    """
    The texts the document C{raw} holds compressed: a PDF's streams (the
    streams inflated, and their strings, a text array's pieces joined), a
    zip's members (and their text without XML tags: a Word file cuts a
    line into runs), gzip's content; none for other bytes.

    @return: a L{list} of texts (Latin-1 of the bytes they are).
    """
    budget = _Budget()
    if b"%PDF-" in raw[:1024]:  # (what comes before it a reader skips)
        found = _pdfTexts(raw, budget)
    elif raw.startswith(b"PK\x03\x04"):
        found = _zipTexts(raw, budget)
    elif raw.startswith(b"\x1f\x8b"):
        found = [_inflated(raw, budget, zlib.MAX_WBITS | 16)]
    else:
        return []
    return [data.decode("latin-1") for data in found if data]


class _Budget:
    def __init__(self):
        self.left = INFLATED


def _inflated(data, budget, wbits=zlib.MAX_WBITS):
    """
    C{data} inflated, at most what is left of C{budget}; as much as
    inflates when it is cut or corrupt.
    """
    if budget.left <= 0:
        return b""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, budget.left)
    except zlib.error:
        out = b""
    budget.left -= len(out)
    return out


def _pdfTexts(raw, budget):
    texts = [_strings(raw)]
    for match in _STREAM.finditer(raw):
        head = raw[max(0, match.start() - _DICTIONARY_BACK):match.start()]
        head = head[head.rfind(b"<<"):]
        if b"/FlateDecode" not in head or b"/Image" in head:
            continue  # not compressed, read as it is; a picture's pixels
        end = raw.find(_ENDSTREAM, match.end())
        data = _inflated(raw[match.end():end if end >= 0 else len(raw)],
                         budget)
        if data:
            texts.extend((data, _strings(data)))
    return texts


def _strings(content):
    """
    The strings of PDF C{content}, each on its own line; a text array's
    joined into one (its numbers are kerning, not spaces).
    """
    joined = [b"".join(_string(piece) for piece in _STRING.finditer(
        array.group(1))) for array in _ARRAY.finditer(content)]
    single = [_string(piece) for piece in _STRING.finditer(content)]
    return b"\n".join(joined + single)


def _string(match):
    literal = match.group(0)
    if literal.startswith(b"<"):
        digits = re.sub(rb"\s", b"", match.group(1))
        data = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())
    else:
        data = _ESCAPE.sub(_unescaped, literal[1:-1])
    if data.startswith(b"\xfe\xff"):  # UTF-16BE, as PDF text strings may be
        data = data[2:].decode("utf-16-be", "replace").encode(
            "latin-1", "replace")
    return data


def _unescaped(match):
    escaped = match.group(1)
    if b"0" <= escaped[:1] <= b"7":
        return bytes([int(escaped, 8) & 0xFF])
    if escaped in (b"\n", b"\r", b"\r\n"):
        return b""  # a line continued
    return _ESCAPES.get(escaped, escaped)


def _zipTexts(raw, budget):
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()[:MEMBERS]
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):
        return []
    texts = []
    for member in members:
        if budget.left <= 0:
            break
        try:
            with archive.open(member) as opened:
                data = opened.read(budget.left)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError,
                NotImplementedError, RuntimeError, zlib.error):
            continue  # encrypted, or a method Python does not read
        budget.left -= len(data)
        texts.extend((data, _TAG.sub(b"", data)))
    return texts
