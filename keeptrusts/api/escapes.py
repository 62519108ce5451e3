# -*- test-case-name: tests.test_api_escapes,tests.test_api_stream -*-
"""
A JSON text inside a JSON string (a tool call's arguments) with its
C{\\uXXXX} and C{\\/} escapes written plainly: it decodes to the same
value, and what a client decodes is what the policies must read (a key
written C{\\u0041KIA...} would otherwise pass unread).  Whole, or streamed
in pieces.
"""

import json
import re

# An escaped backslash (kept, so that what follows it is no escape), a
# surrogate pair's two escapes, another \uXXXX escape, an escaped slash.
_ESCAPES = re.compile(r"\\\\"
                      r"|\\u([dD][89abAB][0-9a-fA-F]{2})"
                      r"\\u([dD][c-fC-F][0-9a-fA-F]{2})"
                      r"|\\u([0-9a-fA-F]{4})|\\/")


def _plainEscape(match):
    text = match.group(0)
    if text == "\\\\":
        return text
    if text == "\\/":
        return "/"
    high, low = match.group(1), match.group(2)
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10)
                   + int(low, 16) - 0xDC00)
    return _plainCharacter(int(match.group(3), 16), match.group(3))


def _plainCharacter(code, hexDigits):
    # What a JSON string must escape, and a lone surrogate, stay escaped.
    if code < 0x20 or code in (0x22, 0x5C) or 0xD800 <= code < 0xE000:
        return "\\u" + hexDigits
    return chr(code)


def plainEscapes(text):
    """
    A JSON text with its C{\\uXXXX} escapes (surrogate pairs too) and C{\\/}
    written plainly, as the request side writes a call's arguments
    (L{keeptrusts.api.texts.readRequest}): it decodes to the same value,
    and a key written C{\\u0041KIA...} is read as the key it is.  What a
    JSON string must escape, and a lone surrogate, stay escaped.
    """
    if "\\u" in text or "\\/" in text:
        return _ESCAPES.sub(_plainEscape, text)
    return text


def plainJSONText(text):
    """
    C{text} with its escapes written plainly (L{plainEscapes}) when it is a
    JSON object or array, or the beginning of one (a call's arguments cut
    short), and so written decodes to the same value; else C{text} as it
    is: a field named C{arguments} may hold no JSON (a shell command's own
    backslashes are no escapes, and no client decodes them).
    """
    plain = plainEscapes(text)
    if plain == text or text.lstrip()[:1] not in ("{", "["):
        return text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return plain  # cut short: read as a client's lenient parser would
    try:
        return plain if json.loads(plain) == value else text
    except (ValueError, RecursionError):
        return text


# The beginning of an escape a piece may end with: a backslash, and "u" with
# up to three hex digits; and a whole high surrogate's escape, which a low
# one may follow.
_UNFINISHED = re.compile(r"\\(?:u[0-9a-fA-F]{0,3})?")
_MAYBE_UNFINISHED = re.compile(r"(?:\\(?:u[0-9a-fA-F]{0,3})?)?")


def _finishedLength(text):
    """
    How much of C{text} (a piece of a JSON text, from an escape's boundary)
    no later piece can change: all but an unfinished escape at its end, or
    a high surrogate's escape that a low one may complete (at most 11
    characters held).
    """
    last = None
    for last in _ESCAPES.finditer(text):
        pass
    start = 0 if last is None else last.end()
    rest = text[start:]
    if (last is not None and last.group(3) is not None
            and 0xD800 <= int(last.group(3), 16) < 0xDC00
            and _MAYBE_UNFINISHED.fullmatch(rest)):
        return last.start()
    # The text after the last whole escape holds no escaped backslash: a
    # backslash there begins an escape of its own.
    slash = rest.rfind("\\")
    if slash >= 0 and _UNFINISHED.fullmatch(rest, slash):
        return start + slash
    return len(text)


class Unescaping:
    """
    A scanner in front of another, for a JSON text streamed in pieces (a
    tool call's arguments): it writes the escapes plainly (L{plainEscapes})
    and holds back an escape a piece ends in the middle of, until the next
    piece finishes it.  What it releases is the plain text, which decodes
    to what the provider's did.
    """

    def __init__(self, scanner):
        self._scanner = scanner
        self._held = ""

    def feed(self, text):
        if self._held:
            text = self._held + text
            self._held = ""
        if "\\u" not in text and "\\/" not in text and text[-1:] != "\\":
            # Nothing to write plainly, nothing unfinished (the usual
            # piece, with its \" and \n escapes).
            return self._scanner.feed(text)
        cut = _finishedLength(text)
        self._held = text[cut:]
        return self._scanner.feed(_ESCAPES.sub(_plainEscape, text[:cut]))

    def end(self):
        held, self._held = self._held, ""
        released = self._scanner.feed(plainEscapes(held)) if held else ""
        return released + self._scanner.end()

    def outcomes(self):
        return self._scanner.outcomes()
