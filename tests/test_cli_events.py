"""
Tests for C{kt events tail} and C{kt events verify}
(L{keeptrusts.cli.events}, through L{keeptrusts.cli.main.main}); export is
in L{tests.test_cli_export}.
"""

import io
import os
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.cli.events import POLL_INTERVAL
from keeptrusts.cli.main import Runtime, main
from keeptrusts.journal import Journal
from keeptrusts.journalformat import (
    canonical, parseTimestamp, recordHash, segmentName)

# 2026-11-26T11:20:00Z
NOW = parseTimestamp("2026-11-26T11:20:00Z")


def policy(name, verdict="allow", ms=0.01, findings=()):
    return {"name": name, "verdict": verdict, "ms": ms,
            "findings": [{"type": t, "count": c} for t, c in findings]}


def event(ts, phase="input", verdict="allow", **fields):
    record = {
        "ts": ts, "event_id": "ev-" + ts, "request_id": "req_1",
        "phase": phase, "verdict": verdict, "mode": "api",
        "provider": "openai", "target": "openai",
        "endpoint": "chat/completions", "method": "POST",
        "host": "127.0.0.1:41002", "user": "dev1", "agent": None,
        "model": "gpt-4o", "stream": False, "status": None,
        "policies": [policy("audit-logger")],
        "tokens": {"input": None, "output": None}, "cost_usd": None,
        "latency_ms": {"policy": 0.3, "upstream": None, "total": 0.4},
        "config": "example@1.0.0", "degraded": False}
    record.update(fields)
    return record


EVENTS = [
    event("2026-11-26T11:00:00.000Z", request_id="req_a",
          policies=[policy("dlp-filter", "redact", 0.21,
                           [("aws_access_key_id", 1)]),
                    policy("audit-logger")],
          verdict="redact"),
    event("2026-11-26T11:12:00.000Z", provider="anthropic",
          target="claude", endpoint="messages", user="dev2",
          model="claude-sonnet", mode="intercept"),
    event("2026-11-26T11:13:00.500Z", phase="output", verdict="block",
          policies=[policy("dlp-filter", "block", 1.26,
                           [("private_key", 2), ("github_token", 1)])]),
    event("2026-11-26T11:14:00.000Z", verdict="error", user="dev2",
          policies=[policy("injection-guard", "error", 5)]),
    event("2026-11-26T11:15:22.999Z", phase="access", provider=None,
          endpoint=None, user=None, degraded=True, mode="tunnel"),
    {"ts": "2026-11-26T11:16:00.000Z", "phase": "config",
     "verdict": "allow", "config": "example@1.0.1"},
]

LINES = [
    "[2026-11-26 11:00:00] INPUT openai chat/completions user:dev1 REDACT"
    " dlp-filter:aws_access_key_id x1 0.2ms",
    "[2026-11-26 11:12:00] INPUT anthropic messages user:dev2 PASS",
    "[2026-11-26 11:13:00] OUTPUT openai chat/completions user:dev1 BLOCK"
    " dlp-filter:private_key x2 1.3ms dlp-filter:github_token x1 1.3ms",
    "[2026-11-26 11:14:00] INPUT openai chat/completions user:dev2 ERROR"
    " injection-guard:error 5.0ms",
    "[2026-11-26 11:15:22] ACCESS - - user:- PASS degraded",
    "[2026-11-26 11:16:00] CONFIG - - user:- PASS",
]


def setTimezone(testCase, tz):
    """
    Set C{TZ} for this test.  Through C{os.environ} itself: C{tzset} reads
    the process environment, which a dict patched in would not change.
    """
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()

    def restore():
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
    testCase.addCleanup(restore)


