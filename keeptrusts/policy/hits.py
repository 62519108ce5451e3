# -*- test-case-name: tests.test_policy_hits -*-
"""
What a L{keeptrusts.policy.matcher.Matcher} finds: L{Hit}s, each a
validated match with what it replaces and the hits found within it; and
how the hits of a text as written and as read plainly go together.
"""

import heapq
from typing import Tuple

import attr


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Hit:
    """
    A validated match.

    @ivar spans: the C{(start, end)} pairs to replace, in order.
    @ivar inner: the hits found within it besides its own: in its parts
        outside its spans (a token as a URL's user name, where the match
        is for the password after it), and those of the text read plainly
        that overlap it.  None has hits of its own.
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


def together(written, plain):
    """
    The hits of a text as written and as read plainly
    (L{keeptrusts.policy.plainview.PlainView}), one hit wherever some
    overlap.  A finding of the plain text (a plain hit, or one found within
    it) is counted only when the written hits did not find it already: not
    when their marks replace all of its spans, nor when it overlaps a
    written finding of its own type (the same secret, read with its escapes
    and without: it widens that finding's spans, to be replaced too).

    @param written: the text's hits, in order, none overlapping.
    @param plain: the plain text's, placed in the text, likewise.
    @return: an iterator of hits in order, none overlapping.
    """
    merged = heapq.merge(((hit.start, 0, hit) for hit in written),
                         ((hit.start, 1, hit) for hit in plain))
    group, end = [], 0
    for start, fromPlain, hit in merged:
        if group and start >= end:
            yield _joined(group, end)
            group = []
        end = max(end, hit.end) if group else hit.end
        group.append((fromPlain, hit))
    if group:
        yield _joined(group, end)


def _findings(hit):
    """
    C{hit} and its inner hits, each on its own, without inner hits.
    """
    return [Hit(hit.type, hit.start, hit.end, hit.spans)] + list(hit.inner)


def _joined(group, end):
    if len(group) == 1:
        return group[0][1]
    found = [finding for fromPlain, hit in group if not fromPlain
             for finding in _findings(hit)]
    replaced = _union(span for finding in found for span in finding.spans)
    for fromPlain, hit in group:
        if not fromPlain:
            continue
        for finding in _findings(hit):
            if _covered(finding.spans, replaced):
                continue
            same = [k for k, known in enumerate(found)
                    if known.type == finding.type
                    and _overlapping(known.spans, finding.spans)]
            if not same:
                found.append(finding)
                continue
            known = found[same[0]]
            found[same[0]] = Hit(
                known.type, min(known.start, finding.start),
                max(known.end, finding.end),
                tuple(_union(known.spans + finding.spans)))
    found.sort(key=lambda finding: finding.start)
    first = found[0]
    # The group's whole extent: a stream holds it back or releases it as one.
    return Hit(first.type, group[0][1].start, end, first.spans,
               tuple(found[1:]))


def _union(spans):
    union = []
    for start, end in sorted(spans):
        if union and start <= union[-1][1]:
            union[-1] = (union[-1][0], max(union[-1][1], end))
        else:
            union.append((start, end))
    return union


def _covered(spans, union):
    return all(any(start >= a and end <= b for a, b in union)
               for start, end in spans)


def _overlapping(spans, others):
    return any(start < otherEnd and otherStart < end
               for start, end in spans for otherStart, otherEnd in others)
