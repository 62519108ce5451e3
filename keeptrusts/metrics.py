# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics, derived from the journal's records as they are
written (every decision passes there), plus gauges of what is open now.
"""

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
    generate_latest)
from zope.interface import implementer

from keeptrusts.interfaces import IJournal

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
            30, 60, 120, 300)
# Distinct model labels kept; the client names the model.
MAX_MODELS = 200
_POLICY_SECONDS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1)


class Metrics:
    """
    One registry per gateway (not the process-global one), so that tests
    and reloads never collide.
    """

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "keeptrusts_requests", "Answered LLM requests.",
            ["provider", "model", "status", "mode"], registry=registry)
        self.events = Counter(
            "keeptrusts_events", "Journal events by phase and verdict.",
            ["phase", "verdict"], registry=registry)
        self.duration = Histogram(
            "keeptrusts_request_duration_seconds",
            "Time from request to the end of the answer.", ["provider"],
            buckets=_SECONDS, registry=registry)
        self.policyDuration = Histogram(
            "keeptrusts_policy_duration_seconds", "Time spent in a policy.",
            ["policy"], buckets=_POLICY_SECONDS, registry=registry)
        self.verdicts = Counter(
            "keeptrusts_policy_verdicts", "Verdicts by policy.",
            ["policy", "verdict"], registry=registry)
        self.tokens = Counter(
            "keeptrusts_tokens", "Tokens by provider, model and direction.",
            ["provider", "model", "direction"], registry=registry)
        self.cost = Counter(
            "keeptrusts_cost_usd", "Cost in US dollars.",
            ["provider", "model"], registry=registry)
        self.journalLag = Gauge(
            "keeptrusts_journal_lag_seconds",
            "How long the last event waited to be durable.",
            registry=registry)
        self.openRequests = Gauge(
            "keeptrusts_open_requests", "Requests being answered now.",
            registry=registry)
        self.openTunnels = Gauge(
            "keeptrusts_open_tunnels", "CONNECT tunnels open now.",
            registry=registry)
        # labels() takes a lock and converts every value on every call;
        # a record passes here several times per request.
        self._children = {}
        self._models = set()

    def _child(self, metric, *values):
        child = self._children.get((metric, values))
        if child is None:
            child = self._children[metric, values] = metric.labels(*values)
        return child

    def observe(self, record):
        child = self._child
        phase = record.get("phase") or ""
        verdict = record.get("verdict") or ""
        child(self.events, phase, verdict).inc()
        for policy in record.get("policies") or ():
            name = policy.get("name")
            child(self.verdicts, name, policy.get("verdict")).inc()
            if isinstance(policy.get("ms"), (int, float)):
                child(self.policyDuration, name).observe(policy["ms"] / 1000.0)
        if phase != "output":
            return
        provider = record.get("provider") or ""
        model = self._modelLabel(record.get("model"))
        child(self.requests, provider, model, str(record.get("status")),
              record.get("mode") or "").inc()
        total = (record.get("latency_ms") or {}).get("total")
        if isinstance(total, (int, float)):
            child(self.duration, provider).observe(total / 1000.0)
        for direction in ("input", "output"):
            count = (record.get("tokens") or {}).get(direction)
            if isinstance(count, int) and count > 0:
                child(self.tokens, provider, model, direction).inc(count)
        cost = record.get("cost_usd")
        if isinstance(cost, (int, float)) and cost >= 0:
            child(self.cost, provider, model).inc(cost)

    def _modelLabel(self, model):
        """
        The model as a label: the client names it, so the first
        L{MAX_MODELS} names (cut to 100 characters) are labels of their own
        and any other is C{other}; series cannot grow without bound.
        """
        if not isinstance(model, str) or not model:
            return ""
        model = model[:100]
        if model not in self._models:
            if len(self._models) >= MAX_MODELS:
                return "other"
            self._models.add(model)
        return model

    def render(self):
        return generate_latest(self.registry), CONTENT_TYPE_LATEST.encode(
            "ascii")


@implementer(IJournal)
class MeteredJournal:
    """
    A journal that feeds L{Metrics} with every record it writes.
    """

    def __init__(self, journal, metrics, clock):
        self._journal = journal
        self._metrics = metrics
        self._clock = clock

    def append(self, record):
        self._metrics.observe(record)
        started = self._clock.seconds()
        d = self._journal.append(record)

        def durable(result):
            self._metrics.journalLag.set(self._clock.seconds() - started)
            return result
        return d.addCallback(durable)

    def close(self):
        return self._journal.close()
