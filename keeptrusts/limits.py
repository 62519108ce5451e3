# -*- test-case-name: tests.test_limits -*-
"""
Rate limits (429 with C{Retry-After}) and budgets (409 C{budget_exceeded}):
C{global_rate_limit}, C{user_rate_limit}, C{token_rate_limit} and the
C{agents:} budgets, counted in fixed windows aligned to the epoch (a day
window is a UTC day).
"""

import math

from zope.interface import implementer

from keeptrusts.api.errors import GatewayError
from keeptrusts.interfaces import ICounters

DAY = 86400.0
MINUTE = 60.0


def _windowStart(window, now):
    return math.floor(now / window) * window


@implementer(ICounters)
class MemoryCounters:
    """
    Counters of this process.  Keys are the clients' own (user ids, header
    values), so only the keys counted in the current window are kept: when
    a window begins, the counts of the one before it go.
    """

    def __init__(self):
        self._counts = {}
        self._current = {}

    def __len__(self):
        """
        The number of counts kept.
        """
        return len(self._counts)

    def count(self, key, window, now):
        start, amount = self._counts.get((key, window), (None, 0))
        return amount if start == _windowStart(window, now) else 0

    def add(self, key, window, now, amount):
        start = _windowStart(window, now)
        if self._current.get(window) != start:
            self._current[window] = start
            self._forgetEnded(window, start)
        seen, counted = self._counts.get((key, window), (None, 0))
        self._counts[(key, window)] = (start, (counted if seen == start
                                               else 0) + amount)

    def _forgetEnded(self, window, start):
        ended = [k for k, (begun, _) in self._counts.items()
                 if k[1] == window and begun != start]
        for k in ended:
            del self._counts[k]


def _retryAfter(window, now):
    return max(1, int(math.ceil(_windowStart(window, now) + window - now)))


def _tooMany(message, window, now):
    return GatewayError(429, "rate_limit", message, code="rate_limited",
                        headers=((b"retry-after", b"%d" % (
                            _retryAfter(window, now),)),))


def _spent(message, now):
    return GatewayError(409, "policy_violation", message,
                        code="budget_exceeded",
                        headers=((b"retry-after", b"%d" % (
                            _retryAfter(DAY, now),)),))


class Limits:
    """
    @param config: the L{Config}: its rate limits and C{agents}.
    @param counters: an L{ICounters}.
    @param clock: an L{IReactorTime}.
    """

    def __init__(self, config, counters, clock):
        self._global = config.global_rate_limit
        self._user = config.user_rate_limit
        self._tokens = config.token_rate_limit
        self._agents = {agent.id: agent for agent in config.agents}
        self._counters = counters
        self._clock = clock

    def _budgetKey(self, user, agent):
        """
        Budgets are kept by agent id, else by user.
        """
        if agent is not None and agent in self._agents:
            return agent
        if user in self._agents:
            return user
        return None

    def admit(self, user, agent, request):
        """
        Count one request, or refuse it.

        @raise GatewayError: 429 or 409.
        """
        now = self._clock.seconds()
        counters = self._counters
        checks = []
        if self._global is not None:
            checks.append(("global", self._global.max_requests,
                           self._global.window_seconds, "the gateway's"))
        if self._user is not None:
            checks.append(("user:" + _userKey(self._user, user, request),
                           self._user.max_requests,
                           self._user.window_seconds, "this user's"))
        budgetKey = self._budgetKey(user, agent)
        budget = self._agents.get(budgetKey)
        if budget is not None and budget.max_requests_per_minute is not None:
            checks.append(("rpm:" + budgetKey, budget.max_requests_per_minute,
                           MINUTE, "this agent's"))
        for key, limit, window, whose in checks:
            if counters.count(key, window, now) >= limit:
                raise _tooMany("%s rate limit of %d requests per %gs is "
                               "reached" % (whose, limit, window), window,
                               now)
        if self._tokens is not None and counters.count(
                "tokens:" + user, self._tokens.window_seconds,
                now) >= self._tokens.max_tokens:
            raise _tooMany("the token rate limit of %d tokens per %gs is "
                           "reached" % (self._tokens.max_tokens,
                                        self._tokens.window_seconds),
                           self._tokens.window_seconds, now)
        if budget is not None:
            if budget.max_cost_usd_per_day is not None and counters.count(
                    "cost:" + budgetKey, DAY, now) >= \
                    budget.max_cost_usd_per_day:
                raise _spent("the daily cost budget of %s is spent"
                             % (budgetKey,), now)
            if budget.max_tokens_per_day is not None and counters.count(
                    "daytokens:" + budgetKey, DAY, now) >= \
                    budget.max_tokens_per_day:
                raise _spent("the daily token budget of %s is spent"
                             % (budgetKey,), now)
        for key, limit, window, whose in checks:
            counters.add(key, window, now, 1)

    def account(self, user, agent, tokens, cost):
        """
        Count what an answered request used.

        @param tokens: C{{"input", "output"}} or L{None}.
        @param cost: US dollars or L{None}.
        """
        now = self._clock.seconds()
        used = sum(tokens.get(k) or 0 for k in ("input", "output")) \
            if tokens else 0
        if self._tokens is not None and used:
            self._counters.add("tokens:" + user, self._tokens.window_seconds,
                               now, used)
        budgetKey = self._budgetKey(user, agent)
        if budgetKey is None:
            return
        if used:
            self._counters.add("daytokens:" + budgetKey, DAY, now, used)
        if cost:
            self._counters.add("cost:" + budgetKey, DAY, now, cost)


def _userKey(limit, user, request):
    """
    The user, or the values of the configured identity headers.
    """
    if not limit.header_names or request is None:
        return user
    values = [(request.requestHeaders.getRawHeaders(name.encode("ascii"))
               or [b""])[-1].decode("latin-1") for name in limit.header_names]
    return "|".join(values) if any(values) else user
