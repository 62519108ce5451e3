# -*- test-case-name: tests.test_policy_dlp -*-
"""
C{dlp-filter}: credentials, custom patterns and blocked terms, redacted or
blocked in prompts and answers.
"""

import regex
from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer, provider

from keeptrusts.schema import Field, readSection
from keeptrusts.interfaces import IPolicy, IPolicyFactory
from keeptrusts.policy.catalogue import CATALOGUE
from keeptrusts.policy.matcher import Matcher, StreamScanner
from keeptrusts.policy.values import (
    ALLOW, BLOCK, REDACT, Decision, countFindings)

import attr

KIND = "dlp-filter"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DlpOptions:
    action: str = REDACT
    detect_patterns: tuple = ()
    blocked_terms: tuple = ()
    builtin: bool = True
    disabled_types: tuple = ()


def _patternProblem(value):
    try:
        pattern = regex.compile(value)
    except regex.error as e:
        return "invalid regular expression: %s" % (e,)
    if pattern.fullmatch(""):
        return "the pattern matches the empty string"
    return None


def _termProblem(value):
    return None if value.strip() else "expected a non-empty term"


def namedPatterns(options):
    """
    The C{(type, pattern)} pairs that C{options} ask for, catalogue first.
    """
    named = []
    if options.builtin:
        named.extend(entry for entry in CATALOGUE
                     if entry[0] not in options.disabled_types)
    named.extend(("custom_pattern", p) for p in options.detect_patterns)
    named.extend(("blocked_term", "(?i:%s)" % (regex.escape(term),))
                 for term in options.blocked_terms)
    return named


@implementer(IPolicy)
class DlpFilter:
    name = KIND

    def __init__(self, options):
        self._block = options.action == BLOCK
        self._matcher = Matcher(namedPatterns(options))

    def _decide(self, texts, what):
        redacted = []
        types = []
        for text in texts:
            new, found = self._matcher.redact(text)
            redacted.append(new)
            types.extend(found)
        if not types:
            return Decision(ALLOW)
        findings = countFindings(types)
        if self._block:
            return Decision(BLOCK, findings, message="%s blocked by %s: %s"
                            % (what, KIND, ", ".join(f.type for f in findings)))
        return Decision(REDACT, findings, texts=tuple(redacted))

    def checkInput(self, exchange):
        return defer.succeed(self._decide(exchange.texts, "Request"))

    def checkOutput(self, exchange, texts):
        return defer.succeed(self._decide(texts, "Answer"))

    def scanOutput(self, exchange):
        if not self._matcher:
            return None
        return StreamScanner(self._matcher, KIND, self._block)


@provider(IPlugin, IPolicyFactory)
class DlpFilterFactory:
    kind = KIND

    @staticmethod
    def parseOptions(raw, path):
        return DlpOptions(**readSection(raw, path, {
            "action": Field(str, default=REDACT, choices=(REDACT, BLOCK)),
            "detect_patterns": Field(list, default=(), item=Field(
                str, check=_patternProblem)),
            "blocked_terms": Field(list, default=(), item=Field(
                str, check=_termProblem)),
            "builtin": Field(bool, default=True),
            "disabled_types": Field(list, default=(), item=Field(
                str, choices=[kind for kind, _ in CATALOGUE])),
        }))

    @staticmethod
    def build(options, clock):
        return DlpFilter(options)
