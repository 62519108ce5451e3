"""
Tests for L{keeptrusts.journal} and L{keeptrusts.journalread}.
"""

import errno
import hashlib
import json
import os
import stat

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.interfaces import IJournal
from keeptrusts.journal import BATCH_WINDOW, Journal, JournalClosed
from keeptrusts.journalformat import (
    GENESIS_HASH, canonical, formatTimestamp, recordHash, segmentName)
from keeptrusts.journalread import (
    HASH_MISMATCH, INCOMPLETE, PREV_HASH_MISMATCH, UNANCHORED, UNPARSABLE,
    JournalError, JournalReader, anchoredLinks, readRecords, verifyJournal)

# 2026-11-27T01:02:03.456Z
NOW = 1795741323.456


def segmentLines(directory, number=1):
    with open(os.path.join(directory, segmentName(number)), "rb") as f:
        return f.read().splitlines(True)


def writeLines(directory, number, lines):
    with open(os.path.join(directory, segmentName(number)), "wb") as f:
        f.write(b"".join(lines))


def sealed(record, seq, prevHash):
    """
    A line as the journal writes it, made by hand.
    """
    body = dict(record, seq=seq, prev_hash=prevHash)
    digest = hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()
    return (canonical(dict(body, hash=digest)).encode("utf-8") + b"\n",
            digest)


class JournalTestMixin:

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.directory = self.mktemp()

    def openJournal(self, **kwargs):
        kwargs.setdefault("sync", "never")
        journal = Journal.open(self.directory, self.clock, **kwargs)
        self.addCleanup(journal.close)
        return journal

    def fillJournal(self, count, **kwargs):
        journal = self.openJournal(**kwargs)
        for i in range(count):
            journal.append({"n": i})
        journal.close()
        return journal

    def assertProblem(self, segment, line, seq, reason, records):
        result = verifyJournal(self.directory)
        self.assertEqual(
            (result.ok, result.segment, result.line, result.seq,
             result.reason, result.records),
            (False, segment, line, seq, reason, records))

    def countFsyncs(self):
        """
        Count fsyncs of files (not of the directory) from now on.
        """
        calls = []
        realFsync = os.fsync

        def fsync(fd):
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                calls.append(fd)
            realFsync(fd)
        self.patch(os, "fsync", fsync)
        return calls


