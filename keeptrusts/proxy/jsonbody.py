# -*- test-case-name: tests.test_proxy_origin -*-
"""
Whether a request body on a path no surface knows is JSON, decided by
reading it: the value the policies read, or L{None} for a body to relay as
it is, or a 422 for JSON the gateway cannot read as its destination may.
"""

import json
import re

from keeptrusts.api.errors import validationError
from keeptrusts.api.resource import parseBody
from keeptrusts.api.strictjson import (
    DuplicateKey, hasLoneSurrogate, loadsStrict)
from keeptrusts.proxy.forms import JSONList


def readJSONBody(raw):
    """
    The JSON value of a request body on a path no surface knows, decided by
    reading it, not by its media type (C{fetch()} sends a string as
    C{text/plain}) or its first byte (a byte order mark): the policies read
    it as they read any other JSON call.

    @return: the object, or the array (a L{JSONList}); L{None} for a body
        that is no JSON (a file, a form), or a number, C{true}, C{false},
        C{null}: nothing to read, relayed as it is.
    @raise GatewayError: 422 for JSON the gateway cannot read as the
        destination may: a key given twice, a lone surrogate, too deep,
        text that is not UTF-8, an object or array followed by more (a Go
        server reads the first value of a body and no more), a string
        alone.
    """
    if not raw:
        return None
    try:
        body = loadsStrict(raw)
    except (DuplicateKey, RecursionError):
        return parseBody(raw)  # raises its 422
    except ValueError:
        if _startsWithJSON(raw):
            raise validationError(
                "the request body begins with JSON that the gateway cannot "
                "read whole (not UTF-8 text, or more after its value)")
        return None
    if isinstance(body, (dict, list)):
        if hasLoneSurrogate(raw, body):
            raise validationError(
                "the request body has a lone UTF-16 surrogate "
                "(\\ud800-\\udfff), which is not text")
        return body if isinstance(body, dict) else JSONList(body)
    if isinstance(body, str):
        raise validationError("the request body is a JSON string alone, "
                              "which the gateway does not read: send an "
                              "object")
    return None


# An object or an array, after a byte order mark and blanks.
_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*[{\[]")


def _startsWithJSON(raw):
    """
    Whether C{raw}, which is not one JSON value in UTF-8, begins with an
    object or array that a lenient reader takes: one that replaces what is
    not UTF-8, or reads the first value and no more.
    """
    if not _JSON_START.match(raw):
        return False
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    try:
        _DECODER.raw_decode(text.lstrip(" \t\r\n"))
    except (ValueError, RecursionError):
        return False
    return True


_DECODER = json.JSONDecoder()
