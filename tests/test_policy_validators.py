"""
Tests for L{keeptrusts.policy.validators}: the checks a match must pass
beyond its regular expression.
"""

import base64

import regex
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy import validators as v


def match(pattern, text):
    return regex.search(pattern, text)


class EntropyTests(SynchronousTestCase):

    def test_entropy(self):
        self.assertEqual(v.entropy(""), 0.0)
        self.assertEqual(v.entropy("aaaa"), 0.0)
        self.assertEqual(v.entropy("abcd"), 2.0)
        self.assertAlmostEqual(v.entropy("aab"), 0.9183, places=4)

    def test_floorLowerForShortValues(self):
        self.assertEqual(v.entropyFloor(8), 2.5)
        self.assertEqual(v.entropyFloor(64), v.ENTROPY_FLOOR)

    def test_randomLooking(self):
        check = v.randomLooking(3.0)
        self.assertTrue(check(match(r"\w+", "q8Rw2ZkT5mXc9Lp3")))
        self.assertFalse(check(match(r"\w+", "xxxxxxxxxxxxxxxx")))

    def test_secretGroupJudged(self):
        m = match(r"k=(?P<secret>\w+)", "k=abcdefgh")
        self.assertEqual(v.secretOf(m), "abcdefgh")
        self.assertEqual(v.secretOf(match(r"\w+", "abc")), "abc")


class PlaceholderTests(SynchronousTestCase):

    def test_placeholders(self):
        for value in ["<YOUR_API_KEY>", "${OPENAI_API_KEY}", "{{ token }}", "$TOKEN",
                      "sk-...", "xxxxxxxx", "********", "changeme", "your-api-key-here",
                      "os.environ['X']", "process.env.KEY", "%(password)s", "[secret]",
                      "REPLACE_ME", "example123", "password", "None", "secrets.TOKEN"]:
            self.assertTrue(v.isPlaceholder(value), value)

    def test_notPlaceholders(self):
        for value in ["q8Rw2ZkT5mXc9Lp3", "S3cr3t-P4ss!", "hunter2xyz"]:
            self.assertFalse(v.isPlaceholder(value), value)

    def test_assignedSecret(self):
        def check(value):
            return v.assignedSecret(match(r"=(?P<secret>\S+)", "=" + value))
        for value in ["Xk9#mQ2%vL7pR4w", "q8Rw2ZkT5mXc9Lp3", "S8w2j.ky0JnXzK6p"]:
            self.assertTrue(check(value), value)
        for value in ["settings.DB_PASSWORD", "db_password", "DB_PASSWORD", "aaaaaaaaaa",
                      "/run/secrets/db", "./key.pem", "https://vault/x", "<password>",
                      "self.token", "config.api_key2"]:
            self.assertFalse(check(value), value)


class ChecksumTests(SynchronousTestCase):

    def test_luhn(self):
        self.assertTrue(v.luhn("4111111111111111"))
        self.assertTrue(v.luhn("79927398713"))
        self.assertFalse(v.luhn("4111111111111112"))

    def test_paymentCard(self):
        for card in ["4111 1111 1111 1111", "5555555555554444", "378282246310005",
                     "6011111111111117", "3530111333300000", "2221000000000009"]:
            self.assertTrue(v.paymentCard(match(r".+", card)), card)
        for card in ["1234567812345670", "4111111111111112", "9111111111111111"]:
            self.assertFalse(v.paymentCard(match(r".+", card)), card)

    def test_iban(self):
        for value in ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
                      "FR1420041010050500013M02606"]:
            self.assertTrue(v.iban(match(r".+", value)), value)
        for value in ["DE89 3704 0044 0532 0130 01", "DE89370400440532013", "ZZ00123412341234"]:
            self.assertFalse(v.iban(match(r".+", value)), value)

    def test_ipAddress(self):
        for value in ["8.8.8.8", "10.1.2.3", "2a00:1450::200e"]:
            self.assertTrue(v.ipAddress(match(r".+", value)), value)
        for value in ["127.0.0.1", "0.0.0.0", "203.0.113.9", "2001:db8::5", "::1", "300.1.1.1"]:
            self.assertFalse(v.ipAddress(match(r".+", value)), value)

    def test_userPassword(self):
        self.assertTrue(v.decodesToUserPassword(match(r".+", "dXNlcjpzM2NyM3Q=")))
        self.assertFalse(v.decodesToUserPassword(match(r".+", "aGVsbG8=")))  # no colon
        self.assertFalse(v.decodesToUserPassword(match(r".+", "dXNlcjpwYXNzd29yZA==")))

    def test_jwtHeader(self):
        self.assertTrue(v.jwtHeader(match(r".+", "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.sig")))
        self.assertFalse(v.jwtHeader(match(r".+", "eyJub3QganNvbg.eyJ4IjoxfQ.sig")))

    def test_jwtHeaderNestedTooDeep(self):
        """
        A header nested deeper than the JSON parser goes is taken for a
        token, rather than raising (found by review: RecursionError stopped
        C{dlp-filter}, and C{fail_mode: allow} sent every text unread).
        """
        header = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"
        token = (base64.urlsafe_b64encode(header).rstrip(b"=").decode()
                 + ".eyJ4IjoxfQ.sig")
        self.assertTrue(v.jwtHeader(match(r".+", token)))

    def test_jwtHeaderTooLongNotRead(self):
        """
        A header longer than L{v.MAX_JWT_HEADER} is not decoded (its
        parsing is the sender's choice of work): it is taken for a token.
        """
        head = "eyJ" + "a" * v.MAX_JWT_HEADER
        self.assertTrue(v.jwtHeader(match(r".+", head + ".eyJ4IjoxfQ.sig")))
        self.patch(v, "_b64decode", lambda text: self.fail("decoded"))
        self.assertTrue(v.jwtHeader(match(r".+", head + ".eyJ4IjoxfQ.sig")))

    def test_pemBody(self):
        body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVT"
        self.assertTrue(v.pemBody(match(r"[\s\S]+", "-----BEGIN X-----\n%s\n-----END X-----"
                                        % (body,))))
        self.assertFalse(v.pemBody(match(r"[\s\S]+", "-----BEGIN X-----\n<your key here>"
                                         "\n-----END X-----")))
