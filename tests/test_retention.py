"""
Tests for L{keeptrusts.retention} and L{keeptrusts.retentionloop}.
"""

import io
import json
import os

import attr
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.cli.main import Runtime, main
from keeptrusts.config import parseConfig
from keeptrusts.journal import Journal
from keeptrusts.journalformat import (
    canonical, formatTimestamp, recordHash, segmentName, segmentNumbers)
from keeptrusts.journalread import (
    HASH_MISMATCH, PREV_HASH_MISMATCH, verifyJournal)
from keeptrusts.policy.audit import AuditOptions
from keeptrusts.policy.registry import policyFactories
from keeptrusts.retention import (
    DAY, ExpiredSegment, RetentionError, anchorRecord, checkSegments,
    expiredSegments, removeSegments, sweep)
from keeptrusts.retentionloop import DEFAULT_INTERVAL, Retention, retentionDays

# 2026-11-27T01:02:03.456Z
NOW = 1795741323.456


def segmentPath(directory, number):
    return os.path.join(directory, segmentName(number))


def rewrite(path, old, new, count=1):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data.replace(old, new, count))


class RetentionTestMixin:

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.directory = self.mktemp()
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver,
                        self.logged.append)

    def journalOfDays(self, ages=(400, 399, 380, 10, 0), perDay=2,
                      sync="never"):
        """
        A journal with C{perDay} records on each day C{ages} days ago: one
        segment per day (rotation by UTC day), the last one being written.
        """
        journal = Journal.open(self.directory, self.clock, sync=sync)
        self.addCleanup(journal.close)
        for age in ages:
            for i in range(perDay):
                journal.append({"phase": "input", "age": age, "i": i,
                                "ts": formatTimestamp(NOW - age * DAY + i)})
        return journal

    def records(self):
        out = []
        for number in segmentNumbers(self.directory):
            with open(segmentPath(self.directory, number), "rb") as f:
                out.extend(json.loads(line) for line in f)
        return out

    def errors(self):
        return [e for e in self.logged if e.get("log_level") is not None
                and e["log_level"].name in ("error", "critical")]


class ExpiredSegmentsTests(RetentionTestMixin, SynchronousTestCase):

    def test_oldSealedSegments(self):
        journal = self.journalOfDays()
        self.assertEqual(expiredSegments(self.directory, NOW, 365,
                                         journal.segmentNumber), [1, 2, 3])
        self.assertEqual(expiredSegments(self.directory, NOW, 390,
                                         journal.segmentNumber), [1, 2])

    def test_neverTheCurrentSegment(self):
        """
        The segment being written stays, however old its records are.
        """
        journal = self.journalOfDays(ages=(400, 399))
        self.assertEqual(expiredSegments(self.directory, NOW, 1,
                                         journal.segmentNumber), [1])

    def test_newestRecordCounts(self):
        """
        A segment goes only when its newest record is older than the
        retention: here the last record of day 400 is 1s younger than the
        cutoff.
        """
        journal = self.journalOfDays(ages=(400, 0))
        cutoffDays = (400 * DAY - 1) / DAY
        self.assertEqual(expiredSegments(self.directory, NOW, cutoffDays,
                                         journal.segmentNumber), [])

    def test_stopsAtFirstKept(self):
        """
        Only a prefix goes: an undated segment keeps itself and every
        later one.
        """
        journal = self.journalOfDays()
        rewrite(segmentPath(self.directory, 2), b'"ts":"', b'"ts":"x', -1)
        self.assertEqual(expiredSegments(self.directory, NOW, 365,
                                         journal.segmentNumber), [1])


