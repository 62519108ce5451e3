# -*- test-case-name: tests.test_policy_stream,tests.test_policy_dlp -*-
"""
Scan streamed text with a bounded hold-back: release what no later piece
can make part of a match (L{Matcher.holdPoint}), redacted.
"""

from zope.interface import implementer

from keeptrusts.interfaces import IOutputScanner
from keeptrusts.policy.matcher import marker
from keeptrusts.policy.values import Blocked, countFindings

# A streamed match may grow until this many characters are held back; past
# it the matches begun before the last MAX_HOLD characters are given up.
# Every pattern's match fits, but a PEM key block of more than some 8,100
# characters (RSA keys above 8192 bits): found in whole texts, such a block
# in a streamed answer goes out as it comes.  A longer hold would cost each
# streamed piece more: the scan of what is held is repeated as it grows.
MAX_HOLD = 8192
# Released characters kept in front of the held text, so that lookbehinds
# and word boundaries see what came before (no pattern looks further back).
CONTEXT = 64


@implementer(IOutputScanner)
class StreamScanner:
    """
    An L{IOutputScanner} over one streamed answer: releases text up to the
    first place where a match could still begin or grow.

    @ivar findings: L{Finding}s so far.
    """

    def __init__(self, matcher, policyName, block, mark=marker):
        self._matcher = matcher
        self._policyName = policyName
        self._block = block
        self._mark = mark
        self._held = ""
        self._context = ""
        self._types = []

    @property
    def findings(self):
        return countFindings(self._types)

    def feed(self, text):
        buf = self._held + text
        # A match begun before the last MAX_HOLD characters and not over is
        # given up; what may still begin or grow after them stays held (a
        # key arriving as the hold overflows).  One scan: a match begun
        # earlier would overflow the hold anyway.
        released, holdFrom, types = self._scan(
            buf, final=False, since=max(0, len(buf) - MAX_HOLD))
        if len(buf) - holdFrom > MAX_HOLD:
            # One match grew past MAX_HOLD: it is judged as it stands.
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

    def _scan(self, buf, final, since=0):
        """
        @param since: where in C{buf} a match that is still incomplete may
            begin and be held; one begun before is given up.
        @return: the redacted text before the hold point, the hold point
            (in C{buf}), and the types of the matches redacted.
        """
        text = self._context + buf
        start = len(self._context)
        # One candidate search serves both the hold point and the hits.
        candidates = self._matcher.candidates(text, start,
                                              beginnings=not final)
        holdFrom = len(text) if final else self._matcher.holdPoint(
            text, start + since, candidates)
        out = []
        types = []
        pos = start
        for hit in self._matcher.hits(text, start, candidates):
            if hit.start >= holdFrom:
                break
            if hit.end > holdFrom:
                # It reaches into text that may still change: hold it too.
                holdFrom = hit.start
                break
            types.extend(hit.types())
            if self._block:
                # Nothing of this text may go out.
                return "", holdFrom - start, types
            for spanStart, spanEnd, kind in hit.marks():
                out.append(text[pos:spanStart])
                out.append(self._mark(kind, text[spanStart:spanEnd]))
                pos = spanEnd
        out.append(text[pos:holdFrom])
        return "".join(out), holdFrom - start, types
