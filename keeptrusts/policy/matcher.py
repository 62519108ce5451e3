# -*- test-case-name: tests.test_policy_matcher -*-
"""
One compiled alternation of named patterns, and what policies do with it:
redact whole texts, and scan streamed text with a bounded hold-back.
"""

import regex
from zope.interface import implementer

from keeptrusts.interfaces import IOutputScanner
from keeptrusts.policy.values import Blocked, countFindings

# A streamed match may grow until this many characters are held back; past
# it the held text is judged as it stands (a PEM key block fits well within).
MAX_HOLD = 8192
CONTEXT = 32


def marker(kind):
    return "[REDACTED:%s]" % (kind.upper(),)


class Matcher:
    """
    Named patterns compiled into one alternation; C{match.lastgroup} names
    the pattern that matched.  Each pattern is also compiled alone, to find
    where a streamed match could still begin.
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
        self._singles = [regex.compile(pattern) for _, pattern in named]

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

    def finditer(self, text, pos):
        return self._pattern.finditer(text, pos)

    def holdPoint(self, text, pos):
        """
        The first place from C{pos} where a match could still begin or
        grow if more text came: each pattern on its own, since the
        alternation prefers a complete match of one pattern to a partial
        match of another at the same place.
        """
        end = len(text)
        hold = end
        for single in self._singles:
            for match in single.finditer(text, pos, partial=True):
                if match.partial or match.end() == end:
                    hold = min(hold, match.start())
                    break
        return hold


@implementer(IOutputScanner)
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
        # A few released characters, so that lookbehinds and word
        # boundaries see what came before the held text.
        self._context = ""
        self._types = []

    @property
    def findings(self):
        return countFindings(self._types)

    def feed(self, text):
        buf = self._held + text
        released, holdFrom, types = self._scan(buf, final=False)
        if len(buf) - holdFrom > MAX_HOLD:
            released, holdFrom, types = self._scan(buf, final=True)
        self._commit(types)
        self._context = (self._context + buf[:holdFrom])[-CONTEXT:]
        self._held = buf[holdFrom:]
        return released

    def end(self):
        released, _, types = self._scan(self._held, final=True)
        self._commit(types)
        self._held = ""
        return released

    def _commit(self, types):
        self._types.extend(types)
        if self._block and types:
            raise Blocked(self._policyName, self.findings,
                          "Answer blocked by %s: %s detected"
                          % (self._policyName, types[0]))

    def _scan(self, buf, final):
        """
        @return: the redacted text before the hold point, the hold point
            (in C{buf}), and the types of the matches redacted.
        """
        text = self._context + buf
        start = len(self._context)
        holdFrom = len(text) if final else self._matcher.holdPoint(text, start)
        out = []
        types = []
        pos = start
        for match in self._matcher.finditer(text, start):
            if match.start() >= holdFrom:
                break
            if match.end() > holdFrom:
                # It reaches into text that may still change: hold it too.
                holdFrom = match.start()
                break
            kind = self._matcher.typeOf(match)
            types.append(kind)
            if self._block:
                # Nothing of this text may go out.
                return "", holdFrom - start, types
            out.append(text[pos:match.start()])
            out.append(marker(kind))
            pos = match.end()
        out.append(text[pos:holdFrom])
        return "".join(out), holdFrom - start, types
