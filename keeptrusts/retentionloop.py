# -*- test-case-name: tests.test_retention -*-
"""
Retention in the running gateway: a L{keeptrusts.retention.sweep} of the
journal every interval on the reactor, with the days the configuration
sets.
"""

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from keeptrusts.retention import RetentionError, sweep

DEFAULT_DAYS = 365
DEFAULT_INTERVAL = 6 * 3600

log = Logger()


def retentionDays(config):
    """
    C{config}'s C{policy.audit-logger.retention_days}, or its default.

    @raise ValueError: it is not a whole number of days, at least 1.
    """
    audit = config.policy.get("audit-logger")
    days = audit.retention_days if audit is not None else DEFAULT_DAYS
    _checkDays(days)
    return days


def _checkDays(days):
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ValueError("policy.audit-logger.retention_days: expected a "
                         "whole number of days, at least 1, got %r"
                         % (days,))


def threadRunner(reactor):
    """
    Run blocking file work (a sweep's reads, the journal's fsyncs) in
    C{reactor}'s thread pool.
    """
    return lambda f, *args: deferToThreadPool(reactor, reactor.getThreadPool(),
                                              f, *args)


class Retention:
    """
    Sweep the journal at L{start} and every C{interval} seconds on
    C{clock}; L{stop} waits for a sweep under way.

    @ivar days: the retention; set it again on a configuration reload
        (L{retentionDays}), the next sweep uses it.
    """

    def __init__(self, journal, clock, days=DEFAULT_DAYS,
                 interval=DEFAULT_INTERVAL, runInThread=None):
        _checkDays(days)
        self.journal = journal
        self.clock = clock
        self.days = days
        self.interval = interval
        self._runInThread = runInThread
        self._loop = None
        self._sweeping = None

    @classmethod
    def fromConfig(cls, config, journal, reactor, **kwargs):
        """
        The retention of C{config}'s C{audit-logger} (its default when the
        config has none); reads in C{reactor}'s thread pool unless
        C{runInThread} is given.
        """
        kwargs.setdefault("runInThread", threadRunner(reactor))
        return cls(journal, reactor, retentionDays(config), **kwargs)

    def start(self):
        self._loop = LoopingCall(self.sweep)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stop(self):
        """
        @return: a L{Deferred} firing once no sweep is under way.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._sweeping is None:
            return defer.succeed(None)
        done = defer.Deferred()

        def finished(result):
            done.callback(None)
            return result
        self._sweeping.addBoth(finished)
        return done

    def sweep(self):
        """
        One sweep; failures are logged, never raised, so the loop goes on.

        @return: a L{Deferred} firing with the removed
            L{keeptrusts.retention.ExpiredSegment}s.
        """
        if self._sweeping is not None:
            return defer.succeed([])
        d = defer.maybeDeferred(sweep, self.journal, self.clock.seconds(),
                                self.days, self._runInThread)
        d.addCallbacks(self._swept, self._failed)
        self._sweeping = d
        d.addBoth(self._done)
        return d

    def _done(self, result):
        self._sweeping = None
        return result

    def _swept(self, removed):
        if removed:
            log.info(
                "Journal retention ({days} days): removed {count} segments "
                "through seq {seq} ({first} to {last})", days=self.days,
                count=len(removed), seq=removed[-1].lastSeq,
                first=removed[0].segment, last=removed[-1].segment)
        return removed

    def _failed(self, failure):
        if failure.check(RetentionError):
            log.error("Journal retention: {problem}; kept every segment "
                      "(evidence): run kt events verify",
                      problem=str(failure.value))
        else:
            log.failure("Journal retention failed; nothing removed",
                        failure)
        return []
