# -*- test-case-name: tests.test_policy_dlp -*-
"""
C{dlp-filter}: the credential catalogue, custom patterns and blocked terms,
redacted or blocked in prompts and answers.
"""

import attr
import regex
from twisted.plugin import IPlugin
from zope.interface import provider

from keeptrusts.interfaces import IPolicyFactory
from keeptrusts.policy.catalogue import CATALOGUE, TYPES
from keeptrusts.policy.detector import Detector, patternList
from keeptrusts.policy.matcher import Matcher, Pattern
from keeptrusts.policy.values import BLOCK, REDACT
from keeptrusts.schema import Field, hint, readSection

KIND = "dlp-filter"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DlpOptions:
    action: str = REDACT
    detect_patterns: tuple = ()
    blocked_terms: tuple = ()
    builtin: bool = True
    disabled_types: tuple = ()


def _termProblem(value):
    return None if value.strip() else "expected a non-empty term"


def _typeProblem(value):
    if value in TYPES:
        return None
    return "unknown credential type %r%s" % (value, hint(value, TYPES))


def namedPatterns(options):
    """
    The L{Pattern}s that C{options} ask for, catalogue first.
    """
    named = []
    if options.builtin:
        named.extend(p for p in CATALOGUE if p.type not in options.disabled_types)
    named.extend(Pattern("custom_pattern", p) for p in options.detect_patterns)
    named.extend(Pattern("blocked_term", "(?i:%s)" % (regex.escape(term),))
                 for term in options.blocked_terms)
    return named


class DlpFilter(Detector):
    """
    The C{dlp-filter} policy for C{options}.
    """

    def __init__(self, options):
        Detector.__init__(self, KIND, Matcher(namedPatterns(options)),
                          options.action == BLOCK)


@provider(IPlugin, IPolicyFactory)
class DlpFilterFactory:
    kind = KIND

    @staticmethod
    def parseOptions(raw, path):
        return DlpOptions(**readSection(raw, path, {
            "action": Field(str, default=REDACT, choices=(REDACT, BLOCK)),
            "detect_patterns": patternList(),
            "blocked_terms": Field(list, default=(), item=Field(
                str, check=_termProblem)),
            "builtin": Field(bool, default=True),
            "disabled_types": Field(list, default=(), item=Field(
                str, check=_typeProblem)),
        }))

    @staticmethod
    def build(options, clock):
        return DlpFilter(options)
