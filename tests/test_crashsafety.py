"""
Crash safety of the journal with C{journal.sync: always}: a real gateway
process killed with SIGKILL while clients load it keeps the events of every
request whose response the client received in full, its chain verifies,
and at the next start a torn last line is moved to a side file (and
logged), not dropped, and the chain goes on from the last good record.

A killed process loses nothing it handed to the kernel, so SIGKILL alone
shows the order of journal write and response, not the fsync.  A second
test therefore also plays a power failure: the gateway's C{os.fsync} is
watched (and slowed), and after the kill every segment is cut back to what
an fsync had made durable before the kill, plus a torn piece of what was
not.
"""

import io
import json
import os
import signal
import sys

import treq
from twisted.internet import defer, reactor, task
from twisted.python.filepath import FilePath
from twisted.trial.unittest import FailTest, SkipTest, TestCase
from twisted.web.client import HTTPConnectionPool

from keeptrusts.cli.main import Runtime, main as kt
from keeptrusts.journalformat import segmentName, segmentNumbers
from keeptrusts.journalread import readRecords, verifyJournal
from keeptrusts.testing import (
    DEFAULT_ANSWER, FakeProvider, Script, listenFake, waitUntil)
from tests.test_tap import GOOD, ROOT, GatewayProcess, environ, freePort

# The example of tests.test_tap: sync always, dlp-filter and audit-logger.
CONFIG = GOOD

CLIENTS = 8
# Responses completed before the kill: enough that the journal has many
# records and both kinds of request.
COMPLETED_BEFORE_KILL = 200
# With the fsync watched: slower than any answer's way to the client, even
# on a busy machine, so that an answer sent before its events' fsync is
# seen; fewer answers then, since each waits for an fsync.
FSYNC_DELAY = 0.2
COMPLETED_BEFORE_POWER_LOSS = 30
# Every fourth request of a client is streamed.
STREAM_EVERY = 4
DONE = b"data: [DONE]\n\n"

RUN_TWISTD = "from twisted.scripts.twistd import run; run()"

# Run in the gateway process before twistd: every fsync of a regular file
# is slowed by KT_TEST_FSYNC_DELAY seconds and, once done, noted in
# KT_TEST_FSYNC_MARKS as "<size before the fsync> <path>", with one write
# on an O_APPEND descriptor.  The note is written before the fsync returns,
# so before the gateway can act on it: a response that waited for the
# fsync cannot complete before its note exists.
WATCH_FSYNC = """\
import os, stat, time
_fsync, _delay = os.fsync, float(os.environ["KT_TEST_FSYNC_DELAY"])
_marks = os.open(os.environ["KT_TEST_FSYNC_MARKS"],
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
def _watched(fd):
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        return _fsync(fd)
    path = os.readlink("/proc/self/fd/%d" % (fd,))
    time.sleep(_delay)
    _fsync(fd)
    os.write(_marks, ("%d %s\\n" % (status.st_size, path)).encode())
os.fsync = _watched
"""


class EventsLost(FailTest):
    """
    A request whose response completed has no input or no output event.
    """


def withTimeout(d, seconds, what):
    """
    A L{Deferred} firing with C{d}'s result, or failing with an
    L{AssertionError} naming C{what} if C{d} has not fired in C{seconds}.
    C{d} itself is left alone (a process's end is still awaited by its
    cleanup).
    """
    result = defer.Deferred()

    def expired():
        result.errback(AssertionError(
            "%s: not within %s seconds" % (what, seconds)))
    call = reactor.callLater(seconds, expired)

    def fired(value):
        if call.active():
            call.cancel()
            result.callback(value)
    d.addBoth(fired)
    return result


def durableSizes(marks):
    """
    @param marks: the text of a KT_TEST_FSYNC_MARKS file.
    @return: C{{real path: bytes made durable by an fsync}}.
    """
    sizes = {}
    for line in marks.splitlines():
        size, path = line.split(" ", 1)
        path = os.path.realpath(path)
        sizes[path] = max(sizes.get(path, 0), int(size))
    return sizes


