# -*- test-case-name: tests.test_front -*-
"""
The first line of the shared listener: C{CONNECT host:port} goes to the
proxy's connect handler, everything else (origin-form C{/v1} requests and
absolute-form proxy requests) to the HTTP site, which then owns the
connection exactly as if it had accepted it itself.

The decision needs the first eight bytes only: a request that does not
start with C{CONNECT } is handed to the site at once, with the bytes read so
far, and the site's own limits apply to it.  A CONNECT head is read here,
within L{FrontFactory.maxLine} and L{FrontFactory.maxHead}.
"""

import re
from typing import Any, Optional, Tuple

import attr
from twisted.internet.abstract import isIPv6Address
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.protocols.policies import TimeoutMixin
from twisted.web.http import RESPONSES
from zope.interface import implementer

from keeptrusts.api.errors import GatewayError, validationError
from keeptrusts.api.sending import noDelay

_CONNECT = b"CONNECT "
_BLANK = b"\r\n"
_HEAD_END = re.compile(rb"\n\r?\n")
_VERSION = re.compile(rb"HTTP/1\.[01]")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_LABEL = rb"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_AUTHORITY = re.compile(
    rb"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>%s(?:\.%s)*)\.?):(?P<port>[0-9]{1,5})"
    % (_LABEL, _LABEL))
# The longest DNS name (RFC 1035); the authority's final dot is not the host's.
MAX_NAME = 253
_PHRASES = {431: b"Request Header Fields Too Large"}


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ConnectRequest:
    """
    A C{CONNECT} request's head.

    @ivar host: the target host, lower case; an IPv6 address without its
        brackets.
    @ivar headers: C{(name, value)} pairs of L{bytes}, names lower case, in
        the order received.
    @ivar clientAddress: the peer of the client connection.
    @ivar serverAddress: the gateway's end of it (L{ITransport.getHost}).
    @ivar user: who is calling, once the connect handler knows.
    @ivar sentHost: the host as the client wrote it, when its case differs
        from C{host}: what records show (scrubbed), so that a key in it is
        found in its own case.
    """

    host: str
    port: int
    headers: Tuple[Tuple[bytes, bytes], ...]
    clientAddress: Any
    serverAddress: Any
    user: Optional[str] = None
    sentHost: Optional[str] = None

    @property
    def shownHost(self):
        """
        The host as records show it (before they scrub it).
        """
        return self.sentHost or self.host

    def header(self, name):
        """
        The last value of header C{name} (L{bytes}, any case), or L{None}.
        """
        name = name.lower()
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return None


def refuse(transport, error):
    """
    Answer a connection's only request with C{error}'s JSON envelope, then
    close the connection.
    """
    body = error.body()
    phrase = _PHRASES.get(error.status) or RESPONSES.get(error.status, b"Error")
    lines = [b"HTTP/1.1 %d %s" % (error.status, phrase),
             b"Content-Type: application/json",
             b"Content-Length: %d" % (len(body),),
             b"Connection: close"]
    lines.extend(_bytes(name) + b": " + _bytes(value)
                 for name, value in error.headers)
    transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    transport.loseConnection()


def _bytes(text):
    return text if isinstance(text, bytes) else text.encode("latin-1")


def parseConnect(head, clientAddress, serverAddress):
    """
    Read a whole C{CONNECT} head (request line, headers, blank line).

    @raise GatewayError: 400 for anything malformed.
    """
    lines = head.split(b"\n")
    parts = lines[0].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or parts[0] != b"CONNECT" or not _VERSION.fullmatch(
            parts[2]):
        raise _badRequest("expected CONNECT host:port HTTP/1.1")
    authority = _AUTHORITY.fullmatch(parts[1])
    port = int(authority.group("port")) if authority else 0
    if not 0 < port < 65536:
        raise _badRequest("the CONNECT target must be host:port")
    host = (authority.group("v6") or authority.group("name")).decode("ascii")
    if authority.group("v6") and not isIPv6Address(host):
        raise _badRequest("the CONNECT target must be host:port")
    if len(host) > MAX_NAME:
        raise _badRequest("the CONNECT host is longer than a DNS name may be "
                          "(%d characters)" % (MAX_NAME,))
    headers = []
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if not line:
            continue
        name, colon, value = line.partition(b":")
        # Folded lines (RFC 9112 section 5.2) may be refused with a 400.
        if not colon or not _TOKEN.fullmatch(name):
            raise _badRequest("malformed header line")
        headers.append((name.lower(), value.strip(b" \t")))
    lower = host.lower()
    return ConnectRequest(host=lower, port=port, headers=tuple(headers),
                          clientAddress=clientAddress,
                          serverAddress=serverAddress,
                          sentHost=None if host == lower else host)


def _badRequest(message, status=400, code="bad_request"):
    error = validationError(message, status=status)
    error.code = code
    return error


