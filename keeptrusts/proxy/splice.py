# -*- test-case-name: tests.test_proxy_splice -*-
"""
A blind tunnel's bytes moved by the kernel: C{splice(2)} from one socket
into a pipe, then from the pipe into the other socket, so no byte is copied
through Python (Linux, Python 3.10 and later; elsewhere, and for any socket
that is not plain TCP, the tunnel moves its bytes through Twisted).

Flow control is the kernel's: a direction holds at most one pipe (256 KB,
or 64 KB when the kernel grants no more);
while the pipe cannot drain into a socket that does not read, nothing more
is taken from the other socket, whose sender then waits on its own window.
"""

import errno
import fcntl
import os
import socket
from typing import Optional

import attr
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IReadWriteDescriptor, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_CHUNK = 65536  # a pipe's default capacity
# A bulk transfer takes fewer moves, and fewer turns of the reactor, through
# a larger pipe, when the kernel grants one (an unprivileged user's pipes
# share a quota: past it, they keep their default size).
_PIPE = 1 << 18
_TURNS = 16  # moves per readiness event before other connections' turn


def splicePossible(transport):
    """
    Whether C{transport} is a socket's own transport (a wrapper, such as
    TLS, may copy its interfaces), plain, that the kernel can splice.
    """
    return (hasattr(os, "splice") and isinstance(transport, FileDescriptor)
            and not ISSLTransport.providedBy(transport)
            and isinstance(transport.getHandle(), socket.socket))


class Splicer:
    """
    Starts L{SplicePump}s, as many at a time as the descriptors allow: each
    uses two pipes (four descriptors) beside its two sockets.

    @param reactor: an L{IReactorFDSet}.
    @param limit: the most tunnels spliced at once; the rest go through
        Twisted.
    """

    def __init__(self, reactor, limit):
        self._reactor = reactor
        self._limit = limit
        self.active = 0

    def __call__(self, client, upstream, toUpstream, toClient, moved, ended):
        """
        A pump between two transports that are reading nothing and hold
        nothing to write; the arguments are L{SplicePump}'s.

        @return: the L{SplicePump}, to start, or L{None} when these
            transports or this process cannot be spliced now (go through
            Twisted instead).
        """
        if (self.active >= self._limit or not splicePossible(client)
                or not splicePossible(upstream)):
            return None

        def done(end):
            self.active -= 1
            ended(end)
        try:
            pump = SplicePump(self._reactor, client.getHandle(),
                              upstream.getHandle(), toUpstream, toClient,
                              moved, done)
        except OSError as e:  # out of descriptors: Twisted copes
            log.warn("cannot splice a tunnel ({error}); copying it",
                     error=os.strerror(e.errno) if e.errno else e)
            return None
        self.active += 1
        return pump


