"""
Tests for C{kt events export} (L{keeptrusts.cli.events}).
"""

import csv
import json
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.cli.export import EXPORT_COLUMNS, exportRow
from keeptrusts.journalformat import recordHash, segmentName
from tests.test_cli_events import EVENTS, NOW, EventsTestMixin, policy


class ExportTests(EventsTestMixin, SynchronousTestCase):

    def export(self, *args):
        code, lines, err = self.kt("events", "export", *args)
        self.assertEqual((code, err), (0, ""))
        return lines

    def test_jsonLines(self):
        """
        By default, the journal's own lines: records whose hashes still
        check.
        """
        self.writeJournal()
        with open(os.path.join(self.directory, segmentName(1))) as f:
            self.assertEqual(self.export(), f.read().splitlines())
        for line in self.export("--format", "json"):
            record = json.loads(line)
            self.assertEqual(record["hash"], recordHash(record))

    def test_csv(self):
        self.writeJournal()
        rows = list(csv.reader(self.export("--format", "csv")))
        self.assertEqual(rows[0], list(EXPORT_COLUMNS))
        self.assertEqual(len(rows), 1 + len(EVENTS))
        first = dict(zip(EXPORT_COLUMNS, rows[1]))
        self.assertEqual(
            {k: first[k] for k in ("ts", "seq", "phase", "verdict", "user",
                                   "findings", "request_id", "status",
                                   "agent")},
            {"ts": "2026-11-26T11:00:00.000Z", "seq": "1", "phase": "input",
             "verdict": "redact", "user": "dev1",
             "findings": "aws_access_key_id:1", "request_id": "req_a",
             "status": "", "agent": ""})
        self.assertEqual(len(first["hash"]), 64)

    def test_exportRow(self):
        """
        Tokens split in two columns, findings added up by type over the
        policies, costs as plain decimals, formulas defused.
        """
        record = {
            "ts": "t", "seq": 3, "tokens": {"input": 12, "output": 30},
            "cost_usd": 0.00001, "user": "=HYPERLINK(1)", "model": "-x",
            "status": 200, "policies": [
                policy("dlp-filter", findings=[("private_key", 2),
                                               ("github_token", 1)]),
                policy("other", findings=[("private_key", 1)])]}
        row = dict(zip(EXPORT_COLUMNS, exportRow(record)))
        self.assertEqual(
            (row["tokens_in"], row["tokens_out"], row["cost_usd"],
             row["findings"], row["user"], row["model"], row["status"],
             row["provider"]),
            ("12", "30", "0.00001", "private_key:3;github_token:1",
             "'=HYPERLINK(1)", "'-x", "200", ""))
        self.assertEqual(exportRow({"tokens": "x", "policies": "y"})[
            EXPORT_COLUMNS.index("tokens_in")], "")

    def test_sinceUntil(self):
        """
        C{--since} is inclusive, C{--until} exclusive; both take relative
        durations from now or RFC 3339 times.
        """
        self.writeJournal()
        lines = self.export("--since", "2026-11-26T11:12:00Z",
                            "--until", "2026-11-26T11:14:00Z")
        self.assertEqual([json.loads(l)["seq"] for l in lines], [2, 3])
        # NOW is 11:20:00.
        lines = self.export("--since", "8m", "--until", "5m")
        self.assertEqual([json.loads(l)["seq"] for l in lines], [2, 3, 4])

    def test_filter(self):
        self.writeJournal()
        lines = self.export("--filter", "user=dev2", "--filter",
                            "verdict=error")
        self.assertEqual([json.loads(l)["seq"] for l in lines], [4])

    def test_output(self):
        """
        C{--output} writes the file in one rename, mode 0600 (the journal
        is private), replacing any older one; no temporary file is left.
        """
        self.writeJournal()
        path = os.path.abspath(self.mktemp())
        os.mkdir(path)
        target = os.path.join(path, "events.csv")
        with open(target, "w") as f:
            f.write("old")
        code, lines, err = self.kt("events", "export", "--format", "csv",
                                   "--output", target)
        self.assertEqual((code, lines, err),
                         (0, [], "kt: wrote 6 events to %s\n" % (target,)))
        with open(target, newline="") as f:
            self.assertEqual(len(list(csv.reader(f))), 7)
        self.assertEqual(os.listdir(path), ["events.csv"])
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o600)

    def test_outputFailureLeavesOld(self):
        """
        A write that fails half way leaves the old file and no temporary.
        """
        self.writeJournal()
        path = os.path.abspath(self.mktemp())
        os.mkdir(path)
        target = os.path.join(path, "events.json")
        with open(target, "w") as f:
            f.write("old")

        def fail(fd):
            raise OSError(28, "No space left on device")
        self.patch(os, "fsync", fail)
        code, lines, err = self.kt("events", "export", "--output", target)
        self.assertEqual((code, err), (1, "kt: cannot write %s: No space "
                                          "left on device\n" % (target,)))
        with open(target) as f:
            self.assertEqual(f.read(), "old")
        self.assertEqual(os.listdir(path), ["events.json"])

    def test_outputNoDirectory(self):
        self.writeJournal()
        target = os.path.join(self.mktemp(), "events.json")
        code, lines, err = self.kt("events", "export", "--output", target)
        self.assertEqual(code, 1)
        self.assertIn("cannot write %s" % (target,), err)

    def test_badLineSkipped(self):
        self.writeJournal(EVENTS[:2])
        with open(os.path.join(self.directory, segmentName(1)), "ab") as f:
            f.write(b"garbage\n")
        code, lines, err = self.kt("events", "export")
        self.assertEqual((code, len(lines)), (0, 2))
        self.assertEqual(err, "kt: warning: 00000001.jsonl line 3: "
                              "unparsable line, skipped\n")

    def test_badFormat(self):
        self.writeJournal()
        code, lines, err = self.kt("events", "export", "--format", "xml")
        self.assertEqual(code, 2)
        self.assertIn("invalid choice: 'xml'", err)

    def test_now(self):
        """
        Relative times are from the runtime's clock.
        """
        self.writeJournal()
        code, lines, err = self.kt("events", "export", "--since", "1m",
                                   now=lambda: NOW + 3600)
        self.assertEqual((code, lines), (0, []))
