"""
Tests for L{keeptrusts.policy.hits}: what a hit replaces, the parts of it
searched again, and the hits of a text as written and read plainly taken
together.
"""

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy.catalogue import CATALOGUE
from keeptrusts.policy.hits import Hit, outside, together, withInner
from keeptrusts.policy.matcher import Matcher


class HitTests(SynchronousTestCase):

    def test_ownOnly(self):
        hit = Hit("pw", 0, 10, ((3, 6), (7, 9)))
        self.assertEqual(hit.types(), ("pw",))
        self.assertEqual(hit.marks(), [(3, 6, "pw"), (7, 9, "pw")])

    def test_innerInOrder(self):
        hit = Hit("url", 0, 40, ((30, 39),), (Hit("token", 8, 29, ((8, 29),)),))
        self.assertEqual(hit.types(), ("url", "token"))
        self.assertEqual(hit.marks(), [(8, 29, "token"), (30, 39, "url")])

    def test_overlappingMarksReplacedAsOne(self):
        """
        Marks that overlap (a key found as written and read plainly, ending
        in different places) are one mark, of the first one's type.
        """
        hit = Hit("a", 5, 20, ((5, 12),), (Hit("b", 8, 20, ((8, 20),)),
                                           Hit("c", 20, 22, ((20, 22),))))
        self.assertEqual(hit.marks(), [(5, 20, "a"), (20, 22, "c")])


class OutsideTests(SynchronousTestCase):

    def test_parts(self):
        self.assertEqual(outside(Hit("k", 0, 20, ((5, 8), (10, 20)))),
                         [(0, 5), (8, 10)])
        self.assertEqual(outside(Hit("k", 0, 20, ((0, 20),))), [])
        self.assertEqual(outside(Hit("k", 3, 20, ((3, 6),))), [(6, 20)])

    def test_spansBeyondTheMatch(self):
        """
        A secret group in a lookaround may lie outside the match: only the
        match's own parts are given.
        """
        self.assertEqual(outside(Hit("k", 10, 20, ((2, 4), (18, 25)))),
                         [(10, 18)])


class WithInnerTests(SynchronousTestCase):

    def test_flattenedInOrder(self):
        deep = Hit("c", 3, 4, ((3, 4),))
        hit = withInner(Hit("a", 0, 30, ((20, 30),)),
                        [Hit("b", 10, 15, ((12, 15),), (deep,)),
                         Hit("d", 1, 2, ((1, 2),))])
        self.assertEqual([h.type for h in hit.inner], ["d", "c", "b"])
        self.assertEqual([h.inner for h in hit.inner], [(), (), ()])


class TogetherTests(SynchronousTestCase):

    def test_apart(self):
        a, b = Hit("a", 0, 5, ((0, 5),)), Hit("b", 5, 9, ((5, 9),))
        self.assertEqual(list(together([a], [b])), [a, b])
        self.assertEqual(list(together([b], [a])), [a, b])

    def test_sameFindingCountedOnce(self):
        """
        A plain hit whose marks the written hits replace already adds no
        finding: a key found both ways is one.
        """
        written = Hit("key", 10, 30, ((10, 30),))
        plain = Hit("key", 10, 30, ((10, 30),))
        self.assertEqual(list(together([written], [plain])), [written])
        inside = Hit("other", 12, 20, ((12, 20),))
        [joined] = together([written], [inside])
        self.assertEqual(joined.types(), ("key",))

    def test_overlappingJoined(self):
        """
        Hits that overlap become one hit, over the whole extent of the
        group, with every finding.
        """
        written = [Hit("pw", 0, 20, ((9, 20),)), Hit("x", 40, 45, ((40, 45),))]
        plain = [Hit("secret", 15, 42, ((25, 42),))]
        [joined] = together(written, plain)
        self.assertEqual((joined.start, joined.end), (0, 45))
        self.assertEqual(joined.types(), ("pw", "secret", "x"))
        self.assertEqual(joined.marks(), [(9, 20, "pw"), (25, 45, "secret")])

    def test_innerFindingFoundAsWrittenCountedOnce(self):
        """
        A finding within a plain hit that the written hits found already
        adds none: a token as a URL's user found as written, and within the
        URL's password match once its escaped slashes are read plainly, is
        one token.
        """
        written = Hit("token", 10, 50, ((10, 50),))
        plain = Hit("url_password", 0, 65, ((51, 64),),
                    (Hit("token", 10, 50, ((10, 50),)),))
        [joined] = together([written], [plain])
        self.assertEqual(sorted(joined.types()), ["token", "url_password"])
        self.assertEqual(joined.marks(), [(10, 50, "token"),
                                          (51, 64, "url_password")])

    def test_sameTypeOverlappingCountedOnce(self):
        """
        A plain finding that overlaps a written one of its type is the same
        secret: counted once, and every part of both replaced.
        """
        written = Hit("pw", 10, 30, ((15, 30),))
        plain = Hit("pw", 10, 34, ((20, 34),))
        [joined] = together([written], [plain])
        self.assertEqual(joined.types(), ("pw",))
        self.assertEqual(joined.marks(), [(15, 34, "pw")])
        self.assertEqual((joined.start, joined.end), (10, 34))

    def test_escapedURLCountsItsTokenOnce(self):
        """
        The catalogue's own case: C{https:\\/\\/<token>:x-oauth-basic@...}
        is one token and one password.
        """
        token = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
        text = "https:\\/\\/%s:x-oauth-basic@github.com" % (token,)
        self.assertEqual(sorted(Matcher(CATALOGUE).redact(text)[1]),
                         ["github_token", "url_password"])
