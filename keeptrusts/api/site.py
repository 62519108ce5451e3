# -*- test-case-name: tests.test_api -*-
"""
The HTTP server side: a request that refuses an oversized body before
reading it, and a site that logs one compact line per request instead of
Twisted's access log.
"""

import re
import time

from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.server import Request, Site

from keeptrusts.api.accesslog import LoggedLines, accessLine, shownTarget
from keeptrusts.api.errors import ErrorResource, GatewayError, validationError
from keeptrusts.api.sending import sendNow, writeNow


_VERSIONS = (b"HTTP/1.0", b"HTTP/1.1")
# What a request target may hold (RFC 3986; Twisted's client refuses the
# rest with an error that quotes the whole URL, query and all), and a
# method (an RFC 9110 token; Twisted 22.4's server took any bytes).
_TARGET = re.compile(rb"[\x21-\x7e]+")
_METHOD = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class LimitedRequest(Request):
    """
    A request whose body may not exceed C{maxBodyBytes}: the 413 goes out
    as soon as the length is known, and the rest is never read.  Its head
    must be complete within C{headSeconds} of its first line (the channel's
    idle timeout restarts with every byte: a head trickled a byte at a time
    would hold the connection for ever).
    """

    maxBodyBytes = 32 * 1024 * 1024
    headSeconds = 300.0
    _refused = False
    _received = 0
    _headTimer = None
    _headComplete = False

    def headPending(self):
        """
        The channel read a part of this request's head, not all of it: the
        head has L{headSeconds} from now.  (A head read whole in one piece,
        the usual case, costs no timer.)
        """
        if self._headComplete or self._headTimer is not None:
            return
        clock = getattr(getattr(self.channel, "site", None), "reactor", None)
        if clock is not None:
            self._headTimer = clock.callLater(self.headSeconds,
                                              self._headTooSlow)

    def _headTooSlow(self):
        self._headTimer = None
        self.channel.transport.abortConnection()

    def _headDone(self):
        self._headComplete = True
        if self._headTimer is not None and self._headTimer.active():
            self._headTimer.cancel()
        self._headTimer = None

    def connectionLost(self, reason):
        self._headDone()
        Request.connectionLost(self, reason)

    def gotLength(self, length):
        self._headDone()
        if length is not None and length > self.maxBodyBytes:
            self._refuseTooLarge()
            return
        Request.gotLength(self, length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.maxBodyBytes:
            self._refuseTooLarge()
            return
        Request.handleContentChunk(self, data)

    def write(self, data):
        # What one write makes (the head, a chunk's framing, the data) goes
        # to the client in one piece, now.
        gather = getattr(self.channel, "gatherWrites", None)
        if gather is None:
            return Request.write(self, data)
        gather()
        try:
            Request.write(self, data)
        finally:
            self.channel.sendGathered()

    def requestReceived(self, command, path, version):
        if self._refused:
            return
        if version not in _VERSIONS:
            # Twisted 22.4 would answer in the client's own version.
            self._refuse(505, b"HTTP Version Not Supported", GatewayError(
                505, "validation_error", "HTTP/1.0 or HTTP/1.1 only"))
            return
        if not _TARGET.fullmatch(path):
            self._refuse(400, b"Bad Request", validationError(
                "the request target has bytes a URL may not carry "
                "(percent-encode them)", status=400))
            return
        if not _METHOD.fullmatch(command):
            self._refuse(400, b"Bad Request", validationError(
                "the request method is not an HTTP token", status=400))
            return
        if command == b"POST" and getattr(
                self, "_parsePOSTFormSubmission", None) is None:
            # Twisted before 25.5 parses a form or multipart POST body into
            # args itself (cgi: unbounded, before access keys are checked,
            # a bare 400 for what it cannot parse); the gateway reads
            # bodies its own way.  Its type is hidden until then.
            self._hiddenType = self.requestHeaders.getRawHeaders(
                b"content-type")
            self.requestHeaders.removeHeader(b"content-type")
        Request.requestReceived(self, command, path, version)

    _hiddenType = None

    def process(self):
        if self._hiddenType is not None:
            self.requestHeaders.setRawHeaders(b"content-type",
                                              self._hiddenType)
            self._hiddenType = None
        Request.process(self)

    def _refuseTooLarge(self):
        self._refuse(413, b"Payload Too Large", validationError(
            "the request body exceeds %d bytes" % (self.maxBodyBytes,),
            status=413))

    def _refuse(self, status, phrase, error):
        """
        Answer at once, on the connection itself, and close it.
        """
        self._refused = True
        # Refused in gotLength: the channel would then answer an
        # "Expect: 100-continue" after the refusal.
        self.requestHeaders.removeHeader(b"expect")
        transport = self.channel.transport
        transport.write(refusal(status, phrase, error))
        transport.loseConnection()


def refusal(status, phrase, error):
    """
    The bytes of a whole answer refusing a request on a connection that
    then closes.
    """
    body = error.body()
    return (b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, phrase, len(body)) + body)


