# -*- test-case-name: tests.test_policy_cli -*-
"""
Policy test cases, for C{kt policy test}: golden files and the inline
C{testing.suites} of a configuration, read strictly, and run in process
through the configured policies (no network: an C{upstream_response}
stands for the provider's answer and goes through the output chain).

A case::

    {"name": "an AWS key in a prompt is redacted",
     "target": "dlp-filter",                       # optional: this policy alone
     "input": {"messages": [{"role": "user", "content": "key AKIA..."}],
               "headers": {"X-User-ID": "dev1"},   # optional
               "upstream_response": "..."},        # optional
     "expected": {"verdict": "redact",             # allow | redact | block | error
                  "findings": ["aws_access_key_id"],   # optional, any order
                  "texts": ["key [REDACTED:AWS_ACCESS_KEY_ID]"],  # optional
                  "output": "...",                 # optional: the answer after the chain
                  "policy": "dlp-filter"}}         # optional: the policy that blocked

C{input} carries C{messages} (OpenAI chat), C{prompt} or C{input}, as a
request body would.  A golden file holds one case or a list of them.
"""

import json
from typing import Any, Optional, Tuple

import attr
from twisted.internet.task import Clock

from keeptrusts.policy.chain import PolicyChain
from keeptrusts.policy.values import (
    ALLOW, BLOCK, ERROR, RANK, REDACT, Exchange, Finding)
from keeptrusts.schema import (
    ConfigError, Field, invalid, joinPath, readSection, recordParser, setting,
    showValue)

VERDICTS = (ALLOW, REDACT, BLOCK, ERROR)
# Seconds a policy may take; the clock is advanced past it for a policy
# that does not answer at once.
TIMEOUT = 5.0


def _requests(values, path):
    given = [key for key in ("messages", "prompt", "input") if values[key] is not None]
    if len(given) != 1:
        raise invalid(path, "expected exactly one of messages, prompt or input, got %s"
                      % (", ".join(given) if given else "none",))


def _textOrTexts(raw, path):
    if isinstance(raw, str) or (isinstance(raw, list) and all(
            isinstance(item, str) for item in raw)):
        return raw
    raise invalid(path, "expected a string or a list of strings, got %s"
                  % (showValue(raw),))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class CaseInput:
    messages: Optional[Tuple[Any, ...]] = setting(list, None, item=dict)
    prompt: Any = setting(_textOrTexts, None)
    input: Any = setting(_textOrTexts, None)
    model: str = setting(str, "test-model")
    headers: Tuple[Tuple[str, str], ...] = setting(
        dict, (), item=lambda raw, path: tuple(readSection(
            raw, path, {k: Field(str) for k in raw}).items()))
    upstream_response: Optional[str] = setting(str, None)

    def body(self):
        """
        The request body this input stands for.
        """
        body = {"model": self.model}
        for key in ("messages", "prompt", "input"):
            value = getattr(self, key)
            if value is not None:
                body[key] = list(value) if key == "messages" else value
        return json.loads(json.dumps(body))  # a copy the adapter may rewrite

    def header(self, name):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Expected:
    verdict: str = setting(str, choices=VERDICTS)
    findings: Optional[Tuple[str, ...]] = setting(list, None, item=str)
    texts: Optional[Tuple[str, ...]] = setting(list, None, item=str)
    output: Optional[str] = setting(str, None)
    policy: Optional[str] = setting(str, None)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Case:
    """
    @ivar target: a policy kind to run alone, or L{None} for the chain.
    @ivar source: where the case was read: a file, or C{testing.suites[i]}.
    """

    name: str
    input: CaseInput
    expected: Expected
    target: Optional[str] = None
    source: str = ""


_CASE = {
    "name": Field(str),
    "input": Field(recordParser(CaseInput, _requests)),
    "expected": Field(recordParser(Expected)),
    "target": Field(str, default=None),
}


def _readCase(raw, path):
    if not isinstance(raw, dict):
        raise invalid(path, "expected a case (a mapping), got %s" % (showValue(raw),))
    return Case(**readSection(raw, path, _CASE))


def _readCases(raw, path, source, target=None):
    if not isinstance(raw, list):
        raise invalid(path, "expected a list of cases, got %s" % (showValue(raw),))
    cases, problems = [], []
    for index, item in enumerate(raw):
        try:
            case = _readCase(item, "%s[%d]" % (path, index))
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        cases.append(attr.evolve(case, source=source,
                                 target=case.target or target))
    if problems:
        raise ConfigError(problems)
    return cases


