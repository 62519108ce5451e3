# -*- test-case-name: tests.test_policy_injection -*-
"""
C{prompt-injection}: instructions that try to override the system prompt
or the model's role, requests to reveal the system prompt, and fake chat
boundaries (C{<|im_start|>system}, C{[INST]}), also when hidden in base64,
behind look-alike letters or spelt out letter by letter.  Prompts only:
answers pass.

Blocks by default; C{response.action: redact} replaces each text that
carries an injection with C{[REDACTED:PROMPT_INJECTION]}, and C{allow}
lets it through with its findings journaled.
"""

import attr
import regex
from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer, provider

from keeptrusts.interfaces import IImmediatePolicy, IPolicyFactory
from keeptrusts.policy.detector import patternProblem
from keeptrusts.policy.folding import fold, hiddenTexts
from keeptrusts.policy.matcher import Matcher, Pattern, marker
from keeptrusts.policy.values import (
    ALLOW, ALLOWED, BLOCK, REDACT, Decision, countFindings)
from keeptrusts.schema import Field, recordParser, setting

KIND = "prompt-injection"
ENCODED = "encoded_injection"
MARKER = marker("prompt_injection")

# Between two words of a phrase: separators, or none (words spelt out
# letter by letter were joined by folding).
_GAP = r"[^\p{L}\p{N}]*"
# Digits that stand for letters (1gn0re, pr3vious), made letters in the
# text phrases are looked for in; a 1 may also be an l (a11 ru1es).
_UNLEET = str.maketrans("013457", "oieast")


def _word(word):
    return word.replace("l", "[il]")


def _slot(words):
    return "(?:%s)" % ("|".join(map(_word, words.split())),)


def phrases(kind, *slots):
    """
    Patterns of a phrase over folded text: each slot is a space-separated
    set of words, and a slot ending in C{?} may be left out.  One pattern
    per first word, so that each is led by a literal (an alternation is
    tried at every place of the text).
    """
    rest = []
    for slot in slots[1:]:
        optional = slot.endswith("?")
        words = _slot(slot.rstrip("?"))
        rest.append("(?:%s%s)?" % (_GAP, words) if optional else _GAP + words)
    return tuple(Pattern(kind, r"(?<![\p{L}\p{N}])%s%s(?![\p{L}])"
                         % (_word(word), "".join(rest)))
                 for word in slots[0].split())


_RULES = ("instructions instruction prompts prompt rules directions directives "
          "guidelines context messages commands constraints restrictions policies "
          "guardrails programming")
_LIMITS = "restrictions rules guidelines filters limitations limits censorship"

PHRASES = (
    phrases("instruction_override",
            "ignore disregard forget override bypass skip drop abandon",
            "all any the your my these those every?", "of?", "the your?",
            "previous prior above earlier preceding initial original foregoing system "
            "existing current", _RULES)
    + phrases("instruction_override", "do", "not", "follow obey", "the your?",
              "previous prior above system original", _RULES)
    + tuple(Pattern(p.type, p.regex + r"\s*:") for p in phrases(
        "instruction_override", "new updated revised real", "system?", "instructions"))
    + phrases("instruction_override", "from", "now", "on", "you", "will must shall",
              "only?", "act behave respond answer reply ignore pretend obey")
    + phrases("role_override", "you", "are", "now", "a an in?",
              "dan jailbroken unrestricted unfiltered uncensored evil unchained")
    + phrases("role_override", "act pretend behave roleplay", "as", "a an?",
              "unrestricted unfiltered uncensored jailbroken evil unchained")
    + phrases("role_override", "pretend imagine", "that?", "you", "have are", "no", _LIMITS)
    + phrases("role_override", "respond answer reply", "without", "any?", _LIMITS)
    + phrases("role_override", "do", "anything", "now")
    + phrases("role_override", "developer dan jailbreak god", "mode",
              "enabled on activated")
    + phrases("prompt_leak",
              "reveal print show repeat output leak display dump tell give write",
              "me us?", "your the", "full entire complete original initial hidden secret?",
              "system hidden original initial", "prompt message instructions")
    + phrases("prompt_leak", "what", "is are was were", "your",
              "system initial hidden original", "prompt instructions")
    + phrases("fake_boundary", "end", "of", "the?", "system user", "prompt input message")
    + phrases("fake_boundary", "begin start", "new?", "system", "prompt message")
)

