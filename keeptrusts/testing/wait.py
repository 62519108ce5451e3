# -*- test-case-name: tests.test_testing -*-
"""
Waiting, on a clock, for a condition that a test cannot be told of.
"""

from twisted.internet import defer
from twisted.internet.error import TimeoutError


def waitUntil(clock, predicate, timeout=5.0, interval=0.005):
    """
    Poll C{predicate} on the clock.

    @return: a L{Deferred} firing with the first true value of
        C{predicate()}, or failing with L{TimeoutError} after C{timeout}
        seconds.  Cancelling it cancels the polling.
    """
    deadline = clock.seconds() + timeout
    state = {"call": None}

    def cancel(d):
        if state["call"] is not None and state["call"].active():
            state["call"].cancel()

    d = defer.Deferred(cancel)

    def check():
        state["call"] = None
        value = predicate()
        if value:
            d.callback(value)
        elif clock.seconds() >= deadline:
            d.errback(TimeoutError("condition not met in %s seconds" % (timeout,)))
        else:
            state["call"] = clock.callLater(interval, check)

    check()
    return d
