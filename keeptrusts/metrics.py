# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics, derived from the journal's records as they are
written (every decision passes there), plus gauges of what is open now.
"""

from bisect import bisect_left
from itertools import accumulate

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from zope.interface import implementer

from keeptrusts.interfaces import IJournal

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
            30, 60, 120, 300)
# Distinct model labels kept; the client names the model.
MAX_MODELS = 200
_POLICY_SECONDS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1)


class _Counter:
    """
    Totals by label values, added to in place.  Only the reactor's thread
    counts and renders, so no lock: a record passes here several times per
    request, and C{prometheus_client}'s children take a lock and convert
    their labels on every call.
    """

    def __init__(self, name, documentation, labels):
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.totals = {}

    def inc(self, values, amount=1):
        self.totals[values] = self.totals.get(values, 0) + amount

    def family(self):
        family = CounterMetricFamily(self.name, self.documentation,
                                     labels=self.labels)
        for values, total in self.totals.items():
            family.add_metric([str(v) for v in values], total)
        return family


class _Histogram:
    """
    Observations by label values, in buckets of upper C{bounds}; as
    L{_Counter}, without a lock.
    """

    def __init__(self, name, documentation, labels, bounds):
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.bounds = tuple(bounds)
        self._edges = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        # label values -> [count per bucket (the last: above every bound),
        # sum]
        self.counts = {}

    def observe(self, values, amount):
        counts = self.counts.get(values)
        if counts is None:
            counts = self.counts[values] = [0] * len(self._edges) + [0.0]
        counts[bisect_left(self.bounds, amount)] += 1
        counts[-1] += amount

    def family(self):
        family = HistogramMetricFamily(self.name, self.documentation,
                                       labels=self.labels)
        for values, counts in self.counts.items():
            family.add_metric([str(v) for v in values], list(zip(
                self._edges, accumulate(counts[:-1]))), counts[-1])
        return family


class Metrics:
    """
    One registry per gateway (not the process-global one), so that tests
    and reloads never collide.
    """

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = _Counter(
            "keeptrusts_requests", "Answered LLM requests.",
            ["provider", "model", "status", "mode"])
        self.events = _Counter(
            "keeptrusts_events", "Journal events by phase and verdict.",
            ["phase", "verdict"])
        self.duration = _Histogram(
            "keeptrusts_request_duration_seconds",
            "Time from request to the end of the answer.", ["provider"],
            _SECONDS)
        self.policyDuration = _Histogram(
            "keeptrusts_policy_duration_seconds", "Time spent in a policy.",
            ["policy"], _POLICY_SECONDS)
        self.verdicts = _Counter(
            "keeptrusts_policy_verdicts", "Verdicts by policy.",
            ["policy", "verdict"])
        self.tokens = _Counter(
            "keeptrusts_tokens", "Tokens by provider, model and direction.",
            ["provider", "model", "direction"])
        self.cost = _Counter(
            "keeptrusts_cost_usd", "Cost in US dollars.",
            ["provider", "model"])
        self._derived = (self.requests, self.events, self.duration,
                         self.policyDuration, self.verdicts, self.tokens,
                         self.cost)
        registry.register(self)
        # Read when scraped, not set per request: a Prometheus gauge takes a
        # lock on every change.
        self.lastJournalLag = 0.0
        Gauge("keeptrusts_journal_lag_seconds",
              "How long the last event waited to be durable.",
              registry=registry).set_function(lambda: self.lastJournalLag)
        self.openRequests = Gauge(
            "keeptrusts_open_requests", "Requests being answered now.",
            registry=registry)
        self.openTunnels = Gauge(
            "keeptrusts_open_tunnels", "CONNECT tunnels open now.",
            registry=registry)
        self._models = set()

    def collect(self):
        """
        The series derived from records, for the registry.
        """
        return [metric.family() for metric in self._derived]

    def observe(self, record):
        phase = record.get("phase") or ""
        self.events.inc((phase, record.get("verdict") or ""))
        for policy in record.get("policies") or ():
            name = policy.get("name")
            self.verdicts.inc((name, policy.get("verdict")))
            ms = policy.get("ms")
            if isinstance(ms, (int, float)):
                self.policyDuration.observe((name,), ms / 1000.0)
        if phase != "output":
            return
        provider = record.get("provider") or ""
        model = self._modelLabel(record.get("model"))
        self.requests.inc((provider, model, record.get("status"),
                           record.get("mode") or ""))
        total = (record.get("latency_ms") or {}).get("total")
        if isinstance(total, (int, float)):
            self.duration.observe((provider,), total / 1000.0)
        tokens = record.get("tokens") or {}
        for direction in ("input", "output"):
            count = tokens.get(direction)
            if isinstance(count, int) and count > 0:
                self.tokens.inc((provider, model, direction), count)
        cost = record.get("cost_usd")
        if isinstance(cost, (int, float)) and cost >= 0:
            self.cost.inc((provider, model), cost)
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
            self._metrics.lastJournalLag = self._clock.seconds() - started
            return result
        return d.addCallback(durable)

    def close(self):
        return self._journal.close()
