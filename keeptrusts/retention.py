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
L{keeptrusts.journalread} for how verification uses anchors.
"""

import os

import attr
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from keeptrusts.journalformat import (
    lastRecord, parseRecord, parseTimestamp, segmentName, segmentNumbers)
from keeptrusts.journalread import (
    INCOMPLETE, PREV_HASH_MISMATCH, RETENTION_PHASE, UNPARSABLE, ChainCheck,
    JournalError)

DAY = 86400
DEFAULT_DAYS = 365
DEFAULT_INTERVAL = 6 * 3600

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
        L{threadRunner}).  Default: here and now.
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


def retentionDays(config):
    """
    C{config}'s C{policy.audit-logger.retention_days}, or its default.

    @raise ValueError: it is not a whole number of days, at least 1.
    """
    audit = config.policy.get("audit-logger")
    days = audit.retention_days if audit is not None else DEFAULT_DAYS
    _checkDays(days)
    return days


def _checkDays(days):
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ValueError("policy.audit-logger.retention_days: expected a "
                         "whole number of days, at least 1, got %r"
                         % (days,))


def threadRunner(reactor):
    """
    Run blocking file work (a sweep's reads, the journal's fsyncs) in
    C{reactor}'s thread pool.
    """
    return lambda f, *args: deferToThreadPool(reactor, reactor.getThreadPool(),
                                              f, *args)


class Retention:
    """
    Sweep the journal at L{start} and every C{interval} seconds on
    C{clock}; L{stop} waits for a sweep under way.

    @ivar days: the retention; set it again on a configuration reload
        (L{retentionDays}), the next sweep uses it.
    """

    def __init__(self, journal, clock, days=DEFAULT_DAYS,
                 interval=DEFAULT_INTERVAL, runInThread=None):
        _checkDays(days)
        self.journal = journal
        self.clock = clock
        self.days = days
        self.interval = interval
        self._runInThread = runInThread
        self._loop = None
        self._sweeping = None

    @classmethod
    def fromConfig(cls, config, journal, reactor, **kwargs):
        """
        The retention of C{config}'s C{audit-logger} (its default when the
        config has none); reads in C{reactor}'s thread pool unless
        C{runInThread} is given.
        """
        kwargs.setdefault("runInThread", threadRunner(reactor))
        return cls(journal, reactor, retentionDays(config), **kwargs)

    def start(self):
        self._loop = LoopingCall(self.sweep)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stop(self):
        """
        @return: a L{Deferred} firing once no sweep is under way.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._sweeping is None:
            return defer.succeed(None)
        done = defer.Deferred()

        def finished(result):
            done.callback(None)
            return result
        self._sweeping.addBoth(finished)
        return done

    def sweep(self):
        """
        One sweep; failures are logged, never raised, so the loop goes on.

        @return: a L{Deferred} firing with the removed L{ExpiredSegment}s.
        """
        if self._sweeping is not None:
            return defer.succeed([])
        d = defer.maybeDeferred(sweep, self.journal, self.clock.seconds(),
                                self.days, self._runInThread)
        d.addCallbacks(self._swept, self._failed)
        self._sweeping = d
        d.addBoth(self._done)
        return d

    def _done(self, result):
        self._sweeping = None
        return result

    def _swept(self, removed):
        if removed:
            log.info(
                "Journal retention ({days} days): removed {count} segments "
                "through seq {seq} ({first} to {last})", days=self.days,
                count=len(removed), seq=removed[-1].lastSeq,
                first=removed[0].segment, last=removed[-1].segment)
        return removed

    def _failed(self, failure):
        if failure.check(RetentionError):
            log.error("Journal retention: {problem}; kept every segment "
                      "(evidence): run kt events verify",
                      problem=str(failure.value))
        else:
            log.failure("Journal retention failed; nothing removed",
                        failure)
        return []
