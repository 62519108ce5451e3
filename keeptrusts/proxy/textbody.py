# -*- test-case-name: tests.test_proxy_textbody -*-
"""
A text in a request body that is no JSON (a multipart part, a text body):
read as JSON when it is one JSON object or array, or JSON lines (every
string of every line: its escapes decoded, as its reader decodes them), or
as text (in the ways of L{keeptrusts.proxy.textviews}); written back as it
came, only what a policy changed rewritten.
"""

import json

from keeptrusts.api.errors import validationError
from keeptrusts.api.strictjson import (
    DuplicateKey, hasLoneSurrogate, loadsStrict)
from keeptrusts.proxy.textviews import (
    charsetCodec, unwrittenCredentials, writtenReading)


class JSONList(list):
    """
    A body read as a JSON array: it answers C{get} as an object without
    those keys would (what a call asks of its body).
    """

    __slots__ = ()

    def get(self, key, default=None):
        return default


def readText(raw, charset, holder, key, names):
    """
    Put what C{raw} reads as into C{holder[key]} (or append it to the list
    C{holder} if C{key} is L{None}): its JSON values, one a line, or its
    text, as it is written back (L{writtenReading}); and into C{names},
    each a key, its other views that would show a credential once it is
    redacted (L{unwrittenCredentials}): a server may read them.

    @return: the piece that writes it back (its C{encoded()}: the bytes,
        changed or as they came), or C{raw} when there is nothing to read.
    @raise GatewayError: 422 for bytes the gateway cannot read as the
        destination may (L{charsetCodec}, L{_json}).
    """
    charset = charsetCodec(charset)
    reading = writtenReading(raw, charset)
    text = reading.text
    if not text.strip():
        return raw
    names.update(dict.fromkeys(unwrittenCredentials(raw, charset, reading)))
    lines = _jsonLines(text)
    value = text if lines is None else [v for _, v in lines if v is not None]
    if key is None:
        key = len(holder)
        holder.append(value)
    else:
        holder[key] = value
    if lines is None:
        return _Text(holder, key, raw, reading)
    return _JSONLines(holder, key, raw, reading, lines)


class _Text:
    def __init__(self, holder, key, raw, reading):
        self._holder, self._key = holder, key
        self._raw, self._reading = raw, reading

    def encoded(self):
        now = self._holder[self._key]
        if now == self._reading.text:
            return self._raw
        return self._reading.encode(now)


class _JSONLines:
    """
    A text of JSON values, one a line or one in all, each written anew
    only if a policy changed it.
    """

    def __init__(self, holder, key, raw, reading, lines):
        self._holder, self._key = holder, key
        self._raw, self._reading, self._lines = raw, reading, lines

    def encoded(self):
        values = iter(self._holder[self._key])
        out = []
        changed = False
        for line, value in self._lines:
            if value is not None:
                now = next(values)
                if now != loadsStrict(line.strip()):
                    # Bytes UTF-8 does not read go back as they came.
                    line = _spacedAs(line, json.dumps(
                        now, ensure_ascii=self._reading.errors !=
                        "surrogateescape"))
                    changed = True
            out.append(line)
        if not changed:
            return self._raw
        return self._reading.encode("".join(out))


def _spacedAs(line, middle):
    """
    C{middle} with the blanks that lead and trail C{line}: found by
    stripping, not by a regular expression (whose lazy middle made a line
    with a long run of blanks inside cost its length squared).
    """
    lead = line[:len(line) - len(line.lstrip())]
    trail = line[len(line.rstrip()):]
    return lead + middle + trail


def _jsonLines(text):
    """
    C{[(line, value)]} of a text that is one JSON object or array, or JSON
    lines (each value L{None} for a blank line); L{None} for other text.
    """
    if text.lstrip()[:1] not in ("{", "["):
        return None
    whole = _json(text.strip())
    if whole is not None:
        return [(text, whole)]
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        value = None
        if stripped:
            value = _json(stripped)
            if value is None:
                return None
        lines.append((line, value))
    # The line breaks split on go back with the lines they ended.
    return [(line + "\n", value) for line, value in lines[:-1]] + [
        lines[-1]]


def _json(text):
    """
    The object or array C{text} is, or L{None}.

    @raise GatewayError: 422 for JSON two parsers could read differently.
    """
    try:
        value = loadsStrict(text)
    except DuplicateKey:
        raise validationError("a part of the request body is JSON giving "
                              "a key twice")
    except RecursionError:
        raise validationError("a part of the request body is JSON nested "
                              "too deeply")
    except ValueError:
        return None
    if not isinstance(value, (dict, list)):
        return None
    if ("\\u" in text or "\x00" in text) and hasLoneSurrogate(
            text.encode("utf-8", "surrogatepass"), value):
        raise validationError("a part of the request body has a lone "
                              "UTF-16 surrogate (\\ud800-\\udfff)")
    return value
