"""
Tests for C{code-sanitation} (L{keeptrusts.policy.sanitation}).
"""

from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from keeptrusts.config import ConfigError
from keeptrusts.interfaces import IPolicy, IPolicyFactory
from keeptrusts.policy.sanitation import (
    CodeSanitation, CodeSanitationFactory, SanitationOptions)
from keeptrusts.policy.values import ALLOW, BLOCK, REDACT, Blocked, Decision, Exchange, Finding

PATH = "policy.code-sanitation"
EXCHANGE = Exchange(request_id="r")
KEY = "ghp_" + "R8kT2mXq9LpV3bN7hJ4fD6gS8kA1yT3uE5wZ"
ANSWER = 'Here is the config:\n```python\nGITHUB_TOKEN = "%s"\n```\n' % (KEY,)


def sanitation(**kw):
    return CodeSanitation(SanitationOptions(**kw))


class CodeSanitationTests(SynchronousTestCase):

    def test_providesIPolicy(self):
        policy = sanitation()
        self.assertTrue(verifyObject(IPolicy, policy))
        self.assertEqual(policy.name, "code-sanitation")

    def test_answerRedacted(self):
        decision = sanitation().checkOutput(EXCHANGE, (ANSWER,)).result
        self.assertEqual(decision, Decision(
            REDACT, (Finding("github_token"),),
            texts=(ANSWER.replace(KEY, "[REDACTED:GITHUB_TOKEN]"),)))

    def test_promptsPass(self):
        """
        Prompts are C{dlp-filter}'s part.
        """
        decision = sanitation().checkInput(Exchange(request_id="r", texts=(ANSWER,))).result
        self.assertEqual(decision, Decision(ALLOW))

    def test_blockOnMatch(self):
        decision = sanitation(block_on_match=True).checkOutput(EXCHANGE, (ANSWER,)).result
        self.assertEqual(decision.verdict, BLOCK)
        self.assertNotIn(KEY, decision.message)

    def test_additionalPatterns(self):
        decision = sanitation(additional_patterns=(r"eval\(",)).checkOutput(
            EXCHANGE, ("x = eval(input())",)).result
        self.assertEqual(decision.texts, ("x = [REDACTED:CUSTOM_PATTERN]input())",))

    def test_disabled(self):
        policy = sanitation(enabled=False)
        self.assertEqual(policy.checkOutput(EXCHANGE, (ANSWER,)).result, Decision(ALLOW))
        self.assertIsNone(policy.scanOutput(EXCHANGE))

    def test_streamedAnswer(self):
        scanner = sanitation().scanOutput(EXCHANGE)
        pieces = [ANSWER[i:i + 3] for i in range(0, len(ANSWER), 3)]
        out = "".join(scanner.feed(p) for p in pieces) + scanner.end()
        self.assertEqual(out, ANSWER.replace(KEY, "[REDACTED:GITHUB_TOKEN]"))
        self.assertEqual(scanner.findings, (Finding("github_token"),))

    def test_streamBlock(self):
        scanner = sanitation(block_on_match=True).scanOutput(EXCHANGE)
        self.assertRaises(Blocked, lambda: [scanner.feed(ANSWER), scanner.end()])


class ParseOptionsTests(SynchronousTestCase):

    def test_plugin(self):
        self.assertTrue(IPlugin.providedBy(CodeSanitationFactory))
        self.assertTrue(verifyObject(IPolicyFactory, CodeSanitationFactory))
        self.assertEqual(CodeSanitationFactory.kind, "code-sanitation")

    def test_defaults(self):
        options = CodeSanitationFactory.parseOptions({}, PATH)
        self.assertEqual(options, SanitationOptions(True, False, ()))
        self.assertIsInstance(CodeSanitationFactory.build(options, Clock()), CodeSanitation)

    def test_strict(self):
        problems = self.assertRaises(
            ConfigError, CodeSanitationFactory.parseOptions,
            {"block_on_macth": True, "additional_patterns": ["x*"]}, PATH).problems
        self.assertEqual(problems, (
            ("policy.code-sanitation.block_on_macth",
             "unknown key (did you mean 'block_on_match'?)"),
            ("policy.code-sanitation.additional_patterns[0]",
             "the pattern matches the empty string")))
