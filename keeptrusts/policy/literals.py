# -*- test-case-name: tests.test_policy_literals -*-
"""
Which of a set of literals a text holds: the prefilter that lets a
L{keeptrusts.policy.matcher.Matcher} search only the patterns that could
match.

One pass of pyahocorasick's automaton over the text; or, from a few hundred
characters on and when the optional C{hyperscan} package is installed
(C{pip install 'keeptrusts[fast]'}), one pass of Hyperscan, which is some
five times faster over a kilobyte and nine times over a megabyte.  Both
find the same literals: the choice costs nothing but time.
"""

import threading

import ahocorasick
from twisted.logger import Logger

try:
    import hyperscan
except ImportError:  # an optional dependency: not in Debian 12
    hyperscan = None

log = Logger()

# Below this many characters the automaton is quicker than a call into
# Hyperscan (20 characters: 1.5 against 3.5 µs; 200: 7 against 4.5 µs).
HYPERSCAN_FROM = 128


class LiteralIndex:
    """
    @param byLiteral: a mapping of each literal, case-folded, to the
        indexes (of patterns) it stands for.
    @param useHyperscan: whether to use Hyperscan when it is installed.
    """

    def __init__(self, byLiteral, useHyperscan=True):
        literals = list(byLiteral)
        self._indexes = [tuple(byLiteral[literal]) for literal in literals]
        self._automaton = ahocorasick.Automaton()
        for n, literal in enumerate(literals):
            self._automaton.add_word(literal, n)
        self._automaton.make_automaton()
        self._database = _database(literals) if useHyperscan else None
        self._scratch = threading.local()

    @property
    def hyperscan(self):
        """
        Whether long texts go through Hyperscan.
        """
        return self._database is not None

    def found(self, text):
        """
        @param text: case-folded already.
        @return: the L{set} of the indexes of the literals C{text} holds.
        """
        found = set()
        indexes = self._indexes
        if self._database is not None and len(text) >= HYPERSCAN_FROM:
            def matched(n, start, end, flags, context):
                found.update(indexes[n])
            self._database.scan(_encoded(text), match_event_handler=matched,
                                scratch=self._threadScratch())
        else:
            for _, n in self._automaton.iter(text):
                found.update(indexes[n])
        return found

    def _threadScratch(self):
        # Hyperscan's scratch space serves one scan at a time.
        scratch = getattr(self._scratch, "space", None)
        if scratch is None:
            scratch = self._scratch.space = hyperscan.Scratch(self._database)
        return scratch


def _encoded(text):
    # UTF-8 keeps substrings substrings; an answer may hold a lone
    # surrogate, which no literal has.
    return text.encode("utf-8", "surrogatepass")


def _database(literals):
    """
    A Hyperscan database of C{literals}, each reported once per scan, or
    L{None} without Hyperscan (or where it cannot run: it needs SSSE3).
    """
    if hyperscan is None or not literals:
        return None
    encoded = [_encoded(literal) for literal in literals]
    try:
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(expressions=encoded, ids=list(range(len(encoded))),
                         elements=len(encoded),
                         flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(encoded),
                         literal=True)
    except Exception as e:
        log.warn("Hyperscan cannot be used ({error}); the credential "
                 "prefilter uses pyahocorasick alone", error=e)
        return None
    return database
