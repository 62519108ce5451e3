# -*- test-case-name: tests.test_policy_matcher,tests.test_policy_dlp,tests.test_policy_stream -*-
"""
Named patterns and what policies do with them: find them in whole texts,
and say where in a text that may grow a match could still begin (for
L{keeptrusts.policy.streamscan}).

A L{Matcher} behaves as one alternation of its patterns (the leftmost
match wins, the first pattern on a tie, the search goes on after it), but
searches each pattern on its own: the C{regex} module finds a pattern that
begins with a literal a hundred times faster than an alternation of them.
And it searches only the patterns whose leading literal the text holds: one
pass over the text finds them all (L{keeptrusts.policy.literals}).
A pattern may carry a validator; a match failing it is not a finding, and
the search goes on as if that pattern had not matched there.  A validator
that raises passes the match: it is a finding (fail closed).

Where a match replaces only its C{secret} group, the rest of it is searched
too (a token as a URL's user name, before the password the match is for).
And a text holding JSON escapes is also read with them written plainly
(L{PlainView}): what is found there is redacted where it was written.
"""

import heapq
from typing import Callable, Optional

import attr
import regex

from keeptrusts.policy.hits import Hit, outside, together, withInner
from keeptrusts.policy.literals import LiteralIndex
from keeptrusts.policy.plainview import PlainView, settledLength
from keeptrusts.policy.probe import fold, leadingLiterals, probe

# How many times its own length the parts of a match outside its secret
# group may take to search, hits within hits included (see Matcher._inside).
INNER_SEARCH = 4


def marker(kind, value=None):
    """
    The text that replaces a finding: C{[REDACTED:AWS_ACCESS_KEY_ID]}.
    """
    return "[REDACTED:%s]" % (kind.upper(),)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Pattern:
    """
    One kind of finding.

    @ivar type: the finding type, e.g. C{aws_access_key_id}.
    @ivar regex: a C{regex} expression.  A group named C{secret} (it may
        repeat) marks what is replaced; without one, the whole match is.
    @ivar validate: a function of a complete match, false when the match is
        not a finding after all (a checksum fails, a placeholder).  One
        that raises makes the match a finding.
    """

    type: str
    regex: str
    validate: Optional[Callable] = None


def _spans(match):
    if "secret" in match.re.groupindex:
        spans = tuple(s for s in match.spans("secret") if s[0] < s[1])
        if spans:
            return spans
    return (match.span(),)


