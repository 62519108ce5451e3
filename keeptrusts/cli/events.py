# -*- test-case-name: tests.test_cli_events -*-
"""
C{kt events tail}, C{kt events verify} and C{kt events export}: read the
journal.
"""

import argparse
import csv
import json
import os
import re
import tempfile
import time
from collections import deque

from keeptrusts.cli.main import CommandError, stateDirectory
from keeptrusts.journalformat import parseRecord, parseTimestamp
from keeptrusts.journalread import (
    INCOMPLETE, UNPARSABLE, JournalReader, verifyJournal)

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

    export = actions.add_parser(
        "export", parents=[location],
        help="write events as JSON lines or CSV, to stdout or a file")
    export.add_argument("--format", choices=("json", "csv"), default="json",
                        help="json: the journal's own lines (default); csv: "
                        "the columns %s" % (", ".join(EXPORT_COLUMNS),))
    export.add_argument("--since", type=parseSince, metavar="WHEN",
                        help="only events at or after WHEN (10m, 2h, 1d, "
                        "RFC 3339)")
    export.add_argument("--until", type=parseSince, metavar="WHEN",
                        help="only events before WHEN (10m, 2h, 1d, "
                        "RFC 3339)")
    export.add_argument("--filter", dest="filters", action="append",
                        type=parseFilter, default=[], metavar="KEY=VALUE",
                        help="only matching events (repeatable)")
    export.add_argument("--output", metavar="FILE",
                        help="write FILE (atomically, mode 0600) instead of "
                        "stdout")
    export.set_defaults(run=runExport)


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


def runExport(options, runtime):
    """
    C{kt events export}: the matching events, as the journal's own JSON
    lines (their hashes still check) or as CSV (L{EXPORT_COLUMNS}).  A
    line that is not a record is reported and skipped, as by tail.
    """
    directory = journalDirectory(options)
    matches = _matcher(options, runtime.now())
    write = _writeCSV if options.format == "csv" else _writeJSON
    records = ((e, r) for e, r in _records(JournalReader(directory),
                                           runtime.err) if matches(r))
    if options.output is None:
        write(runtime.out, records)
        runtime.out.flush()
        return 0
    count = _writeAtomically(os.path.expanduser(options.output),
                             lambda f: write(f, records))
    runtime.err.write("kt: wrote %d events to %s\n" % (count, options.output))
    return 0


EXPORT_COLUMNS = (
    "ts", "seq", "phase", "verdict", "mode", "provider", "target",
    "endpoint", "user", "agent", "model", "status", "tokens_in",
    "tokens_out", "cost_usd", "findings", "request_id", "hash")
# A spreadsheet runs a cell starting with one of these as a formula; user
# names and models come from clients.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def exportRow(record):
    """
    The CSV cells of a record, in L{EXPORT_COLUMNS} order: empty for a
    missing value; C{tokens_in}/C{tokens_out} from C{tokens};
    C{findings} as C{type:count;...} over all policies (counts of a type
    added up, in order of first appearance).
    """
    tokens = record.get("tokens")
    tokens = tokens if isinstance(tokens, dict) else {}
    values = dict(record, tokens_in=tokens.get("input"),
                  tokens_out=tokens.get("output"),
                  findings=_findingCounts(record))
    return [_cell(values.get(column)) for column in EXPORT_COLUMNS]


def _findingCounts(record):
    counts = {}
    for policy in _policies(record):
        for finding in policy.get("findings") or ():
            if isinstance(finding, dict):
                count = finding.get("count")
                count = count if isinstance(count, int) else 0
                kind = _text(finding.get("type"))
                counts[kind] = counts.get(kind, 0) + count
    return ";".join("%s:%d" % item for item in counts.items()) or None


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Not 1e-05: plain decimals, as a spreadsheet reads them.
        return ("%.10f" % (value,)).rstrip("0").rstrip(".")
    if isinstance(value, int):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _writeJSON(f, records):
    count = 0
    for entry, record in records:
        f.write(entry.raw.decode("utf-8") + "\n")
        count += 1
    return count


def _writeCSV(f, records):
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for entry, record in records:
        writer.writerow(exportRow(record))
        count += 1
    return count


def _writeAtomically(path, write):
    """
    Call C{write} with a new file next to C{path}, then rename it over
    C{path}: readers see the old file or the whole new one, never a part.

    @return: what C{write} returned.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(
            prefix="." + os.path.basename(path) + ".", dir=directory)
    except OSError as e:
        raise CommandError("cannot write %s: %s" % (path, e.strerror))
    try:
        with open(fd, "w", encoding="utf-8", newline="") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as e:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CommandError("cannot write %s: %s" % (path, e.strerror))
        raise
    return result


def _matcher(options, now):
    tests = list(options.filters)
    if options.since is not None:
        cutoff = options.since(now)
        tests.append(lambda record: _after(record, cutoff))
    if getattr(options, "until", None) is not None:
        end = options.until(now)
        tests.append(lambda record: _before(record, end))
    return lambda record: all(test(record) for test in tests)


def _after(record, cutoff):
    seconds = parseTimestamp(record.get("ts"))
    return seconds is not None and seconds >= cutoff


def _before(record, end):
    seconds = parseTimestamp(record.get("ts"))
    return seconds is not None and seconds < end


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
