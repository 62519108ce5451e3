# -*- test-case-name: tests.test_journal -*-
"""
Reading and verifying a journal (see L{keeptrusts.journal} for the format).
Nothing here writes or needs a reactor, so C{kt} and a thread can use it.

Where the chain may start: at C{seq} 1 with the genesis C{prev_hash}, or,
once retention has removed the oldest segments, at any record that a
retention anchor accounts for.  An anchor is a record of the chain itself
(C{phase: "retention"}, see L{keeptrusts.retention}) naming, for each
segment it removes, the C{seq} and C{hash} of that segment's last record.
The first remaining record is accepted when its C{(seq - 1, prev_hash)} is
one of those pairs, in an anchor at or after it.  So:

  - removing segments at the start beyond what an anchor names leaves a
    first record that no anchor accounts for;
  - removing a segment in the middle breaks a C{prev_hash} link, as ever;
  - editing an anchor breaks its own C{hash}, or, re-hashed, the next
    record's C{prev_hash}.

Like any hash chain without an outside witness, this cannot tell the last
records from a rewritten tail: keep the last C{seq} and C{hash} that
C{kt events verify} prints somewhere else to pin the chain up to there.
"""

import os
from typing import Optional

import attr

from keeptrusts.journalformat import (
    GENESIS_HASH, isSeq, parseRecord, recordHash, segmentName, segmentNumbers)

HASH_MISMATCH = "hash mismatch (record edited)"
PREV_HASH_MISMATCH = ("prev_hash does not match the previous record "
                      "(record removed or reordered)")
UNPARSABLE = "unparsable line"
INCOMPLETE = "incomplete line (torn write)"
UNANCHORED = ("records before this one were removed, and no retention "
              "anchor names the record it follows (seq %s)")

RETENTION_PHASE = "retention"


class JournalError(Exception):
    """
    A journal line that cannot be read as a record.

    @ivar segment: the segment's file name.
    @ivar line: the 1-based line number in that segment.
    @ivar reason: why, e.g. L{UNPARSABLE}.
    """

    def __init__(self, segment, line, reason):
        Exception.__init__(self, "%s line %d: %s" % (segment, line, reason))
        self.segment = segment
        self.line = line
        self.reason = reason


@attr.s(frozen=True, slots=True, auto_attribs=True)
class JournalLine:
    """
    One line of a segment, as read.

    @ivar raw: the bytes of the line, without its newline.
    @ivar complete: C{False} for a line that never got its newline (a torn
        write) in a segment that is no longer the last one.
    """

    segment: str
    line: int
    raw: bytes
    complete: bool = True


