"""
Tests for L{keeptrusts.policy.chain} and L{keeptrusts.policy.values}.

Policies here are fakes whose Deferreds have already fired (or never fire,
for the timeout), so everything runs synchronously.
"""

import attr
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from keeptrusts.interfaces import IImmediatePolicy, IOutputScanner, IPolicy
from keeptrusts.policy.chain import (
    ChainResult, ChainScanner, PolicyChain, PolicyOutcome, mergeOutcomes)
from keeptrusts.policy.dlp import DlpFilter, DlpOptions
from keeptrusts.policy.values import (
    ALLOW, BLOCK, ERROR, REDACT, Blocked, Decision, Exchange, Finding,
    countFindings)

SECRET = "hunter2-sk-FAKE-SECRET-0123456789"


@implementer(IPolicy)
class FakePolicy:
    """
    A policy answering with C{decide(texts)} (a L{Decision}, a Deferred, or
    an exception to raise), recording every call.
    """

    def __init__(self, name, decide=None, scanner=None, calls=None):
        self.name = name
        self._decide = decide or (lambda texts: Decision(ALLOW))
        self._scanner = scanner
        self.calls = [] if calls is None else calls

    def _answer(self, phase, exchange, texts):
        self.calls.append((self.name, phase, exchange, texts))
        answer = self._decide(texts)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, defer.Deferred):
            return answer
        return defer.succeed(answer)

    def checkInput(self, exchange):
        return self._answer("input", exchange, exchange.texts)

    def checkOutput(self, exchange, texts):
        return self._answer("output", exchange, texts)

    def scanOutput(self, exchange):
        return self._scanner


@implementer(IImmediatePolicy)
class ImmediatePolicy(FakePolicy):
    """
    A L{FakePolicy} that decides at once: the chain must ask it
    C{decideInput} and C{decideOutput}, never for a Deferred.
    """

    def _now(self, phase, exchange, texts):
        self.calls.append((self.name, phase, exchange, texts))
        answer = self._decide(texts)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def decideInput(self, exchange):
        return self._now("input now", exchange, exchange.texts)

    def decideOutput(self, exchange, texts):
        return self._now("output now", exchange, texts)


def allow(texts):
    return Decision(ALLOW)


def upper(texts):
    return Decision(REDACT, (Finding("upper", len(texts)),),
                    texts=tuple(t.upper() for t in texts))


def blocked(texts):
    return Decision(BLOCK, (Finding("bad"),), message="nope: bad")


def raising(texts):
    return ValueError("the prompt said " + SECRET)


EXCHANGE = Exchange(request_id="req-1", provider="openai", target="fake",
                    endpoint="chat/completions", user="dev1",
                    texts=("hello", "world"))


def steppingTimer(step=0.001):
    """
    A timer that advances by C{step} seconds each time it is read.
    """
    now = [0.0]

    def timer():
        value = now[0]
        now[0] += step
        return value
    return timer


class ValuesTests(SynchronousTestCase):
    """
    The value types the policies exchange.
    """

    def test_countFindingsSortedCounts(self):
        self.assertEqual(
            countFindings(["b", "a", "b", "c", "b"]),
            (Finding("a", 1), Finding("b", 3), Finding("c", 1)))

    def test_countFindingsEmpty(self):
        self.assertEqual(countFindings([]), ())

    def test_decisionDefaults(self):
        d = Decision()
        self.assertEqual((d.verdict, d.findings, d.texts, d.message),
                         (ALLOW, (), None, None))

    def test_blockedCarriesPolicyFindingsMessage(self):
        b = Blocked("dlp-filter", [Finding("x", 2)], "stop: x")
        self.assertEqual((b.policy, b.findings, b.message, str(b)),
                         ("dlp-filter", (Finding("x", 2),), "stop: x",
                          "stop: x"))

    def test_exchangeIsFrozen(self):
        self.assertRaises(attr.exceptions.FrozenInstanceError,
                          setattr, EXCHANGE, "texts", ())


