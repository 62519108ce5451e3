# -*- test-case-name: tests.test_proxy_textbody -*-
"""
The ways the bytes of a text in a request body (a multipart part, a text
body) may be read: the one the gateway writes it back in, and the others a
server may read it in whatever its charset says (UTF-8, Latin-1, UTF-16
without its byte order mark).  Whether a text is a file's bytes is decided
by its label and its first bytes (L{keeptrusts.api.media}), not by whether
it decodes: a key in a UTF-16 or a cp1252 file is read all the same.
"""

import codecs

import attr

from keeptrusts.api.errors import validationError
from keeptrusts.api.encodedtext import BYTE_ORDER_MARKS
from keeptrusts.policy.scrub import credentialTypes, scrubbed

# What a charset must write, with replacements, to write a redacted text:
# some codecs Python knows are no charsets (idna refuses "replace").
_PROBE = "[REDACTED:aws_access_key] \u20ac\U0001f600\ufffd" * 3
_CODEC_ERRORS = (LookupError, UnicodeError, ValueError, TypeError)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Reading:
    """
    A text as the gateway reads it and writes it back.

    @ivar text: what the bytes read as (without their byte order mark).
    @ivar codec: the codec they are read and written in.
    @ivar errors: how bytes the codec does not read are read and written
        (C{surrogateescape}: UTF-8's, byte for byte).
    @ivar bom: the byte order mark they came with.
    """

    text: str
    codec: str
    errors: str
    bom: bytes = b""

    def encode(self, text):
        return self.bom + text.encode(self.codec, self.errors)


def writtenReading(raw, charset):
    """
    The L{Reading} C{raw} is written back in: its byte order mark's (UTF-8,
    UTF-16, UTF-32); else its C{charset}'s if it reads it and writes it back
    byte for byte; else UTF-8, what does not decode read as escaped bytes.
    """
    for bom, codec in BYTE_ORDER_MARKS:
        if raw.startswith(bom):
            errors = "surrogateescape" if codec == "utf-8" else "strict"
            try:
                return Reading(raw[len(bom):].decode(codec, errors), codec,
                               errors, bom)
            except UnicodeDecodeError:
                continue
    # Bytes that begin as a mark does and are no such text (a file that
    # only looks so, a truncated one) are read as bytes: their other
    # readings (L{views}) are checked all the same.
    reading = _declared(raw, charset)
    if reading is None:
        reading = Reading(raw.decode("utf-8", "surrogateescape"), "utf-8",
                          "surrogateescape")
    return reading


def charsetCodec(charset):
    """
    The codec of C{charset} (a C{charset} parameter, or L{None}): Python's
    own name for it, or for a name browsers give it (WHATWG's labels:
    C{windows-874}, C{iso-8859-8-i}, C{unicode-1-1-utf-8}, C{ucs-2}).

    @raise GatewayError: 422 for a charset the gateway cannot read
        (IBM1047), or one that is no text's (base64): a server that can
        would read what the gateway did not.
    """
    if not charset:
        return charset
    codec = _ALIASES.get(charset.strip().lower(), charset)
    try:
        b"\0\0\0\0".decode(codec, "ignore")  # a codec of text
    except LookupError:
        raise validationError("a text in the request body declares a "
                              "charset the gateway does not know: send it "
                              "in UTF-8")
    except (UnicodeError, ValueError):  # idna takes no "ignore"
        pass
    return codec


# Charsets browsers name otherwise than Python (WHATWG's Encoding Standard),
# and MySQL's name for UTF-8.
_ALIASES = {
    "windows-874": "cp874", "dos-874": "cp874",
    "iso-8859-8-i": "iso-8859-8", "csiso88598i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6", "iso-8859-6-e": "iso-8859-6",
    "iso-8859-8-e": "iso-8859-8", "unicode-1-1-utf-8": "utf-8",
    "unicode11utf8": "utf-8", "unicode20utf8": "utf-8",
    "x-unicode20utf8": "utf-8", "utf8mb4": "utf-8", "utf8mb3": "utf-8",
    "ucs-2": "utf-16-le", "unicode": "utf-16-le", "csunicode": "utf-16-le",
    "iso-10646-ucs-2": "utf-16-le", "unicodefeff": "utf-16-le",
    "unicodefffe": "utf-16-be", "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-ukrainian": "mac-cyrillic", "x-mac-roman": "mac-roman"}


def _declared(raw, charset):
    if not charset:
        return None
    try:
        if codecs.lookup(charset).name == "utf-8":
            return None
        text = raw.decode(charset)
        if text.encode(charset) != raw:
            return None
        _PROBE.encode(charset, "replace")
    except _CODEC_ERRORS:
        return None
    return Reading(text, charset, "replace")


def views(raw, charset):
    """
    The texts C{raw} may be read as, each once: UTF-8, Latin-1, its byte
    order mark's, its C{charset}'s, and Latin-1 without its NULs (UTF-16 or
    UTF-32 of ASCII without a byte order mark).
    """
    found = [raw.decode("utf-8", "surrogateescape"), raw.decode("latin-1")]
    if b"\x00" in raw:
        found.append(raw.replace(b"\x00", b"").decode("latin-1"))
    declared = [c for bom, c in BYTE_ORDER_MARKS if raw.startswith(bom)]
    for codec in declared + [charset] if charset else declared:
        try:
            found.append(raw.decode(codec))
        except _CODEC_ERRORS:
            pass
    return list(dict.fromkeys(found))


def unwrittenCredentials(raw, charset, reading):
    """
    The views of C{raw} (L{views}) that show a credential of the catalogue
    once C{reading}, the view it is written back in, is redacted: what the
    gateway cannot rewrite faithfully, to be read as names (a credential
    there blocks the request).
    """
    if not [view for view in views(raw, charset)
            if view != reading.text and credentialTypes(view)]:
        return []
    cleaned = reading.encode(scrubbed(reading.text))
    return [view for view in views(cleaned, charset)
            if credentialTypes(view)]