class EventsTestMixin:

    def setUp(self):
        setTimezone(self, "UTC")
        self.clock = Clock()
        self.clock.advance(NOW)
        self.directory = self.mktemp()

    def writeJournal(self, records=EVENTS, **kwargs):
        journal = Journal.open(self.directory, self.clock, sync="never",
                               **kwargs)
        self.addCleanup(journal.close)
        for record in records:
            journal.append(record)
        return journal

    def kt(self, *args, **kwargs):
        """
        Run C{kt} with C{--journal} and captured streams.

        @return: C{(exit code, stdout lines, stderr text)}
        """
        out, err = io.StringIO(), io.StringIO()
        kwargs.setdefault("now", lambda: NOW)
        argv = list(args)
        if "--journal" not in argv and "--state-dir" not in argv:
            argv += ["--journal", self.directory]
        code = main(argv, Runtime(out, err, **kwargs))
        return code, out.getvalue().splitlines(), err.getvalue()

    def tail(self, *args):
        code, lines, err = self.kt("events", "tail", *args)
        self.assertEqual((code, err), (0, ""))
        return lines


class TailTests(EventsTestMixin, SynchronousTestCase):

    def test_lines(self):
        """
        One line per event: local time, phase, provider, endpoint, user,
        verdict word, then per finding policy:type xcount ms; a block or
        error without findings names the policy; degraded last.
        """
        self.writeJournal()
        self.assertEqual(self.tail(), LINES)

    def test_localTime(self):
        setTimezone(self, "KTT-2")  # POSIX form: UTC+2, no tzdata needed
        self.writeJournal(EVENTS[:1])
        self.assertEqual(self.tail(), [
            "[2026-11-26 13:00:00] INPUT openai chat/completions user:dev1"
            " REDACT dlp-filter:aws_access_key_id x1 0.2ms"])

    def test_missingFields(self):
        self.writeJournal([{"policies": [{"name": "x", "verdict": "block"}],
                            "verdict": "quarantine"}])
        self.assertEqual(self.tail(),
                         ["[2026-11-26 11:20:00] - - - user:- QUARANTINE"
                          " x:block -"])

    def test_json(self):
        self.writeJournal()
        with open(os.path.join(self.directory, segmentName(1))) as f:
            written = f.read().splitlines()
        self.assertEqual(self.tail("--json"), written)

    def test_limit(self):
        self.writeJournal()
        self.assertEqual(self.tail("--limit", "2"), LINES[-2:])
        self.assertEqual(self.tail("--limit", "0"), [])

    def test_defaultLimit(self):
        self.writeJournal([event("2026-11-26T11:00:%02d.000Z" % (i,),
                                 user="u%d" % (i,)) for i in range(25)])
        lines = self.tail()
        self.assertEqual(len(lines), 20)
        self.assertIn("user:u5 ", lines[0])
        self.assertIn("user:u24 ", lines[-1])

    def test_badLimit(self):
        self.writeJournal()
        code, lines, err = self.kt("events", "tail", "--limit", "-1")
        self.assertEqual((code, lines), (2, []))
        self.assertIn("not a count", err)

    def test_acrossSegments(self):
        self.writeJournal(segmentMaxBytes=10)
        self.assertEqual(len(os.listdir(self.directory)), len(EVENTS))
        self.assertEqual(self.tail(), LINES)

    def test_incompleteLastLine(self):
        """
        A line being written is not shown and is no error.
        """
        self.writeJournal()
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(b'{"phase":"input","ver')
        self.assertEqual(self.tail(), LINES)

    def test_unparsableLine(self):
        self.writeJournal(EVENTS[:2])
        path = os.path.join(self.directory, segmentName(1))
        with open(path, "rb") as f:
            lines = f.read().splitlines(True)
        with open(path, "wb") as f:
            f.write(lines[0] + b"garbage\n" + lines[1])
        code, lines, err = self.kt("events", "tail")
        self.assertEqual((code, lines), (0, LINES[:2]))
        self.assertEqual(err, "kt: warning: 00000001.jsonl line 2: "
                         "unparsable line, skipped\n")

    def test_missingJournal(self):
        code, lines, err = self.kt("events", "tail")
        self.assertEqual((code, lines), (1, []))
        self.assertEqual(err, "kt: no journal at %s (give --journal DIR, "
                         "-c FILE or --state-dir DIR)\n" % (self.directory,))

    def test_stateDir(self):
        """
        C{--state-dir DIR} means C{DIR/journal}, before or after the
        subcommand; C{--journal} wins over it.
        """
        stateDir = self.directory
        self.directory = os.path.join(stateDir, "journal")
        self.writeJournal(EVENTS[:1])
        for argv in [("--state-dir", stateDir, "events", "tail"),
                     ("events", "tail", "--state-dir", stateDir),
                     ("events", "tail", "--state-dir", "/nonexistent",
                      "--journal", self.directory)]:
            code, lines, err = self.kt(*argv)
            self.assertEqual((code, lines, err), (0, LINES[:1], ""))


