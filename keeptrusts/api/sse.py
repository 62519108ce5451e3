# -*- test-case-name: tests.test_api_sse -*-
"""
Server-sent events: split a byte stream into events, whatever the chunking.
"""

import re

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_BOM = b"\xef\xbb\xbf"


class EventSplitter:
    """
    Feed bytes, get whole events (the bytes of each event without its
    trailing blank line).  A byte order mark the stream starts with is
    dropped, as a client following the SSE standard drops it: the first
    event is read as that client reads it.
    """

    def __init__(self):
        self._buffer = b""
        self._started = False

    def feed(self, data):
        buf = self._buffer + data if self._buffer else data
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buffer = buf  # may still be the mark
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        events = []
        pos = 0
        for boundary in _BOUNDARY.finditer(buf):
            events.append(buf[pos:boundary.start()])
            pos = boundary.end()
        self._buffer = buf[pos:]
        return events

    def rest(self):
        """
        Whatever came after the last complete event.
        """
        rest, self._buffer = self._buffer, b""
        return rest


def eventData(event):
    """
    @return: C{(event name or None, joined data bytes or None)}.
    """
    return readEvent(event)[:2]


def readEvent(event):
    """
    @return: C{(event name or None, joined data bytes or None, plain)},
        C{plain} telling whether C{event} has no line but C{event:} and
        C{data:} ones (no comment, C{id:}, C{retry:} or other field).
    """
    name = None
    data = []
    plain = True
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip()
        else:
            plain = False
    return name, (b"\n".join(data) if data else None), plain