class GatewayChannel(HTTPChannel):
    """
    An HTTP channel whose refusals of malformed requests are in the
    envelope: Twisted's own is a bare 400, and a line over its length
    limit closed the connection without a word.
    """

    _gathered = None

    def gatherWrites(self):
        """
        Hold what is written until L{sendGathered}.
        """
        self._gathered = []

    def sendGathered(self):
        """
        What was written since L{gatherWrites}, to the kernel now (L{writeNow}).
        """
        gathered, self._gathered = self._gathered, None
        if gathered:
            writeNow(self.transport, b"".join(gathered))

    def writeHeaders(self, version, code, reason, headers):
        # Twisted's own writes on the transport itself, bypassing write().
        # (Twisted 22.4 passes (name, value) pairs, later ones Headers.)
        if not isinstance(headers, Headers):
            pairs, headers = headers, Headers()
            for name, value in pairs:
                headers.addRawHeader(name, value)
        head = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        self.writeSequence(head)

    def write(self, data):
        self.writeSequence((data,))

    def writeSequence(self, iovec):
        if self._gathered is not None:
            self._gathered.extend(iovec)
        else:
            writeNow(self.transport, b"".join(iovec))

    def dataReceived(self, data):
        HTTPChannel.dataReceived(self, data)
        if self.requests:
            pending = getattr(self.requests[-1], "headPending", None)
            if pending is not None:
                pending()

    def _respondToBadRequestAndDisconnect(self):
        self.transport.write(refusal(400, b"Bad Request", validationError(
            "malformed HTTP request", status=400)))
        self.loseConnection()

    def lineLengthExceeded(self, line):
        if getattr(self, "_handlingRequest", False):
            # An earlier request is being answered (Twisted 22.4 reads a
            # pipelined head meanwhile): a refusal now would read as its
            # answer.  Closed, as Twisted does.
            self.transport.loseConnection()
            return
        if getattr(self, "_HTTPChannel__first_line", 0):
            refused = refusal(414, b"URI Too Long", validationError(
                "the request line is too long", status=414))
        else:
            refused = refusal(431, b"Request Header Fields Too Large",
                              validationError("a line of the request head "
                                              "is too long", status=431))
        self.transport.write(refused)
        self.transport.loseConnection()


class GatewaySite(Site):
    """
    @param maxBodyBytes: the largest request body accepted.
    @param forwardProxy: what serves absolute-form requests
        (C{resourceFor(request)}), or L{None} to serve them as any other.
    @param active: the L{keeptrusts.api.draining.ActiveRequests} to count
        requests in, or L{None}.
    @param accessLog: C{text}, C{json} or C{off}.
    @param accessLines: the L{IAccessLog} the lines go to; by default
        twisted.logger.
    """

    accessLog = "text"
    # (Twisted's generic wrapper only chooses between HTTP/1.1 and HTTP/2,
    # which the gateway does not speak.)
    protocol = GatewayChannel

    def __init__(self, resource, maxBodyBytes, forwardProxy=None,
                 active=None, accessLog="text", accessLines=None, **kwargs):
        Site.__init__(self, resource, **kwargs)
        self.accessLog = accessLog
        self.accessLines = accessLines or LoggedLines()
        self._forwardProxy = forwardProxy
        self.active = active
        self.requestFactory = type("Request", (LimitedRequest,), {
            "maxBodyBytes": maxBodyBytes,
            "headSeconds": kwargs.get("timeout") or LimitedRequest.headSeconds})
        if hasattr(self, "_parsePOSTFormSubmission"):
            # Twisted >= 25.5 parses every POST's Content-Type otherwise.
            self._parsePOSTFormSubmission = False

    def getResourceFor(self, request):
        request.ktStarted = time.monotonic()
        if self.active is not None:
            self.active.started(request)
        if self._forwardProxy is not None and request.uri[:1] != b"/":
            return self._forwardProxy.resourceFor(request)
        resource = Site.getResourceFor(self, request)
        if getattr(resource, "code", None) == 404 and hasattr(
                resource, "detail"):
            # Twisted's own "No Such Resource" page: ours is JSON.
            return ErrorResource(GatewayError(
                404, "not_found", "no such path: %s" % (
                    shownTarget(request.path),)))
        return resource

    def log(self, request):
        # Twisted's own access log costs 5-8% of a request and prints
        # headers; ours is one compact line, or none.  Called as the answer
        # ends: its last bytes (a stream's end) go first.
        sendNow(request)
        if self.accessLog != "off":
            self.accessLines.write(*accessLine(request,
                                               self.accessLog == "json"))
