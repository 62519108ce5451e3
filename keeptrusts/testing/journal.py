# -*- test-case-name: tests.test_testing -*-
"""
A journal kept in memory, hash-chained like the real one.
"""

import hashlib
import json

from twisted.internet import defer
from zope.interface import implementer

from keeptrusts.interfaces import IJournal

GENESIS_HASH = "0" * 64


def recordHash(record):
    """
    The SHA-256 (hex) of a journal record's canonical JSON, C{hash} left out.
    """
    body = {key: value for key, value in record.items() if key != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@implementer(IJournal)
class MemoryJournal:
    """
    A journal kept in a list, hash-chained like the real one.

    @ivar records: the records, as they would read back from disk (a JSON
        round trip), with C{seq} from 1, C{prev_hash} and C{hash}.
    @ivar closed: whether L{close} was called; appending after it fails.
    """

    def __init__(self):
        self.records = []
        self.closed = False
        self._waiters = []

    def append(self, record):
        if self.closed:
            return defer.fail(RuntimeError("the journal is closed"))
        try:
            entry = {key: value for key, value in record.items() if key != "hash"}
            entry["seq"] = len(self.records) + 1
            entry["prev_hash"] = self.records[-1]["hash"] if self.records else GENESIS_HASH
            # The round trip copies the record and fails now, as the real
            # journal would, on anything JSON cannot hold.
            entry = json.loads(json.dumps(entry, ensure_ascii=False))
            entry["hash"] = recordHash(entry)
        except Exception:
            return defer.fail()
        self.records.append(entry)
        self._wake()
        return defer.succeed(None)

    def close(self):
        self.closed = True
        return defer.succeed(None)

    def whenRecords(self, count):
        """
        @return: a L{Deferred} firing with the list of records once there
            are at least C{count}.
        """
        d = defer.Deferred()
        self._waiters.append((count, d))
        self._wake()
        return d

    def _wake(self):
        ready = [(n, d) for n, d in self._waiters if len(self.records) >= n]
        self._waiters = [(n, d) for n, d in self._waiters if len(self.records) < n]
        for n, d in ready:
            d.callback(list(self.records))