def readGoldenFile(path):
    """
    The cases of one golden file: a case, or a list of them.

    @raise ConfigError: naming the file and the path in it at fault.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise invalid(path, "cannot read: %s" % (getattr(e, "strerror", None) or e,))
    if isinstance(raw, dict):
        return _readCases([raw], path, path)[:1]
    return _readCases(raw, path, path)


def readSuites(testing):
    """
    The cases of a configuration's C{testing:} mapping (C{Config.testing}).

    @raise ConfigError: naming the path at fault (C{testing.suites[0]...}).
    """
    if testing is None:
        return []
    section = readSection(testing, "testing", {
        "suites": Field(list, default=(), item=dict)})
    cases, problems = [], []
    for index, suite in enumerate(section["suites"]):
        path = "testing.suites[%d]" % (index,)
        try:
            fields = readSection(suite, path, {
                "name": Field(str), "target": Field(str, default=None),
                "cases": Field(list)})
            cases.extend(_readCases(list(fields["cases"]), joinPath(path, "cases"),
                                    "%s (%s)" % (path, fields["name"]), fields["target"]))
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return cases


@attr.s(frozen=True, slots=True, auto_attribs=True)
class CaseResult:
    """
    @ivar findings: finding types and counts over the request and answer.
    @ivar failures: what differed from the expectation; empty when passed.
    @ivar outcomes: C{(phase, ChainResult)} pairs.
    """

    case: Case
    verdict: str
    policy: Optional[str]
    findings: Tuple[Finding, ...]
    failures: Tuple[str, ...]
    outcomes: Tuple[Tuple[str, Any], ...]

    @property
    def passed(self):
        return not self.failures

    def asJSON(self):
        return {
            "name": self.case.name, "source": self.case.source,
            "passed": self.passed, "verdict": self.verdict, "policy": self.policy,
            "findings": [{"type": f.type, "count": f.count} for f in self.findings],
            "failures": list(self.failures),
            "details": {"policy_results": [
                {"phase": phase, "name": o.name, "verdict": o.verdict,
                 "findings": [{"type": f.type, "count": f.count} for f in o.findings]}
                for phase, result in self.outcomes for o in result.outcomes]},
        }


def _settle(deferred, clock):
    results = []
    deferred.addBoth(results.append)
    if not results:
        clock.advance(TIMEOUT + 1)  # a policy that never answers times out
    return results[0]


def _merged(results):
    counts = {}
    for _, result in results:
        for outcome in result.outcomes:
            for f in outcome.findings:
                counts[f.type] = counts.get(f.type, 0) + f.count
    return tuple(Finding(t, n) for t, n in sorted(counts.items()))


def runCase(case, config, factories, requestTexts):
    """
    Run C{case} through C{config}'s chain (or its C{target} policy alone).

    @param factories: kind name -> L{IPolicyFactory}.
    @param requestTexts: C{body -> (endpoint name, texts)}, the request
        adapter's reading of a body; it raises when the body is invalid.
    @rtype: L{CaseResult}
    """
    clock = Clock()
    kinds = (case.target,) if case.target else config.chain
    policies = [factories[kind].build(config.policy[kind], clock) for kind in kinds]
    chain = PolicyChain(policies, config.gateway.fail_mode, clock, timeout=TIMEOUT)
    endpoint, texts = requestTexts(case.input.body())
    exchange = Exchange(request_id=case.name, endpoint=endpoint, model=case.input.model,
                        user=case.input.header("X-User-ID") or config.gateway.default_user,
                        agent=case.input.header("x-keeptrusts-agent-id"),
                        texts=tuple(texts))
    outcomes = [("input", _settle(chain.checkInput(exchange), clock))]
    answer = case.input.upstream_response
    if answer is not None and outcomes[0][1].verdict not in (BLOCK, ERROR):
        exchange = attr.evolve(exchange, texts=outcomes[0][1].texts)
        outcomes.append(("output", _settle(chain.checkOutput(exchange, (answer,)), clock)))
    last = max((result for _, result in outcomes), key=lambda r: RANK[r.verdict])
    findings = _merged(outcomes)
    return CaseResult(case, last.verdict, last.policy, findings,
                      tuple(_compare(case.expected, last, outcomes, findings)),
                      tuple(outcomes))


def _compare(expected, last, outcomes, findings):
    if last.verdict != expected.verdict:
        yield "verdict: expected %s, got %s" % (expected.verdict, last.verdict)
    if expected.policy is not None and last.policy != expected.policy:
        yield "policy: expected %s, got %s" % (expected.policy, last.policy)
    if expected.findings is not None:
        want, got = sorted(set(expected.findings)), sorted({f.type for f in findings})
        if want != got:
            yield "findings: expected %s, got %s" % (want, got)
    if expected.texts is not None and list(outcomes[0][1].texts) != list(expected.texts):
        yield "texts: expected %s, got %s" % (json.dumps(list(expected.texts)),
                                              json.dumps(list(outcomes[0][1].texts)))
    if expected.output is not None:
        got = outcomes[1][1].texts[0] if len(outcomes) > 1 else None
        if got != expected.output:
            yield "output: expected %s, got %s" % (json.dumps(expected.output),
                                                   json.dumps(got))
