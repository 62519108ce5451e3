# -*- test-case-name: tests.test_policy_injection -*-
"""
Text as a reader sees it, for C{prompt-injection}: Unicode compatibility
forms (fullwidth letters, ligatures, mathematical alphabets) and accents
folded away, invisible characters removed, letters of other scripts that
look like Latin ones (Cyrillic C{о}, Greek C{ο}) made Latin, case folded,
and words spelt out letter by letter (C{i g n o r e}) joined again.  Also
the text hidden in base64.
"""

import base64
import binascii
import re
import string
import unicodedata

import regex

# Cyrillic, Greek and other letters that render like Latin ones, after
# NFKD has taken care of compatibility forms.
_HOMOGLYPHS = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h",
    "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s",
    "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h",
    "ӏ": "l", "ɡ": "g", "ո": "n", "ս": "u",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O",
    "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I",
    "Ј": "J", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K",
    "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin look-alikes NFKD keeps
    "ı": "i", "ȷ": "j", "ℓ": "l", "Ɩ": "l", "ǀ": "l", "ø": "o", "Ø": "O",
    "đ": "d", "ħ": "h", "ł": "l", "ŧ": "t",
})
# Format characters (zero-width space and joiners, soft hyphen, bidi
# controls) and the combining marks NFKD splits off letters.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Mn}\p{Me}]+")
# Six or more single letters, each followed by one to three separators.
_SPELT_OUT = regex.compile(
    r"(?<![\p{L}\p{N}])(?:\p{L}[^\p{L}\p{N}\n]{1,3}){5,}\p{L}(?![\p{L}\p{N}])")
_SEPARATORS = regex.compile(r"[^\p{L}\p{N}]+")
# The standard library's engine finds runs of a character class seven
# times faster than the regex module.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
# Base64 runs decoded per text, and the longest looked at: a base64 image
# is not an instruction.
MAX_RUNS = 32
MAX_RUN = 16384


def fold(text, normalize=True, homoglyphs=True):
    """
    C{text} folded for matching: lower case, and (C{normalize}) without
    compatibility forms, accents or invisible characters, and
    (C{homoglyphs}) with look-alike letters made Latin.
    """
    if text.isascii():
        return _joinSpeltOut(text.lower())
    if normalize:
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKD", text))
    if homoglyphs:
        text = text.translate(_HOMOGLYPHS)
    return _joinSpeltOut(text.casefold())


def _joinSpeltOut(text):
    if not _maySpellOut(text):
        return text
    return _SPELT_OUT.sub(lambda m: _SEPARATORS.sub("", m.group(0)), text)


# Punctuation made space, so that splitting gives the runs of letters and
# digits; for other texts, the standard library finds them.
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})
_ALNUM_RUNS = re.compile(r"[^\W_]+")


def _maySpellOut(text):
    """
    Whether six single letters follow each other among C{text}'s runs of
    letters and digits: what every word spelt out has, found by string
    methods where L{_SPELT_OUT} (led by a character class) would be tried
    at every place.
    """
    runs = (text.translate(_PUNCTUATION).split() if text.isascii()
            else _ALNUM_RUNS.findall(text))
    count = 0
    for run in runs:
        if len(run) == 1 and run.isalpha():
            count += 1
            if count == 6:
                return True
        else:
            count = 0
    return False


def hiddenTexts(text):
    """
    The printable texts that base64 runs in C{text} decode to.
    """
    for i, match in enumerate(_BASE64_RUN.finditer(text)):
        if i == MAX_RUNS:
            return
        run = match.group(0)
        if len(run) > MAX_RUN:
            continue
        decoded = _decode(run)
        if decoded is not None:
            yield decoded


def _decode(run):
    run = run.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    return text if text and printable >= 0.95 * len(text) else None
