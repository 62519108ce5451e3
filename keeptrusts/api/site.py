# -*- test-case-name: tests.test_api -*-
"""
The HTTP server side: a request that refuses an oversized body before
reading it, and a site without Twisted's per-request access log.
"""

from twisted.internet import defer
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


class ActiveRequests:
    """
    The requests being answered, for draining: shared by the listener's
    site and the sites inside intercepted tunnels.

    @ivar gauge: a Prometheus gauge to keep in step, or L{None}.
    """

    def __init__(self, gauge=None):
        self.count = 0
        self._gauge = gauge
        self._idle = []

    def started(self, request):
        self.count += 1
        if self._gauge is not None:
            self._gauge.inc()
        request.notifyFinish().addBoth(self._finished)

    def _finished(self, ignored):
        self.count -= 1
        if self._gauge is not None:
            self._gauge.dec()
        if self.count == 0:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def whenIdle(self):
        """
        @return: a Deferred that fires once no request is being answered.
        """
        if self.count == 0:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        return d


class GatewaySite(Site):
    """
    @param maxBodyBytes: the largest request body accepted.
    @param forwardProxy: what serves absolute-form requests
        (C{resourceFor(request)}), or L{None} to serve them as any other.
    @param active: the L{ActiveRequests} to count requests in, or L{None}.
    """

    def __init__(self, resource, maxBodyBytes, forwardProxy=None,
                 active=None, **kwargs):
        Site.__init__(self, resource, **kwargs)
        self._forwardProxy = forwardProxy
        self._active = active
        self.requestFactory = type("Request", (LimitedRequest,),
                                   {"maxBodyBytes": maxBodyBytes})
        if hasattr(self, "_parsePOSTFormSubmission"):
            # Twisted >= 25.5 parses every POST's Content-Type otherwise.
            self._parsePOSTFormSubmission = False

    def getResourceFor(self, request):
        if self._active is not None:
            self._active.started(request)
        if self._forwardProxy is not None and request.uri[:1] != b"/":
            return self._forwardProxy.resourceFor(request)
        return Site.getResourceFor(self, request)

    def log(self, request):
        # Twisted's access log costs 5-8% of a request; ours comes later.
        pass