class CheckSegmentsTests(RetentionTestMixin, SynchronousTestCase):

    def test_boundaries(self):
        self.journalOfDays()
        records = self.records()
        found = checkSegments(self.directory, [1, 2])
        self.assertEqual(found, [
            ExpiredSegment(segmentName(1), 1, 2, records[1]["hash"],
                           records[1]["ts"]),
            ExpiredSegment(segmentName(2), 3, 4, records[3]["hash"],
                           records[3]["ts"])])

    def test_edited(self):
        """
        An expired segment that does not verify is evidence: kept.
        """
        self.journalOfDays()
        rewrite(segmentPath(self.directory, 2), b'"i":1', b'"i":7')
        e = self.assertRaises(RetentionError, checkSegments,
                              self.directory, [1, 2])
        self.assertEqual((e.segment, e.line, e.reason),
                         (segmentName(2), 2, HASH_MISMATCH))

    def test_lastRecordRewritten(self):
        """
        The last record of the last expired segment, edited and re-hashed,
        no longer links to the next record.
        """
        self.journalOfDays()
        path = segmentPath(self.directory, 2)
        with open(path, "rb") as f:
            lines = f.readlines()
        record = json.loads(lines[1])
        record["i"] = 7
        record["hash"] = recordHash(record)
        lines[1] = canonical(record).encode("utf-8") + b"\n"
        with open(path, "wb") as f:
            f.write(b"".join(lines))
        e = self.assertRaises(RetentionError, checkSegments,
                              self.directory, [1, 2])
        self.assertEqual((e.segment, e.line, e.reason),
                         (segmentName(3), 1, PREV_HASH_MISMATCH))

    def test_sideFiles(self):
        self.journalOfDays()
        side = segmentName(1) + ".torn-1"
        open(os.path.join(self.directory, side), "wb").close()
        self.assertEqual(checkSegments(self.directory, [1])[0].sideFiles,
                         (side,))


