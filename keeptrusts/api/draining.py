# -*- test-case-name: tests.test_service,tests.test_api -*-
"""
The requests being answered, counted so that a stopping gateway can drain
them: wait until none is left, nor any record one of them owes.
"""

from twisted.internet import defer


class ActiveRequests:
    """
    The requests being answered, for draining: shared by the listener's
    site and the sites inside intercepted tunnels.

    @ivar count: how many are being answered now.
    """

    def __init__(self):
        self.count = 0
        self._held = 0
        self._idle = []

    def started(self, request):
        self.count += 1
        request.notifyFinish().addBoth(self._finished)

    def hold(self):
        """
        Keep the gateway from being idle until the returned callable is
        called: a request's last journal record may come after the request
        has finished (its client gone), and a drain must wait for it.
        """
        self._held += 1

        def release():
            self._held -= 1
            self._maybeIdle()
        return release

    def _finished(self, ignored):
        self.count -= 1
        self._maybeIdle()

    def _maybeIdle(self):
        if self.count == 0 and self._held == 0:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def whenIdle(self):
        """
        @return: a Deferred that fires once no request is being answered,
            nor owes its records.
        """
        d = defer.Deferred()
        self._idle.append(d)
        self._maybeIdle()
        return d
