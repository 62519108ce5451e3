"""
Tests for L{keeptrusts.schema}: what its errors show of the values and
keys they refuse.
"""

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.schema import (
    ConfigError, Field, matching, readSection, showValue, unique)

KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9o"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
       "aFDrBz9vFqU4yQIDAQABAoIBAQCkxS1Rq6B8CKHQrLUXnZF1d0Cm4sYBGKZQLXsc\n"
       "-----END RSA PRIVATE KEY-----\n")


class ShowValueTests(SynchronousTestCase):
    def test_plainValuesShown(self):
        self.assertEqual(showValue("blok"), "'blok'")
        self.assertEqual(showValue(3), "3")
        self.assertEqual(showValue("x" * 100), "'" + "x" * 56 + "...")

    def test_credentialNotShown(self):
        """
        A value the credential scrubber finds something in is not shown,
        not even its head (found by review: a key pasted as a digest, a
        header name or in a URL was shown up to 57 characters): only the
        types found are named.  In a list or a mapping, and where a repr
        hides it (an escape before it: C{\\nsk-...} is no key), all the
        same.
        """
        for value in (KEY, "Bearer " + KEY, "https://u:%s@x y" % (KEY,),
                      [KEY, 3], {"k": KEY}, {KEY: 1}, [PEM], {"a": [PEM]},
                      "line\n" + KEY, ["line\n" + KEY], {"a\t" + KEY: 1}):
            shown = showValue(value)
            self.assertTrue(shown.startswith("a value holding a credential ("),
                            (value, shown))
            self.assertNotIn(KEY[:20], shown)
            self.assertNotIn("MIIEow", shown)
        self.assertEqual(showValue(KEY),
                         "a value holding a credential (openai_api_key), "
                         "not shown")

    def test_loopedValue(self):
        """
        A list that holds itself (YAML aliases can make one) is shown.
        """
        looped = ["a"]
        looped.append(looped)
        self.assertEqual(showValue(looped), "['a', [...]]")
        looped.append(KEY)
        self.assertIn("openai_api_key", showValue(looped))

    def test_checksAndTypes(self):
        """
        The messages of checks and types show values through it.
        """
        fields = {"digest": Field(str, None, check=matching(
                      "[0-9a-f]{64}", "a SHA-256")),
                  "n": Field(int, None), "names": Field(
                      list, None, check=unique)}
        error = self.assertRaises(ConfigError, readSection, {
            "digest": KEY, "n": KEY, "names": [KEY, KEY]}, "s", fields)
        self.assertNotIn(KEY[:20], str(error))
        self.assertEqual(len(error.problems), 3)

    def test_unknownKeyScrubbed(self):
        """
        An unknown key that is a key is named by its marker in the path.
        """
        error = self.assertRaises(ConfigError, readSection,
                                  {KEY: 1, "nme": 2}, "s",
                                  {"name": Field(str, None)})
        self.assertEqual(error.problems, (
            ("s.[REDACTED:OPENAI_API_KEY]", "unknown key"),
            ("s.nme", "unknown key (did you mean 'name'?)")))
