"""
Tests for L{keeptrusts.policy.matcher}: the parts of a match outside its
secret group searched too, whole and streamed.  (The matcher's first tests are with C{dlp-filter}'s, in
L{tests.test_policy_dlp}; the streamed properties over the catalogue, in
L{tests.test_policy_stream}.)
"""

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy.catalogue import CATALOGUE
from keeptrusts.policy.matcher import (
    INNER_SEARCH, Matcher, Pattern, StreamScanner)
from keeptrusts.policy.values import countFindings

MATCHER = Matcher(CATALOGUE)
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS = "AKIAQYLPMN5HFIQZ7XYZ"
URL_USER = "git remote add origin https://%s:x-oauth-basic@github.com/acme/app.git" % (TOKEN,)
MANIFEST = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ci\n"
            "  annotations:\n    ci/token: %s\n    aws/key-id: %s\n"
            "type: Opaque\ndata:\n  password: aHVudGVyMg==\n" % (TOKEN, AWS))


def streamed(matcher, pieces):
    scanner = StreamScanner(matcher, "dlp-filter", False)
    released = "".join(scanner.feed(piece) for piece in pieces) + scanner.end()
    return released, scanner.findings


def splitAt(text, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(text)))
    return [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]


class PartsOutsideTheSecretTests(SynchronousTestCase):
    """
    A match replaces its C{secret} group; the rest of it is searched too
    (found by review: a token as a URL's user name, in a Secret manifest's
    metadata, went out whole).
    """

    def test_tokenAsURLUser(self):
        self.assertEqual(MATCHER.redact(URL_USER), (
            "git remote add origin https://[REDACTED:GITHUB_TOKEN]:"
            "[REDACTED:URL_PASSWORD]@github.com/acme/app.git",
            ["url_password", "github_token"]))

    def test_kubernetesSecretMetadata(self):
        redacted, types = MATCHER.redact(MANIFEST)
        self.assertNotIn(TOKEN, redacted)
        self.assertNotIn(AWS, redacted)
        self.assertIn("password: [REDACTED:KUBERNETES_SECRET]", redacted)
        self.assertEqual(sorted(types), ["aws_access_key_id", "github_token",
                                         "kubernetes_secret"])

    def test_betweenRepeatedSecrets(self):
        """
        Every part outside the spans is searched: before, between, after.
        """
        matcher = Matcher([Pattern("list", r"L[^\[]*(?:\[(?P<secret>\w+)\][^\[;]*)+;"),
                           ("num", r"\d{3}")])
        self.assertEqual(matcher.redact("L 123[a] 456 [b] 789;"), (
            "L [REDACTED:NUM][[REDACTED:LIST]] [REDACTED:NUM] "
            "[[REDACTED:LIST]] [REDACTED:NUM];", ["list", "num", "num", "num"]))

    def test_partSearchedAsTheTextEnds(self):
        """
        A part is searched as a text of its own end: a finding in it does
        not run into the secret after it.
        """
        matcher = Matcher([Pattern("pw", r"u=(?P<user>\w+)/(?P<secret>\w+)"),
                           ("word", r"a+b?")])
        self.assertEqual(matcher.redact("u=aa/bb"),
                         ("u=[REDACTED:WORD]/[REDACTED:PW]", ["pw", "word"]))

    def test_nestedHitsWithinHits(self):
        matcher = Matcher([Pattern("bang", r"(?P<secret>!)\S*")])
        self.assertEqual(matcher.redact("!!! !"), (
            "[REDACTED:BANG]" * 3 + " [REDACTED:BANG]", ["bang"] * 4))

    def test_nestingBounded(self):
        """
        A pattern whose parts outside its secret hold it again, thousands
        deep, raises nothing (a worklist, no recursion) and takes no
        quadratic time: past L{INNER_SEARCH} times the match's length, the
        parts left are replaced whole, as the match's own.
        """
        matcher = Matcher([Pattern("bang", r"(?P<secret>!)\S*")])
        searched = []
        candidates = matcher.candidates
        def counted(text, pos=0, beginnings=True):
            searched.append(len(text) - pos)
            return candidates(text, pos, beginnings)
        self.patch(matcher, "candidates", counted)
        redacted, types = matcher.redact("!" * 3000 + " ok")
        self.assertNotIn("!", redacted)
        self.assertTrue(redacted.endswith("[REDACTED:BANG] ok"), redacted)
        self.assertLessEqual(sum(searched), INNER_SEARCH * 3000 + 4096 + 3003)
        self.assertEqual(set(types), {"bang"})

    def test_markersMatchNothing(self):
        """
        What a redaction leaves is found no more: redacting again changes
        nothing.
        """
        for text in [URL_USER, MANIFEST]:
            redacted, _ = MATCHER.redact(text)
            self.assertEqual(MATCHER.redact(redacted), (redacted, []))

    def test_streamed(self):
        for text in [URL_USER, MANIFEST]:
            whole = MATCHER.redact(text)
            for size in (1, 7, 40):
                released, findings = streamed(MATCHER, [
                    text[i:i + size] for i in range(0, len(text), size)])
                self.assertEqual(released, whole[0])
                self.assertEqual(findings, countFindings(whole[1]))