class ChainTests(JournalTestMixin, SynchronousTestCase):
    """
    Records are sealed into a hash chain of canonical lines.
    """

    def test_interface(self):
        self.assertTrue(IJournal.providedBy(self.openJournal()))

    def test_firstLine(self):
        """
        The first line is the canonical body (seq 1, zero prev_hash, the
        clock's time) with C{hash} added last.
        """
        journal = self.openJournal()
        journal.append({"phase": "input", "user": "dév"})
        body = {"phase": "input", "user": "dév", "seq": 1,
                "prev_hash": GENESIS_HASH, "ts": "2026-11-27T01:02:03.456Z"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.assertEqual(
            segmentLines(self.directory),
            [(text[:-1] + ',"hash":"%s"}\n' % (digest,)).encode("utf-8")])
        self.assertEqual((journal.seq, journal.lastHash), (1, digest))

    def test_links(self):
        """
        Each record's prev_hash is the previous record's hash, each hash
        recomputes, seq counts from 1.
        """
        self.fillJournal(3)
        records = list(readRecords(self.directory))
        self.assertEqual([r["seq"] for r in records], [1, 2, 3])
        self.assertEqual([r["n"] for r in records], [0, 1, 2])
        self.assertEqual(
            [r["prev_hash"] for r in records],
            [GENESIS_HASH, records[0]["hash"], records[1]["hash"]])
        for r in records:
            self.assertEqual(r["hash"], recordHash(r))

    def test_recordKept(self):
        """
        A given C{ts} is kept, a given C{hash} replaced, the mapping passed
        in left alone.
        """
        journal = self.openJournal()
        record = {"ts": "2026-01-02T03:04:05.000Z", "hash": "forged"}
        journal.append(record)
        self.assertEqual(record,
                         {"ts": "2026-01-02T03:04:05.000Z", "hash": "forged"})
        [written] = readRecords(self.directory)
        self.assertEqual(written["ts"], "2026-01-02T03:04:05.000Z")
        self.assertEqual(written["hash"], recordHash(written))

    def test_seqContinuesAfterReopen(self):
        first = self.fillJournal(2)
        journal = self.openJournal()
        self.assertEqual((journal.seq, journal.lastHash),
                         (2, first.lastHash))
        journal.append({"n": 2})
        records = list(readRecords(self.directory))
        self.assertEqual([r["seq"] for r in records], [1, 2, 3])
        self.assertEqual(records[2]["prev_hash"], records[1]["hash"])
        self.assertTrue(verifyJournal(self.directory).ok)

    def test_notSerialisable(self):
        """
        A record that is not JSON fails its Deferred; the chain is untouched.
        """
        journal = self.openJournal()
        self.failureResultOf(journal.append({"x": object()}), TypeError)
        self.failureResultOf(journal.append({"x": float("nan")}), ValueError)
        self.assertEqual(journal.seq, 0)
        journal.append({"x": 1})
        self.assertEqual([r["seq"] for r in readRecords(self.directory)], [1])

    def test_writeFailure(self):
        """
        A failed write fails its Deferred, cuts the partial line off and
        leaves the chain where it was.
        """
        journal = self.openJournal()
        journal.append({"n": 0})
        before = segmentLines(self.directory)
        real = journal._file

        class Full:
            def write(self, data):
                real.write(data[:10])
                real.flush()
                raise OSError(errno.ENOSPC, "No space left on device")

            def close(self):
                real.close()
        journal._file = Full()
        self.failureResultOf(journal.append({"n": 1}), OSError)
        self.assertEqual(segmentLines(self.directory), before)
        self.assertEqual(self.successResultOf(journal.append({"n": 2})), 2)
        self.assertTrue(verifyJournal(self.directory).ok)

    def test_directoryMode(self):
        self.openJournal()
        self.assertEqual(stat.S_IMODE(os.stat(self.directory).st_mode), 0o700)

    def test_formatTimestamp(self):
        self.assertEqual(formatTimestamp(NOW), "2026-11-27T01:02:03.456Z")
        self.assertEqual(formatTimestamp(0.9996), "1970-01-01T00:00:01.000Z")

    def test_formatTimestampSameSecond(self):
        """
        Timestamps in one second, and around its edges, each keep their own
        second and milliseconds.
        """
        self.assertEqual(
            [formatTimestamp(NOW + d) for d in (0, 0.5, 0.543, 0.5444, -0.5)],
            ["2026-11-27T01:02:03.456Z", "2026-11-27T01:02:03.956Z",
             "2026-11-27T01:02:03.999Z", "2026-11-27T01:02:04.000Z",
             "2026-11-27T01:02:02.956Z"])

    def test_badSyncMode(self):
        self.assertRaises(ValueError, Journal, self.directory, self.clock,
                          sync="sometimes")


class SyncTests(JournalTestMixin, SynchronousTestCase):
    """
    When the Deferred of L{Journal.append} fires, per sync mode.
    """

    def test_batch(self):
        """
        Appends in one window share one fsync, after which their Deferreds
        fire; the next append opens a new window.
        """
        fsyncs = self.countFsyncs()
        journal = self.openJournal(sync="batch")
        fired = []
        for i in range(3):
            journal.append({"n": i}).addCallback(
                lambda seq: fired.append((seq, len(fsyncs))))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(BATCH_WINDOW - 0.001)
        self.assertEqual((fired, fsyncs), ([], []))
        self.clock.advance(0.001)
        self.assertEqual(fired, [(1, 1), (2, 1), (3, 1)])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        d = journal.append({"n": 3})
        self.assertNoResult(d)
        self.clock.advance(BATCH_WINDOW)
        self.assertEqual(self.successResultOf(d), 4)
        self.assertEqual(len(fsyncs), 2)

    def test_batchFsyncFails(self):
        journal = self.openJournal(sync="batch")
        d = journal.append({"n": 0})

        def fsync(fd):
            raise OSError(errno.EIO, "I/O error")
        self.patch(os, "fsync", fsync)
        self.clock.advance(BATCH_WINDOW)
        self.failureResultOf(d, OSError)

    def test_always(self):
        journal = self.openJournal(sync="always")
        fsyncs = self.countFsyncs()
        journal.append({"n": 0}).addCallback(
            lambda seq: fsyncs.append("fired %d" % (seq,)))
        self.assertEqual(len(fsyncs), 2)
        self.assertEqual(fsyncs[1], "fired 1")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def heldThread(self):
        """
        A C{runInThread} whose calls wait until the test runs them.

        @return: the runner and the list of C{(Deferred, f, args)} it holds.
        """
        held = []

        def runInThread(f, *args):
            d = Deferred()
            held.append((d, f, args))
            return d
        return runInThread, held

    def runHeld(self, held):
        d, f, args = held.pop(0)
        d.callback(f(*args))

    def test_alwaysGroupCommit(self):
        """
        With C{sync="always"} and the fsync in another thread, appends made
        while one fsync runs wait for the next one, which covers them all;
        the line itself is written before L{Journal.append} returns.
        """
        runInThread, held = self.heldThread()
        fsyncs = self.countFsyncs()
        journal = self.openJournal(sync="always", runInThread=runInThread)
        first = journal.append({"n": 0})
        self.assertEqual(len(held), 1)
        later = [journal.append({"n": i}) for i in (1, 2)]
        self.assertEqual(len(held), 1)
        self.assertEqual(len(list(readRecords(self.directory))), 3)
        self.assertEqual(fsyncs, [])
        self.runHeld(held)
        self.assertEqual(self.successResultOf(first), 1)
        for d in later:
            self.assertNoResult(d)
        self.assertEqual(len(held), 1)
        self.runHeld(held)
        self.assertEqual([self.successResultOf(d) for d in later], [2, 3])
        self.assertEqual((len(fsyncs), held), (2, []))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_threadSyncOutlivesSegment(self):
        """
        The fsync in another thread has a descriptor of its own: the
        journal may close the segment meanwhile, and the fsync still syncs
        that file, then closes only its own descriptor.
        """
        runInThread, held = self.heldThread()
        journal = self.openJournal(sync="batch", runInThread=runInThread)
        d = journal.append({"n": 0})
        self.clock.advance(BATCH_WINDOW)
        fd = held[0][2][0]
        self.assertNotEqual(fd, journal._file.fileno())
        self.successResultOf(journal.close())
        self.assertNoResult(d)
        fsyncs = self.countFsyncs()
        self.runHeld(held)
        self.assertEqual((self.successResultOf(d), fsyncs), (1, [fd]))
        self.assertRaises(OSError, os.fstat, fd)

    def test_threadSyncFails(self):
        """
        A failed fsync in the other thread fails the appends it covered;
        the next appends get a new fsync.
        """
        runInThread, held = self.heldThread()
        journal = self.openJournal(sync="always", runInThread=runInThread)
        d = journal.append({"n": 0})
        e = journal.append({"n": 1})
        held[0][0].errback(OSError(errno.EIO, "I/O error"))
        del held[0]
        self.failureResultOf(d, OSError)
        self.assertEqual(len(held), 1)
        self.runHeld(held)
        self.assertEqual(self.successResultOf(e), 2)

    def test_never(self):
        fsyncs = self.countFsyncs()
        journal = self.openJournal(sync="never")
        self.assertEqual(self.successResultOf(journal.append({"n": 0})), 1)
        self.assertEqual(fsyncs, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeFlushesBatch(self):
        """
        L{Journal.close} cancels the pending batch, fsyncs, fires what was
        waiting and leaves no delayed call.
        """
        fsyncs = self.countFsyncs()
        journal = self.openJournal(sync="batch")
        d = journal.append({"n": 0})
        self.assertIsNone(self.successResultOf(journal.close()))
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(len(fsyncs), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(journal._file)

    def test_syncNow(self):
        """
        L{Journal.syncNow} fsyncs at once, even with C{sync="never"}.
        """
        journal = self.openJournal(sync="never")
        journal.syncNow()  # nothing open yet: nothing to do
        journal.append({"n": 0})
        fsyncs = self.countFsyncs()
        journal.syncNow()
        self.assertEqual(len(fsyncs), 1)

    def test_appendAfterClose(self):
        journal = self.openJournal()
        journal.close()
        self.failureResultOf(journal.append({}), JournalClosed)
        self.successResultOf(journal.close())


class RotationTests(JournalTestMixin, SynchronousTestCase):
    """
    A new segment starts at a size limit and at a new UTC day; the chain
    goes on across it.
    """

    def test_size(self):
        lineSize = len(sealed({"n": 0, "ts": "2026-11-27T01:02:03.456Z"},
                              1, GENESIS_HASH)[0])
        self.fillJournal(5, segmentMaxBytes=2 * lineSize)
        self.assertEqual(sorted(os.listdir(self.directory)),
                         [segmentName(n) for n in (1, 2, 3)])
        self.assertEqual([len(segmentLines(self.directory, n))
                          for n in (1, 2, 3)], [2, 2, 1])
        second = json.loads(segmentLines(self.directory, 2)[0])
        lastOfFirst = json.loads(segmentLines(self.directory, 1)[-1])
        self.assertEqual(second["prev_hash"], lastOfFirst["hash"])
        self.assertEqual(verifyJournal(self.directory).segments, 3)
        self.assertTrue(verifyJournal(self.directory).ok)

    def test_segmentNumber(self):
        """
        L{Journal.segmentNumber} is the segment being written; after a
        restart, the last one.
        """
        journal = self.openJournal(segmentMaxBytes=10)
        self.assertEqual(journal.segmentNumber, 1)
        journal.append({"n": 0})
        journal.append({"n": 1})
        self.assertEqual(journal.segmentNumber, 2)
        journal.close()
        self.assertEqual(self.openJournal().segmentNumber, 2)

    def test_oversizedRecord(self):
        """
        A record bigger than the limit still goes in, alone.
        """
        self.fillJournal(3, segmentMaxBytes=10)
        self.assertEqual(len(os.listdir(self.directory)), 3)
        self.assertEqual(verifyJournal(self.directory).records, 3)

    def test_utcDay(self):
        journal = self.openJournal()
        for ts in ["2026-11-26T23:59:59.999Z",
                   "2026-11-27T00:30:00+01:00",  # still the 26th in UTC
                   "2026-11-27T00:00:00.000Z"]:
            journal.append({"ts": ts})
        self.clock.advance(86400)
        journal.append({})
        self.assertEqual([len(segmentLines(self.directory, n))
                          for n in (1, 2, 3)], [2, 1, 1])
        self.assertEqual(verifyJournal(self.directory).records, 4)

    def test_dayAfterReopen(self):
        """
        A reopened journal remembers the day of its last segment.
        """
        self.fillJournal(1)
        self.openJournal().append({})
        self.assertEqual(os.listdir(self.directory), [segmentName(1)])
        self.clock.advance(86400)
        self.openJournal().append({})
        self.assertEqual(sorted(os.listdir(self.directory)),
                         [segmentName(1), segmentName(2)])
        self.assertTrue(verifyJournal(self.directory).ok)

    def test_fsyncOnRotation(self):
        """
        Outside C{never}, a finished segment is fsynced before it is closed.
        """
        fsyncs = self.countFsyncs()
        journal = self.openJournal(sync="batch", segmentMaxBytes=10)
        journal.append({})
        journal.append({})
        self.assertEqual(len(fsyncs), 1)
        self.clock.advance(BATCH_WINDOW)
        self.assertEqual(len(fsyncs), 2)


class TornTailTests(JournalTestMixin, SynchronousTestCase):
    """
    At start, bytes after the last good record of the last segment are
    moved to a side file and the chain goes on from that record.
    """

    def setUp(self):
        JournalTestMixin.setUp(self)
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver,
                        self.logged.append)

    def assertSetAside(self, torn, number=1, good=3):
        self.clock.advance(100)
        journal = self.openJournal()
        side = os.path.join(self.directory,
                            "%s.torn-%d" % (segmentName(number), NOW + 100))
        self.assertEqual([(t.segment, t.path, t.size)
                          for t in journal.tornTails],
                         [(segmentName(number), side, len(torn))])
        with open(side, "rb") as f:
            self.assertEqual(f.read(), torn)
        self.assertEqual(journal.seq, good)
        journal.append({"n": "after"})
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.records), (True, good + 1))
        [warning] = [e for e in self.logged
                     if e.get("log_namespace") == "keeptrusts.journal.Journal"]
        self.assertEqual(warning["size"], len(torn))
        self.assertNotIn(b"secret", repr(warning).encode())
        return journal

    def test_partialLine(self):
        self.fillJournal(3)
        torn = b'{"n":"secret","seq":4,"ts":"2026'
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(torn)
        self.assertSetAside(torn)
        lines = segmentLines(self.directory)
        self.assertEqual(len(lines), 4)
        self.assertTrue(lines[-1].endswith(b"\n"))

    def test_unparsableLines(self):
        """
        Complete lines that are not records go aside too, with the partial
        line after them.
        """
        self.fillJournal(3)
        torn = b'secret garbage\n\x00\x00\n{"n":'
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(torn)
        self.assertSetAside(torn)

    def test_wholeSegment(self):
        """
        A last segment holding only a torn line is emptied and reused; the
        chain goes on from the segment before.
        """
        self.fillJournal(3, segmentMaxBytes=10)
        torn = b'{"n":"secret"'
        writeLines(self.directory, 4, [torn])
        self.assertSetAside(torn, number=4)
        self.assertEqual(len(segmentLines(self.directory, 4)), 1)

    def test_clean(self):
        self.fillJournal(3)
        self.assertEqual(self.openJournal().tornTails, ())
        self.assertEqual(self.logged, [])


