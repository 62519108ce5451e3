"""
Tests for L{keeptrusts.api.sse}: splitting a byte stream into server-sent
events whatever the chunking, and reading an event's name and data.
"""

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.sse import EventSplitter, eventData, readEvent

settings.register_profile("keeptrusts", derandomize=True, deadline=None,
                          database=None)
PROFILE = settings.get_profile("keeptrusts")


def feedAll(splitter, pieces):
    events = []
    for piece in pieces:
        events.extend(splitter.feed(piece))
    return events


def splitAt(data, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


class EventSplitterTests(SynchronousTestCase):
    """
    L{EventSplitter} gives whole events without their blank line.
    """

    def test_oneEvent(self):
        splitter = EventSplitter()
        self.assertEqual(splitter.feed(b"data: hello\n\n"), [b"data: hello"])
        self.assertEqual(splitter.rest(), b"")

    def test_severalEventsInOneChunk(self):
        splitter = EventSplitter()
        self.assertEqual(
            splitter.feed(b"data: a\n\nevent: x\ndata: b\n\ndata: c\n\n"),
            [b"data: a", b"event: x\ndata: b", b"data: c"])

    def test_incompleteEventKept(self):
        splitter = EventSplitter()
        self.assertEqual(splitter.feed(b"data: a\n\ndata: b"), [b"data: a"])
        self.assertEqual(splitter.feed(b"c\n"), [])
        self.assertEqual(splitter.feed(b"\ndata: d"), [b"data: bc"])
        self.assertEqual(splitter.rest(), b"data: d")
        # rest() empties the buffer.
        self.assertEqual(splitter.rest(), b"")
        self.assertEqual(splitter.feed(b"data: e\n\n"), [b"data: e"])

    def test_byteOrderMarkDropped(self):
        """
        A byte order mark the stream starts with is dropped, as a client
        following the SSE standard drops it, whatever the chunking: its
        first event is read as that client reads it (it was no data line,
        read raw, its escaped text unread).  A later one is kept.
        """
        data = b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n"
        for cuts in ([], [1], [2], [1, 2], [3]):
            splitter = EventSplitter()
            self.assertEqual(feedAll(splitter, splitAt(data, cuts)),
                             [b"data: a", b"\xef\xbb\xbfdata: b"])
        splitter = EventSplitter()
        self.assertEqual(splitter.feed(b"\xef"), [])
        self.assertEqual(splitter.rest(), b"\xef")

    def test_crlfSeparators(self):
        splitter = EventSplitter()
        self.assertEqual(
            splitter.feed(b"event: x\r\ndata: a\r\n\r\ndata: b\r\n\r\n"),
            [b"event: x\r\ndata: a", b"data: b"])

    def test_crlfBoundarySplitEverywhere(self):
        data = b"data: a\r\n\r\ndata: b\r\n\r\n"
        for cut in range(1, len(data)):
            splitter = EventSplitter()
            self.assertEqual(feedAll(splitter, [data[:cut], data[cut:]]),
                             [b"data: a", b"data: b"], cut)
            self.assertEqual(splitter.rest(), b"")

    def test_crSeparators(self):
        splitter = EventSplitter()
        self.assertEqual(splitter.feed(b"data: a\rdata: b\r\rdata: c\r\r"),
                         [b"data: a\rdata: b", b"data: c"])

    def test_byteByByte(self):
        data = b"data: {\"x\": 1}\n\n: comment\n\ndata: [DONE]\n\n"
        splitter = EventSplitter()
        events = feedAll(splitter, [data[i:i + 1] for i in range(len(data))])
        self.assertEqual(events, [b'data: {"x": 1}', b": comment",
                                  b"data: [DONE]"])

    def test_emptyFeed(self):
        splitter = EventSplitter()
        self.assertEqual(splitter.feed(b""), [])
        self.assertEqual(splitter.feed(b"data: a"), [])
        self.assertEqual(splitter.feed(b""), [])
        self.assertEqual(splitter.rest(), b"data: a")

    def test_blankLinesGiveEmptyEvents(self):
        splitter = EventSplitter()
        self.assertEqual(splitter.feed(b"\n\ndata: a\n\n"), [b"", b"data: a"])

    @settings(PROFILE, max_examples=300)
    @given(st.data())
    def test_anyChunking(self, data):
        """
        However the stream is cut, the events are the same, and rest() is
        what follows the last blank line.
        """
        newline = data.draw(st.sampled_from([b"\n", b"\r\n", b"\r"]),
                            label="newline")
        line = st.tuples(
            st.sampled_from([b"data: ", b"data:", b"event: ", b": ",
                             b"id: "]),
            st.binary(max_size=10).map(
                lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
        event = st.lists(line, min_size=1, max_size=4).map(
            lambda lines: newline.join(a + b for a, b in lines))
        events = data.draw(st.lists(event, max_size=6), label="events")
        tail = data.draw(st.sampled_from([b"", b"data: partial"]),
                         label="tail")
        stream = b"".join(e + newline * 2 for e in events) + tail
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=15),
                         label="cuts")
        splitter = EventSplitter()
        self.assertEqual(feedAll(splitter, splitAt(stream, cuts)), events)
        self.assertEqual(splitter.rest(), tail)


class EventDataTests(SynchronousTestCase):
    """
    L{eventData} reads an event's name and its data lines.
    """

    def test_dataOnly(self):
        self.assertEqual(eventData(b'data: {"a": 1}'), (None, b'{"a": 1}'))

    def test_noSpaceAfterColon(self):
        self.assertEqual(eventData(b"data:[DONE]"), (None, b"[DONE]"))

    def test_onlyOneSpaceRemoved(self):
        self.assertEqual(eventData(b"data:  two"), (None, b" two"))

    def test_multiLineData(self):
        self.assertEqual(eventData(b"data: one\ndata: two\ndata:three"),
                         (None, b"one\ntwo\nthree"))

    def test_emptyDataLine(self):
        self.assertEqual(eventData(b"data: a\ndata:\ndata: b"),
                         (None, b"a\n\nb"))

    def test_eventName(self):
        self.assertEqual(
            eventData(b'event: content_block_delta\ndata: {"x": 1}'),
            (b"content_block_delta", b'{"x": 1}'))

    def test_eventNameWithoutSpace(self):
        self.assertEqual(eventData(b"event:done\ndata: {}"),
                         (b"done", b"{}"))

    def test_noData(self):
        self.assertEqual(eventData(b"event: ping"), (b"ping", None))
        self.assertEqual(eventData(b": keep-alive"), (None, None))
        self.assertEqual(eventData(b""), (None, None))

    def test_otherFieldsIgnored(self):
        self.assertEqual(eventData(b": note\nid: 7\nretry: 100\ndata: x"),
                         (None, b"x"))

    def test_crlfLines(self):
        self.assertEqual(eventData(b"event: error\r\ndata: a\r\ndata: b"),
                         (b"error", b"a\nb"))

    def test_crLines(self):
        self.assertEqual(eventData(b"data: a\rdata: b"), (None, b"a\nb"))

    def test_lastEventNameWins(self):
        self.assertEqual(eventData(b"event: a\nevent: b\ndata: x"),
                         (b"b", b"x"))


class OnlyNameAndDataTests(SynchronousTestCase):
    """
    L{readEvent} tells an event with nothing but a name and data from one
    with a comment, an id, a retry or another field.
    """

    def test_nameAndData(self):
        for event in (b"data: x", b"event: a\ndata: x\ndata: y", b"event: ping"):
            self.assertTrue(readEvent(event)[2], event)

    def test_otherLines(self):
        for event in (b": note\ndata: x", b"id: 7\ndata: x", b"data: x\nretry: 9",
                      b"data: x\r\nfield: y"):
            self.assertFalse(readEvent(event)[2], event)
