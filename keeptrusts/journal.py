# -*- test-case-name: tests.test_journal -*-
"""
An append-only, hash-chained journal of JSON lines: the format and the
writing end.

A journal is a directory of segments, C{00000001.jsonl}, C{00000002.jsonl},
...; one JSON object per line.  The journal gives every record C{seq}
(1, 2, 3, ... across segments and restarts), C{prev_hash} (the previous
record's C{hash}; C{"0" * 64} for the very first) and C{hash}: the SHA-256
hex digest of the canonical JSON (L{keeptrusts.journalformat.canonical}) of
the record without C{hash}.  Any edit, removal or reordering therefore
shows in L{keeptrusts.journalread.verifyJournal}.

To keep the write path to one C{json.dumps}, a line is the canonical body
with C{"hash"} appended as its last key, so a line is canonical except for
the position of C{hash}.  Verification never compares lines: it parses a
line, removes C{hash}, and re-dumps the rest canonically.

Immutability (C{audit-logger.immutable}): a line, once complete, is never
changed or moved.  Segments are only ever opened to append; at start, only
what follows the last good record of the last segment (a torn write) is
cut, and it is moved intact to a side file first.  Whole sealed segments
are removed by L{keeptrusts.retention} alone, after an anchor record in
the chain names them.

Use L{Journal.open} (or L{Journal} then L{Journal.start}) to write;
L{keeptrusts.journalread} reads and verifies, and needs no reactor.
"""

import hashlib
import os

import attr
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from keeptrusts.interfaces import IJournal
from keeptrusts.journalformat import (
    GENESIS_HASH, canonical, formatTimestamp, lastRecord, parseRecord,
    segmentName, segmentNumbers, utcDay)

SYNC_MODES = ("batch", "always", "never")
BATCH_WINDOW = 0.05
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024


class JournalClosed(Exception):
    """
    L{Journal.append} was called after L{Journal.close}.
    """


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
    flushed at once (cheap, in the reactor thread: a line is in the
    operating system's hands before L{append} returns, so it outlives a
    killed process); only the C{fsync} waits, according to C{sync}:

      - C{"always"}: before L{append}'s Deferred fires; appends made while
        one fsync runs share the next (group commit);
      - C{"batch"}: at most every L{BATCH_WINDOW} seconds, one fsync for
        every append in that window, whose Deferreds fire after it;
      - C{"never"}: not at all (except at L{close}).

    C{runInThread(f, *args)} runs an fsync and returns a L{Deferred} of
    its result: the gateway passes its reactor's thread pool, so that the
    reactor never waits for a disk; by default the fsync runs here.

    A new segment starts when the current one would grow past
    C{segmentMaxBytes} or when a record's UTC day (of its C{ts}) differs
    from the day of the segment's first record.

    @ivar seq: the C{seq} of the last record written (0 for none).
    @ivar lastHash: the C{hash} of the last record written.
    @ivar tornTails: a tuple of L{TornTail} set aside by L{start}.
    """

    log = Logger()

    def __init__(self, directory, clock, sync="batch",
                 segmentMaxBytes=DEFAULT_SEGMENT_MAX_BYTES, runInThread=None):
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
        self._syncing = False
        self._waiting = []
        self._runInThread = runInThread or maybeDeferred

    @classmethod
    def open(cls, directory, clock, sync="batch",
             segmentMaxBytes=DEFAULT_SEGMENT_MAX_BYTES, runInThread=None):
        """
        Make a journal and L{start} it.

        @rtype: L{Journal}
        """
        journal = cls(directory, clock, sync, segmentMaxBytes, runInThread)
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
            last = lastRecord(self._path(number))[0]
        if last is not None:
            self.seq, self.lastHash = last["seq"], last["hash"]

    @property
    def segmentNumber(self):
        """
        The number of the segment being written (or to be written next):
        the segments before it are sealed, never written again.
        """
        return self._segment

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

    def syncNow(self):
        """
        Make what was appended so far durable now, whatever C{sync} says:
        for a record that must be on disk before something else happens
        (retention's anchor, before segments are removed).

        @raise OSError: the fsync failed.
        """
        if self._file is not None:
            os.fsync(self._file.fileno())

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
        d = Deferred()
        self._waiting.append((d, seq))
        self._scheduleSync()
        return d

    def _scheduleSync(self):
        if self._syncCall is not None or self._syncing:
            return  # the appends waiting now go with that one
        if self.sync == "always":
            self._syncBatch()
        else:
            self._syncCall = self.clock.callLater(BATCH_WINDOW,
                                                  self._syncBatch)

    def _syncBatch(self):
        self._syncCall = None
        waiting, self._waiting = self._waiting, []
        if self._file is None:
            d = succeed(None)
        else:
            try:
                # The fsync gets its own descriptor: the segment may be
                # closed (rotation, close) while it runs.
                fd = os.dup(self._file.fileno())
            except OSError:
                d = fail()
            else:
                self._syncing = True
                d = self._runInThread(_fsyncAndClose, fd)
        d.addBoth(self._synced, waiting)

    def _synced(self, result, waiting):
        self._syncing = False
        _fire(waiting, result if isinstance(result, Failure) else None)
        if self._waiting and not self._closed:
            self._scheduleSync()

    def _fireWaiting(self, failure):
        waiting, self._waiting = self._waiting, []
        _fire(waiting, failure)

    def _recoverTail(self, path):
        """
        Move whatever follows the last good record of C{path} to a side
        file, then cut C{path} there.

        @return: C{(last good record or None, new size of the segment)}
        """
        last, end = lastRecord(path)
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


def _fire(waiting, failure):
    for d, seq in waiting:
        if failure is None:
            d.callback(seq)
        else:
            d.errback(failure)


def _fsyncAndClose(fd):
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