class JournalReader:
    """
    Read the complete lines of a journal in order, across segments, and
    remember where it stopped so that a later L{readLines} yields only
    what was written since.  An incomplete last line (the writer is in the
    middle of it, or crashed there) is held back, not yielded.

    @ivar pendingBytes: how many bytes of an incomplete last line are held.
    @ivar segmentCount: how many segments were visited so far.
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.segmentCount = 0
        self._segment = None
        self._offset = 0
        self._line = 0
        self._pending = b""

    @property
    def pendingBytes(self):
        return len(self._pending)

    def readLines(self):
        """
        @return: an iterator of L{JournalLine} not yet read.
        @raise OSError: the directory is missing.
        """
        while True:
            # List before reading: the writer finishes a segment before it
            # creates the next, so a segment listed as not last is whole.
            numbers = segmentNumbers(self.directory)
            if self._segment is None:
                if not numbers:
                    return
                self._enter(numbers[0])
            yield from self._readSegment()
            later = [n for n in numbers if n > self._segment]
            if not later:
                return
            if self._pending:
                self._line += 1
                yield JournalLine(segmentName(self._segment), self._line,
                                  self._pending, complete=False)
            self._enter(later[0])

    def _enter(self, number):
        self._segment = number
        self._offset = self._line = 0
        self._pending = b""
        self.segmentCount += 1

    def _readSegment(self):
        name = segmentName(self._segment)
        try:
            f = open(os.path.join(self.directory, name), "rb")
        except FileNotFoundError:
            # Removed under us (retention); the caller moves on.
            return
        with f:
            f.seek(self._offset)
            for raw in f:
                if not raw.endswith(b"\n"):
                    self._pending = raw
                    return
                # Move first, so a consumer that stops early resumes after.
                self._offset += len(raw)
                self._line += 1
                yield JournalLine(name, self._line, raw[:-1])
        self._pending = b""


def readRecords(directory):
    """
    Yield every record of the journal in C{directory}, in order, up to an
    incomplete last line, which is being written (or will be set aside by
    the journal's next start) and is not yet a record.

    @raise JournalError: at the first line that is not a JSON object,
        including an incomplete line before the last segment; nothing is
        skipped silently.
    """
    reader = JournalReader(directory)
    for entry in reader.readLines():
        record = parseRecord(entry.raw) if entry.complete else None
        if record is None:
            raise JournalError(entry.segment, entry.line,
                               UNPARSABLE if entry.complete else INCOMPLETE)
        yield record


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Verification:
    """
    The result of L{verifyJournal}.

    @ivar records: records checked (before the problem, if any).
    @ivar segment: for a problem, the segment's file name; C{line} its
        1-based line, C{seq} the record's C{seq} when it could be read,
        C{reason} why.
    @ivar pendingBytes: the size of an incomplete last line, not checked:
        the gateway is writing it, or crashed there and will set it aside
        at its next start.  Cutting records off the end of a hash chain
        cannot be detected from the chain alone, so it is no problem here.
    @ivar firstSeq: the C{seq} of the first record (when there is one).
    @ivar anchorSeq: the C{seq} of the retention anchor that accounts for
        the records removed before C{firstSeq}; L{None} when the chain
        starts at C{seq} 1.
    @ivar lastSeq: the C{seq} of the last record checked; C{lastHash} its
        C{hash}.
    """

    ok: bool
    records: int
    segments: int
    segment: Optional[str] = None
    line: Optional[int] = None
    seq: Optional[int] = None
    reason: Optional[str] = None
    pendingBytes: int = 0
    firstSeq: Optional[int] = None
    anchorSeq: Optional[int] = None
    lastSeq: Optional[int] = None
    lastHash: Optional[str] = None


def checkLink(record, prevHash, expectedSeq):
    """
    The reason C{record} does not belong after a record with hash
    C{prevHash} and seq C{expectedSeq - 1}, or L{None}.  C{prevHash} and
    C{expectedSeq} are L{None} for the first record, whose place is
    checked separately (L{ChainCheck}).
    """
    computed = recordHash(record)
    if computed is None or record.get("hash") != computed:
        return HASH_MISMATCH
    if prevHash is not None and record.get("prev_hash") != prevHash:
        return PREV_HASH_MISMATCH
    seq = record.get("seq")
    if expectedSeq is not None and seq != expectedSeq:
        return "seq gap (expected %d, found %s)" % (expectedSeq, seq)
    if not isSeq(seq):
        return "seq missing or not an integer"
    return None


def anchoredLinks(record):
    """
    The C{(seq, hash)} of the records after which a retention anchor lets
    the chain start again: the last record of each segment it removed.
    Empty for any other record.
    """
    if record.get("phase") != RETENTION_PHASE:
        return frozenset()
    removed = record.get("removed")
    if not isinstance(removed, list):
        return frozenset()
    return frozenset(
        (entry["last_seq"], entry["last_hash"]) for entry in removed
        if isinstance(entry, dict) and isSeq(entry.get("last_seq"))
        and isinstance(entry.get("last_hash"), str))


class ChainCheck:
    """
    Records fed in chain order, checked one by one (L{add}), then the start
    of the chain checked once all are in (L{startProblem}).

    @ivar records: how many records were added and found good.
    @ivar firstSeq: the first record's C{seq}.
    @ivar cut: for a first record that does not start the chain, the
        C{(seq, hash)} of the record it follows; else L{None}.
    @ivar anchorSeq: the C{seq} of the first anchor naming C{cut}.
    @ivar lastSeq: the last good record's C{seq}; C{lastHash} its C{hash}.
    """

    def __init__(self):
        self.records = 0
        self.firstSeq = self.cut = self.anchorSeq = None
        self.lastSeq = self.lastHash = None

    def add(self, record):
        """
        @return: why C{record} cannot come next, or L{None} (then it is
            counted).
        """
        expected = None if self.lastSeq is None else self.lastSeq + 1
        reason = checkLink(record, self.lastHash, expected)
        if reason is not None:
            return reason
        if self.records == 0:
            self.firstSeq = record["seq"]
            if (record["seq"], record.get("prev_hash")) != (1, GENESIS_HASH):
                self.cut = (record["seq"] - 1, record.get("prev_hash"))
        # Only a record whose own hash checked can vouch for the start.
        if self.cut is not None and self.anchorSeq is None \
                and self.cut in anchoredLinks(record):
            self.anchorSeq = record["seq"]
        self.records += 1
        self.lastSeq, self.lastHash = record["seq"], record["hash"]
        return None

    def startProblem(self):
        """
        @return: why the first record cannot start what remains of the
            chain, or L{None}.
        """
        if self.cut is not None and self.anchorSeq is None:
            return UNANCHORED % (self.cut[0],)
        return None


def verifyJournal(directory):
    """
    Check every record of the journal in C{directory}: its hash
    recomputes, its C{prev_hash} is the previous record's C{hash}, its
    C{seq} is one more than the previous one's, and the first record
    starts the chain or is accounted for by a retention anchor.  Stops at
    the first problem.

    @rtype: L{Verification}
    """
    reader = JournalReader(directory)
    chain = ChainCheck()
    first = None
    for entry in reader.readLines():
        record = parseRecord(entry.raw) if entry.complete else None
        if record is None:
            return Verification(
                False, chain.records, reader.segmentCount, entry.segment,
                entry.line, None, UNPARSABLE if entry.complete else INCOMPLETE)
        reason = chain.add(record)
        if reason is not None:
            seq = record.get("seq")
            return Verification(False, chain.records, reader.segmentCount,
                                entry.segment, entry.line,
                                seq if isSeq(seq) else None, reason)
        if first is None:
            first = entry
    reason = chain.startProblem()
    if reason is not None:
        return Verification(False, chain.records, reader.segmentCount,
                            first.segment, first.line, chain.firstSeq, reason)
    return Verification(True, chain.records, reader.segmentCount,
                        pendingBytes=reader.pendingBytes,
                        firstSeq=chain.firstSeq, anchorSeq=chain.anchorSeq,
                        lastSeq=chain.lastSeq, lastHash=chain.lastHash)