class VerifyTests(JournalTestMixin, SynchronousTestCase):
    """
    L{verifyJournal} finds edits, removals, reorderings and bad lines, and
    says where.
    """

    def test_intact(self):
        self.fillJournal(4)
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.records, result.segments,
                          result.reason), (True, 4, 1, None))

    def test_empty(self):
        self.openJournal()
        self.assertEqual(verifyJournal(self.directory).records, 0)

    def test_edited(self):
        self.fillJournal(4)
        lines = segmentLines(self.directory)
        lines[2] = lines[2].replace(b'"n":2', b'"n":7')
        writeLines(self.directory, 1, lines)
        self.assertProblem(segmentName(1), 3, 3, HASH_MISMATCH, 2)

    def test_removed(self):
        self.fillJournal(4)
        lines = segmentLines(self.directory)
        del lines[1]
        writeLines(self.directory, 1, lines)
        self.assertProblem(segmentName(1), 2, 3, PREV_HASH_MISMATCH, 1)

    def test_swapped(self):
        self.fillJournal(4)
        lines = segmentLines(self.directory)
        lines[1], lines[2] = lines[2], lines[1]
        writeLines(self.directory, 1, lines)
        self.assertProblem(segmentName(1), 2, 3, PREV_HASH_MISMATCH, 1)

    def test_acrossSegments(self):
        """
        Each segment holds one record here: a removed, swapped or edited
        record shows in the segment where the chain breaks.
        """
        self.fillJournal(4, segmentMaxBytes=10)
        second = segmentLines(self.directory, 2)
        third = segmentLines(self.directory, 3)
        writeLines(self.directory, 2, [])
        self.assertProblem(segmentName(3), 1, 3, PREV_HASH_MISMATCH, 1)
        writeLines(self.directory, 2, third)
        writeLines(self.directory, 3, second)
        self.assertProblem(segmentName(2), 1, 3, PREV_HASH_MISMATCH, 1)
        writeLines(self.directory, 2, second)
        writeLines(self.directory, 3,
                   [third[0].replace(b'"n":2', b'"n":3')])
        self.assertProblem(segmentName(3), 1, 3, HASH_MISMATCH, 2)

    def test_seqGap(self):
        """
        A chain whose hashes link but whose seq skips is reported too.
        """
        os.mkdir(self.directory)
        first, digest = sealed({"n": 0}, 1, GENESIS_HASH)
        second, _ = sealed({"n": 1}, 3, digest)
        writeLines(self.directory, 1, [first, second])
        self.assertProblem(segmentName(1), 2, 3,
                           "seq gap (expected 2, found 3)", 1)

    def test_unparsable(self):
        self.fillJournal(3)
        lines = segmentLines(self.directory)
        lines.insert(1, b"not json\n")
        writeLines(self.directory, 1, lines)
        self.assertProblem(segmentName(1), 2, None, UNPARSABLE, 1)

    def test_incompleteLastLine(self):
        """
        An incomplete last line is being written (or will be set aside at
        the next start): not a problem, but counted.
        """
        self.fillJournal(3)
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(b'{"n":')
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.records, result.pendingBytes),
                         (True, 3, 5))

    def test_incompleteEarlierSegment(self):
        self.fillJournal(2, segmentMaxBytes=10)
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(b'{"n":')
        self.assertProblem(segmentName(1), 2, None, INCOMPLETE, 1)

    def test_firstRemainingSegmentUnanchored(self):
        """
        With earlier segments removed and no retention anchor naming the
        record the first remaining one follows, the chain fails there.
        """
        self.fillJournal(3, segmentMaxBytes=10)
        os.remove(os.path.join(self.directory, segmentName(1)))
        self.assertProblem(segmentName(2), 1, 2, UNANCHORED % (1,), 2)

    def test_firstRecordNotGenesis(self):
        """
        A chain starting at seq 1 must start from the genesis hash.
        """
        os.mkdir(self.directory)
        first, _ = sealed({"n": 0}, 1, "1" * 64)
        writeLines(self.directory, 1, [first])
        self.assertProblem(segmentName(1), 1, 1, UNANCHORED % (0,), 1)

    def test_lastRecord(self):
        self.fillJournal(3)
        result = verifyJournal(self.directory)
        last = json.loads(segmentLines(self.directory)[-1])
        self.assertEqual((result.firstSeq, result.anchorSeq, result.lastSeq,
                          result.lastHash), (1, None, 3, last["hash"]))