class Matcher:
    """
    A set of L{Pattern}s searched as one alternation.

    @param patterns: L{Pattern}s, or C{(type, regex)} pairs, in priority
        order.
    """

    def __init__(self, patterns):
        self.patterns = tuple(p if isinstance(p, Pattern) else Pattern(*p)
                              for p in patterns)
        self._compiled = [regex.compile(p.regex) for p in self.patterns]
        self._probes = [probe(p.regex) for p in self.patterns]
        # What lets holdPoint skip most probes: a pattern led by a literal
        # can only be partly matched at the end of a text that holds its
        # literal or ends with a beginning of it.
        self._always = []
        byLiteral = {}
        self._byBeginning = {}
        for index, pattern in enumerate(self.patterns):
            literals = leadingLiterals(pattern.regex)
            if not literals:
                self._always.append(index)
            for literal in literals:
                byLiteral.setdefault(literal, []).append(index)
                for n in range(1, len(literal)):
                    self._byBeginning.setdefault(literal[:n], []).append(index)
        # Every ending of a beginning: a text whose last n characters are
        # none ends with no longer beginning either.
        self._beginningEnds = {beginning[-n:] for beginning in self._byBeginning
                               for n in range(1, len(beginning) + 1)}
        self._literals = LiteralIndex(byLiteral) if byLiteral else None

    def __bool__(self):
        return bool(self.patterns)

    def hits(self, text, pos=0, candidates=None):
        """
        The validated matches in C{text} from C{pos}, in order, none
        overlapping, each with the hits in its parts outside its spans
        (L{Hit.inner}); when C{text} holds JSON escapes, together with
        those of its L{PlainView}.

        @param candidates: the L{candidates} of C{text} from C{pos}, when
            the caller has them already.
        @rtype: iterator of L{Hit}
        """
        written = self._matches(text, pos, len(text), candidates)
        view = PlainView.of(text) if "\\" in text else None
        if view is None:
            return written
        plain = view.text
        return together(written, map(view.hit, self._matches(
            plain, view.plain(pos), len(plain), None)))

    def _inside(self, text, hit):
        """
        C{hit} with the hits in its parts outside its spans, and in theirs
        in turn: a worklist, no recursion, however deep they nest.  Past
        L{INNER_SEARCH} the parts left are replaced whole, as C{hit}'s:
        only a pattern whose parts hold its own matches again, thousands
        deep, gets there.
        """
        found, unsearched = [], []
        parts = outside(hit)
        budget = INNER_SEARCH * (hit.end - hit.start) + 4096
        while parts:
            start, end = parts.pop()
            budget -= end - start
            if budget < 0:
                unsearched.append((start, end))
                continue
            # Candidates of the part alone (positional: tests replace the
            # method).
            for inner in self._matches(text, start, end, self.candidates(
                    text[start:end], 0, False), inside=False):
                found.append(inner)
                parts.extend(outside(inner))
        if unsearched:
            hit = Hit(hit.type, hit.start, hit.end,
                      tuple(sorted(hit.spans + tuple(unsearched))))
        if found:
            found.sort(key=lambda inner: inner.start)
            hit = withInner(hit, found)
        return hit

    def _matches(self, text, pos, endpos, candidates, inside=True):
        """
        The validated matches in C{text} from C{pos} to C{endpos} (where
        the text is taken to end), in order, none overlapping.

        @param inside: whether each comes with the hits in its parts
            outside its spans (L{_inside}).
        """
        compiled = self._compiled
        if candidates is None:
            candidates = self.candidates(text, pos, beginnings=False)
        heap = []
        for index in candidates:
            match = compiled[index].search(text, pos, endpos)
            if match is not None:
                heap.append((match.start(), index, match))
        heapq.heapify(heap)
        while heap:
            start, index, match = heap[0]
            if start < pos:
                # Overlapped by the last hit: search again after it.
                resume = pos
            elif match.end() > start and self._valid(index, match):
                pos = resume = match.end()
                hit = Hit(self.patterns[index].type, start, pos, _spans(match))
                if inside and hit.spans[0] != (start, pos):
                    hit = self._inside(text, hit)
                yield hit
            else:
                # Not a finding: this pattern may still match further on.
                resume = start + 1
            if resume > endpos:
                # Past the end, a search finds the empty match at the end
                # again (a pattern such as (?<=a)b?).
                heapq.heappop(heap)
                continue
            match = compiled[index].search(text, resume, endpos)
            if match is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (match.start(), index, match))

    def _valid(self, index, match):
        validate = self.patterns[index].validate
        if validate is None:
            return True
        try:
            return validate(match)
        except Exception:
            # A check that cannot judge fails closed: the match is taken
            # for the credential.  Raised on, it failed the whole policy,
            # and fail_mode allow sent every text unread (found by review).
            return True

    def redact(self, text, mark=marker):
        """
        @param mark: C{(type, matched text) -> replacement}.
        @return: C{(redacted text, [finding types])}.
        """
        out, types, pos = [], [], 0
        for hit in self.hits(text):
            types.extend(hit.types())
            for start, end, kind in hit.marks():
                out.append(text[pos:start])
                out.append(mark(kind, text[start:end]))
                pos = end
        if not types:
            return text, types
        out.append(text[pos:])
        return "".join(out), types

    def holdPoint(self, text, pos, candidates=None):
        """
        The first place from C{pos} where a match could still begin, grow
        or change if more text came: where some way of matching some
        pattern reads the end of C{text}.  Before it, every pattern's
        outcome at every place is what it would be in a longer text.

        When C{text} holds JSON escapes, its L{PlainView} is probed too;
        and an escape it ends in the middle of is held whatever it holds.

        @param candidates: the L{candidates} of C{text} from C{pos}, with
            C{beginnings}, when the caller has them already.
        """
        hold = self._probed(text, pos, candidates)
        if "\\" not in text:
            return hold  # no escape (the usual piece): one quick search
        settled = settledLength(text)
        hold = min(hold, settled)
        # Read plainly only as far as no later piece reads differently:
        # a finding may run on into what an unfinished escape becomes.
        view = PlainView.of(text)
        if view is not None:
            plain = view.text[:view.plain(settled)]
            hold = min(hold, view.written(
                self._probed(plain, view.plain(pos), None)))
        elif settled < len(text):
            hold = min(hold, self._probed(text[:settled], pos, None))
        return hold

    def _probed(self, text, pos, candidates):
        hold = len(text)
        if candidates is None:
            candidates = self.candidates(text, pos)
        for index in candidates:
            match = self._probes[index].search(text, pos, partial=True)
            if match is not None and match.start() < hold:
                hold = match.start()
        return hold

    def candidates(self, text, pos=0, beginnings=True):
        """
        The indexes, in order, of the patterns that could match in C{text}
        from C{pos}, or (C{beginnings}) be partly matched at its end.
        """
        # Folded as the regex module folds under (?i): a long s is an s.
        region = fold(text[pos:])
        found = set(self._always)
        if self._literals is not None:
            found.update(self._literals.found(region))
        if beginnings:
            for n in range(1, len(region) + 1):
                end = region[-n:]
                if end not in self._beginningEnds:
                    break
                found.update(self._byBeginning.get(end, ()))
        return sorted(found)
