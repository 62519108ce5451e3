# -*- test-case-name: tests.test_api_media -*-
"""
What a file is, whatever its sender calls it.  Its label (a media type)
says what is claimed; its first bytes say what it is.  A file is one of:

  - L{MEDIA}: a picture or a sound, labelled so, bearing its format's
    signature, its bytes after it no text's.  A model sees or hears it and reads no text in it: it is
    left alone (reading a large image on every turn of a chat would cost
    more than the call).
  - L{BLOB}: bytes that are no text: a document, an archive, a program
    (their signatures), or bytes holding NULs as no text does.  They cannot
    be redacted in place; their bytes are searched for credentials in the
    ways a reader could take them (L{blobCredentials}), and one found
    blocks the call, as one in a name does.
  - L{TEXT}: the rest, read and redacted as text: a C{.env} labelled
    C{image/png}, JSON lines sent as C{application/octet-stream}.

The label alone never makes a file unread: a text labelled as an image is
read as the text it is (the provider may go by its file name).
"""

import codecs
import hashlib
import re

from keeptrusts.api.documents import bytesReadings, documentTexts
from keeptrusts.policy.scrub import credentialsFound

TEXT, MEDIA, BLOB = "text", "media", "blob"

# How much of a file's head says what it is.
HEAD = 8192

# Labels of pictures and sound.
_PERCEIVED = ("image/", "audio/", "video/")
# Formats by their first bytes: (signature, at, perceived).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", 0, True), (b"\xff\xd8\xff", 0, True),
    (b"GIF87a", 0, True), (b"GIF89a", 0, True), (b"II*\x00", 0, True),
    (b"MM\x00*", 0, True), (b"\x00\x00\x01\x00", 0, True),  # TIFF, ICO
    (b"\xff\x0a", 0, True), (b"\x00\x00\x00\x0cJXL ", 0, True),  # JPEG XL
    (b"\x00\x00\x00\x0cjP  ", 0, True),  # JPEG 2000
    (b"8BPS", 0, True), (b"ftyp", 4, True),  # Photoshop; MP4, HEIC, AVIF
    (b"OggS\x00", 0, True), (b"fLaC", 0, True), (b"\x1aE\xdf\xa3", 0, True),
    (b"MThd", 0, True), (b"#!AMR", 0, True),  # MIDI, AMR
    (b"%PDF-", 0, False), (b"PK\x03\x04", 0, False), (b"PK\x05\x06", 0, False),
    (b"\x1f\x8b", 0, False), (b"BZh", 0, False), (b"\xfd7zXZ\x00", 0, False),
    (b"7z\xbc\xaf\x27\x1c", 0, False), (b"\x28\xb5\x2f\xfd", 0, False),
    (b"Rar!\x1a\x07", 0, False), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0,
                                  False),  # zstd, RAR, Office 97
    (b"\x7fELF", 0, False), (b"\xca\xfe\xba\xbe", 0, False),
    (b"\x00asm", 0, False), (b"SQLite format 3\x00", 0, False),
    (b"PAR1", 0, False))
# Containers whose kind follows their size: RIFF (WebP, WAVE, AVI), IFF.
_CONTAINERS = {b"RIFF": (b"WEBP", b"WAVE", b"AVI "), b"FORM": (b"AIFF",
                                                            b"AIFC")}
# Pictures and sounds whose signature is a shape: an MP3 or ADTS (AAC)
# frame's sync (but UTF-16's byte order mark, FF FE), an ID3 tag, a BMP's
# head (its reserved zeros).  No text begins so: 0xFF is never in UTF-8,
# an ID3 version and zeros are control bytes.
_SHAPES = re.compile(rb"\xff[\xe0-\xfd]|ID3[\x02-\x04]|BM....\x00\x00\x00"
                     rb"\x00", re.DOTALL)
# The bytes after a signature that say whether a picture follows it.
_SAMPLE_START, _SAMPLE_END = 16, 528
_TEXT_BYTES = bytes(range(0x20, 0x7f)) + b"\t\n\r\f"
_UTF8 = codecs.getincrementaldecoder("utf-8")
# Text of ASCII in UTF-16 or UTF-32 without a byte order mark.
NUL_SPACED = re.compile(rb"(?:[^\0]\0{1,3}){8}")


