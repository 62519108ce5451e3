# -*- test-case-name: tests.test_policy_scrub -*-
"""
Credentials out of what the gateway writes down about a request besides
its texts: the journal's fields, the access-log line, metric labels.  A key
sent as a model name, a user or request id, an agent id or in a URL path
is not a text the policies read, and must not be recorded whole: the
credential catalogue's findings there are replaced by their markers.
"""

from keeptrusts.policy.catalogue import CATALOGUE
from keeptrusts.policy.matcher import Matcher

# Recorded values repeat (models, users, paths): their outcomes are kept,
# this many at most, of values this long at most.
MAX_KEPT = 4096
MAX_KEPT_LENGTH = 256


class MadeHere(str):
    """
    Text the gateway made itself (a request id it drew): no credential can
    be in it, and a L{Scrubber} passes it as it is.  A request's id is
    recorded twice, and drawn anew each time: never kept, it would be read
    each time.
    """

    __slots__ = ()


class Scrubber:
    """
    @param patterns: the L{Pattern}s to take out; the credential catalogue
        by default.
    """

    def __init__(self, patterns=CATALOGUE):
        self._patterns = patterns
        self._matcher = None
        self._kept = {}

    def __call__(self, value):
        """
        C{value} with the findings in it replaced by their markers; a value
        that is not text, as it is.
        """
        if not isinstance(value, str) or not value or (
                value.__class__ is MadeHere):
            return value
        return self._outcome(value)[0]

    def types(self, value):
        """
        The types of the findings in C{value} (text), in order.
        """
        return self._outcome(value)[1] if value else []

    def _outcome(self, value):
        outcome = self._kept.get(value)
        if outcome is None:
            if self._matcher is None:
                # Built at first use: some 90 patterns to compile.
                self._matcher = Matcher(self._patterns)
            outcome = self._matcher.redact(value)
            if len(value) <= MAX_KEPT_LENGTH:
                if len(self._kept) >= MAX_KEPT:
                    self._kept.clear()
                self._kept[value] = outcome
        return outcome


scrubbed = Scrubber()
credentialTypes = scrubbed.types