class CheckInputTests(SynchronousTestCase):
    """
    L{PolicyChain.checkInput}: order, short-circuit, redaction, verdicts.
    """

    def chain(self, policies, failMode="block", clock=None, timeout=5.0,
              timer=None):
        kw = {} if timer is None else {"timer": timer}
        return PolicyChain(policies, failMode, clock or Clock(),
                           timeout=timeout, **kw)

    def runChain(self, policies, failMode="block", exchange=EXCHANGE):
        return self.successResultOf(
            self.chain(policies, failMode).checkInput(exchange))

    def test_names(self):
        chain = self.chain([FakePolicy("a"), FakePolicy("b")])
        self.assertEqual(chain.names, ("a", "b"))

    def test_policiesRunInOrder(self):
        calls = []
        self.runChain([FakePolicy(n, calls=calls) for n in ("one", "two", "three")])
        self.assertEqual([c[0] for c in calls], ["one", "two", "three"])
        self.assertEqual({c[1] for c in calls}, {"input"})

    def test_allAllow(self):
        result = self.runChain([FakePolicy("a"), FakePolicy("b")])
        self.assertEqual(result.verdict, ALLOW)
        self.assertEqual(result.texts, ("hello", "world"))
        self.assertEqual([(o.name, o.verdict, o.findings)
                          for o in result.outcomes],
                         [("a", ALLOW, ()), ("b", ALLOW, ())])
        self.assertIsNone(result.policy)
        self.assertIsNone(result.message)
        self.assertFalse(result.degraded)

    def test_emptyChainAllows(self):
        result = self.runChain([])
        self.assertEqual(result, ChainResult(ALLOW, ("hello", "world"), ()))

    def test_exchangeFieldsPassedThrough(self):
        calls = []
        self.runChain([FakePolicy("a", calls=calls)])
        self.assertEqual(calls[0][2], EXCHANGE)

    def test_redactFeedsNextPolicy(self):
        calls = []
        result = self.runChain([FakePolicy("up", upper, calls=calls),
                           FakePolicy("seen", calls=calls)])
        seenExchange = calls[1][2]
        self.assertEqual(seenExchange.texts, ("HELLO", "WORLD"))
        # Only the texts change; the rest of the exchange is the same.
        self.assertEqual(attr.evolve(seenExchange, texts=EXCHANGE.texts),
                         EXCHANGE)
        self.assertEqual(result.verdict, REDACT)
        self.assertEqual(result.texts, ("HELLO", "WORLD"))
        self.assertEqual([(o.name, o.verdict) for o in result.outcomes],
                         [("up", REDACT), ("seen", ALLOW)])
        self.assertEqual(result.outcomes[0].findings, (Finding("upper", 2),))

    def test_twoRedactionsCompose(self):
        def exclaim(texts):
            return Decision(REDACT, (Finding("bang"),),
                            texts=tuple(t + "!" for t in texts))
        result = self.runChain([FakePolicy("up", upper),
                           FakePolicy("bang", exclaim)])
        self.assertEqual(result.verdict, REDACT)
        self.assertEqual(result.texts, ("HELLO!", "WORLD!"))

    def test_redactThenAllowStaysRedact(self):
        result = self.runChain([FakePolicy("a"), FakePolicy("up", upper),
                           FakePolicy("c")])
        self.assertEqual(result.verdict, REDACT)

    def test_blockStopsChain(self):
        calls = []
        result = self.runChain([FakePolicy("a", calls=calls),
                           FakePolicy("guard", blocked, calls=calls),
                           FakePolicy("after", calls=calls)])
        self.assertEqual([c[0] for c in calls], ["a", "guard"])
        self.assertEqual(result.verdict, BLOCK)
        self.assertEqual(result.policy, "guard")
        self.assertEqual(result.message, "nope: bad")
        self.assertEqual([(o.name, o.verdict) for o in result.outcomes],
                         [("a", ALLOW), ("guard", BLOCK)])
        self.assertEqual(result.outcomes[1].findings, (Finding("bad"),))

    def test_blockWithoutMessageNamesPolicy(self):
        result = self.runChain([FakePolicy("guard", lambda t: Decision(BLOCK))])
        self.assertEqual(result.message, "Blocked by guard")

    def test_blockAfterRedactKeepsRedactedTexts(self):
        calls = []
        result = self.runChain([FakePolicy("up", upper, calls=calls),
                           FakePolicy("guard", blocked, calls=calls)])
        self.assertEqual(result.verdict, BLOCK)
        self.assertEqual(calls[1][3], ("HELLO", "WORLD"))
        self.assertEqual(result.texts, ("HELLO", "WORLD"))

    def test_failModeBlock(self):
        calls = []
        result = self.runChain([FakePolicy("ok", calls=calls),
                           FakePolicy("broken", raising, calls=calls),
                           FakePolicy("after", calls=calls)])
        self.assertEqual([c[0] for c in calls], ["ok", "broken"])
        self.assertEqual(result.verdict, ERROR)
        self.assertEqual(result.policy, "broken")
        self.assertEqual(result.message, "Policy broken failed")
        self.assertFalse(result.degraded)
        self.assertEqual([(o.name, o.verdict, o.findings)
                          for o in result.outcomes],
                         [("ok", ALLOW, ()), ("broken", ERROR, ())])
        self.assertNotIn(SECRET, result.message)

    def test_failModeBlockOnFailedDeferred(self):
        """
        A Deferred that fails counts like a policy that raises.
        """
        result = self.runChain([FakePolicy(
            "broken", lambda t: defer.fail(RuntimeError(SECRET)))])
        self.assertEqual((result.verdict, result.policy),
                         (ERROR, "broken"))

    def test_failModeAllowContinuesDegraded(self):
        calls = []
        result = self.runChain([FakePolicy("broken", raising, calls=calls),
                           FakePolicy("up", upper, calls=calls)],
                          failMode="allow")
        self.assertEqual([c[0] for c in calls], ["broken", "up"])
        self.assertEqual(result.verdict, REDACT)
        self.assertTrue(result.degraded)
        self.assertIsNone(result.policy)
        self.assertEqual(result.texts, ("HELLO", "WORLD"))
        self.assertEqual([(o.name, o.verdict) for o in result.outcomes],
                         [("broken", ERROR), ("up", REDACT)])

    def test_failModeAllowAllowVerdict(self):
        result = self.runChain([FakePolicy("a"), FakePolicy("broken", raising)],
                          failMode="allow")
        self.assertEqual((result.verdict, result.degraded), (ALLOW, True))
        self.assertEqual(result.texts, ("hello", "world"))

    def test_failModeAllowThenBlock(self):
        result = self.runChain([FakePolicy("broken", raising),
                           FakePolicy("guard", blocked)], failMode="allow")
        self.assertEqual((result.verdict, result.policy, result.degraded),
                         (BLOCK, "guard", True))

    def test_nonDecisionCountsAsFailure(self):
        # Regression (found while writing these tests, fixed by
        # _requireDecision): a policy firing with something other than a
        # Decision made judged() raise AttributeError outside failed(), so
        # the chain's Deferred failed instead of giving verdict 'error'.
        d = self.chain([FakePolicy("sloppy", lambda t: None)]).checkInput(
            EXCHANGE)
        result = self.successResultOf(d)
        self.assertEqual((result.verdict, result.policy), (ERROR, "sloppy"))

    def test_timeoutCountsAsFailure(self):
        clock = Clock()
        pending = defer.Deferred()
        calls = []
        chain = self.chain([FakePolicy("slow", lambda t: pending, calls=calls),
                            FakePolicy("after", calls=calls)],
                           clock=clock, timeout=2.0)
        d = chain.checkInput(EXCHANGE)
        self.assertNoResult(d)
        clock.advance(1.999)
        self.assertNoResult(d)
        clock.advance(0.001)
        result = self.successResultOf(d)
        self.assertEqual((result.verdict, result.policy), (ERROR, "slow"))
        self.assertEqual([c[0] for c in calls], ["slow"])
        self.assertEqual(clock.getDelayedCalls(), [])
        # The policy answering late changes nothing and raises nothing.
        pending.callback(Decision(BLOCK))
        self.assertEqual(result.verdict, ERROR)

    def test_timeoutFailModeAllow(self):
        clock = Clock()
        chain = self.chain([FakePolicy("slow", lambda t: defer.Deferred()),
                            FakePolicy("after")],
                           failMode="allow", clock=clock, timeout=1.0)
        d = chain.checkInput(EXCHANGE)
        clock.advance(1.0)
        result = self.successResultOf(d)
        self.assertEqual(result.verdict, ALLOW)
        self.assertTrue(result.degraded)
        self.assertEqual([(o.name, o.verdict) for o in result.outcomes],
                         [("slow", ERROR), ("after", ALLOW)])

    def test_slowButInTime(self):
        clock = Clock()
        pending = defer.Deferred()
        chain = self.chain([FakePolicy("slow", lambda t: pending)],
                           clock=clock, timeout=2.0)
        d = chain.checkInput(EXCHANGE)
        clock.advance(1.5)
        pending.callback(Decision(ALLOW))
        self.assertEqual(self.successResultOf(d).verdict, ALLOW)
        # The timeout's delayed call is gone with the answer.
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_firedPoliciesScheduleNothing(self):
        clock = Clock()
        self.successResultOf(self.chain(
            [FakePolicy("a"), FakePolicy("b")], clock=clock).checkInput(
                EXCHANGE))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_perPolicyMilliseconds(self):
        ticks = iter([10.0, 10.0015, 10.0015, 10.004, 20.0, 20.25])
        chain = self.chain([FakePolicy("a"), FakePolicy("b", upper),
                            FakePolicy("c")], timer=lambda: next(ticks))
        result = self.successResultOf(chain.checkInput(EXCHANGE))
        self.assertEqual([o.ms for o in result.outcomes], [1.5, 2.5, 250.0])
        self.assertEqual(result.ms, 254.0)

    def test_failedPolicyMilliseconds(self):
        ticks = iter([1.0, 1.003])
        chain = self.chain([FakePolicy("broken", raising)],
                           timer=lambda: next(ticks))
        result = self.successResultOf(chain.checkInput(EXCHANGE))
        self.assertEqual(result.outcomes,
                         (PolicyOutcome("broken", ERROR, 3.0),))

    def test_timedOutPolicyMilliseconds(self):
        clock = Clock()
        chain = self.chain([FakePolicy("slow", lambda t: defer.Deferred())],
                           clock=clock, timeout=3.0, timer=clock.seconds)
        d = chain.checkInput(EXCHANGE)
        clock.advance(3.0)
        self.assertEqual(self.successResultOf(d).outcomes[0].ms, 3000.0)

    def test_manyPoliciesNoRecursionLimit(self):
        result = self.runChain([FakePolicy("p%d" % i) for i in range(100)])
        self.assertEqual(len(result.outcomes), 100)