class OddRecordTests(EventsTestMixin, SynchronousTestCase):
    """
    What the gateway never writes but a journal may hold: shown, not a
    crash.
    """

    def test_tailShowsOddValues(self):
        self.writeJournal([{"phase": "input", "verdict": ["allow"],
                            "user": "devX", "provider": {"a": 1}}])
        path = os.path.join(self.directory, segmentName(1))
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data.replace(b'"devX"', b'"dev\\ud800"'))
        [line] = self.tail()
        self.assertIn("user:dev\\ud800", line)
        self.assertIn("['ALLOW']", line)
        self.assertIn("{'a': 1}", line)

    def test_tailEscapesWhatATerminalObeys(self):
        """
        A client's user name or model holding escape sequences, control or
        bidirectional characters is shown escaped: it cannot recolour,
        move the cursor or reorder what the reader sees.
        """
        self.writeJournal([{"phase": "input", "verdict": "allow",
                            "user": "ev\x1b[31mRED\x1b[0m\x07il\u009b2J",
                            "provider": "open\u202eai", "endpoint": "a\nb"}])
        [line] = self.tail()
        self.assertIn("user:ev\\x1b[31mRED\\x1b[0m\\x07il\\x9b2J", line)
        self.assertIn("open\\u202eai a\\nb", line)
        self.assertTrue(line.isprintable(), line)


class FilterTests(EventsTestMixin, SynchronousTestCase):

    def setUp(self):
        EventsTestMixin.setUp(self)
        self.writeJournal()

    def assertFilter(self, indexes, *filters):
        args = []
        for f in filters:
            args += ["--filter", f]
        self.assertEqual(self.tail(*args), [LINES[i] for i in indexes])

    def test_verdict(self):
        self.assertFilter([0], "action=redact")
        self.assertFilter([0], "action=REDACT")
        self.assertFilter([0], "verdict=redact")
        self.assertFilter([1, 4, 5], "action=PASS")
        self.assertFilter([1, 4, 5], "verdict=allow")
        self.assertFilter([2], "action=BLOCK")
        self.assertFilter([3], "action=error")

    def test_fields(self):
        self.assertFilter([1, 3], "user=dev2")
        self.assertFilter([1], "provider=anthropic")
        self.assertFilter([2], "phase=output")
        self.assertFilter([0, 1, 3], "phase=INPUT")
        self.assertFilter([5], "phase=config")
        self.assertFilter([1], "model=claude-sonnet")
        self.assertFilter([1], "mode=intercept")
        self.assertFilter([1], "target=claude")
        self.assertFilter([0], "request_id=req_a")

    def test_policy(self):
        self.assertFilter([0, 2], "policy=dlp-filter")
        self.assertFilter([3], "policy=injection-guard")

    def test_allMustMatch(self):
        self.assertFilter([3], "user=dev2", "action=error")
        self.assertFilter([], "user=dev2", "user=dev1")

    def test_unknownKey(self):
        code, lines, err = self.kt("events", "tail", "--filter", "colour=red")
        self.assertEqual((code, lines), (2, []))
        self.assertIn("unknown filter key 'colour'", err)

    def test_notKeyValue(self):
        code, lines, err = self.kt("events", "tail", "--filter", "dev1")
        self.assertEqual(code, 2)
        self.assertIn("expected KEY=VALUE", err)

    def test_unknownVerdict(self):
        code, lines, err = self.kt("events", "tail", "--filter", "action=ok")
        self.assertEqual(code, 2)
        self.assertIn("unknown verdict 'ok'", err)

    def test_sinceRelative(self):
        """
        Relative to now (11:20:00): 5m reaches back to 11:15:00.
        """
        self.assertEqual(self.tail("--since", "5m"), LINES[4:])
        self.assertEqual(self.tail("--since", "300s"), LINES[4:])
        self.assertEqual(self.tail("--since", "1h"), LINES)
        self.assertEqual(self.tail("--since", "1d"), LINES)

    def test_sinceRFC3339(self):
        self.assertEqual(self.tail("--since", "2026-11-26T11:13:00Z"),
                         LINES[2:])
        self.assertEqual(self.tail("--since", "2026-11-26T12:13:00+01:00"),
                         LINES[2:])

    def test_sinceBad(self):
        code, lines, err = self.kt("events", "tail", "--since", "lately")
        self.assertEqual(code, 2)
        self.assertIn("not a duration", err)


