# -*- test-case-name: tests.test_api_stream,tests.test_faults -*-
"""
JSON read so that no other reader can read it differently: an object that
gives a key twice is refused, since one reader takes the first value and
another the last.
"""

import json
import re


class DuplicateKey(ValueError):
    """
    An object of the text gives C{key} twice.
    """

    def __init__(self, key):
        ValueError.__init__(self, key)
        self.key = key


def _uniqueKeys(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return value


# Made once: json.loads with options makes a decoder per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_uniqueKeys)


def loadsStrict(data):
    """
    As C{json.loads(data)}, C{data} text or bytes.

    @raise DuplicateKey: an object gives a key twice.
    @raise ValueError: not JSON (or not text).
    @raise RecursionError: nested too deeply.
    """
    if isinstance(data, (bytes, bytearray)):
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    return _DECODER.decode(data)


# Only an escape can put a surrogate in a string parsed from UTF-8; UTF-16
# and UTF-32 text (which has NUL bytes) can carry one as it is.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def hasLoneSurrogate(raw, value):
    """
    Whether C{value}, parsed from C{raw}, holds a lone UTF-16 surrogate: no
    text, and no UTF-8 encoder writes it.
    """
    if b"\x00" not in raw and not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
