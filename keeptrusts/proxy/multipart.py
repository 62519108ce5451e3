# -*- test-case-name: tests.test_proxy_multipart -*-
"""
A multipart body (RFC 2046) split into its parts as the most lenient
server splits it: each part's head read as names, its content as text
(L{keeptrusts.proxy.textbody}) unless it is none.
"""

import email.errors
import email.header
import email.parser
import email.utils
import re
from itertools import chain
from urllib.parse import unquote

from keeptrusts.api.documents import Budget
from keeptrusts.api.errors import GatewayError, validationError
from keeptrusts.api.media import BLOB, HEAD, MEDIA, blobCredentials, fileKind
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
        destination may; 415 for a part with a transfer encoding or
        itself multipart.
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
    names = {}
    budget = Budget()
    pieces = [readText(raw[:found[0][0]], None, body, None, names)]
    for i, (start, end, close) in enumerate(found):
        pieces.append(Delimiter(raw[start:end], boundary))
        following = found[i + 1][0] if i + 1 < len(found) else len(raw)
        if close:
            pieces.append(readText(raw[end:], None, body, None, names))
            break
        pieces.extend(_part(raw[end:following], body, names, budget))
    if names:
        body.append(names)
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
# A part's head read at most, as Twisted caps a request line: a longer one
# costs the header parser dear and holds no form anyone sends.
MAX_HEAD = 16 * 1024
# Part headers that change how a part is read: given twice, one parser
# takes the first and another the last.
_SINGLE_HEADERS = ("content-type", "content-disposition",
                   "content-transfer-encoding", "content-encoding")


def _part(raw, body, names, budget):
    """
    One part of a multipart body: its head, read as names (object keys:
    the head, its field's name, its file's name, each as servers decode
    it); its content, read as text unless its bytes are none
    (L{fileKind}): a picture or a sound is left as it is, other bytes
    searched for credentials (what they decode to within C{budget}, the
    body's), which are read as names.
    """
    if raw.startswith((b"\r\n", b"\n")):  # no head
        blank = 2 if raw.startswith(b"\r") else 1
        head, content = raw[:blank], raw[blank:]
    else:
        end = _HEAD_END.search(raw, 0, MAX_HEAD)
        if end is None and len(raw) > MAX_HEAD:
            raise validationError("a part of the multipart request body "
                                  "has a head longer than %d bytes"
                                  % (MAX_HEAD,))
        if end is None:
            head, content = raw, b""
        else:
            head, content = raw[:end.end()], raw[end.end():]
    headers = email.parser.BytesHeaderParser().parsebytes(head)
    for header in _SINGLE_HEADERS:
        if len(headers.get_all(header, ())) > 1:
            raise validationError("a part of the multipart request body "
                                  "gives its %s twice" % (header,))
    for header in ("content-type", "content-disposition"):
        if repeatsParameter(headers, header):
            raise validationError("a part of the multipart request body "
                                  "gives a parameter of its %s twice"
                                  % (header,))
    encoding = headers.get("content-transfer-encoding", "").strip().lower()
    if encoding not in ("", "7bit", "8bit", "binary") or headers.get(
            "content-encoding", "identity").strip().lower() != "identity":
        raise _unread("has a transfer or content encoding, which the "
                      "gateway does not read: send it without one")
    if headers.get_content_maintype() == "multipart":
        # Its parts may carry transfer encodings of their own.
        raise _unread("is a multipart body itself, which the gateway does "
                      "not read: send its parts as parts")
    name = headers.get_param("name", header="content-disposition")
    name = email.utils.collapse_rfc2231_value(name) if name else ""
    field = {name: None}
    entry = dict.fromkeys(_dispositionNames(headers))
    entry[head.decode("utf-8", "replace").strip()] = field
    body.append(entry)
    label = headers.get("content-type")
    # (A value with bytes not ASCII is an email Header, not a string.)
    kind = fileKind(None if label is None else str(label), content[:HEAD])
    if kind == BLOB:
        names.update(dict.fromkeys(blobCredentials(content, budget)))
    if kind in (MEDIA, BLOB):
        return [head, content]
    return [head, readText(content, headers.get_content_charset(), field,
                           name, names)]


def _unread(what):
    return GatewayError(
        415, "validation_error", "a part of the multipart request body "
        + what, code="unsupported_content_encoding")


def repeatsParameter(message, header):
    """
    Whether C{header} of C{message} (an L{email.message.Message}) gives a
    parameter twice (two C{boundary}s, two C{charset}s): parsers take the
    first or the last (C{email} the first; C{cgi} and C{multipart} the
    last).
    """
    names = [name.lower() for name, _ in message.get_params(
        (), header=header)[1:]]
    return len(set(names)) != len(names)


def _dispositionNames(headers):
    """
    Every parameter value of the C{Content-Disposition} of C{headers} (an
    L{email.message.Message}), as it came and decoded: RFC 2231
    (C{filename*=UTF-8''%41...}), RFC 2047 (C{=?utf-8?b?...?=}) and
    percent-encoding (as browsers write a file name's quotes).

    @return: a L{list} of texts, each once.
    """
    names = {}
    for _, value in headers.get_params(
            (), header="content-disposition")[1:]:
        if isinstance(value, tuple):
            names[email.utils.collapse_rfc2231_value(value)] = None
            value = value[2]
        names[value] = None
        names[_encodedWords(value)] = None
        for charset in ("utf-8", "latin-1"):
            names[unquote(value, charset, "replace")] = None
    names.pop("", None)
    return list(names)


def _encodedWords(value):
    """
    C{value} with its RFC 2047 encoded words decoded (as Python's and
    Node's form parsers decode a file name); as it came if they are not.
    """
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(
            email.header.decode_header(value)))
    except (LookupError, UnicodeError, ValueError,
            email.errors.HeaderParseError):
        return value


def tooMany():
    return validationError("the request body has more than %d fields or "
                           "parts, which the gateway does not read"
                           % (MAX_FIELDS,))
