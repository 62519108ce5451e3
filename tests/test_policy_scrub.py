"""
Tests for L{keeptrusts.policy.scrub}.
"""

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy import scrub
from keeptrusts.policy.matcher import Pattern
from keeptrusts.policy.scrub import (
    Scrubber, scrubbed, scrubbedName, scrubbedPath)


class ScrubberTests(SynchronousTestCase):
    def test_catalogue(self):
        self.assertEqual(scrubbed("model-AKIAIOSFODNN7EXAMPLE"),
                         "model-[REDACTED:AWS_ACCESS_KEY_ID]")
        self.assertEqual(
            scrubbed("/bot123456789:AAHkJdmZ8cGvA4bHw3lFzL1ghRm0xNmVabc/getMe"),
            "/bot123456789[REDACTED:TELEGRAM_BOT_TOKEN]/getMe")
        self.assertEqual(scrubbed("gpt-4o-mini"), "gpt-4o-mini")

    def test_findingsInsideFindings(self):
        """
        A token as a URL's user name, beside the password the URL's finding
        is for, is taken out too; so is a key written with JSON escapes
        (found by review).
        """
        token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
        self.assertEqual(
            scrubbed("https://%s:x-oauth-basic@github.com/a" % (token,)),
            "https://[REDACTED:GITHUB_TOKEN]:[REDACTED:URL_PASSWORD]"
            "@github.com/a")
        self.assertEqual(scrubbedName("https:\\/\\/%s:x@h" % (token,)),
                         "https:\\/\\/[REDACTED:GITHUB_TOKEN]:"
                         "[REDACTED:URL_PASSWORD]@h")
        self.assertEqual(scrubbed("id-\\u0041KIAQYLPMN5HFIQZ7XYZ"),
                         "id-[REDACTED:AWS_ACCESS_KEY_ID]")

    def test_notText(self):
        for value in (None, "", 5, ["AKIAIOSFODNN7EXAMPLE"]):
            self.assertIs(scrubbed(value), value)

    def test_keptBounded(self):
        """
        Outcomes are kept for values that repeat, never more than
        L{scrub.MAX_KEPT}; the patterns compile once, at first use.
        """
        self.patch(scrub, "MAX_KEPT", 3)
        scrubber = Scrubber([Pattern("word", r"secret")])
        self.assertIsNone(scrubber._matcher)
        for n in range(5):
            self.assertEqual(scrubber("secret-%d" % (n,)),
                             "[REDACTED:WORD]-%d" % (n,))
            self.assertLessEqual(len(scrubber._kept), 3)
        matcher = scrubber._matcher
        self.assertEqual(scrubber("secret-4"), "[REDACTED:WORD]-4")
        self.assertIs(scrubber._matcher, matcher)

    def test_madeHere(self):
        """
        Text the gateway made passes unread and is not kept (its request
        ids are drawn anew each time); the same text from a client is read.
        """
        scrubber = Scrubber([Pattern("word", r"secret")])
        made = scrub.MadeHere("req_secret")
        self.assertIs(scrubber(made), made)
        self.assertIsNone(scrubber._matcher)
        self.assertEqual(scrubber._kept, {})
        self.assertEqual(scrubber("req_secret"), "req_[REDACTED:WORD]")


class NameTests(SynchronousTestCase):
    """
    L{scrubbedName}: a name read without regard to case.
    """

    def test_anyCasing(self):
        for name in ("AKIAIOSFODNN7EXAMPLE.invalid",
                     "akiaiosfodnn7example.invalid"):
            self.assertEqual(scrubbedName(name),
                             "[REDACTED:AWS_ACCESS_KEY_ID].invalid")
        # Two keys, each found in its own casing; the rest keeps its case.
        self.assertEqual(
            scrubbedName("X.ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5."
                         "akiaiosfodnn7example.Example"),
            "X.[REDACTED:GITHUB_TOKEN].[REDACTED:AWS_ACCESS_KEY_ID].Example")
        self.assertEqual(scrubbedName("API.OpenAI.com"), "API.OpenAI.com")
        self.assertEqual(scrubbedName("stra\xdfe.example"),
                         "stra\xdfe.example")

    def test_notText(self):
        made = scrub.MadeHere("akiaiosfodnn7example")
        for value in (None, "", 5, made):
            self.assertIs(scrubbedName(value), value)

    def test_keptBounded(self):
        self.patch(scrub, "MAX_KEPT", 3)
        scrubber = Scrubber([Pattern("word", r"SECRET")])
        for n in range(5):
            self.assertEqual(scrubber.name("secret-%d" % (n,)),
                             "[REDACTED:WORD]-%d" % (n,))
            self.assertLessEqual(len(scrubber._keptNames), 3)


class PathTests(SynchronousTestCase):
    """
    L{scrubbedPath}: a path as a server reads it, percent-decoded.
    """

    def test_percentEncoded(self):
        """
        A key hidden by percent-encoding is found; the decoded path is
        shown then, redacted (found by review: C{AKIA%49...} was kept).
        """
        self.assertEqual(
            scrubbedPath("/keys/AKIA%49OSFODNN7EXAMPLE/ghp_aB3dE5fG7hI9jK1lM"
                         "3nO5pQ7rS9tU1vW3x%595/a%20b"),
            "/keys/[REDACTED:AWS_ACCESS_KEY_ID]/[REDACTED:GITHUB_TOKEN]/a b")

    def test_asItCame(self):
        """
        A path whose decoding shows nothing is shown as it came, its own
        findings redacted.
        """
        for path, shown in [
                ("/a%20b/c", "/a%20b/c"),
                ("/AKIAIOSFODNN7EXAMPLE/%zz%",
                 "/[REDACTED:AWS_ACCESS_KEY_ID]/%zz%"),
                ("/v1/chat/completions", "/v1/chat/completions")]:
            self.assertEqual(scrubbedPath(path), shown)
