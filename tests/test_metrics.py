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
