# -*- test-case-name: tests.test_api_routing -*-
"""
Which targets a request may go to, in which order, and which of them are
failing: model-based selection, C{ordered} or C{round_robin}, fallback
triggers and a per-target circuit breaker.
"""

import itertools

from keeptrusts.api.errors import GatewayError

# A model's provider, for models no target lists.
_PREFIXES = (("claude", "anthropic"), ("gpt-", "openai"), ("o1", "openai"),
             ("o3", "openai"), ("o4", "openai"), ("chatgpt", "openai"),
             ("text-embedding", "openai"), ("codex", "openai"))


def providerOf(model):
    for prefix, provider in _PREFIXES:
        if model.startswith(prefix):
            return provider
    return None


def trigger(status):
    """
    The fallback trigger a failed attempt's status stands for, or L{None}.
    """
    if status == 429:
        return "rate_limit"
    if status == 504:
        return "timeout"
    if status >= 500:
        return "server_error"
    return None


class CircuitBreaker:
    """
    Consecutive failures open a target's circuit; after the cooldown one
    trial request may go (half-open): its success closes the circuit, its
    failure opens it again.

    @param clock: an L{IReactorTime}.
    """

    def __init__(self, clock, threshold=5, cooldown=30.0):
        self._clock = clock
        self._threshold = threshold
        self._cooldown = cooldown
        self._failures = {}
        self._openedAt = {}
        self._trial = set()

    def allows(self, key):
        opened = self._openedAt.get(key)
        if opened is None:
            return True
        if key in self._trial:
            return False
        if self._clock.seconds() - opened >= self._cooldown:
            self._trial.add(key)
            return True
        return False

    def isOpen(self, key):
        return key in self._openedAt

    def succeeded(self, key):
        self._failures.pop(key, None)
        self._openedAt.pop(key, None)
        self._trial.discard(key)

    def failed(self, key):
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= self._threshold or key in self._trial:
            self._openedAt[key] = self._clock.seconds()
            self._trial.discard(key)


class Router:
    """
    @param targets: L{UsableTarget}s in configured order.
    @param routing: the configuration's L{Routing} value.
    @param fallback: the configuration's L{Fallback} value.
    @param breaker: a L{CircuitBreaker}.
    @param dataRouting: the C{data-routing-policy} options when it is in
        the chain: non-compliant targets are never candidates.
    """

    def __init__(self, targets, routing, fallback, breaker, dataRouting=None):
        self._targets = tuple(targets)
        self._roundRobin = routing.strategy == "round_robin"
        self._turn = itertools.count()
        self.triggers = frozenset(fallback.triggers)
        self._attempts = 1 + fallback.max_fallback_attempts
        self.breaker = breaker
        self._dataRouting = dataRouting

    def candidates(self, model, endpoint, only=None):
        """
        The targets to try, in order, for C{model} on C{endpoint}.

        @param only: a target id a route sets, or L{None}.

        @raise GatewayError: 503 when none speaks the endpoint's format or
            every one of them is failing.
        """
        speaking = [t for t in self._targets
                    if t.target.provider in endpoint.formats
                    and (only is None or t.id == only)]
        pool = [t for t in speaking if model in t.target.models]
        if not pool:
            provider = providerOf(model or "")
            pool = [t for t in speaking if t.target.provider == provider
                    and not t.target.models] or speaking
        if not pool:
            raise GatewayError(503, "unavailable",
                               "no provider target is available for /v1/%s"
                               % (endpoint.name,))
        pool = self._compliant(pool)
        if self._roundRobin and len(pool) > 1:
            start = next(self._turn) % len(pool)
            pool = pool[start:] + pool[:start]
        allowed = []
        for target in pool:
            if len(allowed) == self._attempts:
                break
            if self.breaker.allows(target.id):
                allowed.append(target)
        if not allowed:
            raise GatewayError(503, "unavailable",
                               "every target for this request is failing; "
                               "retry later", headers=((b"retry-after",
                                                        b"30"),))
        return allowed

    def _compliant(self, pool):
        rules = self._dataRouting
        if rules is None:
            return pool
        compliant = [t for t in pool if rules.complies(t.target)]
        if compliant or rules.on_no_compliant_provider == "allow":
            return compliant or pool
        raise GatewayError(409, "policy_violation",
                           "no target for this request meets the data "
                           "routing policy", code="no_compliant_provider",
                           policy="data-routing-policy")
