# -*- test-case-name: tests.test_journal -*-
"""
An append-only, hash-chained journal of JSON lines.

A journal is a directory of segments, C{00000001.jsonl}, C{00000002.jsonl},
...; one JSON object per line.  The journal gives every record C{seq}
(1, 2, 3, ... across segments and restarts), C{prev_hash} (the previous
record's C{hash}; C{"0" * 64} for the very first) and C{hash}: the SHA-256
hex digest of the canonical JSON (L{canonical}) of the record without
C{hash}.  Any edit, removal or reordering therefore shows in
L{verifyJournal}.

To keep the write path to one C{json.dumps}, a line is the canonical body
with C{"hash"} appended as its last key, so a line is canonical except for
the position of C{hash}.  Verification never compares lines: it parses a
line, removes C{hash}, and re-dumps the rest canonically.

Use L{Journal.open} (or L{Journal} then L{Journal.start}) to write;
L{readRecords}, L{JournalReader} and L{verifyJournal} read and need no
reactor.
"""

import hashlib
import json
import os
import re
import time
from datetime import datetime, timezone
from typing import Optional

import attr
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from keeptrusts.interfaces import IJournal

GENESIS_HASH = "0" * 64
SYNC_MODES = ("batch", "always", "never")
BATCH_WINDOW = 0.05
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024

HASH_MISMATCH = "hash mismatch (record edited)"
PREV_HASH_MISMATCH = ("prev_hash does not match the previous record "
                      "(record removed or reordered)")
UNPARSABLE = "unparsable line"
INCOMPLETE = "incomplete line (torn write)"

_SEGMENT = re.compile(r"^(\d{8,})\.jsonl$")


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


class JournalClosed(Exception):
    """
    L{Journal.append} was called after L{Journal.close}.
    """