class ImmediatePolicyTests(SynchronousTestCase):
    """
    Policies that decide at once are asked without a Deferred, with the
    same semantics: order, redaction fed on, block, failure.
    """

    def decided(self, policies, failMode="block", output=False):
        chain = PolicyChain(policies, failMode, Clock())
        if output:
            return self.successResultOf(chain.checkOutput(EXCHANGE, ["x"]))
        return self.successResultOf(chain.checkInput(EXCHANGE))

    def test_askedAtOnce(self):
        calls = []
        result = self.decided([ImmediatePolicy("up", upper, calls=calls),
                           FakePolicy("later", calls=calls),
                           ImmediatePolicy("seen", calls=calls)])
        self.assertEqual([(c[0], c[1], c[3]) for c in calls], [
            ("up", "input now", ("hello", "world")),
            ("later", "input", ("HELLO", "WORLD")),
            ("seen", "input now", ("HELLO", "WORLD"))])
        self.assertEqual(calls[2][2], attr.evolve(EXCHANGE,
                                                  texts=("HELLO", "WORLD")))
        self.assertEqual((result.verdict, result.texts),
                         (REDACT, ("HELLO", "WORLD")))
        calls[:] = []
        self.decided([ImmediatePolicy("a", calls=calls)], output=True)
        self.assertEqual([(c[1], c[3]) for c in calls],
                         [("output now", ("x",))])

    def test_block(self):
        calls = []
        result = self.decided([ImmediatePolicy("guard", blocked, calls=calls),
                           ImmediatePolicy("after", calls=calls)])
        self.assertEqual([c[0] for c in calls], ["guard"])
        self.assertEqual((result.verdict, result.policy, result.message),
                         (BLOCK, "guard", "nope: bad"))

    def test_failure(self):
        """
        A policy that raises, or answers something other than a Decision,
        has failed: the fail mode decides, its message names no secret.
        """
        for answer in (raising, lambda texts: "yes"):
            result = self.decided([ImmediatePolicy("broken", answer)])
            self.assertEqual((result.verdict, result.policy),
                             (ERROR, "broken"))
            result = self.decided([ImmediatePolicy("broken", answer),
                               ImmediatePolicy("after", upper)], "allow")
            self.assertEqual((result.verdict, result.degraded),
                             (REDACT, True))
        self.flushLoggedErrors()

    def test_resultWithoutDeferred(self):
        """
        C{inputResult} and C{outputResult} give the L{ChainResult} itself
        when every policy decided at once or answered with a fired
        Deferred, and the Deferred while one is still working; C{checkInput}
        and C{checkOutput} always give a Deferred.
        """
        chain = PolicyChain([ImmediatePolicy("up", upper), FakePolicy("a")],
                            "block", Clock())
        result = chain.inputResult(EXCHANGE)
        self.assertIsInstance(result, ChainResult)
        self.assertEqual(result.texts, ("HELLO", "WORLD"))
        self.assertIsInstance(chain.outputResult(EXCHANGE, ["x"]),
                              ChainResult)
        self.assertEqual(
            self.successResultOf(chain.checkInput(EXCHANGE)).texts,
            result.texts)
        working = defer.Deferred()
        chain = PolicyChain([ImmediatePolicy("up", upper),
                             FakePolicy("slow", lambda texts: working)],
                            "block", Clock())
        pending = chain.outputResult(EXCHANGE, ["x"])
        self.assertIsInstance(pending, defer.Deferred)
        self.assertNoResult(pending)
        working.callback(Decision(ALLOW))
        self.assertEqual(self.successResultOf(pending).texts, ("X",))

    def test_builtInPoliciesDecideAtOnce(self):
        """
        The built-in policies that only search texts say so, and their
        Deferred answers are the same decisions.
        """
        from keeptrusts.policy.passive import PassivePolicy
        dlp = DlpFilter(DlpOptions(detect_patterns=("hunter2-[a-zA-Z0-9-]+",)))
        for policy in (dlp, PassivePolicy(None)):
            self.assertTrue(IImmediatePolicy.providedBy(policy))
        exchange = attr.evolve(EXCHANGE, texts=("key " + SECRET,))
        self.assertEqual(self.successResultOf(dlp.checkInput(exchange)),
                         dlp.decideInput(exchange))
        self.assertEqual(dlp.decideOutput(EXCHANGE, [SECRET]).verdict, REDACT)


