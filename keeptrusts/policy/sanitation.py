# -*- test-case-name: tests.test_policy_sanitation -*-
"""
C{code-sanitation}: secrets in the model's answers (an example config with
a real-looking key, a leaked token) are redacted or the answer is blocked.
Prompts pass: redacting them is C{dlp-filter}'s part.
"""

import attr
from twisted.plugin import IPlugin
from zope.interface import provider

from keeptrusts.interfaces import IPolicyFactory
from keeptrusts.policy.catalogue import CATALOGUE
from keeptrusts.policy.detector import Detector, patternList
from keeptrusts.policy.matcher import Matcher, Pattern
from keeptrusts.schema import Field, readSection

KIND = "code-sanitation"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class SanitationOptions:
    enabled: bool = True
    block_on_match: bool = False
    additional_patterns: tuple = ()


class CodeSanitation(Detector):
    """
    The C{code-sanitation} policy for C{options}: the credential catalogue
    and C{additional_patterns}, over answers only.
    """

    def __init__(self, options):
        patterns = ()
        if options.enabled:
            patterns = CATALOGUE + tuple(Pattern("custom_pattern", p)
                                         for p in options.additional_patterns)
        Detector.__init__(self, KIND, Matcher(patterns), options.block_on_match,
                          inputs=False)


@provider(IPlugin, IPolicyFactory)
class CodeSanitationFactory:
    kind = KIND

    @staticmethod
    def parseOptions(raw, path):
        return SanitationOptions(**readSection(raw, path, {
            "enabled": Field(bool, default=True),
            "block_on_match": Field(bool, default=False),
            "additional_patterns": patternList(),
        }))

    @staticmethod
    def build(options, clock):
        return CodeSanitation(options)
