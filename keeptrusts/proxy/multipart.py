# -*- test-case-name: tests.test_proxy_multipart -*-
"""
A multipart body (RFC 2046) split into its parts as the most lenient
server splits it: each part's head read as names, its content as text
(L{keeptrusts.proxy.textbody}) unless it is none.
"""

import email.parser
import email.utils
import re
from itertools import chain

from keeptrusts.api.errors import GatewayError, validationError
from keeptrusts.proxy.textbody import JSONList, readText

# The fields of a form, the parts of a multipart body, read at most (as
# Werkzeug's and Starlette's parsers): each costs a parse and a slot.
MAX_FIELDS = 1000


def readMultipart(raw, boundary):
    """
    Split C{raw}, a multipart body, on C{boundary} (bytes).

    @return: C{(body, pieces)}: its texts and names as JSON (a
        L{JSONList}), and the pieces that write it back (bytes as they
        came, L{Delimiter}s, and what L{readText} gives).
    @raise GatewayError: 422 for a body the gateway cannot read as the
        destination may; 415 for a part with a transfer encoding.
    """
    found = delimiters(raw, boundary, MAX_FIELDS)
    if not found:
        raise validationError("the multipart request body has no part")
    if len({lineBreak for start, end, close in found
            for lineBreak in _lineBreaks(raw[start:end], close)}) > 1:
        # The first delimiter's line break is the body's for Go's
        # mime/multipart and Python's multipart: a line that ends
        # otherwise is content to them, and a part to a lenient parser.
        raise validationError("the delimiter lines of the multipart "
                              "request body end in different line breaks")
    body = JSONList()
    pieces = [readText(raw[:found[0][0]], None, body, None)]
    for i, (start, end, close) in enumerate(found):
        pieces.append(Delimiter(raw[start:end], boundary))
        following = found[i + 1][0] if i + 1 < len(found) else len(raw)
        if close:
            pieces.append(readText(raw[end:], None, body, None))
            break
        pieces.extend(_part(raw[end:following], body))
    return body, pieces


def delimiters(raw, boundary, limit=None):
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
            raise tooMany()
    return found


def _lineBreaks(line, close):
    """
    The line breaks around a delimiter C{line} (as L{delimiters} finds
    it): before it, and after it unless it closes the body (what follows
    is no part).
    """
    breaks = [line[:2] if line.startswith(b"\r\n") else line[:1]]
    if not close:
        breaks.append(line[-2:] if line.endswith(b"\r\n") else line[-1:])
    return [b for b in breaks if b in (b"\r\n", b"\n")]


class Delimiter:
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


def tooMany():
    return validationError("the request body has more than %d fields or "
                           "parts, which the gateway does not read"
                           % (MAX_FIELDS,))