class LoggingTests(SynchronousTestCase):
    """
    A failing policy is logged by its exception's type only: the message may
    quote the prompt.
    """

    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def assertNoSecretLogged(self):
        for event in self.events:
            self.assertNotIn(SECRET, formatEvent(event))
            self.assertNotIn(SECRET, repr(event))
            failure = event.get("log_failure")
            if failure is not None:
                self.fail("a failure was logged: %r" % (failure.type,))
        self.assertEqual(self.flushLoggedErrors(), [])

    def chainEvents(self):
        return [e for e in self.events
                if e.get("log_namespace") == "keeptrusts.policy.chain"]

    def test_raisingPolicyLogsTypeOnly(self):
        chain = PolicyChain([FakePolicy("broken", raising)], "block", Clock())
        self.successResultOf(chain.checkInput(EXCHANGE))
        self.assertNoSecretLogged()
        [event] = self.chainEvents()
        self.assertEqual(formatEvent(event),
                         "policy broken failed: ValueError")
        self.assertEqual(event["log_level"].name, "error")

    def test_failModeAllowLogsTypeOnly(self):
        chain = PolicyChain(
            [FakePolicy("broken", lambda t: defer.fail(KeyError(SECRET)))],
            "allow", Clock())
        self.successResultOf(chain.checkOutput(EXCHANGE, [SECRET]))
        self.assertNoSecretLogged()
        self.assertEqual([formatEvent(e) for e in self.chainEvents()],
                         ["policy broken failed: KeyError"])

    def test_timeoutLogged(self):
        clock = Clock()
        chain = PolicyChain([FakePolicy("slow", lambda t: defer.Deferred())],
                            "block", clock, timeout=1.0)
        d = chain.checkInput(EXCHANGE)
        clock.advance(1.0)
        self.successResultOf(d)
        self.assertNoSecretLogged()
        self.assertEqual([formatEvent(e) for e in self.chainEvents()],
                         ["policy slow failed: TimeoutError"])


