# -*- test-case-name: tests.test_policy_hits -*-
"""
What a L{keeptrusts.policy.matcher.Matcher} finds: L{Hit}s, each a
validated match with what it replaces and the hits found within it.
"""

from typing import Tuple

import attr


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Hit:
    """
    A validated match.

    @ivar spans: the C{(start, end)} pairs to replace, in order.
    @ivar inner: the hits found within it besides its own: in its parts
        outside its spans (a token as a URL's user name, where the match
        is for the password after it).  None has hits of its own.
    """

    type: str
    start: int
    end: int
    spans: Tuple[Tuple[int, int], ...]
    inner: Tuple["Hit", ...] = ()

    def types(self):
        """
        The finding types of this hit: its own, then its inner hits'.
        """
        if not self.inner:
            return (self.type,)
        return (self.type,) + tuple(hit.type for hit in self.inner)

    def marks(self):
        """
        The C{(start, end, type)} of each part to replace, in order, none
        overlapping: parts that overlap (a key found as written and read
        plainly) are replaced as one, of the first one's type.
        """
        own = [(start, end, self.type) for start, end in self.spans]
        if not self.inner:
            return own
        every = sorted(own + [(start, end, hit.type) for hit in self.inner
                              for start, end in hit.spans])
        marks = [every[0]]
        for start, end, kind in every[1:]:
            lastStart, lastEnd, lastKind = marks[-1]
            if start < lastEnd:
                if end > lastEnd:
                    marks[-1] = (lastStart, end, lastKind)
            else:
                marks.append((start, end, kind))
        return marks


def outside(hit):
    """
    The C{(start, end)} parts of C{hit}'s match outside its spans, which
    may hold other findings: its name, a URL's user name, the lines of a
    Kubernetes manifest before its data.
    """
    parts, pos = [], hit.start
    for start, end in hit.spans:
        if start > pos:
            parts.append((pos, start))
        pos = max(pos, end)
    if hit.end > pos:
        parts.append((pos, hit.end))
    return parts


def withInner(hit, inner):
    """
    C{hit} with C{inner} (hits, by their starts) among its inner hits;
    theirs become its own.
    """
    flat = list(hit.inner)
    for found in inner:
        flat.append(Hit(found.type, found.start, found.end, found.spans))
        flat.extend(found.inner)
    flat.sort(key=lambda found: found.start)
    return Hit(hit.type, hit.start, hit.end, hit.spans, tuple(flat))
