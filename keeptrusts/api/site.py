# -*- test-case-name: tests.test_api -*-
"""
The HTTP server side: a request that refuses an oversized body before
reading it, and a site without Twisted's per-request access log.
"""

from twisted.web.server import Request, Site

from keeptrusts.api.errors import validationError


class LimitedRequest(Request):
    """
    A request whose body may not exceed C{maxBodyBytes}: the 413 goes out
    as soon as the length is known, and the rest is never read.
    """

    maxBodyBytes = 32 * 1024 * 1024
    _refused = False
    _received = 0

    def gotLength(self, length):
        if length is not None and length > self.maxBodyBytes:
            self._refuse()
            return
        Request.gotLength(self, length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.maxBodyBytes:
            self._refuse()
            return
        Request.handleContentChunk(self, data)

    def requestReceived(self, command, path, version):
        if self._refused:
            return
        Request.requestReceived(self, command, path, version)

    def _refuse(self):
        self._refused = True
        body = validationError(
            "the request body exceeds %d bytes" % (self.maxBodyBytes,),
            status=413).body()
        transport = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (len(body),)
            + body)
        transport.loseConnection()


class GatewaySite(Site):
    """
    @param maxBodyBytes: the largest request body accepted.
    @param forwardProxy: what serves absolute-form requests
        (C{resourceFor(request)}), or L{None} to serve them as any other.
    """

    def __init__(self, resource, maxBodyBytes, forwardProxy=None, **kwargs):
        Site.__init__(self, resource, **kwargs)
        self._forwardProxy = forwardProxy
        self.requestFactory = type("Request", (LimitedRequest,),
                                   {"maxBodyBytes": maxBodyBytes})
        if hasattr(self, "_parsePOSTFormSubmission"):
            # Twisted >= 25.5 parses every POST's Content-Type otherwise.
            self._parsePOSTFormSubmission = False

    def getResourceFor(self, request):
        if self._forwardProxy is not None and request.uri[:1] != b"/":
            return self._forwardProxy.resourceFor(request)
        return Site.getResourceFor(self, request)

    def log(self, request):
        # Twisted's access log costs 5-8% of a request; ours comes later.
        pass