class FollowTests(EventsTestMixin, SynchronousTestCase):

    def test_follow(self):
        """
        C{--follow} prints the last 10, then what is written after, across
        a new segment; a half-written line waits for its end; Ctrl-C ends
        it with exit code 0.
        """
        journal = self.writeJournal(EVENTS[:2])
        later = event("2026-11-26T11:30:00.000Z", user="dev3")
        nextDay = event("2026-11-27T00:00:01.000Z", user="dev4")
        torn = dict(event("2026-11-27T00:00:02.000Z", user="dev5"),
                    seq=4, prev_hash=None)
        steps = []

        def writeHalf():
            torn["prev_hash"] = journal.lastHash
            line = canonical(dict(torn, hash=recordHash(torn))) + "\n"
            journal.close()
            self.half = line[40:]
            with open(os.path.join(self.directory, segmentName(2)),
                      "a") as f:
                f.write(line[:40])

        def writeRest():
            with open(os.path.join(self.directory, segmentName(2)),
                      "a") as f:
                f.write(self.half)

        actions = [lambda: journal.append(later),
                   lambda: None,
                   lambda: journal.append(nextDay),
                   writeHalf,
                   writeRest]

        def sleep(seconds):
            steps.append(seconds)
            if not actions:
                raise KeyboardInterrupt()
            actions.pop(0)()
        code, lines, err = self.kt("events", "tail", "--follow",
                                   sleep=sleep)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(steps, [POLL_INTERVAL] * 6)
        self.assertEqual(
            sorted(os.listdir(self.directory)),
            [segmentName(1), segmentName(2)])
        self.assertEqual(lines, LINES[:2] + [
            "[2026-11-26 11:30:00] INPUT openai chat/completions user:dev3"
            " PASS",
            "[2026-11-27 00:00:01] INPUT openai chat/completions user:dev4"
            " PASS",
            "[2026-11-27 00:00:02] INPUT openai chat/completions user:dev5"
            " PASS"])

    def test_followLimitAndFilter(self):
        """
        C{--follow} shows 10 first by default, fewer with C{--limit}, and
        filters what follows too.
        """
        journal = self.writeJournal([
            event("2026-11-26T11:00:%02d.000Z" % (i,), user="u%d" % (i,))
            for i in range(12)])
        actions = [lambda: journal.append(EVENTS[2]),
                   lambda: journal.append(EVENTS[3])]

        def sleep(seconds):
            if not actions:
                raise KeyboardInterrupt()
            actions.pop(0)()
        code, lines, err = self.kt("events", "tail", "-f", sleep=sleep)
        self.assertEqual(len(lines), 10 + 2)
        self.assertIn("user:u2 ", lines[0])

        actions = [lambda: journal.append(EVENTS[2]),
                   lambda: journal.append(EVENTS[3])]
        code, lines, err = self.kt("events", "tail", "-f", "--limit", "1",
                                   "--filter", "action=block", sleep=sleep)
        self.assertEqual((code, lines), (0, [LINES[2]] * 2))


