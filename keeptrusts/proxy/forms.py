# -*- test-case-name: tests.test_proxy_forms -*-
"""
Request bodies through the proxy that are no JSON but carry text: forms
(C{application/x-www-form-urlencoded}), multipart bodies (a batch's JSONL
uploaded to C{/v1/files}, the C{prompt} of a transcription or an image
edit) and text.  Each is read as JSON for the policies (L{Form.body}: every
text in it; each field's name and each part's head among its names) and
written back as it came, what a policy changed rewritten in place.

A part or a text that is JSON, or JSON lines, is read as JSON
(L{keeptrusts.proxy.textbody}); a part that is no text (an image, audio,
bytes) is left as it is.
"""

import email.parser
import email.utils
import os
import re
from email.message import Message
from itertools import chain
from urllib.parse import quote_plus, unquote_plus

from keeptrusts.api.errors import GatewayError, validationError
from keeptrusts.proxy.textbody import JSONList, readText

# The fields of a form, the parts of a multipart body, read at most (as
# Werkzeug's and Starlette's parsers): each costs a parse and a slot.
MAX_FIELDS = 1000


class Form:
    """
    A body that is a form, a multipart body or text, read.

    @ivar body: its texts as JSON (a L{JSONList}), for the walker: written
        in place by the policies' changes.
    """

    def __init__(self, raw, body, pieces, boundary=None, contentType=None):
        self.body = body
        self._raw = raw
        self._pieces = pieces
        self._boundary = boundary
        self._contentType = contentType
        self._encoded = None

    def encoded(self):
        """
        @return: C{(bytes, content type)}: the body as it came but what the
            policies changed; the content type is L{None} unless the
            boundary had to change (a redacted part would hold it).
        """
        if self._encoded is None:
            data = self._join(self._boundary)
            contentType = None
            if data != self._raw and self._boundary is not None and len(
                    _delimiters(data, self._boundary)) != len(
                        _delimiters(self._raw, self._boundary)):
                boundary = b"keeptrusts-" + os.urandom(16).hex().encode()
                data = self._join(boundary)
                message = Message()
                message["content-type"] = self._contentType
                message.set_boundary(boundary.decode("ascii"))
                contentType = message["content-type"].encode("latin-1")
            self._encoded = data, contentType
        return self._encoded

    def _join(self, boundary):
        return b"".join(
            piece if isinstance(piece, bytes) else
            piece.withBoundary(boundary) if isinstance(piece, _Delimiter)
            else piece.encoded() for piece in self._pieces)


def readForm(contentTypes, raw):
    """
    Read C{raw}, a request body that is no JSON, by its C{Content-Type}.

    @param contentTypes: the request's C{Content-Type} values (bytes), or
        L{None}.
    @return: a L{Form}; or L{None} for a body that is no text, nor a form
        (a file as it is): nothing to read.
    @raise GatewayError: 422 for a body the gateway cannot read as the
        destination may (two content types, a multipart body without its
        boundary, too many fields, JSON giving a key twice); 415 for a part
        with a transfer encoding.
    """
    if contentTypes and len(set(contentTypes)) > 1:
        raise validationError("the request has two Content-Types")
    message = Message()
    if contentTypes:
        message["content-type"] = contentTypes[0].decode("latin-1")
    media = message.get_content_type() if contentTypes else ""
    if media.startswith("multipart/"):
        boundary = message.get_boundary()
        if not boundary:
            raise validationError("the multipart request body has no "
                                  "boundary")
        return _multipart(raw, boundary.encode("latin-1"),
                          message["content-type"])
    if media == "application/x-www-form-urlencoded":
        return _urlencoded(raw)
    body = JSONList()
    piece = readText(raw, message.get_content_charset(), body, None)
    return None if isinstance(piece, bytes) else Form(raw, body, [piece])


def _urlencoded(raw):
    body = JSONList()
    pieces = []
    if raw.count(b"&") >= MAX_FIELDS:
        raise _tooMany()
    for i, pair in enumerate(raw.split(b"&")):
        if i:
            pieces.append(b"&")
        name, equals, value = pair.partition(b"=")
        field = {_unquoted(name): _unquoted(value)}
        body.append(field)
        pieces.append(_Field(field, pair, name + equals) if equals else pair)
    return Form(raw, body, pieces)


