"""
L{keeptrusts.metrics}: what the records make of the series (the served
C{/metrics} is in L{tests.test_service}).
"""

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.metrics import MAX_MODELS, Metrics


def output(model, cost=0.001):
    return {"phase": "output", "verdict": "allow", "provider": "openai",
            "model": model, "status": 200, "mode": "api",
            "tokens": {"input": 3, "output": 2}, "cost_usd": cost}


class MetricsTests(SynchronousTestCase):

    def modelLabels(self, metrics):
        text, _ = metrics.render()
        return {s.labels["model"]
                for family in text_string_to_metric_families(text.decode())
                if family.name == "keeptrusts_requests"
                for s in family.samples}

    def test_modelLabelsBounded(self):
        """
        The client names the model: past L{MAX_MODELS} names, the others
        share the label C{other}, so series cannot grow without bound.
        """
        metrics = Metrics()
        for n in range(MAX_MODELS + 50):
            metrics.observe(output("model-%d" % (n,)))
        metrics.observe(output("model-0"))
        labels = self.modelLabels(metrics)
        self.assertEqual(len(labels), MAX_MODELS + 1)
        self.assertIn("other", labels)
        self.assertIn("model-0", labels)

    def test_longAndOddModels(self):
        metrics = Metrics()
        metrics.observe(output("m" * 500))
        metrics.observe(output(["not", "a", "name"]))
        self.assertEqual(self.modelLabels(metrics), {"m" * 100, ""})

    def test_negativeCostIgnored(self):
        metrics = Metrics()
        metrics.observe(output("gpt", cost=-1.0))
        text, _ = metrics.render()
        self.assertNotIn(b'keeptrusts_cost_usd_total{model="gpt"', text)

    def test_seriesAsPrometheusWritesThem(self):
        """
        Counters and histograms read back as Prometheus' own would write
        them: totals, cumulative buckets with C{le} bounds, count and sum.
        """
        metrics = Metrics()
        for ms in (1.0, 3.0, 3.0, 400000.0):  # 1 ms: on a bound
            record = output("gpt", cost=0.25)
            record["latency_ms"] = {"total": ms}
            record["policies"] = [{"name": "dlp-filter", "verdict": "redact",
                                   "ms": ms}]
            metrics.observe(record)
        text, _ = metrics.render()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text.decode())
                   for s in family.samples}
        duration = "keeptrusts_request_duration_seconds"

        def bucket(le):
            return samples[(duration + "_bucket",
                            (("le", le), ("provider", "openai")))]
        self.assertEqual([bucket("0.001"), bucket("0.005"), bucket("300.0"),
                          bucket("+Inf")], [1.0, 3.0, 3.0, 4.0])
        self.assertEqual(samples[(duration + "_count",
                                  (("provider", "openai"),))], 4.0)
        self.assertAlmostEqual(samples[(duration + "_sum",
                                        (("provider", "openai"),))], 400.007)
        self.assertEqual(samples[("keeptrusts_policy_verdicts_total", (
            ("policy", "dlp-filter"), ("verdict", "redact")))], 4.0)
        self.assertEqual(samples[("keeptrusts_cost_usd_total", (
            ("model", "gpt"), ("provider", "openai")))], 1.0)
        self.assertEqual(samples[("keeptrusts_tokens_total", (
            ("direction", "output"), ("model", "gpt"),
            ("provider", "openai")))], 8.0)

    def test_oddLabelValues(self):
        """
        A label value that is not a string is shown as one, as
        prometheus_client's own labels() did: /metrics keeps working.
        """
        metrics = Metrics()
        record = output("gpt")
        record.update(provider=7, mode=b"api", verdict=None)
        record["policies"] = [{"name": None, "verdict": 3, "ms": 1}]
        metrics.observe(record)
        text, _ = metrics.render()
        self.assertIn(b'provider="7"', text)
        self.assertIn(b'policy="None",verdict="3"', text)


class MeteredJournalTests(SynchronousTestCase):
    def test_journalLag(self):
        """
        The journal lag gauge shows how long the last record waited to be
        durable, read when scraped.
        """
        from twisted.internet.defer import Deferred
        from twisted.internet.task import Clock

        from keeptrusts.metrics import MeteredJournal

        class Slow:
            def __init__(self):
                self.waiting = []

            def append(self, record):
                d = Deferred()
                self.waiting.append(d)
                return d

        def lag(metrics):
            text, _ = metrics.render()
            [family] = [f for f in text_string_to_metric_families(
                text.decode()) if f.name == "keeptrusts_journal_lag_seconds"]
            return family.samples[0].value

        clock, journal, metrics = Clock(), Slow(), Metrics()
        metered = MeteredJournal(journal, metrics, clock)
        self.assertEqual(lag(metrics), 0.0)
        metered.append(output("gpt"))
        clock.advance(0.25)
        journal.waiting[0].callback(1)
        self.assertEqual(lag(metrics), 0.25)
        metered.append(output("gpt"))
        clock.advance(0.5)
        journal.waiting[1].callback(2)
        self.assertEqual(lag(metrics), 0.5)