def fileKind(mediaType, head):
    """
    What a file labelled C{mediaType} (a media type, or L{None}) whose
    bytes begin with C{head} (at least its first L{HEAD} bytes, or all of
    it) is: L{TEXT}, L{MEDIA} or L{BLOB}.  A label of text is taken at its
    word (its bytes are read as text, in every reading).
    """
    if not isinstance(mediaType, str):
        mediaType = None
    if textMedia(mediaType):
        return TEXT
    perceived = signature(head)
    if perceived is not None:
        if perceived and _perceivedLabel(mediaType) and _binary(head):
            return MEDIA
        return BLOB
    head = head[:HEAD]
    if b"\x00" in head and not head.startswith(
            (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")) and (
            NUL_SPACED.search(head) is None):
        return BLOB
    return TEXT


def signature(head):
    """
    Whether C{head} begins as a file of a binary format does: L{True} for a
    picture's or a sound's, L{False} for another's (a document, an
    archive, a program), L{None} for none known.
    """
    for mark, at, perceived in _SIGNATURES:
        if head.startswith(mark, at):
            return perceived
    if head[8:12] in _CONTAINERS.get(head[:4], ()) or _SHAPES.match(
            head) is not None:
        return True
    return None


def blobCredentials(raw, budget=None):
    """
    The credentials of the catalogue in the bytes C{raw} read as text
    however they are (L{bytesReadings}), and in the text they hold encoded
    (a PDF's streams, a zip's members: L{documentTexts}, within
    C{budget}, the request's), each once.
    """
    # A chat sends its files again on every turn: a file's outcome is kept
    # by its digest (hashing costs a hundredth of searching).
    digest = hashlib.blake2b(raw, digest_size=32).digest()
    found = _kept.get(digest)
    if found is None:
        readings = bytesReadings(raw) + documentTexts(raw, budget)
        found = list(dict.fromkeys(
            secret for reading in readings
            for secret, _ in credentialsFound(reading)))
        if len(_kept) >= KEPT:
            _kept.clear()
        _kept[digest] = found
    return list(found)


# The outcomes of files searched, this many at most.
KEPT = 256
_kept = {}


def _binary(head):
    """
    Whether the bytes after a signature in C{head} are a picture's or a
    sound's, not text behind a signature put before it: one in eight or
    more of them are no text's, and they are no UTF-8.
    """
    sample = head[_SAMPLE_START:_SAMPLE_END]
    if len(sample.translate(None, _TEXT_BYTES)) * 8 < len(sample):
        return False
    try:
        _UTF8().decode(sample)  # a character cut at the end is no proof
    except UnicodeDecodeError:
        return True
    return False


def _perceivedLabel(mediaType):
    return (mediaType or "").strip().lower().startswith(_PERCEIVED)


# Application types that are text: a subtype, or a structured syntax
# suffix (application/ld+json), or one of these with C{x-} before it.
_TEXT_SUBTYPES = frozenset([
    "json", "xml", "yaml", "toml", "javascript", "ecmascript", "sh",
    "shellscript", "python", "sql", "csv", "php", "httpd-php", "perl",
    "ruby", "typescript", "graphql", "www-form-urlencoded", "tex", "latex",
    "rtf", "ndjson", "jsonl", "jsonlines", "env", "diff", "patch"])


def textMedia(mediaType):
    """
    Whether C{mediaType} names text: C{text/*}, none in a data URL (which
    is C{text/plain}), or a type that is text (JSON, YAML, XML, SVG, shell,
    ...).
    """
    if not isinstance(mediaType, str):
        return False
    mediaType = mediaType.partition(";")[0].strip().lower()
    if mediaType in ("", "text") or mediaType.startswith("text/"):
        return True
    kind, _, subtype = mediaType.partition("/")
    subtype = subtype.rpartition("+")[2]
    if kind != "application" and subtype not in ("xml", "json"):
        return False
    return subtype in _TEXT_SUBTYPES or (
        subtype.startswith("x-") and subtype[2:] in _TEXT_SUBTYPES)