def _unquoted(data):
    return unquote_plus(data.decode("utf-8", "surrogateescape"),
                        errors="surrogateescape")


class _Field:
    """
    A form field's value, written again if a policy changed it.
    """

    def __init__(self, field, raw, head):
        [(self._name, self._value)] = field.items()
        self._field = field
        self._raw = raw
        self._head = head

    def encoded(self):
        now = self._field[self._name]
        if now == self._value:
            return self._raw
        return self._head + quote_plus(
            now, safe="", errors="surrogateescape").encode("ascii")


def _multipart(raw, boundary, contentType):
    found = _delimiters(raw, boundary, MAX_FIELDS)
    if not found:
        raise validationError("the multipart request body has no part")
    body = JSONList()
    pieces = [readText(raw[:found[0][0]], None, body, None)]
    for i, (start, end, close) in enumerate(found):
        pieces.append(_Delimiter(raw[start:end], boundary))
        following = found[i + 1][0] if i + 1 < len(found) else len(raw)
        if close:
            pieces.append(readText(raw[end:], None, body, None))
            break
        pieces.extend(_part(raw[end:following], body))
    return Form(raw, body, pieces, boundary, contentType)


def _delimiters(raw, boundary, limit=None):
    """
    The delimiter lines of a multipart body, as the most lenient parser
    takes them (a line break alone, blanks after the boundary):
    C{(start, end, close)} each, the line breaks before and after it
    included, up to the close delimiter.  Found by the regular expression
    engine: a body of lines that only look like delimiters costs no more
    than a search.

    @param limit: how many parts to take at most.
    @raise GatewayError: 422 for more.
    """
    line = re.escape(b"--" + boundary) + rb"(--)?[ \t]*(?=\r?\n|\Z)"
    first = re.match(line, raw)
    found = []
    for match in chain([first] if first else (),
                       re.finditer(rb"\n" + line, raw)):
        start, end = match.start(), match.end()
        if start and raw[start - 1:start] == b"\r":
            start -= 1
        end += 2 if raw.startswith(b"\r\n", end) else int(
            raw.startswith(b"\n", end))
        close = match.group(1) is not None
        found.append((max(start, found[-1][1]) if found else start, end,
                      close))
        if close:
            break
        if limit is not None and len(found) > limit:
            raise _tooMany()
    return found


class _Delimiter:
    """
    A delimiter line, whatever the boundary.
    """

    def __init__(self, raw, boundary):
        self._before, _, self._after = raw.partition(b"--" + boundary)

    def withBoundary(self, boundary):
        return self._before + b"--" + boundary + self._after


_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _part(raw, body):
    """
    One part of a multipart body: its head, read as a name (an object
    key: its field's name, its file's name); its content, read as text
    unless it is none.
    """
    if raw.startswith((b"\r\n", b"\n")):  # no head
        blank = 2 if raw.startswith(b"\r") else 1
        head, content = raw[:blank], raw[blank:]
    else:
        end = _HEAD_END.search(raw)
        if end is None:
            head, content = raw, b""
        else:
            head, content = raw[:end.end()], raw[end.end():]
    headers = email.parser.BytesHeaderParser().parsebytes(head)
    encoding = headers.get("content-transfer-encoding", "").strip().lower()
    if encoding not in ("", "7bit", "8bit", "binary") or headers.get(
            "content-encoding", "identity").strip().lower() != "identity":
        raise GatewayError(
            415, "validation_error", "a part of the multipart request body "
            "has a transfer or content encoding, which the gateway does "
            "not read: send it without one",
            code="unsupported_content_encoding")
    name = headers.get_param("name", header="content-disposition")
    name = email.utils.collapse_rfc2231_value(name) if name else ""
    field = {name: None}
    body.append({head.decode("utf-8", "replace").strip(): field})
    return [head, readText(content, headers.get_content_charset(), field,
                            name)]


def _tooMany():
    return validationError("the request body has more than %d fields or "
                           "parts, which the gateway does not read"
                           % (MAX_FIELDS,))
