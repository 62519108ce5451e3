"""
The yardstick of DESIGN.md section 9: a minimal Twisted reverse proxy (one
regex over the body, one journal line per request, a pooled Agent, the
registerProducer bridge), measured beside the gateway in scenarios 1 and 2
so that a noisy machine still gives a fair ratio ("the gateway costs N times
the floor").

    python bench/minimalproxy.py --upstream http://127.0.0.1:PORT --journal FILE

prints one JSON line with its port, then serves on 127.0.0.1 until
SIGTERM or C{--max-seconds}.
"""

import argparse
import json
import os
import re
import sys
import time

from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

_SECRET = re.compile(r"\bAKIA[0-9A-Z]{16}\b")
_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te",
        b"trailer", b"upgrade", b"proxy-connection"}


@implementer(IBodyProducer)
class _Body:
    def __init__(self, data):
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self._data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _Bridge(Protocol):
    def __init__(self, request):
        self.request = request
        self.done = defer.Deferred()

    def connectionMade(self):
        self.request.registerProducer(self.transport, True)

    def dataReceived(self, data):
        self.request.write(data)

    def connectionLost(self, reason):
        self.request.unregisterProducer()
        self.done.callback(reason.check(ResponseDone, PotentialDataLoss))


class _Proxy(Resource):
    isLeaf = True

    def __init__(self, agent, upstream, journal):
        Resource.__init__(self)
        self._agent = agent
        self._upstream = upstream
        self._journal = journal

    def render_POST(self, request):
        body = request.content.read()
        found = len(_SECRET.findall(body.decode("utf-8", "replace")))
        d = self._agent.request(
            b"POST", self._upstream + request.uri,
            Headers({b"content-type": [b"application/json"]}), _Body(body))

        def answered(response):
            request.setResponseCode(response.code)
            for name, values in response.headers.getAllRawHeaders():
                if name.lower() not in _HOP:
                    request.responseHeaders.setRawHeaders(name, values)
            bridge = _Bridge(request)
            response.deliverBody(bridge)
            return bridge.done

        def delivered(ok):
            self._journal.write(json.dumps({
                "ts": time.time(), "path": request.uri.decode("ascii", "replace"),
                "findings": found, "ok": bool(ok)}).encode() + b"\n")
            self._journal.flush()
            request.finish()

        def failed(reason):
            request.setResponseCode(502)
            request.finish()

        d.addCallback(answered).addCallbacks(delivered, failed)
        return NOT_DONE_YET


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--max-seconds", type=float, default=7200.0)
    options = parser.parse_args(argv)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 64
    agent = Agent(reactor, pool=pool)
    journal = open(options.journal, "ab")
    site = Site(_Proxy(agent, options.upstream.encode("ascii"), journal))
    if hasattr(site, "_parsePOSTFormSubmission"):
        site._parsePOSTFormSubmission = False
    site.log = lambda request: None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    print(json.dumps({"port": port.getHost().port, "pid": os.getpid()}),
          flush=True)
    reactor.callLater(options.max_seconds, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    sys.exit(main())
