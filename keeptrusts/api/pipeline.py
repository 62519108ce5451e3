# -*- test-case-name: tests.test_api -*-
"""
One request through the gateway: input chain, upstream, output chain,
client, journal (DESIGN.md section 2).  A L{Call} decides its input, sends
it (the next target taking over a failure) and ends; what it does with the
answer is in L{keeptrusts.api.callanswer}, its journal records in
L{keeptrusts.api.callrecords}.
"""

import json

import attr
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from keeptrusts.api.callanswer import CallAnswer, policyError
from keeptrusts.api.callrecords import CallRecords
from keeptrusts.api.carried import (
    carriedCredentials, namedCredentials, queryOf)
from keeptrusts.api.endpoint import readSlots, writeSlots
from keeptrusts.api.errors import GatewayError, writeError
from keeptrusts.api.routing import trigger
from keeptrusts.api.sending import sendNow
from keeptrusts.api.texts import readRequest
from keeptrusts.api.translate import (
    ANTHROPIC_VERSION, requestToMessages, translates)
from keeptrusts.api.upstream import outgoingHeaders
from keeptrusts.policy.values import ALLOW, BLOCK, ERROR, REDACT

log = Logger()


class Call(CallAnswer, CallRecords):
    """
    The state of one proxied request.

    @param chain: the request's L{PolicyChain}.
    @param attempts: C{(target, path)} pairs to try in order: a failure
        that is a fallback trigger moves on to the next while nothing has
        been sent to the client.
    """

    def __init__(self, gateway, request, exchange, endpoint, body, raw,
                 chain, attempts, passClientAuth):
        self.gateway = gateway
        self.chain = chain
        self.request = request
        self.exchange = exchange
        self.endpoint = endpoint
        self.body = body
        self.raw = raw
        self.attempts = list(attempts)
        self.tried = []
        self.askedUsage = False
        self.translated = False
        self.passClientAuth = passClientAuth
        self.started = gateway.timer()
        self.policyMs = 0.0
        self.upstreamStarted = None
        self.degraded = False
        self.gone = False
        self.pending = None
        self.bridge = None
        self.lastWrite = None
        self._heldRecord = None
        # A drain waits for this request's last record, even once the
        # request has finished (its client gone).
        active = getattr(getattr(request, "site", None), "active", None)
        self._release = active.hold() if active is not None else None
        request.notifyFinish().addErrback(self._clientGone)

    def start(self):
        try:
            result, slots = self._input()
        except GatewayError as error:
            # A body the gateway will not read (its files decode to too
            # much): refused as an invalid one is, before any record.
            self._recorded()
            self._end(error)
            return
        except Exception:
            # Ended as any crash is: a 500, its hold on a drain released.
            self._crashed(Failure())
            return
        if isinstance(result, Deferred):
            result.addCallback(self._inputDecided, slots)
            result.addErrback(self._crashed)
            return
        # Decided at once, as most chains are: no Deferred.
        try:
            self._inputDecided(result, slots)
        except Exception:
            self._crashed(Failure())

    def _input(self):
        """
        Read the request and put it to the input chain.

        @return: C{(result, slots)}: the chain's result (or a L{Deferred}
            of it), the slots of the texts it read.
        """
        reading = readRequest(self.endpoint, self.body)
        self.reencoded = reading.rewritten
        slots = reading.slots
        self.promptTexts = readSlots(slots)
        self.exchange = attr.evolve(self.exchange, texts=self.promptTexts)
        result = namedCredentials(self.chain, reading.names, "request")
        if result is None:
            result = carriedCredentials(self.chain, self.request,
                                         self.attempts, self.passClientAuth)
        if result is None:
            result = self.chain.inputResult(self.exchange)
        return result, slots

    def _inputDecided(self, result, slots):
        self.policyMs += result.ms
        self.degraded = result.degraded
        if result.verdict in (BLOCK, ERROR) or self.gone:
            self._append(self._record("input", result.verdict,
                                      result.outcomes))
            self._recorded()
            if not self.gone:
                self._end(policyError(result, "input_blocked"))
            return
        self.payload = self.raw
        changed = self.reencoded or result.verdict == REDACT
        if result.verdict == REDACT:
            writeSlots(slots, result.texts)
        if self._askForUsage():
            self.askedUsage = True
            if not changed and "stream_options" not in self.body:
                self.payload = _withUsageAsked(self.raw)
            if self.payload is self.raw:
                self.body["stream_options"] = dict(
                    self.body.get("stream_options") or {},
                    include_usage=True)
                changed = True
        if changed:
            self.payload = self.encodedBody()
        # The input record is made and written once the provider has the
        # request (unless what the sending led to journals first), as it
        # stood when decided.
        self.upstreamStarted = self.gateway.timer()
        self._heldRecord = (self.exchange, result, self.upstreamStarted)
        try:
            self._send()
        finally:
            self._append(None)

    def encodedBody(self):
        """
        The body as the policies left it, to send: JSON.
        """
        return json.dumps(self.body).encode("utf-8")

    def _askForUsage(self):
        """
        An OpenAI chat stream carries its usage only when asked: ask, and
        take the extra chunk out unless the client asked too.
        """
        options = self.body.get("stream_options")
        return (self.endpoint.name == "chat/completions"
                and self.body.get("stream") is True
                and not (isinstance(options, dict)
                         and options.get("include_usage"))
                and all(t.provider == "openai" for t, _ in self.attempts))

    def _send(self):
        target, path = self.attempts[len(self.tried)]
        provider = (self.endpoint.provider or target.provider
                    or self.exchange.provider)
        if (target.id, provider) != (self.exchange.target,
                                     self.exchange.provider):
            self.exchange = attr.evolve(self.exchange, target=target.id,
                                        provider=provider)
        headers = outgoingHeaders(self.request.requestHeaders, target,
                                  self.passClientAuth)
        # No body but for a call that came with one (a GET may: a proxied
        # search's JSON query).
        payload = self.payload if self.raw else None
        self.translated = translates(self.endpoint, target.provider)
        if self.translated:
            payload = json.dumps(requestToMessages(self.body)).encode("utf-8")
            if not headers.hasHeader(b"anthropic-version"):
                headers.setRawHeaders(b"anthropic-version",
                                      [ANTHROPIC_VERSION])
        # A local name: the answer may come at once and clear self.pending.
        d = self.pending = self.gateway.upstream.request(
            self.endpoint.method, target.url(path, queryOf(self.request)),
            headers, payload)
        d.addCallbacks(self._answered, self._upstreamFailed)
        d.addErrback(self._crashed)

    def _attemptFailed(self, status):
        """
        Record a failed attempt; L{True} when the next target takes over.
        """
        target, _ = self.attempts[len(self.tried)]
        self.tried.append({"target": target.id, "status": status})
        router = self.gateway.router
        if router is None:
            return False
        router.breaker.failed(target.id)
        return (trigger(status) in router.triggers
                and len(self.tried) < len(self.attempts) and not self.gone)

    def _upstreamFailed(self, reason):
        if self.gone:
            # Cancelled because the client left: the outcome still goes in
            # the journal.
            self._journal("output", ALLOW, (), client_gone=True)
            return
        reason.trap(GatewayError)
        error = reason.value
        if self.pending is not None:
            self.pending = None
            if self._attemptFailed(error.status):
                self._send()
                return
        self._journal("output", ERROR, (), status=error.status)
        self._end(error)

    def _clientGone(self, reason):
        self.gone = True
        if self.pending is not None:
            self.pending.cancel()
        if self.bridge is not None and self.bridge.transport is not None:
            self.bridge.clientGone()

    def _crashed(self, reason):
        log.failure("unexpected error in the request pipeline", reason)
        self._recorded()  # none will come
        if not self.gone and not self.request.finished:
            if self.request.startedWriting:
                self.request.channel.transport.abortConnection()
            else:
                self._end(GatewayError(500, "internal_error",
                                       "the gateway failed; see its log"))

    def _end(self, error):
        if self.gone:
            return
        self._finish(lambda: writeError(self.request, error))

    def _finish(self, write=None, event=None):
        """
        Send what is left of the answer (C{write}: its last bytes, or
        L{None}), journal its output C{event} (a callable, or L{None}) and
        end it.  The event is written once the answer's bytes are with the
        kernel, so that the journal's work does not hold them back (DESIGN.md
        section 2); but with C{journal.sync: always} the answer ends only
        once the request's events are durable: a client never holds a whole
        answer whose events a power cut could still take.
        """
        waiting = self.gateway.waitForJournal
        if event is not None and (waiting or self.gone):
            event()
        if self.gone:
            return

        def complete(ignored=None):
            if self.gone:
                return
            if write is not None:
                write()
                sendNow(self.request)
            if event is not None and not waiting:
                # Before finish(): a drain waiting for this request may
                # close the journal as it ends.
                event()
            self.request.finish()
        if self.lastWrite is not None and waiting:
            self.lastWrite.addBoth(complete)
        else:
            complete()


# What asks an OpenAI chat stream for its usage, added to a request that
# asks nothing of it: the body as it came, but this (re-encoding a prompt
# cost tens of microseconds before a stream's first byte).
_USAGE_ASKED = b',"stream_options":{"include_usage":true}}'


def _withUsageAsked(raw):
    """
    C{raw}, a JSON object in UTF-8 without C{stream_options}, asking for
    the stream's usage; or C{raw} itself when it is written otherwise (a
    byte order mark, another encoding): the caller then writes the body
    anew.
    """
    body = raw.rstrip(b" \t\r\n")
    if raw[:1] != b"{" or body[-1:] != b"}":
        return raw
    if body[1:-1].strip(b" \t\r\n"):
        return body[:-1] + _USAGE_ASKED
    return b"{" + _USAGE_ASKED[1:]
