# -*- test-case-name: tests.test_api -*-
"""
Bytes to the kernel now, not when the reactor next polls: what follows in
the same turn (the journal, metrics, the access log) then does not hold
them back; and on the wire now, not when the peer acknowledged the bytes
before them.
"""

from twisted.internet.abstract import FileDescriptor
from twisted.internet.tcp import Connection


def noDelay(transport):
    """
    Turn Nagle's algorithm off on C{transport}'s socket (a TCP one, under
    TLS too; others are left as they are): a small write (a streamed event,
    a head before its body) leaves at once, instead of waiting for the
    acknowledgement of the bytes before it, which the peer may delay by up
    to 40 ms.  nginx (C{tcp_nodelay on}), Envoy and asyncio do the same for
    every connection.
    """
    setTcpNoDelay = getattr(transport, "setTcpNoDelay", None)
    if setTcpNoDelay is not None:
        try:
            setTcpNoDelay(True)
        except OSError:
            pass  # closed already: nothing more will be sent


def sendNow(request):
    """
    Hand what was written of C{request}'s answer to the kernel now, not when
    the reactor next finds the socket writable: the work that follows in
    this turn (the journal, metrics, the access log) then does not hold the
    client's bytes back.
    """
    sendOn(getattr(getattr(request, "channel", None), "transport", None))


def sendOn(transport):
    """
    Hand what was written on C{transport} to the kernel now.  Under TLS (and
    an interception's byte counter), the socket below, once the TLS layers
    on the way handed it what they hold back for their next turn (Twisted
    23.10 and later gather small writes so).
    """
    for _ in range(4):
        if transport is None or isinstance(transport, FileDescriptor):
            break
        # Private to Twisted's BufferingTLSTransport, hence looked up.
        flush = getattr(getattr(transport, "_aggregator", None), "flush", None)
        if flush is not None:
            flush()
        transport = getattr(transport, "transport", None)
    else:
        return
    _flush(transport)


def writeNow(transport, data):
    """
    Write C{data} on C{transport}, to the kernel at once when nothing waits
    before it on a plain socket: a write Twisted queues costs two epoll
    registrations (watch for writability, then stop) besides the send, and
    waits for the reactor's next turn.  What the kernel does not take, and
    every write on another transport (TLS), is queued as Twisted does.
    """
    if (isinstance(transport, Connection) and transport.connected
            and not transport.disconnecting and not _queued(transport)):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int):
            data = data[sent:]
        # Else failed: queued below, the reactor meets the same error on
        # its next turn and closes the connection.
    if data:
        transport.write(data)


def _queued(transport):
    # Twisted's FileDescriptor queue (the same attributes since Twisted 8):
    # written, not with the kernel yet.
    return (len(transport.dataBuffer) - transport.offset
            + transport._tempDataLen)


def _flush(transport):
    # A TLS transport copies its socket's interfaces: only the socket's own
    # descriptor says whether it is open.
    if (isinstance(transport, FileDescriptor) and transport.connected
            and not transport.disconnecting and _queued(transport)):
        if transport.doWrite() is not None:
            # Failed (or closing): leave it to the reactor, which meets the
            # same outcome on the next turn and closes the connection.
            transport.startWriting()
