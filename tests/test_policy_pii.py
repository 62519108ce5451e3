"""
Tests for C{pii-detector} (L{keeptrusts.policy.pii}).
"""

from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from keeptrusts.config import ConfigError
from keeptrusts.interfaces import IPolicy, IPolicyFactory
from keeptrusts.policy.matcher import Matcher
from keeptrusts.policy.streamscan import StreamScanner
from keeptrusts.policy.pii import (
    PII, TYPES, PiiDetector, PiiDetectorFactory, PiiOptions)
from keeptrusts.policy.values import (
    ALLOW, BLOCK, REDACT, Blocked, Decision, Exchange, Finding)

PATH = "policy.pii-detector"

# Valid-looking values of every type: test cards of the brands (Luhn
# valid), the IBAN of the ISO 13616 example, documentation-free addresses.
FOUND = [
    ("email", "jane.doe+billing@corp-mail.io"),
    ("phone_number", "+1 415-555-0132"),
    ("phone_number", "+441632960961"),
    ("phone_number", "(415) 555-0132"),
    ("phone_number", "415-555-0132"),
    ("us_ssn", "123-45-6789"),
    ("payment_card", "4111 1111 1111 1111"),
    ("payment_card", "5555-5555-5555-4444"),
    ("payment_card", "378282246310005"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432"),
    ("ip_address", "10.20.30.40"),
    ("ip_address", "2a00:1450:4001:82b::200e"),
]

PASSED = [
    "user@example.com", "git@github.com:org/repo.git", "version 1.2.3",
    "4111 1111 1111 1112",          # fails Luhn
    "1234 5678 9012 3456",          # no card brand starts so
    "DE89 3704 0044 0532 0130 01",  # fails mod-97
    "000-12-3456", "666-12-3456", "123-00-4567",  # never issued
    "127.0.0.1", "0.0.0.0", "192.0.2.10", "2001:db8::1", "::1", "a[1::2]",
    "999.1.1.1", "12:30:45", "00:1a:2b:3c:4d:5e", "call me at 5550132",
    "timestamp 1700000000123", "2024-01-15 2024-01-16",
]


def pii(**kw):
    return PiiDetector(PiiOptions(**kw))


def decide(policy, *texts):
    return policy.checkInput(Exchange(request_id="r", texts=texts)).result


class DetectionTests(SynchronousTestCase):

    def setUp(self):
        self.matcher = Matcher(PII)

    def test_found(self):
        for kind, value in FOUND:
            text = "contact: %s, thanks" % (value,)
            self.assertEqual(self.matcher.redact(text),
                             ("contact: [REDACTED:%s], thanks" % (kind.upper(),), [kind]),
                             value)

    def test_passed(self):
        for text in PASSED:
            self.assertEqual(self.matcher.redact(text), (text, []), text)

    def test_everyTypeFound(self):
        self.assertEqual(set(TYPES), {kind for kind, _ in FOUND})


class PolicyTests(SynchronousTestCase):

    def test_providesIPolicy(self):
        policy = pii()
        self.assertTrue(verifyObject(IPolicy, policy))
        self.assertEqual(policy.name, "pii-detector")

    def test_redactLabels(self):
        self.assertEqual(decide(pii(), "mail jane@corp.io", "ssn 123-45-6789"), Decision(
            REDACT, (Finding("email"), Finding("us_ssn")),
            texts=("mail [REDACTED:EMAIL]", "ssn [REDACTED:US_SSN]")))

    def test_asterisks(self):
        self.assertEqual(decide(pii(marker_format="asterisks"), "ssn 123-45-6789").texts,
                         ("ssn ****",))

    def test_partial(self):
        decision = decide(pii(marker_format="partial"),
                          "jane.doe@corp.io 123-45-6789 (415) 555-0132")
        self.assertEqual(decision.texts, ("j***@corp.io ***-**-6789 (***) ***-0132",))

    def test_pciModeCardsAlwaysLabelled(self):
        """
        In PCI mode (the default) a card number never keeps a digit, even
        with C{partial} or C{asterisks} markers.
        """
        for markerFormat in ("partial", "asterisks", "label"):
            decision = decide(pii(marker_format=markerFormat), "card 4111-1111-1111-1111")
            self.assertEqual(decision.texts, ("card [REDACTED:PAYMENT_CARD]",))

    def test_pciModeOff(self):
        decision = decide(pii(marker_format="partial", pci_mode=False),
                          "card 4111-1111-1111-1111")
        self.assertEqual(decision.texts, ("card ****-****-****-1111",))

    def test_block(self):
        decision = decide(pii(action=BLOCK), "card 4111 1111 1111 1111")
        self.assertEqual(decision, Decision(
            BLOCK, (Finding("payment_card"),),
            message="Request blocked by pii-detector: payment_card"))
        self.assertNotIn("4111", decision.message)

    def test_customPatterns(self):
        decision = decide(pii(detect_patterns=("EMP-[0-9]{6}",)), "employee EMP-123456")
        self.assertEqual(decision.texts, ("employee [REDACTED:CUSTOM_PATTERN]",))

    def test_nothingFound(self):
        self.assertEqual(decide(pii(), "hello"), Decision(ALLOW))

    def test_answers(self):
        decision = pii().checkOutput(Exchange(request_id="r"), ("mail jane@corp.io",)).result
        self.assertEqual(decision.texts, ("mail [REDACTED:EMAIL]",))

    def test_streamSplitEmail(self):
        scanner = pii(marker_format="partial").scanOutput(Exchange(request_id="r"))
        self.assertIsInstance(scanner, StreamScanner)
        out = [scanner.feed("write to jane"), scanner.feed(".doe@corp"),
               scanner.feed(".io today"), scanner.end()]
        self.assertEqual("".join(out), "write to j***@corp.io today")
        self.assertEqual(out[0], "write to ")

    def test_streamBlock(self):
        scanner = pii(action=BLOCK).scanOutput(Exchange(request_id="r"))
        self.assertEqual(scanner.feed("ok "), "ok ")
        exc = self.assertRaises(Blocked, scanner.feed, "123-45-6789 and on")
        self.assertEqual(exc.findings, (Finding("us_ssn"),))
        self.assertNotIn("6789", exc.message)


class ParseOptionsTests(SynchronousTestCase):

    def problems(self, raw):
        return self.assertRaises(ConfigError, PiiDetectorFactory.parseOptions,
                                 raw, PATH).problems

    def test_plugin(self):
        self.assertTrue(IPlugin.providedBy(PiiDetectorFactory))
        self.assertTrue(verifyObject(IPolicyFactory, PiiDetectorFactory))
        self.assertEqual(PiiDetectorFactory.kind, "pii-detector")

    def test_defaults(self):
        self.assertEqual(PiiDetectorFactory.parseOptions({}, PATH), PiiOptions(
            action=REDACT, marker_format="label", pci_mode=True, detect_patterns=()))

    def test_everything(self):
        options = PiiDetectorFactory.parseOptions({
            "action": "block", "marker_format": "partial", "pci_mode": False,
            "detect_patterns": ["EMP-[0-9]{6}"]}, PATH)
        self.assertEqual(options, PiiOptions(BLOCK, "partial", False, ("EMP-[0-9]{6}",)))
        self.assertIsInstance(PiiDetectorFactory.build(options, Clock()), PiiDetector)

    def test_badValues(self):
        self.assertEqual(self.problems({"marker_format": "stars", "pci_mode": "yes",
                                        "acton": "block", "detect_patterns": ["("]}), (
            ("policy.pii-detector.acton", "unknown key (did you mean 'action'?)"),
            ("policy.pii-detector.marker_format",
             "expected one of [label, asterisks, partial], got 'stars'"),
            ("policy.pii-detector.pci_mode", "expected true or false, got 'yes'"),
            ("policy.pii-detector.detect_patterns[0]",
             "invalid regular expression: missing ) at position 1"),
        ))
