# -*- test-case-name: tests.test_policy_matcher -*-
"""
One compiled alternation of named patterns, and what policies do with it:
redact whole texts, and scan streamed text with a bounded hold-back.
"""

import regex

from keeptrusts.policy.values import Blocked, countFindings

# A streamed match may grow until this many characters are held back; past
# it the held text is judged as it stands (a PEM key block fits well within).
MAX_HOLD = 8192


def marker(kind):
    return "[REDACTED:%s]" % (kind.upper(),)


class Matcher:
    """
    Named patterns compiled into one alternation; C{match.lastgroup} names
    the pattern that matched.
    """

    def __init__(self, named):
        """
        @param named: C{(type, pattern)} pairs; a pattern may carry inline
            flags such as C{(?i:...)}.
        """
        self._types = {}
        parts = []
        for i, (kind, pattern) in enumerate(named):
            group = "k%d" % (i,)
            self._types[group] = kind
            parts.append("(?P<%s>%s)" % (group, pattern))
        self._pattern = regex.compile("|".join(parts)) if parts else None

    def __bool__(self):
        return self._pattern is not None

    def typeOf(self, match):
        return self._types[match.lastgroup]

    def redact(self, text):
        """
        @return: C{(redacted text, [finding types])}.
        """
        if self._pattern is None:
            return text, []
        found = []

        def replace(match):
            kind = self.typeOf(match)
            found.append(kind)
            return marker(kind)

        return self._pattern.sub(replace, text), found

    def finditer(self, text, partial):
        return self._pattern.finditer(text, partial=partial)


class StreamScanner:
    """
    An L{IOutputScanner} over one streamed answer: releases text up to the
    first place where a match could still begin or grow.

    @ivar findings: L{Finding}s so far.
    """

    def __init__(self, matcher, policyName, block):
        self._matcher = matcher
        self._policyName = policyName
        self._block = block
        self._held = ""
        self._types = []

    @property
    def findings(self):
        return countFindings(self._types)

    def feed(self, text):
        buf = self._held + text
        released, holdFrom = self._scan(buf, partial=True)
        if len(buf) - holdFrom > MAX_HOLD:
            released, holdFrom = self._scan(buf, partial=False)
        self._held = buf[holdFrom:]
        return released

    def end(self):
        released, _ = self._scan(self._held, partial=False)
        self._held = ""
        return released

    def _scan(self, buf, partial):
        """
        @return: the redacted text before the hold point, and the hold point.
        """
        out = []
        pos = 0
        holdFrom = len(buf)
        for match in self._matcher.finditer(buf, partial):
            if partial and (match.partial or match.end() == len(buf)):
                # It could still become (or grow into) a longer match.
                holdFrom = match.start()
                break
            kind = self._matcher.typeOf(match)
            if self._block:
                self._types.append(kind)
                raise Blocked(self._policyName, self.findings,
                              "Answer blocked by %s: %s detected"
                              % (self._policyName, kind))
            out.append(buf[pos:match.start()])
            out.append(marker(kind))
            self._types.append(kind)
            pos = match.end()
        out.append(buf[pos:holdFrom])
        return "".join(out), holdFrom