def anchor(removed):
    """
    A retention anchor's fields for C{removed}: C{(last_seq, last_hash)}.
    """
    return {"phase": "retention", "verdict": "allow",
            "removed": [{"segment": "x", "first_seq": 1, "last_seq": seq,
                         "last_hash": digest} for seq, digest in removed]}


class AnchorTests(JournalTestMixin, SynchronousTestCase):
    """
    A first remaining record is accepted when a retention anchor at or
    after it names the record it follows.  Each record is one segment here.
    """

    def anchored(self, count=5, removeThrough=2):
        """
        C{count} records, then an anchor naming the last of records
        1..C{removeThrough}; those segments removed.
        """
        journal = self.openJournal(segmentMaxBytes=10)
        hashes = []
        for i in range(count):
            journal.append({"n": i})
            hashes.append(journal.lastHash)
        journal.append(anchor([(removeThrough, hashes[removeThrough - 1])]))
        journal.close()
        for number in range(1, removeThrough + 1):
            os.remove(os.path.join(self.directory, segmentName(number)))
        return hashes

    def test_anchoredStart(self):
        self.anchored()
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.records, result.firstSeq,
                          result.anchorSeq, result.lastSeq),
                         (True, 4, 3, 6, 6))

    def test_anchorNotRemovedYet(self):
        """
        An anchor for segments still there (a crash before removal) does
        no harm.
        """
        journal = self.openJournal()
        journal.append({"n": 0})
        journal.append(anchor([(1, journal.lastHash)]))
        journal.close()
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.anchorSeq), (True, None))

    def test_partlyRemoved(self):
        """
        Removal stopped part way (a crash): the anchor names each removed
        segment's last record, so any prefix of them may be gone.
        """
        journal = self.openJournal(segmentMaxBytes=10)
        removed = []
        for i in range(4):
            journal.append({"n": i})
            removed.append((journal.seq, journal.lastHash))
        journal.append(anchor(removed[:3]))
        journal.close()
        os.remove(os.path.join(self.directory, segmentName(1)))
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.firstSeq, result.anchorSeq),
                         (True, 2, 5))

    def test_removedBeyondAnchor(self):
        """
        Removing one segment more than the anchor names is found.
        """
        self.anchored()
        os.remove(os.path.join(self.directory, segmentName(3)))
        self.assertProblem(segmentName(4), 1, 4, UNANCHORED % (3,), 3)

    def test_middleRemoved(self):
        self.anchored()
        os.remove(os.path.join(self.directory, segmentName(4)))
        self.assertProblem(segmentName(5), 1, 5, PREV_HASH_MISMATCH, 1)

    def test_anchorEdited(self):
        """
        An anchor edited to cover more is found: its hash no longer
        recomputes.
        """
        hashes = self.anchored()
        lines = segmentLines(self.directory, 6)
        lines[0] = lines[0].replace(hashes[1].encode(), hashes[2].encode())
        writeLines(self.directory, 6, lines)
        self.assertProblem(segmentName(6), 1, 6, HASH_MISMATCH, 3)

    def test_anchorRehashed(self):
        """
        Re-hashed too, the anchor breaks the next record's link.
        """
        self.anchored()
        journal = self.openJournal(segmentMaxBytes=10)
        journal.append({"n": "after"})
        journal.close()
        record = json.loads(segmentLines(self.directory, 6)[0])
        record["removed"][0]["last_hash"] = "f" * 64
        forged, _ = sealed({k: v for k, v in record.items()
                            if k not in ("seq", "prev_hash", "hash")},
                           record["seq"], record["prev_hash"])
        writeLines(self.directory, 6, [forged])
        self.assertProblem(segmentName(7), 1, 7, PREV_HASH_MISMATCH, 4)

    def test_anchorBeforeCutIgnored(self):
        """
        Only anchors that remain vouch for the start: removing the
        anchor's own segment too leaves nothing accounting for the cut.
        """
        self.anchored()
        journal = self.openJournal(segmentMaxBytes=10)
        journal.append({"n": "after"})
        journal.close()
        for number in (3, 4, 5, 6):
            os.remove(os.path.join(self.directory, segmentName(number)))
        self.assertProblem(segmentName(7), 1, 7, UNANCHORED % (6,), 1)

    def test_anchoredLinks(self):
        self.assertEqual(anchoredLinks(anchor([(3, "a"), (5, "b")])),
                         {(3, "a"), (5, "b")})
        self.assertEqual(anchoredLinks({"phase": "input", "removed": [
            {"last_seq": 3, "last_hash": "a"}]}), set())
        self.assertEqual(anchoredLinks({"phase": "retention", "removed": [
            {"last_seq": True, "last_hash": "a"}, "x",
            {"last_seq": 2, "last_hash": None}]}), set())


