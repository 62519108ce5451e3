# -*- test-case-name: tests.test_policy_chain -*-
"""
The policy chain: policies run in order, each returning a Deferred, or
deciding at once (L{IImmediatePolicy}: asked without one); the first block
stops the chain; a redaction feeds the next policy.
"""

import time

import attr
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from keeptrusts.interfaces import IImmediatePolicy
from keeptrusts.policy.values import (
    ALLOW, BLOCK, ERROR, REDACT, Decision, Finding)

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


@attr.s(frozen=True, slots=True, auto_attribs=True)
class _Progress:
    """
    Where a chain stands between two policies.
    """

    texts: tuple
    outcomes: tuple = ()
    degraded: bool = False
    verdict: str = ALLOW


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
        self._immediate = tuple(IImmediatePolicy.providedBy(p)
                                for p in self.policies)
        self._failMode = failMode
        self._clock = clock
        self._timeout = timeout
        self._timer = timer

    def checkInput(self, exchange):
        """
        @return: a Deferred firing with a L{ChainResult} over C{exchange.texts}.
        """
        return _deferred(self.inputResult(exchange))

    def checkOutput(self, exchange, texts):
        """
        @return: a Deferred firing with a L{ChainResult} over C{texts}.
        """
        return _deferred(self.outputResult(exchange, texts))

    def inputResult(self, exchange):
        """
        As L{checkInput}, without a Deferred when the chain decided at once
        (every policy did, or answered with a Deferred already fired): the
        L{ChainResult}, or a Deferred of it while a policy is still working.
        """
        def check(policy, texts, immediate):
            if texts is not exchange.texts:
                exchange_ = attr.evolve(exchange, texts=texts)
            else:
                exchange_ = exchange
            if immediate:
                return policy.decideInput(exchange_)
            return policy.checkInput(exchange_)
        return self._next(0, _Progress(exchange.texts), check)

    def outputResult(self, exchange, texts):
        """
        As L{checkOutput}, as L{inputResult} is to L{checkInput}.
        """
        def check(policy, current, immediate):
            if immediate:
                return policy.decideOutput(exchange, current)
            return policy.checkOutput(exchange, current)
        return self._next(0, _Progress(tuple(texts)), check)

    def scanOutput(self, exchange):
        """
        @return: a L{ChainScanner}, or L{None} when no policy scans answers.
        """
        scanners = [(p.name, s) for p, s in
                    ((p, p.scanOutput(exchange)) for p in self.policies)
                    if s is not None]
        return ChainScanner(scanners, self._timer) if scanners else None

    def _next(self, index, progress, check):
        # Most policies answer at once: those answers are taken here, in a
        # loop, without a Deferred when the policy says it decides at once
        # (IImmediatePolicy); only a policy still working costs a callback
        # and a timeout.
        while index < len(self.policies):
            policy = self.policies[index]
            started = self._timer()
            if self._immediate[index]:
                try:
                    answer = check(policy, progress.texts, True)
                except Exception:
                    answer = Failure()
            else:
                d = defer.maybeDeferred(check, policy, progress.texts, False)
                if not d.called or d.paused:
                    d.addTimeout(self._timeout, self._clock)
                    return d.addBoth(self._resume, index, started, progress,
                                     check)
                answered = []
                d.addBoth(answered.append)
                answer = answered[0]
            result = self._judge(answer, index, started, progress)
            if isinstance(result, ChainResult):
                return result
            progress, index = result, index + 1
        return ChainResult(progress.verdict, progress.texts,
                           progress.outcomes, progress.degraded)

    def _resume(self, answer, index, started, progress, check):
        result = self._judge(answer, index, started, progress)
        if isinstance(result, ChainResult):
            return result
        return self._next(index + 1, result, check)

    def _judge(self, answer, index, started, progress):
        """
        @return: the L{ChainResult} when policy C{index}'s C{answer} ends
            the chain, else the L{_Progress} after it.
        """
        policy = self.policies[index]
        texts, degraded = progress.texts, progress.degraded
        if not isinstance(answer, (Decision, Failure)):
            answer = Failure(TypeError("a policy answered %s, not a Decision"
                                       % (type(answer).__name__,)))
        if isinstance(answer, Failure):
            # The exception's text may quote the prompt: log its type only.
            log.error("policy {policy} failed: {error}", policy=policy.name,
                      error=answer.type.__name__)
            done = progress.outcomes + (PolicyOutcome(
                policy.name, ERROR, self._elapsed(started)),)
            if self._failMode == BLOCK:
                return ChainResult(ERROR, texts, done, degraded, policy.name,
                                   "Policy %s failed" % (policy.name,))
            return _Progress(texts, done, True, progress.verdict)
        done = progress.outcomes + (PolicyOutcome(
            policy.name, answer.verdict, self._elapsed(started),
            answer.findings),)
        if answer.verdict == BLOCK:
            return ChainResult(BLOCK, texts, done, degraded, policy.name,
                               answer.message or "Blocked by %s"
                               % (policy.name,))
        if answer.verdict == REDACT:
            redacted = texts if answer.texts is None else tuple(answer.texts)
            return _Progress(redacted, done, degraded, REDACT)
        return _Progress(texts, done, degraded, progress.verdict)

    def _elapsed(self, started):
        return round((self._timer() - started) * 1000.0, 3)


class ChainScanner:
    """
    The chain's scanners over one streamed text, composed: what one
    releases feeds the next.  Each policy's time is measured as it goes.
    """

    def __init__(self, scanners, timer):
        self._names = [name for name, _ in scanners]
        self._scanners = [scanner for _, scanner in scanners]
        self._seconds = [0.0] * len(scanners)
        self._timer = timer

    def feed(self, text):
        for i, scanner in enumerate(self._scanners):
            if not text:
                break
            started = self._timer()
            text = scanner.feed(text)
            self._seconds[i] += self._timer() - started
        return text

    def end(self):
        text = ""
        for i, scanner in enumerate(self._scanners):
            started = self._timer()
            text = (scanner.feed(text) if text else "") + scanner.end()
            self._seconds[i] += self._timer() - started
        return text

    def outcomes(self):
        """
        @return: a L{PolicyOutcome} per scanning policy, so far.
        """
        return tuple(
            PolicyOutcome(name, REDACT if scanner.findings else ALLOW,
                          round(seconds * 1000.0, 3), scanner.findings)
            for name, scanner, seconds in zip(
                self._names, self._scanners, self._seconds))


def _deferred(result):
    if isinstance(result, defer.Deferred):
        return result
    return defer.succeed(result)


def mergeOutcomes(outcomeLists):
    """
    Fold the outcomes of several scans (one per choice of an answer) into
    one L{PolicyOutcome} per policy.
    """
    merged = {}
    for outcomes in outcomeLists:
        for o in outcomes:
            seen = merged.get(o.name)
            if seen is None:
                merged[o.name] = o
                continue
            counts = {f.type: f.count for f in seen.findings}
            for f in o.findings:
                counts[f.type] = counts.get(f.type, 0) + f.count
            findings = tuple(Finding(t, n) for t, n in sorted(counts.items()))
            merged[o.name] = PolicyOutcome(
                o.name, REDACT if findings else ALLOW,
                round(seen.ms + o.ms, 3), findings)
    return tuple(merged.values())