def halfOfLine(data, start):
    """
    The first half of the line of C{data} that begins at C{start}, as a
    write cut short leaves it: never its newline.
    """
    end = data.find(b"\n", start)
    end = len(data) if end == -1 else end
    return data[start:start + (end - start) // 2]


class Load:
    """
    C{CLIENTS} clients, each sending one chat request after another with a
    unique C{x-request-id}, until L{stop}.

    @ivar completed: C{{request id: streamed}} of the requests answered 200
        with the whole body (a JSON answer that parses, or a stream through
        its C{[DONE]} and the end of the chunked body).
    @ivar failed: the request ids that got no complete answer.
    @ivar bad: C{(request id, what)} of answers that came whole but wrong.
    @ivar killAt: when set, called once after each completed JSON answer
        until it returns true: it kills the gateway there and then, in the
        same reactor turn as the completion.
    """

    def __init__(self, url, pool):
        self.url = url
        self.pool = pool
        self.stopping = False
        self.completed = {}
        self.failed = []
        self.bad = []
        self.clients = []
        self.inFlight = 0
        self.killAt = None
        self.killed = defer.Deferred()

    def start(self):
        self.clients = [self._client(n) for n in range(CLIENTS)]

    def stop(self):
        """
        Send nothing more.

        @return: a L{Deferred} firing once every client has its last
            request settled.
        """
        self.stopping = True
        return defer.DeferredList(self.clients)

    @defer.inlineCallbacks
    def _client(self, n):
        i = 0
        while not self.stopping:
            i += 1
            rid = "cs-%d-%d" % (n, i)
            stream = i % STREAM_EVERY == 0
            body = json.dumps({"model": "gpt-fake", "stream": stream,
                               "messages": [{"role": "user", "content":
                                             "request %s" % (rid,)}]})
            self.inFlight += 1
            try:
                response = yield treq.post(
                    self.url, data=body.encode("utf-8"), pool=self.pool,
                    headers={b"x-request-id": rid.encode("ascii"),
                             b"content-type": b"application/json"},
                    timeout=10)
                data = yield treq.content(response)
            except Exception:
                self.failed.append(rid)
                continue
            finally:
                self.inFlight -= 1
            problem = self._check(response, data, stream)
            if problem is not None:
                self.bad.append((rid, problem))
                continue
            self.completed[rid] = stream
            if not stream and self.killAt is not None and self.killAt():
                self.killAt = None
                self.stopping = True
                self.killed.callback(rid)

    def _check(self, response, data, stream):
        if response.code != 200:
            return "status %d" % (response.code,)
        if stream:
            # treq takes a close-delimited body cut short for a whole one;
            # the gateway's streams are chunked, and end with [DONE].
            return None if data.endswith(DONE) else "stream cut short"
        try:
            answer = json.loads(data)
        except ValueError:
            return "not JSON"
        if answer["choices"][0]["message"]["content"] != DEFAULT_ANSWER:
            return "unexpected answer"
        return None


class CrashSafetyTests(TestCase):
    """
    A real twistd gateway with C{journal.sync: always}, killed under load
    and started again on the same state directory.
    """

    timeout = 60

    def setUp(self):
        # Slow enough that requests are in flight at the provider when the
        # gateway dies, quick enough for hundreds per second.
        self.provider = FakeProvider(reactor, Script(delay=0.005,
                                                     pauses=0.002))
        _, self.base = listenFake(reactor, self.provider, self.addCleanup)
        self.state = FilePath(self.mktemp())
        self.journal = self.state.child("journal").path
        self.config = FilePath(self.mktemp())
        self.config.setContent((CONFIG % dict(
            state=self.state.path, base=self.base)).encode("utf-8"))

    def startGateway(self, fsyncDelay=None, marks=None):
        """
        Start C{twistd keeptrusts} on a free loopback port; it is stopped
        after the test whatever happens (TERM, then KILL).

        @param fsyncDelay: when given, run L{WATCH_FSYNC} with this delay,
            noting fsyncs in C{marks}.
        @return: a L{Deferred} firing with C{(process, protocol, base URL)}
            once it answers C{/healthz}.
        """
        port = freePort()
        child = GatewayProcess()
        env = environ()
        code = RUN_TWISTD
        if fsyncDelay is not None:
            code = WATCH_FSYNC + RUN_TWISTD
            env["KT_TEST_FSYNC_DELAY"] = repr(fsyncDelay)
            env["KT_TEST_FSYNC_MARKS"] = marks
        argv = [sys.executable, "-c", code, "--nodaemon", "--pidfile=",
                "keeptrusts", "-c", self.config.path,
                "--listen", "tcp:%d:interface=127.0.0.1" % (port,)]
        process = reactor.spawnProcess(child, argv[0], argv, env=env,
                                       path=ROOT)
        self.addCleanup(self.stopGateway, process, child)
        url = "http://127.0.0.1:%d" % (port,)
        return self.whenHealthy(url, child).addCallback(
            lambda _: (process, child, url))

    def stopGateway(self, process, child):
        if child.ended.called:
            return None
        process.signalProcess("TERM")
        late = reactor.callLater(
            10, lambda: None if child.ended.called
            else process.signalProcess("KILL"))
        return child.ended.addBoth(
            lambda result: late.cancel() if late.active() else None)

    @defer.inlineCallbacks
    def whenHealthy(self, url, child, seconds=15.0):
        pool = HTTPConnectionPool(reactor, persistent=False)
        deadline = reactor.seconds() + seconds
        while True:
            self.assertFalse(child.ended.called,
                             "the gateway ended: %r" % (child.output,))
            try:
                response = yield treq.get(url + "/healthz", pool=pool,
                                          timeout=2)
                yield treq.content(response)
                if response.code == 200:
                    return
            except Exception:
                pass
            self.assertLess(reactor.seconds(), deadline,
                            "no /healthz: %r" % (child.output,))
            yield task.deferLater(reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def killUnderLoad(self, process, child, url,
                      completions=COMPLETED_BEFORE_KILL, atProvider=2):
        """
        Load the gateway, and SIGKILL it right as a JSON answer completes,
        once C{completions} answers have, other requests are in flight,
        and at least C{atProvider} of them wait at the provider (their
        answers cannot reach the client any more).

        @return: a L{Deferred} firing with the settled L{Load}.
        """
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = CLIENTS
        self.addCleanup(pool.closeCachedConnections)
        load = Load(url + "/v1/chat/completions", pool)
        # Stop the clients (every request settled) whatever happens, before
        # the pool closes.
        self.addCleanup(lambda: withTimeout(load.stop(), 15, "load stopped"))
        atKill = []

        def killAt():
            if (len(load.completed) < completions or load.inFlight < 2
                    or self.provider.pending < atProvider):
                return False
            atKill.append(self.provider.pending)
            os.kill(process.pid, signal.SIGKILL)
            return True
        load.killAt = killAt
        load.start()
        yield withTimeout(load.killed, 15, "the kill under load")
        code = yield withTimeout(child.ended, 10, "the killed gateway ended")
        self.assertEqual(code, signal.SIGKILL, child.output)
        # Answers already in the socket buffers may still complete now: the
        # gateway wrote them, so their events must be there too.
        yield withTimeout(load.stop(), 15, "clients settled")
        self.assertEqual(load.bad, [])
        self.assertGreaterEqual(len(load.failed), atKill[0])
        self.assertIn(True, load.completed.values())
        self.assertIn(False, load.completed.values())
        return load

    def tearTail(self, segment, keep=None):
        """
        Leave C{segment} as a crash leaves it: its first C{keep} bytes (all
        by default), then a torn piece of the line that follows them, or,
        when nothing follows, of the last line.

        @return: C{(good, torn)}: the whole lines the segment keeps, and
            the bytes after them that a start must set aside.
        """
        with open(segment, "rb") as f:
            data = f.read()
        if keep is None:
            keep = len(data)
        head = data[:keep]
        if head and not head.endswith(b"\n"):
            # Cut in the middle of a line already (by the kill, or by an
            # fsync that saw a line half copied in).
            content = head
        else:
            content = head + halfOfLine(data, keep)
        if not content or content.endswith(b"\n"):
            # Nothing was lost.  The usual case after a kill: SIGKILL ends
            # the process, not the kernel; a line went in one write(2) that
            # happened whole or not at all.  A torn line comes from a power
            # or OS failure or a write cut short: make one such as that
            # leaves, the first half of the last record.
            content += halfOfLine(
                content, content.rfind(b"\n", 0, len(content) - 1) + 1)
        with open(segment, "wb") as f:
            f.write(content)
        good = content[:content.rfind(b"\n") + 1]
        return good, content[len(good):]

    def assertEventsOf(self, load, records):
        """
        Every request whose response completed has one input and one
        output event, in that order, the output naming its status and
        whether it streamed; and no event names a request never sent.
        """
        events = {}
        for record in records:
            events.setdefault(record["request_id"], []).append(record)
        missing = {}
        for rid, stream in sorted(load.completed.items()):
            mine = sorted(events.get(rid, []), key=lambda r: r["seq"])
            if [r["phase"] for r in mine] != ["input", "output"]:
                missing[rid] = [r["phase"] for r in mine]
                continue
            self.assertEqual((mine[1]["status"], mine[1]["stream"]),
                             (200, stream), rid)
        if missing:
            raise EventsLost(
                "%d of %d completed requests without both events: %s"
                % (len(missing), len(load.completed),
                   ", ".join("%s %s" % item
                             for item in sorted(missing.items())[:10])))
        self.assertEqual(
            set(events) - set(load.completed) - set(load.failed), set())

    @defer.inlineCallbacks
    def restartAndCheck(self, good, torn, before):
        """
        Start the gateway again on the journal left as C{good + torn} in
        its last segment (C{before} its L{verifyJournal}): the torn bytes
        are in a side file and the log, the segment is C{good}, a new
        request's events continue the chain, and it all verifies.
        """
        records = list(readRecords(self.journal))
        name = segmentName(segmentNumbers(self.journal)[-1])
        segment = os.path.join(self.journal, name)
        process, child, url = yield self.startGateway()
        sides = [side for side in os.listdir(self.journal)
                 if side.startswith(name + ".torn-")]
        self.assertEqual(len(sides), 1, os.listdir(self.journal))
        with open(os.path.join(self.journal, sides[0]), "rb") as f:
            self.assertEqual(f.read(), torn)
        with open(segment, "rb") as f:
            self.assertEqual(f.read(), good)
        yield waitUntil(reactor, lambda: sides[0].encode() in child.output,
                        timeout=5).addErrback(lambda _: None)
        logged = [line for line in child.output.splitlines()
                  if sides[0].encode() in line]
        self.assertEqual(len(logged), 1, child.output)
        self.assertIn(name.encode(), logged[0])
        self.assertIn(b" %d bytes" % (len(torn),), logged[0])
        self.assertIn(b"set aside", logged[0])

        # The restarted gateway serves, and the chain goes on.
        response = yield treq.post(
            url + "/v1/chat/completions", pool=HTTPConnectionPool(
                reactor, persistent=False),
            data=json.dumps({"model": "gpt-fake", "messages": [
                {"role": "user", "content": "after the crash"}]}).encode(),
            headers={b"x-request-id": b"cs-after-restart",
                     b"content-type": b"application/json"},
            timeout=10)
        answer = json.loads((yield treq.content(response)))
        self.assertEqual((response.code,
                          answer["choices"][0]["message"]["content"]),
                         (200, DEFAULT_ANSWER))
        after = list(readRecords(self.journal))
        self.assertEqual(after[:len(records)], records)
        new = after[len(records):]
        self.assertEqual((new[0]["seq"], new[0]["prev_hash"]),
                         (before.lastSeq + 1, before.lastHash))
        self.assertEqual(
            [(r["phase"], r["status"]) for r in new
             if r["request_id"] == "cs-after-restart"],
            [("input", None), ("output", 200)])

        result = verifyJournal(self.journal)
        self.assertTrue(result.ok, result)
        self.assertEqual((result.records, result.pendingBytes,
                          result.lastSeq),
                         (len(after), 0, after[-1]["seq"]))
        out, err = io.StringIO(), io.StringIO()
        code = kt(["events", "verify", "--journal", self.journal],
                  Runtime(out, err))
        self.assertEqual(
            (code, out.getvalue().splitlines()[0], err.getvalue()),
            (0, "OK: %d records in %d segments, chain intact"
             % (len(after), len(segmentNumbers(self.journal))), ""))

    def verifyTorn(self, torn):
        """
        The journal verifies with C{torn} held back: an incomplete last
        line is no record, and no error.

        @return: the L{Verification}.
        """
        result = verifyJournal(self.journal)
        self.assertTrue(result.ok, result)
        self.assertEqual(result.pendingBytes, len(torn))
        return result

    @defer.inlineCallbacks
    def test_killedUnderLoad(self):
        """
        SIGKILL under load, then a restart: every request whose response
        completed has its input and output events; the chain verifies
        before and after the restart; the torn last line is moved, byte for
        byte, to a C{.torn-*} side file named in the log, and the segment
        is cut back to its last good record; the restarted gateway serves
        and journals a request whose record continues the chain.
        """
        process, child, url = yield self.startGateway()
        load = yield self.killUnderLoad(process, child, url)
        # One segment, or two when the test runs across midnight UTC.
        numbers = segmentNumbers(self.journal)
        self.assertIn(len(numbers), (1, 2))
        good, torn = self.tearTail(
            os.path.join(self.journal, segmentName(numbers[-1])))
        self.assertTrue(torn)
        before = self.verifyTorn(torn)
        records = list(readRecords(self.journal))
        self.assertEqual((len(records), records[-1]["seq"]),
                         (before.records, before.lastSeq))
        self.assertEventsOf(load, records)
        yield self.restartAndCheck(good, torn, before)

    @defer.inlineCallbacks
    def test_powerLostUnderLoad(self):
        """
        As L{test_killedUnderLoad}, with every fsync slowed by
        L{FSYNC_DELAY}, the kill right as a JSON answer completes, and then
        a power failure played: each segment cut back to the bytes an fsync
        had made durable, followed by a torn piece of the first line that
        was not.  C{sync: always} still keeps the events of every completed
        request, and the torn piece is set aside at the restart.
        """
        if not os.path.isdir("/proc/self/fd"):
            raise SkipTest("needs /proc/self/fd to name fsynced files")
        marks = os.path.abspath(self.mktemp())
        process, child, url = yield self.startGateway(FSYNC_DELAY, marks)
        # Answers wait for fsyncs, not for the provider, now.
        load = yield self.killUnderLoad(process, child, url,
                                        COMPLETED_BEFORE_POWER_LOSS, 0)
        with open(marks) as f:
            durable = durableSizes(f.read())
        numbers = segmentNumbers(self.journal)
        self.assertIn(len(numbers), (1, 2))
        for number in numbers:
            segment = os.path.join(self.journal, segmentName(number))
            keep = durable.get(os.path.realpath(segment), 0)
            if number != numbers[-1]:
                # A segment is fsynced whole when the next one starts.
                self.assertEqual(keep, os.path.getsize(segment))
                continue
            good, torn = self.tearTail(segment, keep)
        self.assertTrue(torn)
        before = self.verifyTorn(torn)
        records = list(readRecords(self.journal))
        self.assertEventsOf(load, records)
        yield self.restartAndCheck(good, torn, before)
