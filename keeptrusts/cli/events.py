# -*- test-case-name: tests.test_cli_events -*-
"""
C{kt events tail} and C{kt events verify}: read the journal.
"""

import argparse
import os
import re
import time
from collections import deque

from keeptrusts.cli.main import CommandError, stateDirectory
from keeptrusts.journal import (
    INCOMPLETE, UNPARSABLE, JournalReader, parseRecord, parseTimestamp,
    verifyJournal)

POLL_INTERVAL = 0.2
DEFAULT_LIMIT = 20
DEFAULT_FOLLOW_LIMIT = 10

VERDICT_WORDS = {"allow": "PASS", "redact": "REDACT", "block": "BLOCK",
                 "error": "ERROR"}
# Either spelling on the command line: the journal's or tail's.
_VERDICTS = dict({v: v for v in VERDICT_WORDS},
                 **{w.lower(): v for v, w in VERDICT_WORDS.items()})
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
                      "match): %s" % ", ".join(sorted(_FILTERS)))
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


def journalDirectory(options):
    """
    C{--journal}, else the state directory's C{journal/}.

    @raise CommandError: there is no such directory.
    """
    directory = getattr(options, "journal", None)
    if directory is None:
        directory = os.path.join(stateDirectory(options), "journal")
    directory = os.path.expanduser(directory)
    if not os.path.isdir(directory):
        raise CommandError("no journal at %s (give --journal DIR, -c FILE "
                           "or --state-dir DIR)" % (directory,))
    return directory


def _count(text):
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError("not a count: %r" % (text,))
    return n


def _field(name):
    def make(value):
        return lambda record: _text(record.get(name)) == value
    return make


def _verdict(value):
    verdict = _VERDICTS.get(value.lower())
    if verdict is None:
        raise argparse.ArgumentTypeError(
            "unknown verdict %r (PASS, REDACT, BLOCK, ERROR)" % (value,))
    return lambda record: record.get("verdict") == verdict


def _phase(value):
    return lambda record: _text(record.get("phase")).lower() == value.lower()


def _policy(value):
    return lambda record: any(p.get("name") == value
                              for p in _policies(record))


_FILTERS = dict(
    {"action": _verdict, "verdict": _verdict, "phase": _phase,
     "policy": _policy},
    **{name: _field(name) for name in
       ("user", "provider", "model", "mode", "target", "request_id")})


def parseFilter(text):
    """
    C{KEY=VALUE} -> a predicate on records.
    """
    key, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, not %r"
                                         % (text,))
    if key not in _FILTERS:
        raise argparse.ArgumentTypeError(
            "unknown filter key %r (known: %s)"
            % (key, ", ".join(sorted(_FILTERS))))
    return _FILTERS[key](value)


def parseSince(text):
    """
    C{10m}, C{2h}, C{30s}, C{1d} or RFC 3339 -> a function of the current
    time giving the earliest C{ts} to show (relative durations are taken
    from when the command starts, not when it parses).
    """
    match = _RELATIVE.match(text.strip())
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return lambda now: now - seconds
    when = parseTimestamp(text.strip())
    if when is None:
        raise argparse.ArgumentTypeError(
            "not a duration (10m, 2h, 30s, 1d) nor an RFC 3339 time: %r"
            % (text,))
    return lambda now: when


def runTail(options, runtime):
    """
    C{kt events tail}: the last matching events, then (C{--follow}) new
    ones every L{POLL_INTERVAL} until interrupted.
    """
    directory = journalDirectory(options)
    limit = options.limit
    if limit is None:
        limit = DEFAULT_FOLLOW_LIMIT if options.follow else DEFAULT_LIMIT
    matches = _matcher(options, runtime.now())
    show = _showJSON if options.json else _showLine
    reader = JournalReader(directory)
    try:
        recent = deque(maxlen=limit)
        for entry, record in _records(reader, runtime.err):
            if matches(record):
                recent.append((entry, record))
        _print(runtime.out, (show(e, r) for e, r in recent))
        while options.follow:
            runtime.sleep(POLL_INTERVAL)
            _print(runtime.out, (show(e, r)
                                 for e, r in _records(reader, runtime.err)
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
    if result.pendingBytes:
        runtime.err.write(
            "kt: note: an incomplete last line (%d bytes) was not checked: "
            "being written, or set aside at the gateway's next start\n"
            % (result.pendingBytes,))
    return 0


def _matcher(options, now):
    tests = list(options.filters)
    if options.since is not None:
        cutoff = options.since(now)
        tests.append(lambda record: _after(record, cutoff))
    return lambda record: all(test(record) for test in tests)


def _after(record, cutoff):
    seconds = parseTimestamp(record.get("ts"))
    return seconds is not None and seconds >= cutoff


def _records(reader, err):
    """
    Parsed records not read yet; a bad line is reported and skipped, since
    tail shows events (verify is where a bad line is a failure).
    """
    for entry in reader.readLines():
        record = parseRecord(entry.raw) if entry.complete else None
        if record is None:
            err.write("kt: warning: %s line %d: %s, skipped\n"
                      % (entry.segment, entry.line,
                         UNPARSABLE if entry.complete else INCOMPLETE))
            continue
        yield entry, record


def _print(out, lines):
    for line in lines:
        out.write(line + "\n")
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
        _text(record.get("phase")).upper(),
        _text(record.get("provider")),
        _text(record.get("endpoint")),
        "user:" + _text(record.get("user")),
        VERDICT_WORDS.get(verdict) or _text(verdict).upper(),
    ]
    parts.extend(_details(record))
    if record.get("degraded") is True:
        parts.append("degraded")
    return " ".join(parts)


def _details(record):
    for policy in _policies(record):
        name = _text(policy.get("name"))
        ms = _ms(policy.get("ms"))
        findings = [f for f in policy.get("findings") or () if
                    isinstance(f, dict)]
        for finding in findings:
            yield "%s:%s x%s %s" % (name, _text(finding.get("type")),
                                    _text(finding.get("count")), ms)
        if not findings and policy.get("verdict") in ("block", "error"):
            yield "%s:%s %s" % (name, policy["verdict"], ms)


def _policies(record):
    policies = record.get("policies")
    if not isinstance(policies, list):
        return ()
    return [p for p in policies if isinstance(p, dict)]


def _localTime(ts):
    seconds = parseTimestamp(ts)
    if seconds is None:
        return _text(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _ms(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "%.1fms" % (value,)
    return "-"


def _text(value):
    if value is None or value == "":
        return "-"
    return str(value)
