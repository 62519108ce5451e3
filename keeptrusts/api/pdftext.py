# -*- test-case-name: tests.test_api_documents -*-
"""
The text a PDF shows: its streams decoded (Flate, ASCII85, ASCIIHex), the
strings its pages draw, literal or hexadecimal, and those strings as its
fonts' ToUnicode maps spell them (a font that writes glyph numbers, as
Chrome's and Word's do).  Every reading is one pass over its bytes.
"""

import base64
import binascii
import re

# The streams of a PDF read at most.
STREAMS = 10000

_STREAM = re.compile(rb"stream\r?\n")
_ENDSTREAM = b"endstream"
_DICTIONARY_BACK = 65536
_PICTURE = re.compile(rb"/Subtype\s*/Image\b")
_FILTERS = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[A-Za-z0-9]+)")
_NAME = re.compile(rb"/([A-Za-z0-9]+)")
# Where a PDF string may begin; inside a literal one, what matters.
_STRING_START = re.compile(rb"[(<]")
_HEX = re.compile(rb"<([0-9A-Fa-f\s]*)>")
_IN_LITERAL = re.compile(rb"\\(?:[0-7]{1,3}|\r\n|[\s\S])|[()]")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_BLANKS = re.compile(rb"\s+")
# A ToUnicode map's entries: one code, or a range of them.
_CODE = rb"<([0-9A-Fa-f]+)>"
_BFCHAR = re.compile(_CODE + rb"\s*" + _CODE)
_BFRANGE = re.compile(
    _CODE + rb"\s*" + _CODE + rb"\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])")
_CODE_ONLY = re.compile(_CODE)


def pdfTexts(raw, budget, inflate):
    """
    The texts the PDF C{raw} shows: its streams decoded (but pictures'),
    their strings and its own (each, all joined, and as its ToUnicode maps
    spell them).

    @param budget: the request's L{keeptrusts.api.documents.Budget}.
    @param inflate: C{(data, budget)} -> C{data} inflated within it.
    @return: C{(texts, streams)}: the texts (Latin-1 of the bytes, or the
        text a map spells), the streams decoded (which may hold documents
        of their own).
    """
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
        head = _dictionary(raw, match.start())
        if _PICTURE.search(head) is not None:
            continue  # a picture's pixels
        data = _decoded(raw[match.end():end], head, budget, inflate)
        if data is not None:
            contents.append(data)
    mapping = {}
    for content in contents[1:]:
        _mapped(content, mapping, budget)
    texts = [data.decode("latin-1") for data in contents[1:]]
    for content in contents:
        strings = _strings(content)
        if strings:
            texts.extend(_spelled(strings, mapping, budget))
    return texts, contents[1:]


def _dictionary(raw, end):
    """
    The dictionary that ends just before C{end} (a stream's keyword), its
    brackets matched: a stream's own, whatever dictionaries it nests.
    """
    close = len(raw[:end].rstrip())
    if raw[close - 2:close] != b">>":
        return b""
    limit = max(0, close - _DICTIONARY_BACK)
    depth, position = 0, close
    while True:
        closing = raw.rfind(b">>", limit, position)
        opening = raw.rfind(b"<<", limit, position)
        if max(closing, opening) < 0:
            return b""
        if closing > opening:
            depth += 1
            position = closing
            continue
        depth -= 1
        position = opening
        if depth == 0:
            return raw[opening:close]


def _decoded(data, head, budget, inflate):
    """
    A stream's C{data} through the filters its dictionary C{head} names;
    L{None} when one is none the gateway reads (a picture's).
    """
    found = _FILTERS.search(head)
    for name in _NAME.findall(found.group(1)) if found else ():
        try:
            if name in (b"FlateDecode", b"Fl"):
                data = inflate(data, budget)
            elif name in (b"ASCIIHexDecode", b"AHx"):
                digits = _BLANKS.sub(b"", data.partition(b">")[0])
                data = budget.spend(binascii.unhexlify(
                    digits + b"0" * (len(digits) % 2)))
            elif name in (b"ASCII85Decode", b"A85"):
                data = budget.spend(base64.a85decode(
                    _BLANKS.sub(b"", data.partition(b"~>")[0])))
            elif name in (b"RunLengthDecode", b"RL"):
                data = _runLength(data, budget)
            else:
                return None
        except (ValueError, binascii.Error):
            return None
    return data


