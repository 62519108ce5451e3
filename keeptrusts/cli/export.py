# -*- test-case-name: tests.test_cli_export -*-
"""
C{kt events export}: the matching events as the journal's own JSON lines or
as CSV, to standard output or, atomically, to a file.
"""

import csv
import json
import os
import tempfile

from keeptrusts.cli.eventread import (
    eventRecords, fieldText, journalDirectory, parseFilter, parseSince,
    policiesOf, recordMatcher)
from keeptrusts.cli.main import CommandError
from keeptrusts.journalread import JournalReader


def addParser(actions, location):
    """
    Add C{export} to C{kt events}' C{actions}.
    """
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


def runExport(options, runtime):
    """
    C{kt events export}: the matching events, as the journal's own JSON
    lines (their hashes still check) or as CSV (L{EXPORT_COLUMNS}).  A
    line that is not a record is reported and skipped, as by tail.
    """
    directory = journalDirectory(options)
    matches = recordMatcher(options, runtime.now())
    write = _writeCSV if options.format == "csv" else _writeJSON
    records = ((e, r) for e, r in eventRecords(JournalReader(directory),
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
    for policy in policiesOf(record):
        for finding in policy.get("findings") or ():
            if isinstance(finding, dict):
                count = finding.get("count")
                count = count if isinstance(count, int) else 0
                kind = fieldText(finding.get("type"))
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
