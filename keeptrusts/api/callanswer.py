# -*- test-case-name: tests.test_api, tests.test_api_stream -*-
"""
A call's answer: the provider's status (a failure the next target may take
over), then the answer streamed through the output chain's scanners or read
whole by the output chain, and the tokens it cost.
"""

import attr
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from keeptrusts.api.carried import namedCredentials
from keeptrusts.api.cost import estimateTokens
from keeptrusts.api.endpoint import readSlots, writeSlots
from keeptrusts.api.errors import GatewayError, upstreamError
from keeptrusts.api.translate import TranslatedStream
from keeptrusts.api.stream import (
    BodyCollector, Outcome, Passthrough, ResponseBridge)
from keeptrusts.api.upstream import (
    copyResponseHeaders, discard, isEncoded, isJSON, mediaType)
from keeptrusts.api.wholeanswer import readWholeAnswer, redactedAnswer
from keeptrusts.policy.values import ALLOW, BLOCK, ERROR, REDACT


class CallAnswer:
    """
    The answer side of a L{keeptrusts.api.pipeline.Call}, which it is a
    base of: these methods work on the call's state.
    """

    def _answered(self, response):
        self.pending = None
        if not 200 <= response.code <= 599:
            return self._refuseAnswer(response, "the provider answered with "
                                      "an invalid status (%d)" % (
                                          response.code,))
        if response.code == 429 or response.code >= 500:
            if self._attemptFailed(response.code):
                discard(response)
                self._send()
                return
        else:
            target, _ = self.attempts[len(self.tried)]
            self.tried.append({"target": target.id, "status": response.code})
            if self.gateway.router is not None:
                self.gateway.router.breaker.succeeded(target.id)
        request = self.request
        media = mediaType(response)
        isStream = media == b"text/event-stream"
        ok = 200 <= response.code < 300
        # An answer the policies must read is read, whatever it says it is:
        # what cannot be read is refused (502), never passed on unread.  An
        # error is read whatever it is (it may quote what was asked), a
        # stream's included: small, it is read whole.
        collect = (not ok or (not isStream and (
            self.endpoint.answerSlots is not None or isJSON(media))))
        # Every answered stream is read: for the policies' scanners, its
        # usage, and the usage chunk the gateway asked for.
        rewrite = ok and isStream and self.endpoint.rewriter is not None
        if (collect or rewrite) and isEncoded(response):
            return self._refuseAnswer(response, "the provider's answer is "
                                      "compressed, which the gateway asked "
                                      "it not to be")
        request.setResponseCode(response.code, response.phrase)
        if collect:
            return self._collect(response)
        copyResponseHeaders(response.headers, request.responseHeaders,
                            keepLength=not rewrite)
        outcome = Outcome()
        if rewrite:
            request.setHeader(b"cache-control", b"no-cache")
            request.setHeader(b"x-accel-buffering", b"no")
            transform = self.endpoint.rewriter(
                outcome, self.endpoint,
                lambda: self.chain.scanOutput(self.exchange))
            transform.dropUsageChunk = self.askedUsage
            transform.checkNames = lambda names: namedCredentials(
                self.chain, names, "answer")
            if self.translated:
                transform = TranslatedStream(transform)
        else:
            transform = Passthrough(outcome)
        self.bridge = ResponseBridge(request, transform, self.gateway.clock,
                                     self.gateway.idleTimeout)
        if self.gone:
            self.bridge.outcome.ending = "client_gone"
        self.bridge.start(response)
        if self.gone:
            self.bridge.transport.stopProducing()
        self.bridge.finished.addCallback(self._delivered, response.code,
                                         transform)
        self.bridge.finished.addErrback(self._crashed)

    def _refuseAnswer(self, response, message):
        """
        An answer that cannot be passed on: dropped, and a 502.
        """
        discard(response)
        self._upstreamFailed(Failure(upstreamError(message)))

    def _delivered(self, outcome, status, transform):
        outcomes = transform.outcomes() if hasattr(
            transform, "outcomes") else ()
        verdict = REDACT if any(o.findings for o in outcomes) else ALLOW
        if outcome.ending == "blocked":
            verdict = BLOCK
            outcomes = tuple(attr.evolve(o, verdict=BLOCK)
                             if o.name == outcome.error.policy else o
                             for o in outcomes)
        elif outcome.ending == "upstream_failed":
            verdict = ERROR
        tokens = outcome.tokens
        if tokens is None and hasattr(transform, "releasedChars"):
            tokens = self._estimate(transform.releasedChars())
        self._journal("output", verdict, outcomes, status=status,
                      tokens=tokens,
                      client_gone=outcome.ending == "client_gone")
        self._finish()

    def _collect(self, response):
        collector = self.bridge = BodyCollector(self.gateway.maxBodyBytes)
        response.deliverBody(collector)
        collector.finished.addCallback(self._collected, response)
        collector.finished.addErrback(self._upstreamFailed)
        collector.finished.addErrback(self._crashed)

    def _collected(self, data, response):
        if self.gone:
            self._journal("output", ALLOW, (), status=response.code,
                          client_gone=True)
            return
        ok = 200 <= response.code < 300
        answer, data, slots, names = readWholeAnswer(
            self.endpoint, data, ok, self.translated and ok)
        result = namedCredentials(self.chain, names, "answer")
        if result is None:
            result = self.chain.outputResult(self.exchange, readSlots(slots))
        if isinstance(result, Deferred):
            return result.addCallback(self._outputDecided, response, answer,
                                      data, slots)
        self._outputDecided(result, response, answer, data, slots)

    def _outputDecided(self, result, response, answer, data, slots):
        self.policyMs += result.ms
        self.degraded = self.degraded or result.degraded
        if 200 <= response.code < 300 and self.endpoint.usage is not None:
            tokens = self.endpoint.usage(answer) or self._estimate(
                sum(len(text) for text in result.texts))
        else:
            # A failed call is not charged, nor one that is no LLM call (a
            # model list, a token count, a provider's other calls).
            tokens = None
        if result.verdict in (BLOCK, ERROR):
            self._journal("output", result.verdict, result.outcomes,
                          status=response.code, tokens=tokens)
            self._end(policyError(result, "output_blocked"))
            return
        if result.verdict == REDACT:
            writeSlots(slots, result.texts)
            data = redactedAnswer(answer)
        request = self.request
        copyResponseHeaders(response.headers, request.responseHeaders,
                     keepLength=False)
        request.setHeader(b"content-length", b"%d" % (len(data),))
        self._finish(lambda: request.write(data), lambda: self._journal(
            "output", result.verdict, result.outcomes, status=response.code,
            tokens=tokens))

    def _estimate(self, outputChars):
        """
        Tokens when the provider tells none: marked as an estimate.
        """
        return {"input": estimateTokens(self.promptTexts),
                "output": outputChars // 4 + (1 if outputChars else 0),
                "estimated": True}


def policyError(result, code):
    if result.verdict == BLOCK:
        return GatewayError(409, "policy_violation", result.message,
                            code=code, policy=result.policy)
    return GatewayError(503, "policy_error", result.message,
                        code="policy_failed", policy=result.policy)