class SweepTests(RetentionTestMixin, SynchronousTestCase):

    def test_removesAndAnchors(self):
        """
        The expired segments go, after an anchor naming them; the chain
        still verifies, from the first kept record.
        """
        journal = self.journalOfDays()
        records = self.records()
        removed = self.successResultOf(sweep(journal, NOW, 365))
        self.assertEqual([s.segment for s in removed],
                         [segmentName(n) for n in (1, 2, 3)])
        self.assertEqual(segmentNumbers(self.directory), [4, 5])
        anchor = self.records()[-1]
        self.assertEqual(
            {k: v for k, v in anchor.items()
             if k not in ("seq", "ts", "prev_hash", "hash")},
            anchorRecord(removed, 365))
        self.assertEqual(anchor["removed_through"],
                         {"seq": 6, "hash": records[5]["hash"]})
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.firstSeq, result.anchorSeq,
                          result.records), (True, 7, 11, 5))

    def test_nothingExpired(self):
        journal = self.journalOfDays(ages=(10, 0))
        self.assertEqual(self.successResultOf(sweep(journal, NOW, 365)), [])
        self.assertEqual(journal.seq, 4)  # no anchor

    def test_editedKept(self):
        journal = self.journalOfDays()
        rewrite(segmentPath(self.directory, 1), b'"i":1', b'"i":7')
        self.failureResultOf(sweep(journal, NOW, 365), RetentionError)
        self.assertEqual(segmentNumbers(self.directory), [1, 2, 3, 4, 5])
        self.assertEqual(journal.seq, 10)

    def test_anchorDurableFirst(self):
        """
        With C{sync: batch}, segments go only once the anchor is synced.
        """
        journal = self.journalOfDays(sync="batch")
        self.clock.advance(1)
        d = sweep(journal, NOW, 365)
        self.assertNoResult(d)
        self.assertEqual(segmentNumbers(self.directory), [1, 2, 3, 4, 5])
        self.clock.advance(1)
        self.assertEqual(len(self.successResultOf(d)), 3)
        self.assertEqual(segmentNumbers(self.directory), [4, 5])

    def test_closedJournal(self):
        """
        A journal closed under a sweep takes no anchor: nothing goes.
        """
        journal = self.journalOfDays()
        journal.close()
        self.failureResultOf(sweep(journal, NOW, 365))
        self.assertEqual(segmentNumbers(self.directory), [1, 2, 3, 4, 5])

    def test_removalStopsAtFailure(self):
        """
        A segment that cannot be removed keeps itself and every later one,
        so the rest still verifies with the anchor.
        """
        journal = self.journalOfDays()
        realRemove = os.remove

        def remove(path):
            if path.endswith(segmentName(2)):
                raise PermissionError(13, "Permission denied", path)
            realRemove(path)
        self.patch(os, "remove", remove)
        removed = self.successResultOf(sweep(journal, NOW, 365))
        self.assertEqual([s.segment for s in removed], [segmentName(1)])
        self.assertEqual(segmentNumbers(self.directory), [2, 3, 4, 5])
        self.assertTrue(verifyJournal(self.directory).ok)
        self.assertEqual(len(self.flushLoggedErrors(PermissionError)), 1)

    def test_removeSegmentsSideFiles(self):
        self.journalOfDays()
        side = segmentName(1) + ".torn-1"
        open(os.path.join(self.directory, side), "wb").close()
        removeSegments(self.directory, checkSegments(self.directory, [1]))
        self.assertFalse(os.path.exists(os.path.join(self.directory, side)))

    def test_secondSweep(self):
        """
        A later sweep removes the segment holding the first anchor; its
        own anchor accounts for the new start.
        """
        journal = self.journalOfDays()
        self.successResultOf(sweep(journal, NOW, 365))
        self.successResultOf(sweep(journal, NOW + 20 * DAY, 15))
        self.assertEqual(segmentNumbers(self.directory), [5])
        result = verifyJournal(self.directory)
        self.assertEqual((result.ok, result.firstSeq, result.anchorSeq),
                         (True, 9, 12))

    def test_verifyAfterRetention(self):
        """
        Retention removes old segments and C{kt events verify} still
        passes; editing any kept record makes it fail, naming the record.
        """
        journal = self.journalOfDays()
        self.successResultOf(sweep(journal, NOW, 365))
        journal.append({"phase": "input", "i": "after"})

        def verify():
            out, err = io.StringIO(), io.StringIO()
            code = main(["events", "verify", "--journal", self.directory],
                        Runtime(out, err))
            return code, out.getvalue().splitlines()[0]
        self.assertEqual(verify(), (
            0, "OK: 6 records in 2 segments, chain intact"))
        kept = self.records()
        for index, record in enumerate(kept):
            number = 4 if index < 2 else 5
            line = index + 1 if index < 2 else index - 1
            path = segmentPath(self.directory, number)
            with open(path, "rb") as f:
                original = f.read()
            rewrite(path, b'"seq":%d' % (record["seq"],),
                    b'"seq":%d,"edited":1' % (record["seq"],))
            self.assertEqual(verify(), (1, "FAIL: %s line %d (seq %d): %s"
                                        % (segmentName(number), line,
                                           record["seq"], HASH_MISMATCH)))
            with open(path, "wb") as f:
                f.write(original)