def _runLength(data, budget):
    """
    C{data} through PDF's run-length filter: a length byte, then that many
    bytes plus one (below 128), or one byte repeated 257 less times.
    """
    out = []
    position = 0
    while position < len(data) and data[position] != 128:
        length = data[position]
        if length < 128:
            piece = data[position + 1:position + length + 2]
            position += length + 2
        else:
            piece = data[position + 1:position + 2] * (257 - length)
            position += 2
        out.append(budget.spend(piece))
    return b"".join(out)


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


def _mapped(content, mapping, budget):
    """
    Add what a ToUnicode CMap in C{content} maps, code to text, to
    C{mapping} (one for the whole PDF: at most L{_MAPPED} codes of at most
    4 bytes, each charged to C{budget}).
    """
    if b"begincmap" not in content:
        return
    for kind, entries in _sections(content):
        if kind == b"bfchar":
            pairs = [(_code(code), _utf16(text))
                     for code, text in _BFCHAR.findall(entries)]
        else:
            pairs = _ranges(entries)
        for code, text in pairs:
            if len(mapping) >= _MAPPED:
                return
            if 0 < len(code) <= 4:
                budget.charge(len(code) + len(text))
                mapping[code] = text


def _ranges(entries):
    """
    The codes and texts of a C{bfrange} section: each range to its first
    text and on (a code's last byte counting), or to an array of texts.
    """
    for low, high, rest in _BFRANGE.findall(entries):
        low, width = int(low, 16), len(_code(low))
        count = min(int(high, 16) - low + 1, _MAPPED)
        if rest.startswith(b"["):
            texts = [_utf16(t) for t in _CODE_ONLY.findall(rest)][:count]
        else:
            first = _code(rest[1:-1])
            start = int.from_bytes(first, "big")
            texts = (_utf16(b"%0*X" % (len(first) * 2, start + offset))
                     for offset in range(count))
        for offset, text in enumerate(texts):
            yield (low + offset).to_bytes(width, "big"), text


def _sections(content):
    """
    The kind and the entries of each C{bfchar} and C{bfrange} section of a
    CMap, in one pass: a section left open ends the reading.
    """
    position = 0
    while True:
        start = content.find(b"beginbf", position)
        if start < 0:
            return
        position = start + len(b"beginbf")
        for kind in (b"bfchar", b"bfrange"):
            if content.startswith(kind, start + len(b"begin")):
                end = content.find(b"end" + kind, start)
                if end < 0:
                    return
                yield kind, content[start + len(b"begin") + len(kind):end]
                position = end


# The codes one map gives at most (a font has at most 65,536 glyphs).
_MAPPED = 65536


def _code(digits):
    return binascii.unhexlify(digits + b"0" * (len(digits) % 2))


def _utf16(digits):
    return _code(digits).decode("utf-16-be", "replace")


def _spelled(strings, mapping, budget):
    """
    The readings of a content's C{strings}: each on its own line, all
    joined (a word a generator cut in two), and as the PDF's ToUnicode
    maps spell them, for each width of code they map (fonts that write
    glyph numbers, not characters), charged to C{budget}.
    """
    texts = [b"\n".join(strings).decode("latin-1"),
             b"".join(strings).decode("latin-1")]
    for width in sorted({len(code) for code in mapping}):
        spelled = "".join(
            mapping.get(string[i:i + width], "")
            for string in strings for i in range(0, len(string), width))
        budget.charge(len(spelled))
        texts.append(spelled)
    return texts