# Chat-template markup, over folded text (without letters for digits).
BOUNDARIES = (
    Pattern("fake_boundary",
            r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|"
            r"begin_of_text|end_of_text|start_header_id|end_header_id|eot_id|eom_id)\|>"),
) + tuple(Pattern("fake_boundary", regex.escape(tag)) for tag in (
    "[inst]", "[/inst]", "<<sys>>", "<</sys>>", "<system>", "</system>",
    "<start_of_turn>", "<end_of_turn>")) + (
    # A markdown heading or a bracketed role at a line's start.
    Pattern("fake_boundary", r"system(?<=(?m:^)[ \t]*#+[ \t]*system)"
                             r"(?:[ \t]+(?:prompt|message))?[ \t]*:"),
    Pattern("fake_boundary", r"\[system(?<=(?m:^)[ \t]*\[system)(?: message)?\]"),
    Pattern("fake_boundary", r"\[admin\](?<=(?m:^)[ \t]*\[admin\])"),
    Pattern("fake_boundary", r"\n\n(?:human|assistant)[ \t]*:"),
)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Detection:
    builtin: bool = setting(bool, True)
    attack_patterns: tuple = setting(list, (), item=Field(str, check=patternProblem))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Encoding:
    decode_base64: bool = setting(bool, True)
    normalize_unicode: bool = setting(bool, True)
    detect_homoglyphs: bool = setting(bool, True)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Boundaries:
    reject_fake_boundaries: bool = setting(bool, True)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Response:
    action: str = setting(str, BLOCK, choices=(BLOCK, REDACT, ALLOW))
    message: str = setting(str, "Request blocked: potential prompt injection detected")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class InjectionOptions:
    detection: Detection = setting(recordParser(Detection), Detection())
    encoding: Encoding = setting(recordParser(Encoding), Encoding())
    boundaries: Boundaries = setting(recordParser(Boundaries), Boundaries())
    response: Response = setting(recordParser(Response), Response())


def injectionPatterns(options):
    """
    The L{Pattern}s C{options} ask for: C{(over folded text with letters
    for digits, over folded text)}.
    """
    phrasal = []
    literal = []
    if options.detection.builtin:
        phrasal.extend(p for p in PHRASES if p.type != "fake_boundary")
    if options.boundaries.reject_fake_boundaries:
        phrasal.extend(p for p in PHRASES if p.type == "fake_boundary")
        literal.extend(BOUNDARIES)
    literal.extend(Pattern("attack_pattern", "(?i:%s)" % (p,))
                   for p in options.detection.attack_patterns)
    return phrasal, literal


@implementer(IImmediatePolicy)
class PromptInjection:
    """
    The C{prompt-injection} policy for C{options}.
    """

    name = KIND

    def __init__(self, options):
        self._options = options
        phrasal, literal = injectionPatterns(options)
        self._phrasal = Matcher(phrasal)
        self._literal = Matcher(literal)

    def findings(self, text):
        """
        @return: the finding types in C{text}: what folding shows, then
            what its base64 hides (as L{ENCODED}).
        """
        types = self._types(text)
        if self._options.encoding.decode_base64:
            types.extend(ENCODED for hidden in hiddenTexts(text) if self._types(hidden))
        return types

    def _types(self, text):
        encoding = self._options.encoding
        folded = fold(text, encoding.normalize_unicode, encoding.detect_homoglyphs)
        return ([kind for hit in self._phrasal.hits(folded.translate(_UNLEET))
                 for kind in hit.types()]
                + [kind for hit in self._literal.hits(folded)
                   for kind in hit.types()])

    def decideInput(self, exchange):
        response = self._options.response
        perText = [self.findings(text) for text in exchange.texts]
        types = [t for found in perText for t in found]
        if not types:
            return ALLOWED
        findings = countFindings(types)
        if response.action == BLOCK:
            return Decision(BLOCK, findings, message=response.message)
        if response.action == REDACT:
            texts = tuple(MARKER if found else text
                          for text, found in zip(exchange.texts, perText))
            return Decision(REDACT, findings, texts=texts)
        return Decision(ALLOW, findings)

    def decideOutput(self, exchange, texts):
        return ALLOWED

    def checkInput(self, exchange):
        return defer.succeed(self.decideInput(exchange))

    def checkOutput(self, exchange, texts):
        return defer.succeed(ALLOWED)

    def scanOutput(self, exchange):
        return None


@provider(IPlugin, IPolicyFactory)
class PromptInjectionFactory:
    kind = KIND

    @staticmethod
    def parseOptions(raw, path):
        return recordParser(InjectionOptions)(raw, path)

    @staticmethod
    def build(options, clock):
        return PromptInjection(options)
