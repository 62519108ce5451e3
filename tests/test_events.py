"""
Tests for L{keeptrusts.events}: what a journal record keeps of a request.
"""

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.events import eventRecord
from keeptrusts.policy.scrub import MadeHere
from keeptrusts.policy.values import Exchange


class EventRecordTests(SynchronousTestCase):
    def record(self, **fields):
        fields.setdefault("request_id", MadeHere("req_1"))
        return eventRecord("access", "allow", Exchange(**fields), "t@1")

    def test_fields(self):
        record = self.record(mode="api", provider="openai", target="fake",
                             endpoint="chat/completions", method="POST",
                             host="localhost:41002", user="alice",
                             model="gpt-fake")
        self.assertEqual(
            {k: record[k] for k in ("phase", "verdict", "mode", "provider",
                                    "target", "endpoint", "method", "host",
                                    "user", "model", "config")},
            {"phase": "access", "verdict": "allow", "mode": "api",
             "provider": "openai", "target": "fake",
             "endpoint": "chat/completions", "method": "POST",
             "host": "localhost:41002", "user": "alice", "model": "gpt-fake",
             "config": "t@1"})

    def test_destinationScrubbed(self):
        """
        The destination of proxied traffic, its C{target} as its C{host},
        is scrubbed of keys in any casing: a DNS name has none, and a key
        id lower-cased is given back by upper-casing it (found by review:
        the target was kept raw, the host lower-cased before it was
        scrubbed).
        """
        for host in ("AKIAIOSFODNN7EXAMPLE.invalid",
                     "akiaiosfodnn7example.invalid",
                     "Akiaiosfodnn7example.invalid"):
            record = self.record(mode="proxy", target=host, host=host)
            self.assertEqual(
                (record["target"], record["host"]),
                ("[REDACTED:AWS_ACCESS_KEY_ID].invalid",) * 2, host)
        token = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
        record = self.record(mode="intercept", target=token + ".invalid",
                             host=token.lower() + ".invalid:443")
        self.assertEqual((record["target"], record["host"]),
                         ("[REDACTED:GITHUB_TOKEN].invalid",
                          "[REDACTED:GITHUB_TOKEN].invalid:443"))
        # The rest of a name keeps its case.
        self.assertEqual(self.record(host="API.OpenAI.com")["host"],
                         "API.OpenAI.com")

    def test_methodScrubbed(self):
        """
        The method, any HTTP token the client chose, is scrubbed of keys in
        any casing, as it came or upper-cased by the client's library
        (found by review: a token sent as the method was recorded whole).
        """
        token = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
        for method in (token, token.upper()):
            self.assertEqual(self.record(mode="proxy", method=method)[
                "method"], "[REDACTED:GITHUB_TOKEN]")
        self.assertEqual(self.record(method="M-SEARCH")["method"],
                         "M-SEARCH")
