"""
Tests for L{keeptrusts.policy.matcher}: the parts of a match outside its
secret group searched too, and a text's JSON escapes read plainly, whole
and streamed.  (The matcher's first tests are with C{dlp-filter}'s, in
L{tests.test_policy_dlp}; the streamed properties over the catalogue, in
L{tests.test_policy_stream}.)
"""

import json

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy.catalogue import CATALOGUE
from keeptrusts.policy.matcher import INNER_SEARCH, Matcher, Pattern
from keeptrusts.policy.streamscan import StreamScanner
from keeptrusts.policy.values import countFindings

settings.register_profile("keeptrusts", derandomize=True, deadline=None,
                          database=None)
PROFILE = settings.get_profile("keeptrusts")

MATCHER = Matcher(CATALOGUE)
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS = "AKIAQYLPMN5HFIQZ7XYZ"
AWS_SECRET = "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"
# What PHP's json_encode writes: every slash escaped.
PHP_JSON = json.dumps({"aws_access_key_id": AWS,
                       "aws_secret_access_key": AWS_SECRET}).replace("/", "\\/")
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
        for text in [URL_USER, MANIFEST, PHP_JSON]:
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


class EscapedTextTests(SynchronousTestCase):
    """
    A text holding JSON escapes is also read with them written plainly,
    and what is found there is redacted where it was written (found by
    review: C{json_encode}'s C{\\/} hid an AWS secret key).
    """

    def test_escapedSlash(self):
        text = "config from json_encode(): %s" % (PHP_JSON,)
        self.assertEqual(MATCHER.redact(text), (
            'config from json_encode(): {"aws_access_key_id": '
            '"[REDACTED:AWS_ACCESS_KEY_ID]", "aws_secret_access_key": '
            '"[REDACTED:AWS_SECRET_ACCESS_KEY]"}',
            ["aws_access_key_id", "aws_secret_access_key"]))

    def test_unicodeEscapes(self):
        text = 'k = "\\u0041KIAQYLPMN5HFIQZ7XYZ" and "%s"' % (
            "".join("\\u%04x" % ord(c) for c in TOKEN),)
        self.assertEqual(MATCHER.redact(text), (
            'k = "[REDACTED:AWS_ACCESS_KEY_ID]" and "[REDACTED:GITHUB_TOKEN]"',
            ["aws_access_key_id", "github_token"]))

    def test_escapedURL(self):
        """
        JSON in HTML writes C{<\\/}; a URL's slashes escaped hide its
        password and the token before it.
        """
        text = '"remote": "https:\\/\\/%s:x-oauth-basic@github.com\\/a.git"' % (TOKEN,)
        self.assertEqual(MATCHER.redact(text)[0],
                         '"remote": "https:\\/\\/[REDACTED:GITHUB_TOKEN]:'
                         '[REDACTED:URL_PASSWORD]@github.com\\/a.git"')

    def test_foundBothWaysCountedOnce(self):
        """
        A key found as written and read plainly is one finding.
        """
        text = '{"id": "%s", "path": "a\\/b"}' % (AWS,)
        self.assertEqual(MATCHER.redact(text), (
            '{"id": "[REDACTED:AWS_ACCESS_KEY_ID]", "path": "a\\/b"}',
            ["aws_access_key_id"]))

    def test_escapedBackslashKept(self):
        """
        An escaped backslash before C{u0041} makes no escape of it: read
        as JSON reads it, it is no key.
        """
        text = "\\\\u0041KIAQYLPMN5HFIQZ7XYZ \\/"
        self.assertEqual(MATCHER.redact(text), (text, []))

    def test_holdPointReadsPlainly(self):
        """
        A stream holds back what could still become a finding read
        plainly; and an escape a piece ends in the middle of.
        """
        text = '{"aws_secret_access_key":"q8Tz\\/3n'
        self.assertEqual(MATCHER.holdPoint(text, 0), text.index("secret"))
        self.assertEqual(MATCHER.holdPoint("abc \\u00", 0), 4)
        self.assertEqual(MATCHER.holdPoint("abc \\", 0), 4)

    def test_keyEscapedAcrossPieces(self):
        """
        A key whose first letter is an escape cut between two pieces is
        redacted whole.
        """
        for cut in range(4, 12):
            text = "id: \\u0041KIAQYLPMN5HFIQZ7XYZ ok"
            released, findings = streamed(MATCHER, [text[:cut], text[cut:]])
            self.assertEqual(released, "id: [REDACTED:AWS_ACCESS_KEY_ID] ok")

    @settings(PROFILE, max_examples=150)
    @given(st.data())
    def test_streamEqualsWholeText(self, data):
        """
        However a text with escaped keys is cut, the stream releases the
        whole text redacted, with the same findings, and no key.
        """
        parts = data.draw(st.lists(st.sampled_from([
            PHP_JSON, URL_USER.replace("/", "\\/"), MANIFEST,
            '"\\u0041KIAQYLPMN5HFIQZ7XYZ"', "a\\\\/b", "\\ud83d\\ude00",
            "plain words", "\\", "\\u00e9t\\u00e9", '{"k": "v"}'
        ]), min_size=1, max_size=5), label="parts")
        text = data.draw(st.sampled_from(["\n", " ", ""])).join(parts)
        cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=20),
                         label="cuts")
        released, findings = streamed(MATCHER, splitAt(text, cuts))
        expected, found = MATCHER.redact(text)
        self.assertEqual(released, expected)
        self.assertEqual(findings, countFindings(found))
        for secret in (TOKEN, AWS, AWS_SECRET.replace("/", "\\/")):
            self.assertNotIn(secret, released)