class NoThread:
    """
    Holds the work a sweep sends to a thread until told to run it.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, f, *args):
        d = defer.Deferred()
        self.calls.append((d, f, args))
        return d

    def runAll(self):
        calls, self.calls = self.calls, []
        for d, f, args in calls:
            d.callback(f(*args))


class RetentionServiceTests(RetentionTestMixin, SynchronousTestCase):

    def test_startAndEveryInterval(self):
        journal = self.journalOfDays(ages=(400, 10, 0))
        retention = Retention(journal, self.clock, 365)
        retention.start()
        self.addCleanup(retention.stop)
        self.assertEqual(segmentNumbers(self.directory), [2, 3])
        # Day 10's segment is not due at the next sweep; it is 356 days
        # on.  That sweep's anchor, on a new day, starts segment 4.
        self.clock.advance(DEFAULT_INTERVAL)
        self.assertEqual(segmentNumbers(self.directory), [2, 3])
        self.clock.advance(356 * DAY)
        self.assertEqual(segmentNumbers(self.directory), [3, 4])
        self.assertTrue(verifyJournal(self.directory).ok)

    def test_stop(self):
        journal = self.journalOfDays()
        retention = Retention(journal, self.clock, 365)
        retention.start()
        self.successResultOf(retention.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopWaitsForSweep(self):
        journal = self.journalOfDays()
        thread = NoThread()
        retention = Retention(journal, self.clock, 365, runInThread=thread)
        retention.start()
        stopped = retention.stop()
        self.assertNoResult(stopped)
        thread.runAll()
        self.successResultOf(stopped)
        self.assertEqual(segmentNumbers(self.directory), [4, 5])

    def test_oneSweepAtATime(self):
        journal = self.journalOfDays()
        thread = NoThread()
        retention = Retention(journal, self.clock, 365, runInThread=thread)
        first = retention.sweep()
        self.assertEqual(self.successResultOf(retention.sweep()), [])
        thread.runAll()
        self.assertEqual(len(self.successResultOf(first)), 3)
        self.assertEqual(len(thread.calls), 0)

    def test_failureLoggedLoopGoesOn(self):
        """
        A sweep that finds tampering logs it and removes nothing; the loop
        keeps its schedule.
        """
        journal = self.journalOfDays()
        rewrite(segmentPath(self.directory, 1), b'"i":1', b'"i":7')
        retention = Retention(journal, self.clock, 365)
        retention.start()
        self.addCleanup(retention.stop)
        self.assertEqual(len(self.errors()), 1)
        self.assertIn("00000001.jsonl line 2", self.errors()[0]["problem"])
        self.assertEqual(segmentNumbers(self.directory), [1, 2, 3, 4, 5])
        self.clock.advance(DEFAULT_INTERVAL)
        self.assertEqual(len(self.errors()), 2)

    def test_unexpectedErrorLogged(self):
        journal = self.journalOfDays()

        def broken(f, *args):
            return defer.fail(OSError(5, "Input/output error"))
        retention = Retention(journal, self.clock, 365, runInThread=broken)
        self.assertEqual(self.successResultOf(retention.sweep()), [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_notAJournal(self):
        """
        Even a sweep that cannot begin is logged, not raised.
        """
        retention = Retention(object(), self.clock, 365)
        self.assertEqual(self.successResultOf(retention.sweep()), [])
        self.assertEqual(len(self.flushLoggedErrors(AttributeError)), 1)

    def test_badDays(self):
        for days in (0, -1, 1.5, True, None):
            self.assertRaises(ValueError, Retention, None, self.clock, days)

    def test_fromConfig(self):
        journal = self.journalOfDays()
        base = ("pack: {name: p, version: 1.0.0, enabled: true}\n"
                "policies: {chain: [audit-logger]}\n")
        configured = parseConfig(
            base + "policy: {audit-logger: {retention_days: 30}}\n",
            policyFactories())
        thread = NoThread()
        retention = Retention.fromConfig(configured, journal, self.clock,
                                         runInThread=thread)
        self.assertEqual((retention.days, retention.clock), (30, self.clock))
        retention.sweep()
        self.assertEqual(len(thread.calls), 1)
        default = parseConfig(
            "pack: {name: p, version: 1.0.0, enabled: true}\n"
            "policies: {chain: [dlp-filter]}\n", policyFactories())
        self.assertEqual(
            Retention.fromConfig(default, journal, self.clock).days, 365)

    def test_retentionDays(self):
        """
        A retention that cannot work is refused with the path of the
        setting (whether or not the audit-logger's options let it by).
        """
        config = attr.evolve(
            parseConfig("pack: {name: p, version: 1.0.0, enabled: true}\n"
                        "policies: {chain: [audit-logger]}\n",
                        policyFactories()),
            policy={"audit-logger": AuditOptions(retention_days=0)})
        e = self.assertRaises(ValueError, retentionDays, config)
        self.assertIn("policy.audit-logger.retention_days", str(e))
