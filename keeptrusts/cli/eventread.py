# -*- test-case-name: tests.test_cli_events -*-
"""
Reading the journal for C{kt events}: where it is, its records one by one
(a bad line reported and skipped), and the C{--filter}, C{--since} and
C{--until} that select them.
"""

import argparse
import os
import re

from keeptrusts.cli.main import CommandError, stateDirectory
from keeptrusts.journalformat import parseRecord, parseTimestamp
from keeptrusts.journalread import INCOMPLETE, UNPARSABLE

VERDICT_WORDS = {"allow": "PASS", "redact": "REDACT", "block": "BLOCK",
                 "error": "ERROR"}
# Either spelling on the command line: the journal's or tail's.
_VERDICTS = dict({v: v for v in VERDICT_WORDS},
                 **{w.lower(): v for v, w in VERDICT_WORDS.items()})
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def _field(name):
    def make(value):
        return lambda record: fieldText(record.get(name)) == value
    return make


def _verdict(value):
    verdict = _VERDICTS.get(value.lower())
    if verdict is None:
        raise argparse.ArgumentTypeError(
            "unknown verdict %r (PASS, REDACT, BLOCK, ERROR)" % (value,))
    return lambda record: record.get("verdict") == verdict


def _phase(value):
    value = value.lower()
    return lambda record: fieldText(record.get("phase")).lower() == value


def _policy(value):
    return lambda record: any(p.get("name") == value
                              for p in policiesOf(record))


FILTERS = dict(
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
    if key not in FILTERS:
        raise argparse.ArgumentTypeError(
            "unknown filter key %r (known: %s)"
            % (key, ", ".join(sorted(FILTERS))))
    return FILTERS[key](value)


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


def recordMatcher(options, now):
    """
    A predicate on records: every C{--filter}, C{--since} and C{--until}
    of C{options}, relative times taken from C{now}.
    """
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


def eventRecords(reader, err):
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


def policiesOf(record):
    """
    The well-formed entries of a record's C{policies}.
    """
    policies = record.get("policies")
    if not isinstance(policies, list):
        return ()
    return [p for p in policies if isinstance(p, dict)]


def printable(text):
    """
    C{text} with what a terminal would act on (control characters, escape
    sequences, bidirectional overrides) shown escaped: journaled values
    such as the user or the model come from clients, and must not steer
    the terminal of whoever reads them.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode(
        "unicode_escape").decode("ascii") for c in text)


def fieldText(value):
    """
    A record's value as shown and matched: C{-} when missing or empty.
    """
    if value is None or value == "":
        return "-"
    return str(value)
