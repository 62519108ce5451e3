# -*- test-case-name: tests.test_policy_chain -*-
"""
The policy chain: policies run in order, each returning a Deferred; the
first block stops the chain; a redaction feeds the next policy.
"""

import time

import attr
from twisted.internet import defer
from twisted.logger import Logger

from keeptrusts.policy.values import (
    ALLOW, BLOCK, ERROR, REDACT)

log = Logger()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PolicyOutcome:
    """
    One policy's part in a decision, as the journal records it.
    """

    name: str
    verdict: str
    ms: float
    findings: tuple = ()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ChainResult:
    """
    @ivar verdict: C{allow}, C{redact}, C{block}, or C{error} (a policy
        failed and C{fail_mode} is C{block}).
    @ivar texts: the texts after every redaction.
    @ivar policy: the name of the policy that blocked or failed.
    @ivar degraded: a policy failed and C{fail_mode: allow} let it pass.
    """

    verdict: str
    texts: tuple
    outcomes: tuple
    degraded: bool = False
    policy: str = None
    message: str = None

    @property
    def ms(self):
        return sum(o.ms for o in self.outcomes)


class PolicyChain:
    """
    @param policies: L{IPolicy} providers, in chain order.
    @param failMode: C{block} or C{allow}: what a failing policy means.
    @param timeout: seconds a policy may take before it counts as failed.
    @param clock: an L{IReactorTime} for the timeout.
    @param timer: the clock that measures each policy's latency.
    """

    def __init__(self, policies, failMode, clock, timeout=5.0,
                 timer=time.perf_counter):
        self.policies = tuple(policies)
        self.names = tuple(p.name for p in self.policies)
        self._failMode = failMode
        self._clock = clock
        self._timeout = timeout
        self._timer = timer

    def checkInput(self, exchange):
        """
        @return: a Deferred firing with a L{ChainResult} over C{exchange.texts}.
        """
        return self._run(exchange.texts,
                         lambda policy, texts: policy.checkInput(
                             attr.evolve(exchange, texts=texts)))

    def checkOutput(self, exchange, texts):
        return self._run(tuple(texts),
                         lambda policy, current: policy.checkOutput(
                             exchange, current))

    def scanOutput(self, exchange):
        """
        @return: a L{ChainScanner}, or L{None} when no policy scans answers.
        """
        scanners = [(p.name, s) for p, s in
                    ((p, p.scanOutput(exchange)) for p in self.policies)
                    if s is not None]
        return ChainScanner(scanners) if scanners else None

    def _run(self, texts, check):
        return self._next(0, texts, (), False, ALLOW, check)

    def _next(self, index, texts, outcomes, degraded, verdict, check):
        if index == len(self.policies):
            return defer.succeed(
                ChainResult(verdict, texts, outcomes, degraded))
        policy = self.policies[index]
        started = self._timer()
        d = defer.maybeDeferred(check, policy, texts)
        if not d.called:
            d.addTimeout(self._timeout, self._clock)

        def judged(decision):
            outcome = PolicyOutcome(policy.name, decision.verdict,
                                    self._elapsed(started), decision.findings)
            done = outcomes + (outcome,)
            if decision.verdict == BLOCK:
                return ChainResult(BLOCK, texts, done, degraded, policy.name,
                                   decision.message or "Blocked by %s"
                                   % (policy.name,))
            if decision.verdict == REDACT and decision.texts is not None:
                return self._next(index + 1, tuple(decision.texts), done,
                                  degraded, REDACT, check)
            return self._next(index + 1, texts, done, degraded, verdict, check)

        def failed(reason):
            # The exception's text may quote the prompt: log its type only.
            log.error("policy {policy} failed: {error}", policy=policy.name,
                      error=reason.type.__name__)
            done = outcomes + (PolicyOutcome(policy.name, ERROR,
                                             self._elapsed(started)),)
            if self._failMode == BLOCK:
                return ChainResult(ERROR, texts, done, degraded, policy.name,
                                   "Policy %s failed" % (policy.name,))
            return self._next(index + 1, texts, done, True, verdict, check)

        return d.addCallbacks(judged, failed)

    def _elapsed(self, started):
        return round((self._timer() - started) * 1000.0, 3)


class ChainScanner:
    """
    The chain's scanners composed: what one releases feeds the next.
    """

    def __init__(self, scanners):
        self._scanners = scanners

    @property
    def findings(self):
        return tuple((name, s.findings) for name, s in self._scanners)

    def feed(self, text):
        for _, scanner in self._scanners:
            if not text:
                break
            text = scanner.feed(text)
        return text

    def end(self):
        text = ""
        for _, scanner in self._scanners:
            text = (scanner.feed(text) if text else "") + scanner.end()
        return text
