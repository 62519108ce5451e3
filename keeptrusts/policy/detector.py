# -*- test-case-name: tests.test_policy_dlp -*-
"""
What C{dlp-filter}, C{pii-detector} and C{code-sanitation} have in common:
a policy that finds a L{Matcher}'s patterns in prompts and answers and
redacts or blocks them, whole texts and streams alike.
"""

import regex
from twisted.internet import defer
from zope.interface import implementer

from keeptrusts.interfaces import IImmediatePolicy
from keeptrusts.policy.matcher import marker
from keeptrusts.policy.streamscan import StreamScanner
from keeptrusts.policy.values import (
    ALLOWED, BLOCK, REDACT, Decision, countFindings)
from keeptrusts.schema import Field


def patternProblem(value):
    """
    The check of a user's regular expression: it compiles and cannot match
    the empty string (it would be found between every two characters).
    """
    try:
        pattern = regex.compile(value)
    except regex.error as e:
        return "invalid regular expression: %s" % (e,)
    if pattern.fullmatch(""):
        return "the pattern matches the empty string"
    return None


def patternList():
    """
    The L{Field} of a list of user regular expressions (C{detect_patterns}).
    """
    return Field(list, default=(), item=Field(str, check=patternProblem))


@implementer(IImmediatePolicy)
class Detector:
    """
    An L{IPolicy} over a L{Matcher}.

    @param name: the policy's kind name.
    @param block: block on a finding, rather than redact it.
    @param mark: C{(type, matched text) -> replacement}.
    @param inputs: whether prompts are looked at (or only answers).
    """

    def __init__(self, name, matcher, block, mark=marker, inputs=True):
        self.name = name
        self._matcher = matcher
        self._block = block
        self._mark = mark
        self._inputs = inputs

    def decide(self, texts, what):
        """
        @param what: C{Request} or C{Answer}, for the block message.
        @return: the L{Decision} over C{texts}.
        """
        redacted = []
        types = []
        for text in texts:
            new, found = self._matcher.redact(text, self._mark)
            redacted.append(new)
            types.extend(found)
        if not types:
            return ALLOWED
        findings = countFindings(types)
        if self._block:
            # Types only: the message reaches the caller and the logs.
            return Decision(BLOCK, findings, message="%s blocked by %s: %s"
                            % (what, self.name, ", ".join(f.type for f in findings)))
        return Decision(REDACT, findings, texts=tuple(redacted))

    def decideInput(self, exchange):
        if not self._inputs:
            return ALLOWED
        return self.decide(exchange.texts, "Request")

    def decideOutput(self, exchange, texts):
        return self.decide(texts, "Answer")

    def checkInput(self, exchange):
        return defer.succeed(self.decideInput(exchange))

    def checkOutput(self, exchange, texts):
        return defer.succeed(self.decideOutput(exchange, texts))

    def scanOutput(self, exchange):
        if not self._matcher:
            return None
        return StreamScanner(self._matcher, self.name, self._block, self._mark)
