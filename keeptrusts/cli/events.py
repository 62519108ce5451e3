# -*- test-case-name: tests.test_cli_events -*-
"""
C{kt events tail}, C{kt events verify} and C{kt events export} (in
L{keeptrusts.cli.export}): read the journal.
"""

import argparse
import time
from collections import deque

from keeptrusts.cli.eventread import (
    FILTERS, VERDICT_WORDS, eventRecords, fieldText, journalDirectory,
    parseFilter, parseSince, policiesOf, printable, recordMatcher)
from keeptrusts.cli.export import addParser as addExportParser
from keeptrusts.journalformat import parseTimestamp
from keeptrusts.journalread import JournalReader, verifyJournal

POLL_INTERVAL = 0.2
DEFAULT_LIMIT = 20
DEFAULT_FOLLOW_LIMIT = 10


def register(subparsers, common):
    location = argparse.ArgumentParser(add_help=False, parents=[common])
    location.add_argument("--journal", metavar="DIR",
                          default=argparse.SUPPRESS,
                          help="the journal directory itself")
    events = subparsers.add_parser(
        "events", parents=[location], help="read and check the journal")
    actions = events.add_subparsers(dest="action", metavar="ACTION",
                                    required=True)

    tail = actions.add_parser("tail", parents=[location],
                              help="print recent events")
    tail.add_argument("-f", "--follow", action="store_true",
                      help="keep printing events as they are written")
    tail.add_argument("--json", action="store_true",
                      help="print each record as one JSON line")
    tail.add_argument("--filter", dest="filters", action="append",
                      type=parseFilter, default=[], metavar="KEY=VALUE",
                      help="only matching events (repeatable; all must "
                      "match): %s" % ", ".join(sorted(FILTERS)))
    tail.add_argument("--since", type=parseSince, metavar="WHEN",
                      help="only events since 10m, 2h, 30s, 1d or an "
                      "RFC 3339 time")
    tail.add_argument("--limit", type=_count, metavar="N",
                      help="print the last N events first (default %d, "
                      "%d with --follow)" % (DEFAULT_LIMIT,
                                             DEFAULT_FOLLOW_LIMIT))
    tail.set_defaults(run=runTail)

    verify = actions.add_parser("verify", parents=[location],
                                help="check the hash chain")
    verify.set_defaults(run=runVerify)

    addExportParser(actions, location)


def _count(text):
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError("not a count: %r" % (text,))
    return n


def runTail(options, runtime):
    """
    C{kt events tail}: the last matching events, then (C{--follow}) new
    ones every L{POLL_INTERVAL} until interrupted.
    """
    directory = journalDirectory(options)
    limit = options.limit
    if limit is None:
        limit = DEFAULT_FOLLOW_LIMIT if options.follow else DEFAULT_LIMIT
    matches = recordMatcher(options, runtime.now())
    show = _showJSON if options.json else _showLine
    reader = JournalReader(directory)
    try:
        recent = deque(maxlen=limit)
        for entry, record in eventRecords(reader, runtime.err):
            if matches(record):
                recent.append((entry, record))
        _print(runtime.out, (show(e, r) for e, r in recent))
        while options.follow:
            runtime.sleep(POLL_INTERVAL)
            _print(runtime.out, (show(e, r)
                                 for e, r in eventRecords(reader, runtime.err)
                                 if matches(r)))
    except KeyboardInterrupt:
        return 0 if options.follow else 130
    return 0


def runVerify(options, runtime):
    """
    C{kt events verify}: 0 when the chain is intact, else 1 and where not.
    """
    result = verifyJournal(journalDirectory(options))
    if not result.ok:
        seq = "-" if result.seq is None else result.seq
        runtime.out.write("FAIL: %s line %d (seq %s): %s\n"
                          % (result.segment, result.line, seq, result.reason))
        return 1
    runtime.out.write("OK: %d records in %d segments, chain intact\n"
                      % (result.records, result.segments))
    if result.anchorSeq is not None:
        runtime.out.write("from seq %d: seq 1-%d removed by retention "
                          "(anchor at seq %d)\n"
                          % (result.firstSeq, result.firstSeq - 1,
                             result.anchorSeq))
    if result.lastSeq is not None:
        # Kept elsewhere, the last hash pins the chain up to here.
        runtime.out.write("last: seq %d, hash %s\n"
                          % (result.lastSeq, result.lastHash))
    if result.pendingBytes:
        runtime.err.write(
            "kt: note: an incomplete last line (%d bytes) was not checked: "
            "being written, or set aside at the gateway's next start\n"
            % (result.pendingBytes,))
    return 0


def _print(out, lines):
    for line in lines:
        # A record may hold a lone surrogate (escaped in its JSON): shown
        # escaped, not a crash of the terminal's encoder.
        out.write(line.encode("utf-8", "backslashreplace").decode("utf-8")
                  + "\n")
    out.flush()


def _showJSON(entry, record):
    return entry.raw.decode("utf-8")


def _showLine(entry, record):
    return formatEvent(record)


def formatEvent(record):
    """
    One line for a record:
    C{[2026-11-26 11:15:22] INPUT openai chat/completions user:dev1 REDACT
    dlp-filter:aws_access_key_id x1 0.2ms}, local time.
    """
    verdict = record.get("verdict")
    parts = [
        "[%s]" % (_localTime(record.get("ts")),),
        fieldText(record.get("phase")).upper(),
        fieldText(record.get("provider")),
        fieldText(record.get("endpoint")),
        "user:" + fieldText(record.get("user")),
        (VERDICT_WORDS.get(verdict) if isinstance(verdict, str) else None)
        or fieldText(verdict).upper(),
    ]
    parts.extend(_details(record))
    if record.get("degraded") is True:
        parts.append("degraded")
    return printable(" ".join(parts))


def _details(record):
    for policy in policiesOf(record):
        name = fieldText(policy.get("name"))
        ms = _ms(policy.get("ms"))
        findings = [f for f in policy.get("findings") or () if
                    isinstance(f, dict)]
        for finding in findings:
            yield "%s:%s x%s %s" % (name, fieldText(finding.get("type")),
                                    fieldText(finding.get("count")), ms)
        if not findings and policy.get("verdict") in ("block", "error"):
            yield "%s:%s %s" % (name, policy["verdict"], ms)


def _localTime(ts):
    seconds = parseTimestamp(ts)
    if seconds is None:
        return fieldText(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _ms(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "%.1fms" % (value,)
    return "-"