class CheckOutputTests(SynchronousTestCase):
    """
    L{PolicyChain.checkOutput} runs the same chain over answer texts.
    """

    def test_textsAndExchange(self):
        calls = []
        chain = PolicyChain([FakePolicy("up", upper, calls=calls),
                             FakePolicy("b", calls=calls)], "block", Clock())
        result = self.successResultOf(
            chain.checkOutput(EXCHANGE, ["answer one", "two"]))
        self.assertEqual([(c[0], c[1], c[2], c[3]) for c in calls],
                         [("up", "output", EXCHANGE, ("answer one", "two")),
                          ("b", "output", EXCHANGE, ("ANSWER ONE", "TWO"))])
        self.assertEqual((result.verdict, result.texts),
                         (REDACT, ("ANSWER ONE", "TWO")))

    def test_outputBlock(self):
        calls = []
        chain = PolicyChain([FakePolicy("guard", blocked, calls=calls),
                             FakePolicy("b", calls=calls)], "block", Clock())
        result = self.successResultOf(chain.checkOutput(EXCHANGE, ["x"]))
        self.assertEqual((result.verdict, result.policy, len(calls)),
                         (BLOCK, "guard", 1))

    def test_outputWithRealDlp(self):
        chain = PolicyChain([DlpFilter(DlpOptions(blocked_terms=("zebra",)))],
                            "block", Clock())
        result = self.successResultOf(chain.checkOutput(
            EXCHANGE, ["a Zebra and AKIAIOSFODNN7EXAMPLE"]))
        self.assertEqual(result.verdict, REDACT)
        self.assertEqual(result.texts, (
            "a [REDACTED:BLOCKED_TERM] and [REDACTED:AWS_ACCESS_KEY_ID]",))
        self.assertEqual(result.outcomes[0].findings,
                         (Finding("aws_access_key_id"),
                          Finding("blocked_term")))


