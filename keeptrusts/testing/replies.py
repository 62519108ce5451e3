# -*- test-case-name: tests.test_testing -*-
"""
One request being answered over time: its pending calls, holds, faults
and flow control.
"""

import json

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

# bigStream writes at most this much per reactor turn, so a consumer that
# never pushes back cannot make it loop forever inside one write burst.
_BURST = 2 ** 20


class Reply:
    """
    One request being answered: its pending calls, whether it is over
    (finished, reset or lost) and what has been written.
    """

    def __init__(self, provider, request, script):
        self.provider = provider
        self.request = request
        self.script = script
        self.over = False
        self.written = 0
        self.producer = None
        self.held = None
        self._closed = False
        self._resetting = False
        self._calls = []
        self._waiters = []
        for name, value in script.headers:
            request.setHeader(name, value)
        request.notifyFinish().addCallbacks(self._done, self._lost)

    def later(self, delay, f, *args):
        """
        Call C{f} after C{delay} seconds unless the reply is over by then.
        """

        def fire():
            self._calls.remove(call)
            if not self.over:
                f(*args)

        call = self.provider.clock.callLater(delay, fire)
        self._calls.append(call)

    def hold(self, resume):
        self.held = resume
        self.provider.replyHeld(self)

    def release(self):
        resume, self.held = self.held, None
        if resume is not None and not self.over:
            resume()

    def write(self, data):
        self.written += len(data)
        self.provider.bytesProduced += len(data)
        self.request.write(data)

    def finish(self):
        if not self.over:
            self.over = True
            self.request.finish()

    def sendBytes(self, status, contentType, data):
        self.request.setResponseCode(status)
        self._contentType(contentType)
        self.request.setHeader(b"content-length", b"%d" % (len(data),))
        self.write(data)
        self.finish()

    def sendJSON(self, status, obj):
        self.sendBytes(status, b"application/json", json.dumps(obj).encode("utf-8"))

    def sendCut(self, obj):
        """
        Send the headers and half the body of a JSON answer, then reset.
        """
        data = json.dumps(obj).encode("utf-8")
        self._contentType(b"application/json")
        self.request.setHeader(b"content-length", b"%d" % (len(data),))
        self.write(data[: len(data) // 2])
        self.reset()

    def startStream(self):
        self._contentType(b"text/event-stream")
        self.request.setHeader(b"cache-control", b"no-cache")
        # An empty write sends the headers now, as providers do.
        self.write(b"")

    def _contentType(self, value):
        # One the script gives wins.
        if not self.request.responseHeaders.hasHeader(b"content-type"):
            self.request.setHeader(b"content-type", value)

    def reset(self):
        """
        Abort the connection; the loss that follows is ours, not a client
        disconnect.
        """
        if self.over:
            return
        self.over = True
        self._resetting = True
        self._cancelCalls()
        transport = self.request.transport
        # abortConnection drops what the transport still buffers: push the
        # chunks already written to the socket first, so a mid-stream reset
        # cuts the stream after them.
        flush = getattr(transport, "doWrite", None)
        if self.request.startedWriting and flush is not None:
            flush()
        transport.abortConnection()

    def whenDone(self):
        if self._closed:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def _cancelCalls(self):
        calls, self._calls = self._calls, []
        for call in calls:
            call.cancel()

    def _done(self, ignored):
        self._close()

    def _lost(self, reason):
        if not self._resetting:
            self.provider.disconnects += 1
        self._close()

    def _close(self):
        self.over = True
        self._closed = True
        self.held = None
        self._cancelCalls()
        if self.producer is not None:
            self.producer.stopProducing()
        self.provider.replyClosed(self)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)


class EventSender:
    """
    Send a L{Stream}'s chunks with the script's pauses, hold, faults.
    """

    def __init__(self, reply, stream):
        self._reply = reply
        self._stream = stream
        self._sent = 0
        self._slept = False

    def start(self):
        self._reply.startStream()
        self._run()

    def _run(self):
        # A loop, not a chain of calls, so a long stream without pauses
        # does not recurse.
        reply, script, steps = self._reply, self._reply.script, self._stream.steps
        while not reply.over:
            if script.resetMidStream is not None and self._sent >= script.resetMidStream:
                reply.reset()
                return
            if self._sent == len(steps):
                if script.bigStream:
                    BigStream(reply, self._stream, script.bigStream).start()
                else:
                    reply.write(self._stream.tail)
                    reply.finish()
                return
            pause = script.pauseBefore(self._sent)
            if pause > 0 and not self._slept:
                self._slept = True
                reply.later(pause, self._run)
                return
            self._slept = False
            reply.write(steps[self._sent])
            self._sent += 1
            if script.malformed and self._sent == 1:
                reply.write(self._stream.broken)
            if script.hold and self._sent == 1:
                reply.hold(self._run)
                return


@implementer(IPushProducer)
class BigStream:
    """
    Write filler events until the reply has C{total} body bytes, only while
    the transport is not pushing back; then the tail.
    """

    def __init__(self, reply, stream, total):
        self._reply = reply
        self._stream = stream
        self._total = total
        self._stopped = False
        self._scheduled = False
        self.paused = False

    def start(self):
        self._reply.producer = self
        self._reply.request.registerProducer(self, True)
        self._produce()

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self._produce()

    def stopProducing(self):
        self._stopped = True

    def _produce(self):
        reply, event = self._reply, self._stream.filler
        budget = _BURST
        while not (self.paused or self._stopped or reply.over):
            if reply.written >= self._total:
                reply.producer = None
                reply.request.unregisterProducer()
                reply.write(self._stream.tail)
                reply.finish()
                return
            if budget <= 0:
                if not self._scheduled:
                    self._scheduled = True
                    reply.later(0, self._again)
                return
            reply.write(event)
            budget -= len(event)

    def _again(self):
        self._scheduled = False
        self._produce()

