"""
Tests for the benchmark's report (bench/run.py): the targets as this
machine's floor scales them.
"""

import importlib.util
import os

from twisted.trial.unittest import TestCase

_RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "bench", "run.py")


def loadRun():
    spec = importlib.util.spec_from_file_location("bench_run", _RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figure(value):
    return (value, None, None, None, "")


class ScaledToFloorTests(TestCase):
    if not os.path.exists(_RUN):
        skip = "bench/ is not beside these tests (the installed package's run)"

    def setUp(self):
        self.run = loadRun()

    def test_slowerMachine(self):
        """
        A floor twice as slow as DESIGN.md's doubles the latency targets and
        halves the speed ones; each figure is judged against its own.
        """
        lines = self.run.scaledToFloor({
            "s1_ref": figure(0.76), "s2_16_ref": figure(1750.0),
            "s1_p50": figure(1.1), "s1_p99": figure(4.5),
            "s2_16_rps": figure(1300.0), "s2_16_p99": figure(29.0),
            "s3_ttfb": figure(1.2)})
        text = "\n".join(lines)
        self.assertIn("latency targets x2.00 and speed targets x0.50", text)
        shown = [line for line in lines if line.startswith("- ")]
        self.assertEqual(shown, [
            "- added latency p50, 1 client, 1 KB, non-streaming: <= 1.20 ms, "
            "measured 1.10: PASS",
            "- added latency p99, 1 client: <= 4.00 ms, measured 4.50: FAIL",
            "- throughput, 16 clients: >= 1,250 req/s, measured 1,300: PASS",
            "- p99, 16 clients: <= 30.0 ms, measured 29.0: PASS",
            "- added time to first streamed byte: <= 1.00 ms, measured "
            "1.20: FAIL"])

    def test_noFloor(self):
        """
        Without the yardstick's figures (C{--no-reference}), nothing is
        scaled.
        """
        self.assertEqual(self.run.scaledToFloor({"s1_p50": figure(0.5)}), [])
        self.assertEqual(self.run.scaledToFloor({
            "s1_ref": figure(0.0), "s2_16_ref": figure(100.0),
            "s1_p50": figure(0.5)}), [])

    def test_inReport(self):
        """
        The Markdown report carries the scaled reading under its table.
        """
        results = {
            "finished": "now", "command": "bench/run.py", "runs": 1,
            "load_generator": "wrk", "pinning": "none",
            "machine": {"cpu_model": "cpu", "cores": 2, "cores_usable": 2,
                        "kernel": "6", "python": "3", "twisted": "26",
                        "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0]},
            "scenarios": {"latency": {"summary": {
                "added_p50_ms": 0.5, "direct_p50_ms": 0.1,
                "gateway_p50_ms": 0.6, "added_p50_ms_range": [0.4, 0.6],
                "added_p99_ms": 1.0, "direct_p99_ms": 0.2,
                "gateway_p99_ms": 1.2, "added_p99_ms_range": [0.9, 1.1],
                "reference_added_p50_ms": 0.38}}}}
        self.assertNotIn("Scaled to", self.run.markdown(results))
        throughput = {"summary": {
            "gateway_rps": 3000.0, "direct_rps": 9000.0, "ratio": 0.33,
            "gateway_cpu": 0.99, "errors": 0,
            "gateway_rps_range": [2900, 3100], "gateway_p99_ms": 9.0,
            "direct_p99_ms": 1.0, "gateway_p99_ms_range": [8, 10],
            "reference_rps": 3500.0, "cpu_per_request_ratio": 1.2}}
        results["scenarios"]["throughput"] = {"c16": throughput,
                                              "c64": throughput}
        report = self.run.markdown(results)
        self.assertIn("latency targets x1.00 and speed targets x1.00", report)
        self.assertIn("- throughput, 16 clients: >= 2,500 req/s, measured "
                      "3,000: PASS", report)