def canonical(record):
    """
    The canonical JSON text of C{record}: sorted keys, no spaces, UTF-8
    characters kept.  NaN and infinities are refused: they are not JSON.
    """
    return json.dumps(record, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def recordHash(record):
    """
    Recompute the hash of a parsed record: everything but C{hash}.
    """
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def formatTimestamp(seconds):
    """
    RFC 3339 UTC with milliseconds: C{2026-11-27T01:02:03.456Z}.
    """
    whole, ms = divmod(int(round(seconds * 1000)), 1000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            + ".%03dZ" % (ms,))


def parseTimestamp(value):
    """
    Seconds since the epoch of an RFC 3339 text (naive means UTC), or
    L{None} when C{value} is not one.
    """
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def utcDay(value):
    """
    The UTC date (C{YYYY-MM-DD}) of a C{ts}, or L{None}.
    """
    # Fast path for what the journal writes itself: it runs per append.
    if isinstance(value, str) and value.endswith("Z") and len(value) > 10:
        return value[:10]
    seconds = parseTimestamp(value)
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def parseRecord(raw):
    """
    Parse one line (bytes, without its newline) as a JSON object.

    @return: a L{dict}, or L{None} when the line is not a JSON object.
    """
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def segmentName(number):
    return "%08d.jsonl" % (number,)


def segmentNumbers(directory):
    """
    The numbers of the segments in C{directory}, in order.  Side files
    (C{*.torn-*}) and anything else are not segments.
    """
    numbers = []
    for name in os.listdir(directory):
        match = _SEGMENT.match(name)
        if match:
            numbers.append(int(match.group(1)))
    numbers.sort()
    return numbers


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
    """

    ok: bool
    records: int
    segments: int
    segment: Optional[str] = None
    line: Optional[int] = None
    seq: Optional[int] = None
    reason: Optional[str] = None
    pendingBytes: int = 0


def checkLink(record, prevHash, expectedSeq):
    """
    The reason C{record} does not belong after a record with hash
    C{prevHash} and seq C{expectedSeq - 1}, or L{None}.  C{prevHash} and
    C{expectedSeq} are L{None} for the first record, which is taken as
    given (retention may have removed what came before it).
    """
    if record.get("hash") != recordHash(record):
        return HASH_MISMATCH
    if prevHash is not None and record.get("prev_hash") != prevHash:
        return PREV_HASH_MISMATCH
    seq = record.get("seq")
    if expectedSeq is not None and seq != expectedSeq:
        return "seq gap (expected %d, found %s)" % (expectedSeq, seq)
    if not _isSeq(seq):
        return "seq missing or not an integer"
    return None


def verifyJournal(directory):
    """
    Check every record of the journal in C{directory}: its hash
    recomputes, its C{prev_hash} is the previous record's C{hash}, its
    C{seq} is one more than the previous one's.  Stops at the first problem.

    @rtype: L{Verification}
    """
    reader = JournalReader(directory)
    count, prevHash, expectedSeq = 0, None, None
    for entry in reader.readLines():
        record = parseRecord(entry.raw) if entry.complete else None
        if record is None:
            return Verification(
                False, count, reader.segmentCount, entry.segment,
                entry.line, None, UNPARSABLE if entry.complete else INCOMPLETE)
        reason = checkLink(record, prevHash, expectedSeq)
        if reason is not None:
            seq = record.get("seq")
            return Verification(False, count, reader.segmentCount,
                                entry.segment, entry.line,
                                seq if _isSeq(seq) else None, reason)
        count += 1
        prevHash, expectedSeq = record["hash"], record["seq"] + 1
    return Verification(True, count, reader.segmentCount,
                        pendingBytes=reader.pendingBytes)


def _isSeq(value):
    return isinstance(value, int) and not isinstance(value, bool)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TornTail:
    """
    Bytes found after the last good record of the last segment at start
    and moved, intact, to C{path}.
    """

    segment: str
    path: str
    size: int


@implementer(IJournal)
class Journal:
    """
    The writing end of a journal directory.

    C{Journal(directory, clock, ...)} does no I/O; L{start} creates the
    directory, sets aside a torn tail and finds where the chain stands.
    L{Journal.open} does both.  Writes are synchronous, buffered and
    flushed at once (cheap, in the reactor thread); only the C{fsync}
    is deferred, according to C{sync}:

      - C{"always"}: before L{append}'s Deferred fires;
      - C{"batch"}: at most every L{BATCH_WINDOW} seconds, one delayed call
        for every append in that window, whose Deferreds fire after it;
      - C{"never"}: not at all (except at L{close}).

    A new segment starts when the current one would grow past
    C{segmentMaxBytes} or when a record's UTC day (of its C{ts}) differs
    from the day of the segment's first record.

    @ivar seq: the C{seq} of the last record written (0 for none).
    @ivar lastHash: the C{hash} of the last record written.
    @ivar tornTails: a tuple of L{TornTail} set aside by L{start}.
    """

    log = Logger()

    def __init__(self, directory, clock, sync="batch",
                 segmentMaxBytes=DEFAULT_SEGMENT_MAX_BYTES):
        if sync not in SYNC_MODES:
            raise ValueError("sync must be one of %s, not %r"
                             % (", ".join(SYNC_MODES), sync))
        self.directory = os.fspath(directory)
        self.clock = clock
        self.sync = sync
        self.segmentMaxBytes = segmentMaxBytes
        self.seq = 0
        self.lastHash = GENESIS_HASH
        self.tornTails = ()
        self._segment = 1
        self._segmentSize = 0
        self._segmentDay = None
        self._file = None
        self._closed = False
        self._syncCall = None
        self._waiting = []

    @classmethod
    def open(cls, directory, clock, sync="batch",
             segmentMaxBytes=DEFAULT_SEGMENT_MAX_BYTES):
        """
        Make a journal and L{start} it.

        @rtype: L{Journal}
        """
        journal = cls(directory, clock, sync, segmentMaxBytes)
        journal.start()
        return journal

    def start(self):
        """
        Create the directory (mode 0700) if needed, recover the last
        segment's tail and position the chain after the last good record.
        Synchronous: it runs once, before the gateway listens.
        """
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        numbers = segmentNumbers(self.directory)
        if not numbers:
            return
        self._segment = numbers[-1]
        path = self._path(self._segment)
        last, self._segmentSize = self._recoverTail(path)
        if self._segmentSize:
            self._segmentDay = _firstDay(path)
        # An emptied last segment is reused; the chain goes on from the
        # last record of an earlier one.
        for number in reversed(numbers[:-1]):
            if last is not None:
                break
            last = _lastRecord(self._path(number))[0]
        if last is not None:
            self.seq, self.lastHash = last["seq"], last["hash"]

    def append(self, record):
        """
        Seal C{record} (a mapping; it is copied) with C{seq}, C{prev_hash},
        C{hash} and, when it has none, C{ts}; write it as one line.

        @return: a L{Deferred} firing with the record's C{seq} once it is
            as durable as C{sync} promises.
        """
        if self._closed:
            return fail(JournalClosed())
        seq = self.seq + 1
        body = dict(record)
        body.pop("hash", None)
        body["seq"] = seq
        body["prev_hash"] = self.lastHash
        if body.get("ts") is None:
            body["ts"] = formatTimestamp(self.clock.seconds())
        try:
            text = canonical(body).encode("utf-8")
        except (TypeError, ValueError):
            return fail()
        digest = hashlib.sha256(text).hexdigest()
        # The body is canonical; hash goes in as its last key (see module
        # docstring), so one dumps serves both the hash and the line.
        line = text[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n'
        try:
            self._write(line, utcDay(body["ts"]))
        except OSError:
            self._discardPartialWrite()
            return fail()
        self.seq, self.lastHash = seq, digest
        return self._durable(seq)

    def close(self):
        """
        Flush, fsync and close; fire the Deferreds still waiting for a
        batch.  Further appends fail with L{JournalClosed}.

        @return: a L{Deferred} firing with L{None}.
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        if self._syncCall is not None:
            self._syncCall.cancel()
            self._syncCall = None
        try:
            self._closeSegment(fsync=True)
        except OSError:
            failure = Failure()
            self._fireWaiting(failure)
            return fail(failure)
        self._fireWaiting(None)
        return succeed(None)

    def _path(self, number):
        return os.path.join(self.directory, segmentName(number))

    def _write(self, line, day):
        if self._segmentSize and (
                self._segmentSize + len(line) > self.segmentMaxBytes
                or (day is not None and day != self._segmentDay)):
            self._closeSegment(fsync=self.sync != "never")
            self._segment += 1
            self._segmentSize = 0
        if self._file is None:
            self._openSegment()
        if not self._segmentSize:
            self._segmentDay = day
        self._file.write(line)
        self._file.flush()
        self._segmentSize += len(line)

    def _openSegment(self):
        path = self._path(self._segment)
        created = not os.path.exists(path)
        self._file = open(path, "ab")
        if created and self.sync != "never":
            # Make the new name itself durable.
            _fsyncPath(self.directory)

    def _closeSegment(self, fsync):
        f, self._file = self._file, None
        if f is None:
            return
        with f:
            f.flush()
            if fsync:
                os.fsync(f.fileno())

    def _discardPartialWrite(self):
        # The line may be partly written or still buffered: drop the file
        # object and cut the segment back to its last whole line.
        f, self._file = self._file, None
        try:
            if f is not None:
                f.close()
            os.truncate(self._path(self._segment), self._segmentSize)
        except OSError:
            self.log.failure("Could not cut back journal segment {segment}",
                             segment=segmentName(self._segment))

    def _durable(self, seq):
        if self.sync == "never":
            return succeed(seq)
        if self.sync == "always":
            try:
                os.fsync(self._file.fileno())
            except OSError:
                return fail()
            return succeed(seq)
        d = Deferred()
        self._waiting.append((d, seq))
        if self._syncCall is None:
            self._syncCall = self.clock.callLater(BATCH_WINDOW,
                                                  self._syncBatch)
        return d

    def _syncBatch(self):
        self._syncCall = None
        try:
            if self._file is not None:
                os.fsync(self._file.fileno())
        except OSError:
            self._fireWaiting(Failure())
        else:
            self._fireWaiting(None)

    def _fireWaiting(self, failure):
        waiting, self._waiting = self._waiting, []
        for d, seq in waiting:
            if failure is None:
                d.callback(seq)
            else:
                d.errback(failure)

    def _recoverTail(self, path):
        """
        Move whatever follows the last good record of C{path} to a side
        file, then cut C{path} there.

        @return: C{(last good record or None, new size of the segment)}
        """
        last, end = _lastRecord(path)
        size = os.path.getsize(path)
        if end == size:
            return last, end
        name = os.path.basename(path)
        with open(path, "rb") as f:
            f.seek(end)
            torn = f.read()
        side = _writeSideFile(path, int(self.clock.seconds()), torn)
        os.truncate(path, end)
        _fsyncPath(path)
        self.tornTails += (TornTail(name, side, len(torn)),)
        # Never the content: it may be a secret the pipeline was writing.
        self.log.warn(
            "Journal segment {segment}: set aside {size} bytes after the "
            "last good record (torn write?) in {sidefile}; the chain goes "
            "on from seq {seq}", segment=name, size=len(torn),
            sidefile=os.path.basename(side),
            seq=last["seq"] if last else None)
        return last, end


def _lastRecord(path):
    """
    Find the last good record of a segment: a complete line holding a JSON
    object with an integer C{seq} and a text C{hash}.

    @return: C{(record, offset just after its newline)}, or C{(None, 0)}.
    """
    size = os.path.getsize(path)
    chunk = 1 << 16
    with open(path, "rb") as f:
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            data = f.read(size - start)
            end = data.rfind(b"\n")
            while end != -1:
                begin = data.rfind(b"\n", 0, end) + 1
                if begin == 0 and start > 0:
                    break  # the line may begin before this chunk
                record = parseRecord(data[begin:end])
                if record is not None and _isSeq(record.get("seq")) \
                        and isinstance(record.get("hash"), str):
                    return record, start + end + 1
                end = begin - 1
            if start == 0:
                return None, 0
            chunk *= 2


def _firstDay(path):
    with open(path, "rb") as f:
        record = parseRecord(f.readline().rstrip(b"\n"))
    return utcDay(record.get("ts")) if record else None


def _writeSideFile(path, now, data):
    """
    Write C{data} to a new C{<path>.torn-<now>} (another suffix if that
    exists already), durably, before the segment is cut.
    """
    side, n = "%s.torn-%d" % (path, now), 1
    while True:
        try:
            f = open(side, "xb")
        except FileExistsError:
            n += 1
            side = "%s.torn-%d-%d" % (path, now, n)
            continue
        with f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return side


def _fsyncPath(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
