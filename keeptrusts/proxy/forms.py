# -*- test-case-name: tests.test_proxy_forms -*-
"""
Request bodies through the proxy that are no JSON but carry text: forms
(C{application/x-www-form-urlencoded}), multipart bodies (a batch's JSONL
uploaded to C{/v1/files}, the C{prompt} of a transcription or an image
edit) and text.  Each is read as JSON for the policies (L{Form.body}: every
text in it; each field's name and each part's head among its names) and
written back as it came, what a policy changed rewritten in place.

A part or a text that is JSON, or JSON lines, is read as JSON
(L{keeptrusts.proxy.textbody}); any other is read as text, whatever bytes
it holds (L{keeptrusts.proxy.textviews}); a part or a body whose bytes are
no text (L{keeptrusts.api.media}) is left as it is, its credentials read as
names.  Multipart bodies are
split in L{keeptrusts.proxy.multipart}.
"""

import os
import re
from email.message import Message
from urllib.parse import quote_plus, unquote_plus

from keeptrusts.api.errors import validationError
from keeptrusts.api.media import BLOB, HEAD, TEXT, blobCredentials, fileKind
from keeptrusts.proxy.multipart import (
    MAX_FIELDS, Delimiter, delimiters, readMultipart, repeatsParameter,
    tooMany)
from keeptrusts.proxy.textbody import JSONList, readText


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
                    delimiters(data, self._boundary)) != len(
                        delimiters(self._raw, self._boundary)):
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
            piece.withBoundary(boundary) if isinstance(piece, Delimiter)
            else piece.encoded() for piece in self._pieces)


def readForm(contentTypes, raw):
    """
    Read C{raw}, a request body that is no JSON, by its C{Content-Type}.

    @param contentTypes: the request's C{Content-Type} values (bytes), or
        L{None}.
    @return: a L{Form}; or L{None} for a body of a picture or a sound, of
        other bytes holding no credential (L{fileKind}), or of blanks:
        nothing to read.
    @raise GatewayError: 422 for a body the gateway cannot read as the
        destination may (two content types, a parameter of the content
        type given twice, a multipart body without its boundary or with
        one in RFC 2231's form or not ASCII, too many fields, JSON giving a
        key twice, a text beginning with a UTF-16 byte order mark that is
        none); 415 for a part with a transfer encoding.
    """
    message = _contentType(contentTypes)
    media = message.get_content_type() if contentTypes else ""
    if media.startswith("multipart/"):
        boundary = _boundary(message)
        body, pieces = readMultipart(raw, boundary)
        return Form(raw, body, pieces, boundary, message["content-type"])
    if media == "application/x-www-form-urlencoded":
        return _urlencoded(raw)
    kind = fileKind(media or None, raw[:HEAD])
    if kind != TEXT:
        found = blobCredentials(raw) if kind == BLOB else ()
        return Form(raw, JSONList([dict.fromkeys(found)]), [raw]) if (
            found) else None
    body = JSONList()
    names = {}
    piece = readText(raw, message.get_content_charset(), body, None, names)
    if isinstance(piece, bytes):
        return None
    if names:
        body.append(names)
    return Form(raw, body, [piece])


def _contentType(contentTypes):
    """
    The request's C{Content-Type}, as a L{Message}'s.

    @raise GatewayError: 422 for two, or one giving a parameter twice
        (parsers take the first or the last: C{cgi} and C{multipart} the
        last C{boundary}).
    """
    if contentTypes and len(set(contentTypes)) > 1:
        raise validationError("the request has two Content-Types")
    message = Message()
    if contentTypes:
        message["content-type"] = contentTypes[0].decode("latin-1")
        if repeatsParameter(message, "content-type"):
            raise validationError("the request's Content-Type gives a "
                                  "parameter twice")
    return message


_RFC2231_BOUNDARY = re.compile(r"[;\s]boundary\*", re.IGNORECASE)


def _boundary(message):
    """
    The boundary of a multipart body (bytes).

    @raise GatewayError: 422 for none, or one servers could read otherwise:
        in RFC 2231's form (C{boundary*=}, which C{cgi} does not decode),
        or not ASCII (RFC 2046).
    """
    if _RFC2231_BOUNDARY.search(message["content-type"]):
        raise validationError("the multipart request body's boundary is "
                              "given in RFC 2231's form (boundary*)")
    boundary = message.get_boundary()
    if not boundary:
        raise validationError("the multipart request body has no boundary")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise validationError("the multipart request body's boundary is "
                              "not ASCII")


def _urlencoded(raw):
    body = JSONList()
    pieces = []
    if raw.count(b"&") >= MAX_FIELDS:
        raise tooMany()
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
