"""
The tunnel's bytes moved by splice(2): what the L{Splicer} accepts, and
what a spliced tunnel does when a side fails or no pipe can be had.  The
tunnel's own behaviour, spliced, is tests.test_proxy_tunnel's
SplicedLoopbackTests and SplicedTLSTests.
"""

import errno
import fcntl
import os
import stat

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.proxy import splice
from keeptrusts.proxy.splice import Splicer, descriptorLimit
from tests.test_proxy_tunnel import GatewayCase, Spliced, until


class SplicerTests(SynchronousTestCase):
    def test_plainTCPOnly(self):
        """
        A transport without a socket (a TLS one, a test double) is not
        spliced: the tunnel copies through Twisted.
        """
        splicer = Splicer(reactor, 8)
        self.assertIsNone(splicer(StringTransport(), StringTransport(), b"",
                                  b"", None, None))
        self.assertEqual(splicer.active, 0)

    def test_descriptorLimit(self):
        """
        The spliced tunnels' pipes (four descriptors each) may take an
        eighth of the open files allowed, for 4,096 tunnels at most.
        """
        import resource
        limits = []

        def getrlimit(which):
            self.assertEqual(which, resource.RLIMIT_NOFILE)
            return limits[-1], resource.RLIM_INFINITY
        self.patch(resource, "getrlimit", getrlimit)
        found = {}
        for soft in (1024, 65536, 1 << 20, resource.RLIM_INFINITY):
            limits.append(soft)
            found[soft] = descriptorLimit()
        self.assertEqual(found, {1024: 32, 65536: 2048, 1 << 20: 4096,
                                 resource.RLIM_INFINITY: 1024})


    def test_pipeEnlarged(self):
        """
        A pipe holds 256 KB when the kernel grants it (a bulk transfer
        takes fewer moves), its default otherwise; either way a move asks
        for what it holds.
        """
        out, into = os.pipe()
        self.addCleanup(os.close, out)
        self.addCleanup(os.close, into)
        self.assertEqual(splice._enlarged(into), 1 << 18)
        self.assertEqual(fcntl.fcntl(into, 1032), 1 << 18)  # F_GETPIPE_SZ

        def refused(fd, command, size):
            raise PermissionError(errno.EPERM, "over the quota")
        self.patch(fcntl, "fcntl", refused)
        self.assertEqual(splice._enlarged(into), 65536)

class SplicedFailureTests(Spliced, GatewayCase):
    """
    Failures and limits, over loopback.
    """

    @inlineCallbacks
    def test_clientResetAbortsTheTarget(self):
        client = yield self.tunnel()
        client.transport.write(b"ping")
        yield until(lambda: client.received == b"ping")
        [upstream] = self.upstreams.peers
        client.transport.abortConnection()
        yield upstream.lost
        yield until(lambda: self.events)
        self.assertEqual((self.events[0].status, self.events[0].bytesUp,
                          self.events[0].bytesDown), (200, 4, 4))
        self.assertEqual(self.splicer.active, 0)

    @inlineCallbacks
    def test_limitReachedCopies(self):
        """
        Beyond the splicer's limit, tunnels copy through Twisted, and
        work the same.
        """
        self.splicer = Splicer(reactor, 1)
        self.configure(allowedPorts=[self.upPort])
        first = yield self.tunnel()
        second = yield self.client(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n"
                                   % (self.upPort,))
        yield until(second.answer)
        self.assertEqual(self.splicer.active, 1)
        self.assertIsNone(self.handler.calls[1][2]._pump)
        for peer in (first, second):
            peer.transport.write(b"both")
        yield until(lambda: first.received == b"both"
                    and second.received.endswith(b"both"))

    @inlineCallbacks
    def test_noPipeCopies(self):
        """
        Out of descriptors for a pipe: a warning, and the tunnel copies.
        """
        def pipe2(flags):
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        self.patch(splice.os, "pipe2", pipe2)
        logged = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        client = yield self.client(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n"
                                   % (self.upPort,))
        yield until(client.answer)
        self.assertIsNone(self.handler.calls[0][2]._pump)
        self.assertEqual(self.splicer.active, 0)
        client.transport.write(b"still")
        yield until(lambda: client.received.endswith(b"still"))
        self.assertIn("cannot splice a tunnel (Too many open files); copying it",
                      [e.get("log_format", "").format(**e) for e in logged
                       if e.get("log_namespace") == splice.__name__])

    @inlineCallbacks
    def test_reactorDropsTheSockets(self):
        """
        A stopping reactor calls C{connectionLost} on what it watches, the
        pump's sockets: both close, and the tunnel is recorded, in that call
        (no later turn may come).
        """
        client = yield self.tunnel()
        client.transport.write(b"ping")
        yield until(lambda: client.received == b"ping")
        ends = [r for r in reactor.getReaders()
                if r.logPrefix() == "SplicePump"]
        self.assertEqual(len(ends), 2)
        for end in ends:  # as ReactorBase.disconnectAll does
            reactor.removeReader(end)
            reactor.removeWriter(end)
            end.connectionLost(Failure(ConnectionLost()))
        self.assertEqual([(e.status, e.bytesUp, e.bytesDown)
                          for e in self.events], [(200, 4, 4)])
        self.assertEqual(self.splicer.active, 0)
        yield client.lost

    @inlineCallbacks
    def test_secondPipeMissing(self):
        """
        The first pipe is had, the second is not: the first is closed
        again, and the tunnel copies.
        """
        made = []
        pipe2 = os.pipe2

        def once(flags):
            if made:
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            made.append(pipe2(flags))
            return made[-1]
        self.patch(splice.os, "pipe2", once)
        client = yield self.client(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n"
                                   % (self.upPort,))
        yield until(client.answer)
        self.assertIsNone(self.handler.calls[0][2]._pump)
        for fd in made[0]:  # closed (or its number reused since)
            try:
                self.assertFalse(stat.S_ISFIFO(os.fstat(fd).st_mode))
            except OSError:
                pass
        client.transport.write(b"still")
        yield until(lambda: client.received.endswith(b"still"))
