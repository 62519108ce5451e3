# -*- test-case-name: tests.test_policy_plainview -*-
"""
Text read as a JSON reader reads it.  A JSON document pasted into a prompt
keeps its escapes: PHP's C{json_encode} writes every slash C{\\/}, JSON in
HTML writes C{<\\/}, and a key may be written C{\\u0041KIA...}; whoever
reads it recovers the key by dropping them.  A L{PlainView} is a text with
its C{\\uXXXX} and C{\\/} escapes written plainly
(L{keeptrusts.api.escapes.plainEscapes}, as tool-call arguments are read)
and the map from its characters back to the text's, so that what is found
in it is redacted where it was written.
"""

import re
from bisect import bisect_right

from keeptrusts.api.escapes import plainEscapes

# Where an escape written plainly may begin; whether it was is told by the
# plain text (an escaped backslash before it keeps it as written).
_ESCAPE_START = re.compile(r"\\[u/]")
# An escape at the end of a text that more text could finish, or change (a
# high surrogate's, which a low one's may follow): at most 11 characters.
_UNFINISHED = re.compile(
    r"(?:\\u[dD][89abAB][0-9a-fA-F]{2})?(?:\\(?:u[0-9a-fA-F]{0,3})?)?\Z")
_LONGEST_UNFINISHED = 11


class PlainView:
    """
    A text with its escapes written plainly.

    @ivar text: the plain text.
    """

    __slots__ = ("text", "_plainAt", "_writtenAt", "_lengths")

    def __init__(self, text, plainAt, writtenAt, lengths):
        self.text = text
        # For each escape written plainly: where its character is in the
        # plain text, where the escape begins in the text, how long it is.
        self._plainAt = plainAt
        self._writtenAt = writtenAt
        self._lengths = lengths

    @classmethod
    def of(cls, text):
        """
        The plain view of C{text}, or L{None} when it has no escape to
        write plainly (the usual text: no backslash, one quick search; a
        search for two characters takes twenty times as long).
        """
        if "\\" not in text or ("\\u" not in text and "\\/" not in text):
            return None
        plain = plainEscapes(text)
        plainAt, writtenAt, lengths = [], [], []
        shrunk = after = 0
        for escape in _ESCAPE_START.finditer(text):
            start = escape.start()
            if start < after:
                continue  # the low half of a surrogate pair
            character = plain[start - shrunk]
            if character == "\\":
                continue  # kept as written
            length = (2 if text[start + 1] == "/"
                      else 12 if ord(character) > 0xFFFF else 6)
            plainAt.append(start - shrunk)
            writtenAt.append(start)
            lengths.append(length)
            shrunk += length - 1
            after = start + length
        if not plainAt:
            return None
        return cls(plain, plainAt, writtenAt, lengths)

    def written(self, position):
        """
        Where the character at C{position} of the plain text begins in the
        text as written (its end, for the text's end).
        """
        k = bisect_right(self._plainAt, position) - 1
        if k < 0:
            return position
        plainAt = self._plainAt[k]
        if position == plainAt:
            return self._writtenAt[k]
        return self._writtenAt[k] + self._lengths[k] + position - plainAt - 1

    def plain(self, position):
        """
        Where the text as written from C{position} on is in the plain text:
        the first character that begins there or after.
        """
        k = bisect_right(self._writtenAt, position) - 1
        if k < 0:
            return position
        writtenAt = self._writtenAt[k]
        if position == writtenAt:
            return self._plainAt[k]
        after = writtenAt + self._lengths[k]
        return self._plainAt[k] + 1 + max(0, position - after)

    def hit(self, hit):
        """
        A L{Hit} in the plain text, placed in the text as written: each
        span covers the escapes its characters were written as.
        """
        written = self.written
        return hit.__class__(
            hit.type, written(hit.start), written(hit.end),
            tuple((written(start), written(end)) for start, end in hit.spans),
            tuple(self.hit(inner) for inner in hit.inner))


def settledLength(text):
    """
    How much of C{text}, a streamed text so far, no later piece can read
    differently: all but an escape it ends in the middle of (C{\\u00}), or a
    high surrogate's escape a low one's may follow.  (A backslash that an
    escaped one before it makes a character of its own is held all the
    same: one character, until the next piece.)
    """
    if "\\" not in text[-_LONGEST_UNFINISHED:]:
        return len(text)
    return _UNFINISHED.search(
        text, max(0, len(text) - _LONGEST_UNFINISHED)).start()