@implementer(IHalfCloseableProtocol)
class FrontProtocol(Protocol, TimeoutMixin):
    """
    Reads just enough of a connection to know who gets it, then hands it
    over with every byte read so far.

    Once handed over, a TCP or UNIX connection calls the new protocol
    directly (its C{transport.protocol} is replaced); on other transports
    this protocol stays in between and passes every event on.
    """

    addr = None  # the client's address, as the listening port gave it
    _inner = None  # who got the connection
    _lost = None  # the reason, when the connection ended during a hand-over
    _start = None  # where a CONNECT request line starts
    _lineEnd = None

    def connectionMade(self):
        noDelay(self.transport)
        self._buffer = bytearray()
        self.callLater = self.factory.clock.callLater
        self.setTimeout(self.factory.headTimeout)

    def timeoutConnection(self):
        self.transport.abortConnection()

    def dataReceived(self, data):
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        if self._buffer is None:
            return  # refused; the connection is closing
        self._buffer += data
        if self._start is None:
            # At most maxLine blank bytes and seven of a method wait here.
            buffer = self._buffer
            start = len(buffer) - len(buffer.lstrip(_BLANK))
            method = bytes(buffer[start:start + len(_CONNECT)])
            if not _CONNECT.startswith(method):
                self._toHTTP()
                return
            if start > self.factory.maxLine:
                self._refuse(_badRequest("too many blank lines"))
                return
            if method != _CONNECT:
                return
            self._start = self._scanned = start
        self._readConnect()

    def _readConnect(self):
        factory, buffer, start = self.factory, self._buffer, self._start
        # Each byte is scanned about once however finely the head is split.
        if self._lineEnd is None:
            lineEnd = buffer.find(b"\n", self._scanned)
            if lineEnd == -1 and len(buffer) - start <= factory.maxLine:
                self._scanned = len(buffer)
                return
            if lineEnd == -1 or lineEnd - start > factory.maxLine:
                self._refuse(_badRequest("the request line is too long", 414,
                                         "request_line_too_long"))
                return
            self._lineEnd = self._scanned = lineEnd
        found = _HEAD_END.search(buffer, max(self._lineEnd, self._scanned - 2))
        end = len(buffer) if found is None else found.end()
        if end - start > factory.maxHead:
            self._refuse(_badRequest("the request head is too large", 431,
                                     "headers_too_large"))
        elif found is None:
            self._scanned = len(buffer)
        else:
            self._connect(bytes(buffer[start:end]), bytes(buffer[end:]))

    def _connect(self, head, leftover):
        self.setTimeout(None)
        self._buffer = None
        transport = self.transport
        try:
            request = parseConnect(head, transport.getPeer(), transport.getHost())
        except GatewayError as error:
            refuse(transport, error)
            return
        inner = self.factory.connectHandler.handleConnect(request, transport,
                                                          leftover)
        if inner is not None:
            self._handOver(inner)
            if self._lost is not None:
                inner.connectionLost(self._lost)

    def _toHTTP(self):
        self.setTimeout(None)
        buffered, self._buffer = bytes(self._buffer), None
        inner = self.factory.httpFactory.buildProtocol(self.addr)
        if inner is None:
            self.transport.loseConnection()
            return
        self._handOver(inner)
        inner.makeConnection(self.transport)
        inner.dataReceived(buffered)

    def _handOver(self, inner):
        self._inner = inner
        # TCP and UNIX connections deliver every event to transport.protocol:
        # pointing it at the new protocol takes this one off the hot path.
        # A wrapping transport (TLS, policies) keeps its own reference to us.
        if getattr(self.transport, "protocol", None) is self:
            self.transport.protocol = inner

    def _refuse(self, error):
        self.setTimeout(None)
        self._buffer = None
        refuse(self.transport, error)

    def readConnectionLost(self):
        halfCloseable = IHalfCloseableProtocol(self._inner, None)
        if halfCloseable is not None:
            halfCloseable.readConnectionLost()
        else:
            # What a transport does for a protocol that cannot half-close.
            self.transport.loseConnection()

    def writeConnectionLost(self):
        halfCloseable = IHalfCloseableProtocol(self._inner, None)
        if halfCloseable is not None:
            halfCloseable.writeConnectionLost()

    def connectionLost(self, reason):
        self.setTimeout(None)
        if self._inner is not None:
            self._inner.connectionLost(reason)
        else:
            self._lost = reason


class FrontFactory(ServerFactory):
    """
    The shared listener's factory.

    @param httpFactory: the site (L{keeptrusts.api.site.GatewaySite}),
        started and stopped with this factory.
    @param connectHandler: has C{handleConnect(request, transport,
        leftover)}, called with a L{ConnectRequest}, the client's transport
        and the bytes that followed the head.  It returns the L{IProtocol}
        that receives the connection's later events, already connected to
        C{transport} (and L{IHalfCloseableProtocol} to see a client's FIN),
        or L{None} once it answered and closed the connection itself.
    @param clock: an L{IReactorTime} for C{headTimeout}.
    @param headTimeout: seconds a client has to send a CONNECT head, or
        the first bytes of any request; then the connection is aborted.
    @param maxLine: the longest CONNECT request line (414 beyond).
    @param maxHead: the largest CONNECT head, request line and headers
        (431 beyond).
    """

    protocol = FrontProtocol
    noisy = False

    def __init__(self, httpFactory, connectHandler, clock, headTimeout=300.0,
                 maxLine=8192, maxHead=65536):
        self.httpFactory = httpFactory
        self.connectHandler = connectHandler
        self.clock = clock
        self.headTimeout = headTimeout
        self.maxLine = maxLine
        self.maxHead = maxHead

    def buildProtocol(self, addr):
        protocol = ServerFactory.buildProtocol(self, addr)
        protocol.addr = addr  # what the site's factory is given in turn
        return protocol

    def startFactory(self):
        self.httpFactory.doStart()

    def stopFactory(self):
        self.httpFactory.doStop()
