# -*- test-case-name: tests.test_journal -*-
"""
The journal's format: canonical JSON and the hash of a record, timestamps,
segment names, and finding the last good record of a segment.  What the
writing end (L{keeptrusts.journal}) and the reading end
(L{keeptrusts.journalread}) share.
"""

import hashlib
import json
import os
import re
import time
from datetime import datetime, timezone

GENESIS_HASH = "0" * 64

_SEGMENT = re.compile(r"^(\d{8,})\.jsonl$")


def canonical(record):
    """
    The canonical JSON text of C{record}: sorted keys, no spaces, UTF-8
    characters kept.  NaN and infinities are refused: they are not JSON.
    """
    return _CANONICAL(record)


# Made once: json.dumps with options makes an encoder per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False, allow_nan=False).encode


def recordHash(record):
    """
    Recompute the hash of a parsed record: everything but C{hash}.

    @return: the hex digest, or L{None} when the record has what the
        journal never writes (NaN, a lone surrogate): it cannot be one.
    """
    body = {k: v for k, v in record.items() if k != "hash"}
    try:
        text = canonical(body).encode("utf-8")
    except ValueError:  # UnicodeEncodeError is one
        return None
    return hashlib.sha256(text).hexdigest()


_lastSecond = (None, "")


def formatTimestamp(seconds):
    """
    RFC 3339 UTC with milliseconds: C{2026-11-27T01:02:03.456Z}.
    """
    global _lastSecond
    whole, ms = divmod(int(round(seconds * 1000)), 1000)
    # The records of a busy second share their text up to the dot; one
    # tuple, read and replaced whole, so that threads may call this too.
    last = _lastSecond
    if last[0] != whole:
        last = _lastSecond = (whole, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                   time.gmtime(whole)))
    return last[1] + ".%03dZ" % (ms,)


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


def isSeq(value):
    """
    Whether C{value} can be a C{seq}: an integer, and not a boolean.
    """
    return isinstance(value, int) and not isinstance(value, bool)


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


def lastRecord(path):
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
                if record is not None and isSeq(record.get("seq")) \
                        and isinstance(record.get("hash"), str):
                    return record, start + end + 1
                end = begin - 1
            if start == 0:
                return None, 0
            chunk *= 2