def descriptorLimit():
    """
    The tunnels to splice at once: so many that their pipes take at most an
    eighth of the open files allowed (four each), and 4,096 at most.
    """
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 15
    return min(4096, soft // 32)


class _Direction:
    """
    One way through the tunnel: C{head} first, then what the pipe carries
    from C{source} to C{sink}.
    """

    def __init__(self, source, sink, head, up):
        self.source = source
        self.sink = sink
        self.head = head
        self.up = up
        self.held = 0
        self.eof = self.done = False
        self.pipeOut, self.pipeIn = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.chunk = _enlarged(self.pipeIn)

    def move(self):
        """
        Move what can be moved now.

        @return: the bytes spliced into the sink.
        @raise _SideFailed: a socket failed (a reset, mostly).
        """
        moved = 0
        for _ in range(_TURNS):
            if self.head or self.held or self.eof:
                try:
                    if self.head:
                        sent = self.sink.socket.send(self.head)
                        self.head = self.head[sent:]
                        continue
                    if self.held:
                        n = os.splice(self.pipeOut, self.sink.fd, self.held,
                                      flags=_FLAGS)
                        self.held -= n
                        moved += n
                        continue
                    self.sink.socket.shutdown(socket.SHUT_WR)
                except BlockingIOError:
                    return moved
                except OSError as e:
                    raise _SideFailed(self.sink, e)
                self.done = True
                return moved
            try:
                n = os.splice(self.source.fd, self.pipeIn, self.chunk,
                              flags=_FLAGS)
            except BlockingIOError:
                return moved
            except OSError as e:
                raise _SideFailed(self.source, e)
            self.eof = n == 0
            self.held += n
        # Its turn is over; a level-triggered reactor calls again.
        return moved

    @property
    def wants(self):
        """
        C{"write"} to the sink while something waits for it, C{"read"} from
        the source otherwise, L{None} once the FIN was passed on.
        """
        if self.done:
            return None
        return "write" if self.head or self.held else "read"

    def rest(self):
        """
        What this direction still holds for its sink, out of the pipe.
        """
        chunks = [self.head]
        while self.held:
            try:
                data = os.read(self.pipeOut, self.held)
            except OSError:
                break
            if not data:
                break
            self.held -= len(data)
            chunks.append(data)
        return b"".join(chunks)

    def close(self):
        os.close(self.pipeOut)
        os.close(self.pipeIn)


def _enlarged(pipe):
    """
    Make C{pipe} hold L{_PIPE} bytes if the kernel grants it.

    @return: what it holds.
    """
    try:
        return fcntl.fcntl(pipe, _SETPIPE_SZ, _PIPE)
    except OSError:
        return _CHUNK


# (Named by Python 3.10 and later, which splice needs too.)
_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@implementer(IReadWriteDescriptor)
class _End:
    """
    One of the tunnel's sockets, as the reactor sees it while it is
    spliced: readable feeds the direction out of it, writable drains the
    direction into it.
    """

    def __init__(self, pump, sock):
        self._pump = pump
        self.socket = sock
        self.fd = sock.fileno()
        self.outgoing = self.incoming = None

    def fileno(self):
        return self.fd

    def logPrefix(self):
        return "SplicePump"

    def doRead(self):
        self._pump.move(self.outgoing)

    def doWrite(self):
        self._pump.move(self.incoming)

    def connectionLost(self, reason):
        # The reactor dropped the socket: it is stopping (or the socket hung
        # up while only written to), and no later turn would close the rest.
        self._pump.stop(reason.value, now=True)


class _SideFailed(Exception):
    def __init__(self, end, error):
        Exception.__init__(self, end, error)
        self.end = end
        self.error = error


@attr.s(frozen=True, slots=True, auto_attribs=True)
class SpliceEnd:
    """
    How a spliced tunnel ended.

    @ivar error: L{None} once each side had sent its FIN; else what ended it.
    @ivar failed: C{"client"} or C{"upstream"}, the side whose socket
        failed: the other is sound, and gets C{rest} before it is closed;
        L{None}: both are to be closed as they are.
    @ivar rest: the bytes the pump still held for the sound side.
    @ivar now: the reactor dropped the sockets: close them at once, without
        waiting for another turn (there may be none).
    """

    error: Optional[BaseException] = None
    failed: Optional[str] = None
    rest: bytes = b""
    now: bool = False


class SplicePump:
    """
    Moves a tunnel's bytes both ways until each side has sent its FIN
    (each is passed on as it comes), or until one side fails.

    @param reactor: an L{IReactorFDSet}.
    @param client: the client's socket; C{upstream}: the target's.
    @param toUpstream: bytes the target gets first; C{toClient}: the same
        for the client.
    @param moved: called with C{(up, down)}, the bytes handed on each way
        by a move (and, when a side fails, the bytes left for the other).
    @param ended: called once, with a L{SpliceEnd}; the pump has left the
        reactor and closed its pipes by then, and the sockets are the
        caller's to close.
    """

    def __init__(self, reactor, client, upstream, toUpstream, toClient,
                 moved, ended):
        self._reactor = reactor
        self._moved = moved
        self._ended = ended
        self._client = _End(self, client)
        self._upstream = _End(self, upstream)
        self._up = _Direction(self._client, self._upstream, toUpstream, True)
        try:
            self._down = _Direction(self._upstream, self._client, toClient,
                                    False)
        except OSError:
            self._up.close()
            raise
        self._client.outgoing = self._upstream.incoming = self._up
        self._upstream.outgoing = self._client.incoming = self._down
        self._stopped = False

    def start(self):
        for direction in (self._up, self._down):
            self.move(direction)

    def move(self, direction):
        if self._stopped:
            return
        try:
            self._count(direction, direction.move())
            if self._up.done and self._down.done:
                self._finish(SpliceEnd())
            elif not self._stopped:
                self._interest(direction)
        except _SideFailed as failed:
            self._fail(failed.end, failed.error)
        except Exception as error:
            log.failure("splicing a tunnel")
            self.stop(error)

    def _count(self, direction, n):
        if n:
            self._moved(n if direction.up else 0, 0 if direction.up else n)

    def _interest(self, direction):
        reactor = self._reactor
        if direction.wants == "read":
            reactor.removeWriter(direction.sink)
            reactor.addReader(direction.source)
        elif direction.wants == "write":
            reactor.removeReader(direction.source)
            reactor.addWriter(direction.sink)
        else:
            reactor.removeReader(direction.source)
            reactor.removeWriter(direction.sink)

    def _fail(self, end, error):
        if error.errno not in _EXPECTED:
            log.info("tunnel closed: {error}", error=os.strerror(error.errno)
                     if error.errno else error)
        sound = self._upstream if end is self._client else self._client
        rest = sound.incoming.rest()
        self._count(sound.incoming, len(rest))
        self._finish(SpliceEnd(
            error, "client" if end is self._client else "upstream", rest))

    def stop(self, error, now=False):
        """
        End now, both sides to be closed (a timeout, the reactor stopping);
        what the pipes hold is dropped.
        """
        self._finish(SpliceEnd(error, now=now))

    def _finish(self, end):
        if self._stopped:
            return
        self._stopped = True
        for socketEnd in (self._client, self._upstream):
            self._reactor.removeReader(socketEnd)
            self._reactor.removeWriter(socketEnd)
        self._up.close()
        self._down.close()
        self._ended(end)


_EXPECTED = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED,
             errno.ETIMEDOUT}
