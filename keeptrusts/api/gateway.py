# -*- test-case-name: tests.test_api -*-
"""
What every request through the gateway shares, and the records of the
requests that no policy reads (refused by a limit, or passed as they are).
"""

import time

import attr
from twisted.logger import Logger

from keeptrusts.api.errors import GatewayError
from keeptrusts.events import eventRecord
from keeptrusts.policy.values import ALLOW, BLOCK, ERROR

log = Logger()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Gateway:
    """
    What every request needs, built once per configuration.

    @ivar routes: the L{RouteTable}: each request's L{PolicyChain}.
    @ivar upstream: the L{Upstream}.
    @ivar journal: an L{IJournal}.
    @ivar configName: C{name@version}, recorded in every event.
    @ivar waitForJournal: finish responses only once their events are
        durable (C{journal.sync: always}).
    @ivar logAllAccess: journal an C{access} event for proxied traffic
        that is not an LLM call (C{audit-logger.log_all_access}).
    @ivar router: the L{Router} of the configured targets.
    @ivar limits: the L{Limits}: rate limits and budgets.
    """

    routes: object
    upstream: object
    journal: object
    clock: object
    configName: str
    maxBodyBytes: int
    idleTimeout: float
    waitForJournal: bool = False
    logAllAccess: bool = False
    router: object = None
    limits: object = None
    timer: object = time.perf_counter


def recordRefusal(gateway, exchange, error):
    """
    Journal a request the gateway refused before any policy ran (a rate
    limit, a budget): an input event naming the limit.
    """
    record = eventRecord("input", BLOCK, exchange, gateway.configName, [{
        "name": "limits", "verdict": BLOCK, "ms": 0.0,
        "findings": [{"type": error.code or error.type, "count": 1}]}],
        status=error.status)
    gateway.journal.append(record).addErrback(journalFailed)


def recordAccess(gateway, exchange, outcome):
    """
    Journal proxied traffic that no policy read: when the audit asks for
    it; and always when the gateway answered it with an error of its own
    (a refused destination is C{block}, as a refused CONNECT is).

    @param outcome: the status passed on (L{None}: the client left), or
        the L{GatewayError} answered.
    """
    if isinstance(outcome, GatewayError):
        status = outcome.status
        verdict = BLOCK if status in (403, 407) else ERROR
    else:
        verdict, status = ALLOW, outcome
        if not gateway.logAllAccess:
            return
    gateway.journal.append(
        eventRecord("access", verdict, exchange, gateway.configName,
                    status=status)).addErrback(journalFailed)


def journalFailed(reason):
    log.error("journal write failed: {error}", error=reason.type.__name__)
