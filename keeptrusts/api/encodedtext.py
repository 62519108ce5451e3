# -*- test-case-name: tests.test_api_encodedtext -*-
"""
Text sent as base64 where a surface carries files (a chat file's
C{file_data}, a Responses C{input_file}, Claude's base64 document source,
Gemini's C{inline_data}): the provider decodes it and the model reads the
text, so the policies read the text too, not only its base64, which hides
every credential.

The text is a slot like any other: a L{DecodedText} in the place of the
container.  Reading it gives the text; writing a changed text back encodes
it again, in the alphabet it came in, after the same data URL head: a
redacted C{.env} goes on as a valid file of the same type.
"""

import base64
import binascii
import re

# A data URL's head, whatever its case (a lenient provider takes
# C{DATA:text/plain;BASE64,}): its media type, the rest of its head.
_DATA_URL = re.compile(r"data:([^,;]*)[^,]*;base64,", re.IGNORECASE)
# What base64 of either alphabet may hold, line breaks and blanks aside.
_BLANKS = re.compile(r"[ \t\r\n]+")
_STANDARD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE = re.compile(r"[A-Za-z0-9\-_]*={0,2}")
# Application types that are text: a subtype, or a structured syntax
# suffix (application/ld+json), or one of these with C{x-} before it.
_TEXT_SUBTYPES = frozenset([
    "json", "xml", "yaml", "toml", "javascript", "ecmascript", "sh",
    "shellscript", "python", "sql", "csv", "php", "httpd-php", "perl",
    "ruby", "typescript", "graphql", "www-form-urlencoded", "tex", "latex",
    "rtf", "ndjson", "jsonl", "jsonlines", "env", "diff", "patch"])


class DecodedText:
    """
    The container of one decoded text's slot, C{(DecodedText, key)}: the
    text of C{node[key]}, base64 after C{head}.

    @ivar text: the text as decoded, what the slot reads.
    """

    __slots__ = ("node", "key", "head", "text", "_codec", "_urlSafe",
                 "_padded")

    def __init__(self, node, key, head, text, codec, urlSafe, padded):
        self.node = node
        self.key = key
        self.head = head
        self.text = text
        self._codec = codec
        self._urlSafe = urlSafe
        self._padded = padded

    def __getitem__(self, key):
        return self.text

    def __setitem__(self, key, text):
        # Written back only when a policy changed it: an unchanged file
        # goes on byte for byte.
        if text == self.text:
            return
        raw = text.encode(self._codec, "replace")
        data = (base64.urlsafe_b64encode(raw) if self._urlSafe
                else base64.b64encode(raw)).decode("ascii")
        self.node[self.key] = self.head + (
            data if self._padded else data.rstrip("="))
        self.text = text


def decodedSlot(node, key, mediaType=None):
    """
    The slot of the text that C{node[key]} (a string) decodes to, when it
    is base64 of text: after a data URL head (its media type then says
    what it is), or bare, of C{mediaType}.  Text is UTF-8; for a media type
    that is text, any bytes (read as Latin-1: a credential is ASCII, and
    the bytes go back as they came).

    @return: a C{(DecodedText, key)} slot, or L{None} (not base64, a
        binary type, bytes that are no text): the string is read as it is,
        and only so.
    """
    value = node[key]
    head = _DATA_URL.match(value)
    if head is not None:
        mediaType = head.group(1)
        start = head.end()
    elif value[:5].lower() == "data:":
        return None  # percent-encoded, read as it is
    else:
        start = 0
        mediaType = mediaType or None  # bare, of no type said
    if binaryMedia(mediaType):
        return None
    raw, urlSafe, padded = _decoded(value[start:])
    if raw is None:
        return None
    codec = "utf-8"
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        if not textMedia(mediaType):
            return None
        codec = "latin-1"
        text = raw.decode(codec)
    if not text:
        return None
    return (DecodedText(node, key, value[:start], text, codec, urlSafe,
                        padded), key)


def _decoded(data):
    """
    @return: C{(bytes, urlSafe, padded)}, or C{(None, None, None)} when
        C{data} is no base64 that a decoder would take whole.
    """
    data = _BLANKS.sub("", data)
    if not data or len(data) % 4 == 1:
        return None, None, None
    urlSafe = _STANDARD.fullmatch(data) is None
    if urlSafe and _URL_SAFE.fullmatch(data) is None:
        return None, None, None
    # Written back unpadded only if it came so (a strict decoder wants
    # padding where it came with it).
    padded = len(data) % 4 == 0
    data += "=" * (-len(data) % 4)
    try:
        if urlSafe:
            return base64.urlsafe_b64decode(data), True, padded
        return base64.b64decode(data, validate=True), False, padded
    except (binascii.Error, ValueError):
        return None, None, None


_BINARY_MEDIA = ("image/", "audio/", "video/")
_BINARY_TYPES = frozenset(["application/pdf", "application/octet-stream"])


def binaryMedia(mediaType):
    """
    Whether C{mediaType} names media no one reads as text (images, audio,
    video, PDF, bytes).
    """
    if not isinstance(mediaType, str):
        return False
    mediaType = mediaType.strip().lower()
    return mediaType.startswith(_BINARY_MEDIA) or mediaType in _BINARY_TYPES


def textMedia(mediaType):
    """
    Whether C{mediaType} names text: C{text/*}, none in a data URL (which
    is C{text/plain}), or an application type that is text (JSON, YAML,
    XML, shell, ...).
    """
    if not isinstance(mediaType, str):
        return False
    mediaType = mediaType.partition(";")[0].strip().lower()
    if mediaType in ("", "text") or mediaType.startswith("text/"):
        return True
    kind, _, subtype = mediaType.partition("/")
    if kind != "application":
        return False
    subtype = subtype.rpartition("+")[2]
    return subtype in _TEXT_SUBTYPES or (
        subtype.startswith("x-") and subtype[2:] in _TEXT_SUBTYPES)
