# -*- test-case-name: tests.test_collector -*-
"""
Python's garbage collector, set for a long-running server.

What the start built (configuration, compiled patterns, the catalogue,
modules: some 70,000 objects) is frozen out of later collections, which
otherwise walked it all again every few hundred requests, pausing the
reactor for 40-80 ms at a time (full collections under load, measured with
C{gc.callbacks}); and the youngest generation is collected when 10,000
objects, not 700, are new, so the objects of requests in flight are not
collected over and over as they go.  The request path makes few cycles:
they are still collected, less often.
"""

import gc as _gc

from twisted.application.service import Service

YOUNGEST_THRESHOLD = 10000


class CollectorTuning(Service):
    """
    Started after the services that build what lives as long as the
    process; stopping puts the collector back as it was.

    @param gc: the C{gc} module (a test passes a fake).
    """

    def __init__(self, gc=_gc):
        self._gc = gc
        self._saved = None

    def startService(self):
        Service.startService(self)
        self._saved = self._gc.get_threshold()
        # Garbage from the start is collected, not frozen (frozen cycles
        # would never be freed).
        self._gc.collect()
        self._gc.freeze()
        self._gc.set_threshold(YOUNGEST_THRESHOLD, *self._saved[1:])

    def stopService(self):
        if self._saved is not None:
            self._gc.set_threshold(*self._saved)
            self._gc.unfreeze()
            self._saved = None
        return Service.stopService(self)
