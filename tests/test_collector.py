"""
L{keeptrusts.collector}: the collector is frozen and set when the gateway
has started, and put back when it stops.
"""

import gc

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.collector import YOUNGEST_THRESHOLD, CollectorTuning


class FakeGC:
    def __init__(self):
        self.calls = []
        self.threshold = (700, 10, 10)

    def get_threshold(self):
        return self.threshold

    def set_threshold(self, *threshold):
        self.calls.append(("set_threshold",) + threshold)
        self.threshold = threshold

    def collect(self):
        self.calls.append(("collect",))

    def freeze(self):
        self.calls.append(("freeze",))

    def unfreeze(self):
        self.calls.append(("unfreeze",))


class CollectorTuningTests(SynchronousTestCase):

    def test_startAndStop(self):
        fake = FakeGC()
        tuning = CollectorTuning(fake)
        tuning.startService()
        self.assertEqual(fake.calls, [
            ("collect",), ("freeze",),
            ("set_threshold", YOUNGEST_THRESHOLD, 10, 10)])
        del fake.calls[:]
        tuning.stopService()
        self.assertEqual(fake.calls, [("set_threshold", 700, 10, 10),
                                      ("unfreeze",)])
        self.assertFalse(tuning.running)

    def test_stopWithoutStart(self):
        fake = FakeGC()
        CollectorTuning(fake).stopService()
        self.assertEqual(fake.calls, [])

    def test_realCollector(self):
        before = gc.get_threshold()
        tuning = CollectorTuning()
        tuning.startService()
        try:
            self.assertEqual(gc.get_threshold()[0], YOUNGEST_THRESHOLD)
            self.assertGreater(gc.get_freeze_count(), 0)
        finally:
            tuning.stopService()
        self.assertEqual(gc.get_threshold(), before)
        self.assertEqual(gc.get_freeze_count(), 0)