class VerifyTests(EventsTestMixin, SynchronousTestCase):

    def test_ok(self):
        """
        The count, then the last seq and hash, to be kept elsewhere.
        """
        journal = self.writeJournal(segmentMaxBytes=10)
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines, err),
                         (0, ["OK: 6 records in 6 segments, chain intact",
                              "last: seq 6, hash " + journal.lastHash],
                          ""))

    def test_empty(self):
        os.mkdir(self.directory)
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines),
                         (0, ["OK: 0 records in 0 segments, chain intact"]))

    def test_anchored(self):
        """
        After retention, verify says which records were removed and which
        anchor accounts for them.
        """
        journal = self.writeJournal(EVENTS[:3], segmentMaxBytes=10)
        removedHash = journal.lastHash
        journal.append({"phase": "retention", "verdict": "allow",
                        "removed": [{"segment": segmentName(3),
                                     "first_seq": 3, "last_seq": 3,
                                     "last_hash": removedHash}]})
        journal.append(EVENTS[3])
        for number in (1, 2, 3):
            os.remove(os.path.join(self.directory, segmentName(number)))
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines, err), (0, [
            "OK: 2 records in 2 segments, chain intact",
            "from seq 4: seq 1-3 removed by retention (anchor at seq 4)",
            "last: seq 5, hash " + journal.lastHash], ""))

    def test_unanchored(self):
        self.writeJournal(EVENTS[:3], segmentMaxBytes=10)
        os.remove(os.path.join(self.directory, segmentName(1)))
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines), (1, [
            "FAIL: 00000002.jsonl line 1 (seq 2): records before this one "
            "were removed, and no retention anchor names the record it "
            "follows (seq 1)"]))

    def test_edited(self):
        self.writeJournal()
        path = os.path.join(self.directory, segmentName(1))
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data.replace(b'"user":"dev2"', b'"user":"dev9"', 1))
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines, err), (1, [
            "FAIL: 00000001.jsonl line 2 (seq 2): hash mismatch "
            "(record edited)"], ""))

    def test_editedToWhatJSONCannotCanonicalise(self):
        """
        An edit to a value the journal never writes (NaN, a lone
        surrogate) is a hash mismatch like any other, not a crash.
        """
        for edited in [b'"user":NaN', b'"user":"\\ud800"', b'"user":Infinity']:
            self.directory = self.mktemp()
            self.writeJournal()
            path = os.path.join(self.directory, segmentName(1))
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(data.replace(b'"user":"dev2"', edited, 1))
            code, lines, err = self.kt("events", "verify")
            self.assertEqual((code, lines, err), (1, [
                "FAIL: 00000001.jsonl line 2 (seq 2): hash mismatch "
                "(record edited)"], ""), edited)

    def test_removed(self):
        self.writeJournal()
        path = os.path.join(self.directory, segmentName(1))
        with open(path, "rb") as f:
            lines = f.read().splitlines(True)
        with open(path, "wb") as f:
            f.write(b"".join(lines[:2] + lines[3:]))
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines), (1, [
            "FAIL: 00000001.jsonl line 3 (seq 4): prev_hash does not match "
            "the previous record (record removed or reordered)"]))

    def test_unparsable(self):
        self.writeJournal(EVENTS[:1])
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(b"garbage\n")
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines), (1, [
            "FAIL: 00000001.jsonl line 2 (seq -): unparsable line"]))

    def test_incompleteLastLine(self):
        self.writeJournal()
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(b'{"phase"')
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines[0]),
                         (0, "OK: 6 records in 1 segments, chain intact"))
        self.assertIn("incomplete last line (8 bytes) was not checked", err)

    def test_missingJournal(self):
        code, lines, err = self.kt("events", "verify")
        self.assertEqual((code, lines), (1, []))
        self.assertIn("kt: no journal at", err)


class MainTests(EventsTestMixin, SynchronousTestCase):

    def test_noCommand(self):
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main([], Runtime(out, err)), 2)
        self.assertIn("usage: kt", err.getvalue())

    def test_help(self):
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(["events", "tail", "--help"],
                              Runtime(out, err)), 0)
        self.assertIn("--filter KEY=VALUE", out.getvalue())