@implementer(IOutputScanner)
class HoldLastScanner:
    """
    Holds back the last character it was given; C{transform} applies to
    what it releases.  Records calls in C{log}.
    """

    def __init__(self, name, log, transform=lambda s: s):
        self.name = name
        self.log = log
        self.transform = transform
        self.held = ""
        self.findings = (Finding(name),)

    def feed(self, text):
        self.log.append((self.name, "feed", text))
        buf = self.held + text
        self.held, out = buf[-1:], buf[:-1]
        return self.transform(out)

    def end(self):
        self.log.append((self.name, "end"))
        out, self.held = self.held, ""
        return self.transform(out)


class ChainScannerTests(SynchronousTestCase):
    """
    L{ChainScanner} composes the scanners in chain order.
    """

    def setUp(self):
        self.log = []
        self.first = HoldLastScanner("first", self.log)
        self.second = HoldLastScanner("second", self.log,
                                      lambda s: s.upper())
        self.timer = steppingTimer(0.001)
        self.scanner = ChainScanner([("p1", self.first),
                                     ("p2", self.second)], self.timer)

    def test_feedThroughBothInOrder(self):
        self.assertEqual(self.scanner.feed("abc"), "A")
        self.assertEqual(self.log, [("first", "feed", "abc"),
                                    ("second", "feed", "ab")])

    def test_emptyReleaseStopsEarly(self):
        self.assertEqual(self.scanner.feed("a"), "")
        self.assertEqual(self.log, [("first", "feed", "a")])

    def test_endFlushesThroughBoth(self):
        out = [self.scanner.feed("abc"), self.scanner.feed("de")]
        out.append(self.scanner.end())
        self.assertEqual(out, ["A", "BC", "DE"])
        self.assertEqual(self.log[-3:], [("first", "end"),
                                         ("second", "feed", "e"),
                                         ("second", "end")])

    def test_endWithNothingHeld(self):
        self.assertEqual(self.scanner.end(), "")
        self.assertEqual(self.log, [("first", "end"), ("second", "end")])

    def test_outcomes(self):
        """
        One outcome per scanner, with its findings and the time it took;
        a scanner with findings counts as a redaction.
        """
        self.second.findings = ()
        self.scanner.feed("abc")   # first: 1 ms, second: 1 ms
        self.scanner.feed("d")     # first: 1 ms, second: 1 ms
        self.scanner.end()         # first: 1 ms, second: 1 ms
        self.assertEqual(self.scanner.outcomes(), (
            PolicyOutcome("p1", REDACT, 3.0, (Finding("first"),)),
            PolicyOutcome("p2", ALLOW, 3.0, ())))

    def test_outcomesSkippedScannerNotTimed(self):
        self.scanner.feed("a")     # the second scanner is not reached
        self.assertEqual([o.ms for o in self.scanner.outcomes()], [1.0, 0.0])

    def test_blockedPropagates(self):
        @implementer(IOutputScanner)
        class Stopper:
            findings = ()

            def feed(self, text):
                raise Blocked("stopper", [Finding("x")], "stop")

            def end(self):
                return ""
        scanner = ChainScanner([("p1", self.first), ("stopper", Stopper())],
                               self.timer)
        exc = self.assertRaises(Blocked, scanner.feed, "abc")
        self.assertEqual(exc.policy, "stopper")


