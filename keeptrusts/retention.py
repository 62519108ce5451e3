# -*- test-case-name: tests.test_retention -*-
"""
Journal retention (C{audit-logger.retention_days}): whole sealed segments
whose newest record is older than the retention are removed, oldest first,
and the chain stays verifiable across what remains.

A sweep:

  1. finds the expired segments: from the oldest on, each sealed segment
     (never the one being written) whose last record's C{ts} is older than
     C{now - days}; it stops at the first that is not;
  2. reads them and checks their chain, and its link into the next record:
     a segment that does not verify is evidence and is kept (and logged);
  3. appends an anchor record (C{phase: "retention"}) naming, for each of
     them, its first and last C{seq} and its last record's C{hash}, and
     makes it durable;
  4. removes them, oldest first, with their torn-tail side files, stopping
     at the first that cannot be removed, so what remains never has a gap.

A crash between 3 and 4 leaves an anchor for segments still there: no
harm, the next sweep writes a new one.  A crash within 4 leaves a first
segment whose first record follows one the anchor names.  See
L{keeptrusts.journalread} for how verification uses anchors, and
L{keeptrusts.retentionloop} for the gateway's sweeps.
"""

import os

import attr
from twisted.internet import defer
from twisted.logger import Logger

from keeptrusts.journalformat import (
    lastRecord, parseRecord, parseTimestamp, segmentName, segmentNumbers)
from keeptrusts.journalread import (
    INCOMPLETE, PREV_HASH_MISMATCH, RETENTION_PHASE, UNPARSABLE, ChainCheck,
    JournalError)

DAY = 86400

log = Logger()


class RetentionError(JournalError):
    """
    An expired segment does not verify: nothing is removed.
    """


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ExpiredSegment:
    """
    A sealed segment that retention removes, as its anchor names it.

    @ivar sideFiles: the names of its torn-tail side files.
    """

    segment: str
    firstSeq: int
    lastSeq: int
    lastHash: str
    newestTs: str
    sideFiles: tuple = ()

    def anchorEntry(self):
        return {"segment": self.segment, "first_seq": self.firstSeq,
                "last_seq": self.lastSeq, "last_hash": self.lastHash,
                "newest_ts": self.newestTs}


def expiredSegments(directory, now, days, current):
    """
    The numbers of the segments that retention may remove.  Pure: it only
    reads the last record of a few segments.

    @param now: seconds since the epoch.
    @param current: the number of the segment being written; it and those
        after it are never expired.
    """
    cutoff = now - days * DAY
    expired = []
    for number in segmentNumbers(directory):
        if number >= current:
            break
        record = lastRecord(os.path.join(directory, segmentName(number)))[0]
        newest = parseTimestamp(record.get("ts")) if record else None
        # An empty or undated segment stops the sweep: keep rather than
        # guess, and never leave a gap behind it.
        if newest is None or newest >= cutoff:
            break
        expired.append(number)
    return expired


def checkSegments(directory, numbers):
    """
    Read the segments C{numbers} (consecutive, sealed), check their chain
    and its link into the first record after them.

    @rtype: L{list} of L{ExpiredSegment}
    @raise RetentionError: they do not verify.
    """
    chain, found = ChainCheck(), []
    for number in numbers:
        name = segmentName(number)
        with open(os.path.join(directory, name), "rb") as f:
            firstSeq, newest = _checkSegment(name, f, chain)
        found.append(ExpiredSegment(name, firstSeq, chain.lastSeq,
                                    chain.lastHash, newest,
                                    _sideFiles(directory, name)))
    _checkNext(directory, numbers[-1], chain)
    return found


def _checkSegment(name, f, chain):
    """
    Add the records of one segment to C{chain}.

    @return: C{(its first seq, its last ts)}
    """
    firstSeq = newest = None
    for line, raw in enumerate(f, 1):
        whole = raw.endswith(b"\n")
        record = parseRecord(raw[:-1]) if whole else None
        if record is None:
            raise RetentionError(name, line,
                                 UNPARSABLE if whole else INCOMPLETE)
        reason = chain.add(record)
        if reason is not None:
            raise RetentionError(name, line, reason)
        if firstSeq is None:
            firstSeq = record["seq"]
        newest = record.get("ts")
    if firstSeq is None:
        raise RetentionError(name, 1, "empty segment")
    return firstSeq, newest


def _checkNext(directory, last, chain):
    # The next record must follow the last one removed, or that one was
    # rewritten.  The segment being written may have no whole line yet.
    later = [n for n in segmentNumbers(directory) if n > last]
    if not later:
        return
    name = segmentName(later[0])
    with open(os.path.join(directory, name), "rb") as f:
        raw = f.readline()
    if raw.endswith(b"\n"):
        record = parseRecord(raw[:-1])
        if record is None or record.get("prev_hash") != chain.lastHash:
            raise RetentionError(name, 1, PREV_HASH_MISMATCH)


def _sideFiles(directory, name):
    return tuple(sorted(n for n in os.listdir(directory)
                        if n.startswith(name + ".torn-")))


def anchorRecord(expired, days):
    """
    The record that goes into the chain before C{expired} are removed.
    """
    return {
        "phase": RETENTION_PHASE, "verdict": "allow",
        "retention_days": days,
        "removed": [segment.anchorEntry() for segment in expired],
        "removed_through": {"seq": expired[-1].lastSeq,
                            "hash": expired[-1].lastHash},
        "side_files": [n for segment in expired for n in segment.sideFiles],
    }


def removeSegments(directory, expired):
    """
    Remove C{expired}, oldest first, each with its side files; stop at the
    first that cannot be removed, so no gap is left.

    @return: the L{ExpiredSegment}s removed.
    @raise OSError: when none could be; after some, it is logged.
    """
    removed = []
    for segment in expired:
        try:
            os.remove(os.path.join(directory, segment.segment))
        except FileNotFoundError:
            pass
        except OSError:
            if not removed:
                raise
            log.failure("Journal retention: cannot remove {segment}",
                        segment=segment.segment)
            break
        removed.append(segment)
        for side in segment.sideFiles:
            try:
                os.remove(os.path.join(directory, side))
            except OSError:
                log.failure("Journal retention: cannot remove {side}",
                            side=side)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return removed


def sweep(journal, now, days, runInThread=None):
    """
    Remove what the retention of C{days} lets go of (see the module
    docstring).

    @param journal: the running L{keeptrusts.journal.Journal}.
    @param runInThread: C{f, *args -> Deferred}; reads happen there (see
        L{keeptrusts.retentionloop.threadRunner}).  Default: here and now.
    @return: a L{Deferred} firing with the removed L{ExpiredSegment}s.
    """
    if runInThread is None:
        runInThread = defer.maybeDeferred
    directory = journal.directory
    d = runInThread(_plan, directory, now, days, journal.segmentNumber)

    def anchor(expired):
        if not expired:
            return []
        appended = journal.append(anchorRecord(expired, days))
        appended.addCallback(lambda _: journal.syncNow())
        appended.addCallback(lambda _: removeSegments(directory, expired))
        return appended
    return d.addCallback(anchor)


def _plan(directory, now, days, current):
    numbers = expiredSegments(directory, now, days, current)
    return checkSegments(directory, numbers) if numbers else []
