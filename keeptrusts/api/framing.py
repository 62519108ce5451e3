# -*- test-case-name: tests.test_api_http1 -*-
"""
An HTTP/1.1 answer as L{keeptrusts.api.http1} reads it: its head, how its
body ends (a length, chunks or the connection's end), and the
L{IResponse} that delivers the body.
"""

import re

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from zope.interface import implementer

_STATUS = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?")
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NO_BODY = frozenset([204, 304])
# A chunk-size line: hex digits, then extensions (ignored).
_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")
_MAX_LINE = 4096


class FramingError(ValueError):
    """
    An answer's framing (its head, a chunk) cannot be read.
    """


class ChunkedBody:
    """
    The state of one chunked body: feed it bytes, get its data back.
    """

    def __init__(self):
        self._buffer = b""
        self._left = 0          # data bytes of the current chunk still due
        self._state = "size"    # size | data | crlf | trailer

    def feed(self, data):
        """
        @return: C{(data pieces, whether the body is over, bytes after it)}.
        @raise FramingError: the chunks are malformed.
        """
        buf = self._buffer + data if self._buffer else data
        self._buffer = b""
        pieces = []
        pos = 0
        end = len(buf)
        while pos < end:
            state = self._state
            if state == "data":
                take = min(self._left, end - pos)
                pieces.append(buf[pos:pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._state = "crlf"
                continue
            if state == "crlf":
                if end - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    raise FramingError("a chunk does not end with CRLF")
                pos += 2
                self._state = "size"
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if end - pos > _MAX_LINE:
                    raise FramingError("a chunk line is too long")
                break
            line = buf[pos:eol]
            pos = eol + 2
            if state == "trailer":
                if not line:
                    return pieces, True, buf[pos:]
                continue
            match = _SIZE.fullmatch(line)
            if match is None:
                raise FramingError("a chunk size is invalid")
            self._left = int(match.group(1), 16)
            self._state = "data" if self._left else "trailer"
        self._buffer = buf[pos:]
        return pieces, False, b""


def parseHead(head):
    """
    @param head: an answer's head, without its blank line.
    @return: C{(status, phrase, version, headers)}.
    @raise ValueError: the head is not HTTP/1.x.
    """
    if b"\0" in head or head.count(b"\n") != head.count(b"\r") or (
            head.count(b"\n") != head.count(b"\r\n")):
        raise ValueError("the answer's head has a bare CR, LF or NUL")
    lines = head.split(b"\r\n")
    match = _STATUS.fullmatch(lines[0])
    if match is None:
        raise ValueError("the answer's status line is invalid")
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise ValueError("an answer's header line is invalid")
        headers.addRawHeader(name, value.strip(b" \t"))
    version = (b"HTTP", 1, int(match.group(1)))
    return int(match.group(2)), match.group(3) or b"", version, headers


def bodyFraming(method, status, version, headers):
    """
    How the body of an answer ends: L{None} (no body), an int (its
    length), a L{ChunkedBody} or C{UNKNOWN_LENGTH} (the connection's end).
    """
    if method == b"HEAD" or status in _NO_BODY:
        return None
    codings = headers.getRawHeaders(b"transfer-encoding")
    if codings:
        last = b",".join(codings).split(b",")[-1].strip().lower()
        return ChunkedBody() if last == b"chunked" else UNKNOWN_LENGTH
    lengths = headers.getRawHeaders(b"content-length")
    if lengths:
        values = {v.strip() for value in lengths for v in value.split(b",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise FramingError("the answer's Content-Length is invalid")
        return int(values.pop())
    return UNKNOWN_LENGTH


@implementer(IResponse)
class KeptResponse:
    """
    An answer being read on a kept connection.
    """

    request = None
    previousResponse = None

    def __init__(self, connection, version, code, phrase, headers, body):
        self._connection = connection
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self._body = body
        self.length = body if isinstance(body, int) else (
            0 if body is None else UNKNOWN_LENGTH)
        self._reusable = version[2] == 1 and not any(
            b"close" in v.lower()
            for v in headers.getRawHeaders(b"connection", ()))
        if body is UNKNOWN_LENGTH or (isinstance(body, ChunkedBody) and
                                      headers.hasHeader(b"content-length")):
            self._reusable = False
        self._protocol = None
        self._pending = []
        self._end = None
        self._discarded = False

    def setPreviousResponse(self, response):
        self.previousResponse = response

    def deliverBody(self, protocol):
        self._protocol = protocol
        protocol.makeConnection(_BodyProducer(self))
        pending, self._pending = self._pending, []
        for data in pending:
            protocol.dataReceived(data)
        if self._end is not None:
            protocol.connectionLost(self._end)

    def bodyReceived(self, data):
        body = self._body
        if isinstance(body, int):
            if len(data) < body:
                self._body -= len(data)
                self._deliver(data)
                return
            data, rest = data[:body], data[body:]
            self._body = 0
            if data:
                self._deliver(data)
            self.finished(not rest)
        elif body is UNKNOWN_LENGTH:
            self._deliver(data)
        else:
            try:
                pieces, over, rest = body.feed(data)
            except FramingError as e:
                self._stop(Failure(ResponseFailed([Failure(e)])))
                return
            for piece in pieces:
                self._deliver(piece)
            if over:
                self.finished(not rest)

    def finished(self, cleanEnd):
        """
        The body is over (or there is none); C{cleanEnd} when nothing came
        after it.
        """
        if self._discarded:
            return  # its connection is closing
        self._connection.answered(self._reusable and cleanEnd)
        self._lose(Failure(ResponseDone()))

    def lost(self, reason):
        if self._body is UNKNOWN_LENGTH and not self._discarded:
            # Framed by the connection's end: whole, as far as anyone can
            # tell (as Twisted's agent says too).
            self._lose(Failure(PotentialDataLoss()))
        else:
            self._lose(Failure(ResponseFailed([reason])))

    def _stop(self, reason):
        """
        Read no more, for C{reason}: the rest of the body, and its
        connection, are dropped.
        """
        self._connection.drop()
        self._lose(reason)

    def discard(self):
        """
        Read no more: the connection goes, and with it the rest of the body
        (the body's protocol learns it as the connection closes, as with
        Twisted's agent).  Once the answer is over, its connection may carry
        another: left alone.
        """
        if self._end is not None:
            return
        self._discarded = True
        self._connection.close(abort=True)

    @property
    def over(self):
        return self._end is not None

    def _deliver(self, data):
        if self._end is not None or self._discarded:
            return
        if self._protocol is None:
            self._pending.append(data)
        else:
            self._protocol.dataReceived(data)

    def _lose(self, reason):
        if self._end is not None:
            return
        self._end = reason
        if self._protocol is not None:
            self._protocol.connectionLost(reason)


@implementer(IPushProducer)
class _BodyProducer:
    """
    What a body's protocol holds as its transport: the connection's flow
    control, and stopProducing to drop the rest (and the connection).
    """

    def __init__(self, response):
        self._response = response
        self._transport = response._connection.transport

    # Once the answer is over, its connection may be another's.

    def pauseProducing(self):
        if not self._response.over:
            self._transport.pauseProducing()

    def resumeProducing(self):
        if not self._response.over:
            self._transport.resumeProducing()

    def stopProducing(self):
        self._response.discard()