class ScanOutputTests(SynchronousTestCase):
    """
    L{PolicyChain.scanOutput} builds a L{ChainScanner} of the policies that
    scan answers.
    """

    def test_noneWhenNoPolicyScans(self):
        chain = PolicyChain([FakePolicy("a"), FakePolicy("b")], "block",
                            Clock())
        self.assertIsNone(chain.scanOutput(EXCHANGE))

    def test_onlyScanningPoliciesInOrder(self):
        log = []
        first = HoldLastScanner("first", log)
        second = HoldLastScanner("second", log, str.upper)
        chain = PolicyChain([FakePolicy("p1", scanner=first),
                             FakePolicy("quiet"),
                             FakePolicy("p2", scanner=second)],
                            "block", Clock())
        scanner = chain.scanOutput(EXCHANGE)
        self.assertIsInstance(scanner, ChainScanner)
        self.assertEqual([o.name for o in scanner.outcomes()], ["p1", "p2"])
        self.assertEqual(scanner.feed("xyz") + scanner.end(), "XYZ")

    def test_twoDlpScannersCompose(self):
        """
        What the first scanner releases (already redacted) is what the
        second one scans; a secret split across pieces is still caught.
        """
        class Named(DlpFilter):
            pass
        first = DlpFilter(DlpOptions(builtin=False,
                                     detect_patterns=("ACME-[0-9]{8}",)))
        second = Named(DlpOptions(builtin=False, blocked_terms=("zebra",)))
        second.name = "terms"
        scanner = PolicyChain([first, second], "block", Clock(),
                              timer=lambda: 0.0).scanOutput(EXCHANGE)
        pieces = ["id ACME-123", "45678 and a ze", "bra!", " ZEB", "RA"]
        out = "".join(scanner.feed(p) for p in pieces) + scanner.end()
        self.assertEqual(out, "id [REDACTED:CUSTOM_PATTERN] and a "
                              "[REDACTED:BLOCKED_TERM]! "
                              "[REDACTED:BLOCKED_TERM]")
        self.assertEqual(scanner.outcomes(), (
            PolicyOutcome("dlp-filter", REDACT, 0.0,
                          (Finding("custom_pattern"),)),
            PolicyOutcome("terms", REDACT, 0.0,
                          (Finding("blocked_term", 2),))))

    def test_scannerUsesChainTimer(self):
        log = []
        chain = PolicyChain([FakePolicy("p1", scanner=HoldLastScanner(
            "first", log))], "block", Clock(), timer=steppingTimer(0.002))
        scanner = chain.scanOutput(EXCHANGE)
        scanner.feed("abc")
        self.assertEqual(scanner.outcomes()[0].ms, 2.0)


class MergeOutcomesTests(SynchronousTestCase):
    """
    L{mergeOutcomes} folds per-choice scan outcomes into one per policy.
    """

    def test_merge(self):
        merged = mergeOutcomes([
            (PolicyOutcome("a", REDACT, 1.25, (Finding("x", 2),)),
             PolicyOutcome("b", ALLOW, 0.5, ())),
            (PolicyOutcome("a", REDACT, 0.5, (Finding("w"), Finding("x"))),
             PolicyOutcome("b", ALLOW, 0.25, ())),
        ])
        self.assertEqual(merged, (
            PolicyOutcome("a", REDACT, 1.75, (Finding("w"), Finding("x", 3))),
            PolicyOutcome("b", ALLOW, 0.75, ())))

    def test_findingsInLaterChoiceMakeRedact(self):
        merged = mergeOutcomes([
            (PolicyOutcome("a", ALLOW, 0.0, ()),),
            (PolicyOutcome("a", REDACT, 0.0, (Finding("x"),)),)])
        self.assertEqual(merged, (
            PolicyOutcome("a", REDACT, 0.0, (Finding("x"),)),))

    def test_single(self):
        only = (PolicyOutcome("a", ALLOW, 2.0, ()),)
        self.assertEqual(mergeOutcomes([only]), only)

    def test_empty(self):
        self.assertEqual(mergeOutcomes([]), ())