class ReadTests(JournalTestMixin, SynchronousTestCase):
    """
    L{readRecords} and L{JournalReader}.
    """

    def test_readRecordsAcrossSegments(self):
        self.fillJournal(3, segmentMaxBytes=10)
        self.assertEqual([r["n"] for r in readRecords(self.directory)],
                         [0, 1, 2])

    def test_readRecordsBadLine(self):
        self.fillJournal(2)
        lines = segmentLines(self.directory)
        writeLines(self.directory, 1, [lines[0], b"[1, 2]\n", lines[1]])
        records = readRecords(self.directory)
        self.assertEqual(next(records)["n"], 0)
        e = self.assertRaises(JournalError, next, records)
        self.assertEqual((e.segment, e.line, e.reason),
                         (segmentName(1), 2, UNPARSABLE))

    def test_readRecordsStopsBeforeIncompleteLine(self):
        self.fillJournal(2)
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(b'{"n":')
        self.assertEqual(len(list(readRecords(self.directory))), 2)

    def test_readerFollows(self):
        """
        A reader yields only what is new, holds back an incomplete line
        until its newline arrives, and moves to new segments.
        """
        os.mkdir(self.directory)
        reader = JournalReader(self.directory)
        self.assertEqual(list(reader.readLines()), [])
        first, digest = sealed({"n": 0}, 1, GENESIS_HASH)
        second, digest = sealed({"n": 1}, 2, digest)
        third, _ = sealed({"n": 2}, 3, digest)
        writeLines(self.directory, 1, [first, second[:9]])
        self.assertEqual([(e.segment, e.line, e.raw)
                          for e in reader.readLines()],
                         [(segmentName(1), 1, first[:-1])])
        self.assertEqual(reader.pendingBytes, 9)
        writeLines(self.directory, 1, [first, second])
        writeLines(self.directory, 2, [third])
        self.assertEqual([(e.segment, e.line, e.raw)
                          for e in reader.readLines()],
                         [(segmentName(1), 2, second[:-1]),
                          (segmentName(2), 1, third[:-1])])
        self.assertEqual((reader.pendingBytes, reader.segmentCount), (0, 2))
        self.assertEqual(list(reader.readLines()), [])
