# -*- test-case-name: tests.test_policy_scrub -*-
"""
Credentials out of what the gateway writes down about a request besides
its texts: the journal's fields, the access-log line, metric labels.  A key
sent as a model name, a user or request id, an agent id or in a URL path
is not a text the policies read, and must not be recorded whole: the
credential catalogue's findings there are replaced by their markers.
"""

from urllib.parse import unquote

from keeptrusts.policy.catalogue import CATALOGUE
from keeptrusts.policy.matcher import Matcher, marker

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
        self._keptNames = {}

    def __call__(self, value):
        """
        C{value} with the findings in it replaced by their markers; a value
        that is not text, as it is.
        """
        if not isinstance(value, str) or not value or (
                value.__class__ is MadeHere):
            return value
        return self._outcome(value)[0]

    def name(self, value):
        """
        C{value}, a name read without regard to case (a host: DNS names
        are not cased), with the findings of any of its casings (as it
        came, lower, upper) replaced by their markers; the rest stays as it
        came.  A key id in a host is no less a key once the host is
        lower-cased (C{akiaiosfodnn7example.invalid}: upper-casing gives it
        back).
        """
        if not isinstance(value, str) or not value or (
                value.__class__ is MadeHere):
            return value
        shown = self._keptNames.get(value)
        if shown is None:
            shown = self._caseless(value)
            if len(value) <= MAX_KEPT_LENGTH:
                if len(self._keptNames) >= MAX_KEPT:
                    self._keptNames.clear()
                self._keptNames[value] = shown
        return shown

    def _caseless(self, value):
        self._built()
        found = []
        for variant in dict.fromkeys((value, value.lower(), value.upper())):
            if len(variant) != len(value):
                continue  # a casing that moves characters (German sharp s)
            found.extend(mark for hit in self._matcher.hits(variant)
                         for mark in hit.marks())
        if not found:
            return value
        found.sort()
        out, pos = [], 0
        for start, end, kind in found:
            if start < pos:
                # Found in another casing too: one marker for both.
                if end > pos:
                    pos = end
                continue
            out.append(value[pos:start])
            out.append(marker(kind))
            pos = end
        out.append(value[pos:])
        return "".join(out)

    def types(self, value):
        """
        The types of the findings in C{value} (text), in order.
        """
        return self._outcome(value)[1] if value else []

    def found(self, value):
        """
        The C{(text, type)} of each finding in C{value}, as written.
        """
        return [(value[start:end], kind) for hit in self._built().hits(value)
                for start, end, kind in hit.marks()]

    def _built(self):
        if self._matcher is None:
            # Built at first use: some 90 patterns to compile.
            self._matcher = Matcher(self._patterns)
        return self._matcher

    def _outcome(self, value):
        outcome = self._kept.get(value)
        if outcome is None:
            outcome = self._built().redact(value)
            if len(value) <= MAX_KEPT_LENGTH:
                if len(self._kept) >= MAX_KEPT:
                    self._kept.clear()
                self._kept[value] = outcome
        return outcome


scrubbed = Scrubber()
credentialTypes = scrubbed.types
scrubbedName = scrubbed.name
credentialsFound = scrubbed.found


def scrubbedPath(value):
    """
    A path or URL (text) as a server reads it, scrubbed: what its
    percent-encoding hides (C{/keys/AKIA%49OSFODNN7EXAMPLE}) is found too.
    When decoding shows a finding, the decoded text is shown, redacted;
    else the text as it came, redacted.
    """
    shown = scrubbed(value)
    if not isinstance(shown, str) or "%" not in shown:
        return shown
    # What was found as it came stays out (a marker holds no %); then what
    # decoding shows.
    decoded = unquote(shown, errors="replace")
    redacted = scrubbed(decoded)
    return redacted if redacted != decoded else shown
