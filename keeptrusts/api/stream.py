# -*- test-case-name: tests.test_api_stream -*-
"""
Moving an upstream body to the client: a bridge with backpressure, and the
simplest transforms (none); the policies' rewriting of event streams is in
L{keeptrusts.api.rewrite}.
"""

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from keeptrusts.api.errors import GatewayError, upstreamError, upstreamTimeout
from keeptrusts.api.sending import sendNow
from keeptrusts.policy.values import Blocked


class Outcome:
    """
    How a delivered answer ended: C{complete}, C{client_gone}, C{blocked}
    or C{upstream_failed}; filled in by the bridge and its transform.
    """

    def __init__(self):
        self.ending = None
        self.error = None
        self.bytes = 0
        self.tokens = None


class Passthrough:
    """
    The bytes as they come.  A failure can only cut the connection: the
    client must see the answer is incomplete.
    """

    def __init__(self, outcome):
        self.outcome = outcome

    def feed(self, data):
        return data

    def end(self):
        return b""

    def fail(self, error):
        return None


class ResponseBridge(Protocol):
    """
    Deliver an upstream body to a client request, chunk by chunk: the
    upstream transport is the request's producer, so a client that stops
    reading pauses the provider (twisted/protocols/portforward.py's idea).

    @ivar finished: fires with the L{Outcome} once the client has all it
        will get; the request is then written but not finished.
    """

    def __init__(self, request, transform, clock, idleTimeout):
        self._request = request
        self._transform = transform
        self._clock = clock
        self._idleTimeout = idleTimeout
        self._idle = None
        self.outcome = transform.outcome
        self.finished = defer.Deferred()

    def start(self, response):
        """
        Take C{response}'s body.  The head goes on now: with what of the body
        came with it, in one send; else alone, before the first event, which
        may be a long time coming (a model thinking; clients wait for the
        head with a timeout of their own).
        """
        response.deliverBody(self)
        if not (self._lost or self._request.startedWriting
                or self.outcome.ending is not None):
            self._request.write(b"")

    _lost = False

    def connectionMade(self):
        self._request.registerProducer(self.transport, True)
        self._idle = self._clock.callLater(self._idleTimeout, self._timedOut)

    def dataReceived(self, data):
        if self.outcome.ending is not None:
            return
        self._idle.reset(self._idleTimeout)
        try:
            out = self._transform.feed(data)
        except Blocked as blocked:
            self._stop("blocked", blocked)
            return
        except Exception as error:
            self._stop("upstream_failed", _asGatewayError(error))
            return
        if out:
            self.outcome.bytes += len(out)
            self._request.write(out)
            # An event waits for no other work of this turn.
            sendNow(self._request)

    def clientGone(self):
        self._stop("client_gone", None)

    def _timedOut(self):
        self._idle = None
        self._stop("upstream_failed",
                   upstreamTimeout("the provider stopped sending"))

    def _stop(self, ending, error):
        if self.outcome.ending is not None:
            return
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self.outcome.ending = ending
        self.outcome.error = error
        self.transport.stopProducing()

    def connectionLost(self, reason):
        self._lost = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        outcome = self.outcome
        if outcome.ending == "client_gone":
            # The request is gone with its channel: nothing more to write.
            self.finished.callback(outcome)
            return
        self._request.unregisterProducer()
        if outcome.ending is None:
            if reason.check(ResponseDone, PotentialDataLoss):
                outcome.ending = "complete"
            else:
                outcome.ending = "upstream_failed"
                outcome.error = upstreamError(
                    "the provider's connection failed mid-answer")
        if outcome.ending == "complete":
            try:
                self._write(self._transform.end())
            except Blocked as blocked:
                outcome.ending = "blocked"
                outcome.error = blocked
            except Exception as error:
                outcome.ending = "upstream_failed"
                outcome.error = _asGatewayError(error)
        if outcome.ending in ("upstream_failed", "blocked"):
            tail = self._transform.fail(_blockedError(outcome.error))
            if tail is None:
                self._request.channel.transport.abortConnection()
            else:
                self._write(tail)
        # The last events go out before the journal records the answer.
        sendNow(self._request)
        self.finished.callback(outcome)

    def _write(self, data):
        if data:
            self.outcome.bytes += len(data)
            self._request.write(data)


def _asGatewayError(error):
    if isinstance(error, GatewayError):
        return error
    return upstreamError("invalid answer from the provider")


def _blockedError(error):
    if isinstance(error, Blocked):
        return GatewayError(409, "policy_violation", error.message,
                            code="output_blocked", policy=error.policy)
    return error


class BodyCollector(Protocol):
    """
    Collect a whole (non-streamed) answer, up to C{limit} bytes.
    """

    def __init__(self, limit):
        self._limit = limit
        self._parts = []
        self._size = 0
        self.finished = defer.Deferred()

    def clientGone(self):
        self.transport.stopProducing()

    def dataReceived(self, data):
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()
            return
        self._parts.append(data)

    def connectionLost(self, reason):
        if self._size > self._limit:
            self.finished.errback(upstreamError("the provider's answer is too large"))
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self._parts))
        else:
            self.finished.errback(upstreamError(
                "the provider's connection failed mid-answer"))
