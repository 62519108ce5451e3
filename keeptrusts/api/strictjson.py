# -*- test-case-name: tests.test_api_stream,tests.test_faults -*-
"""
JSON read so that no other reader can read it differently: an object that
gives a key twice is refused, since one reader takes the first value and
another the last.
"""

import json


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
