"""
Tests for L{keeptrusts.api.accesslog}: the access log's line, and that a
line written straight to twistd's stream is the line twistd would write.
"""

import io
import json
import time
from types import SimpleNamespace

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import (
    LogLevel, formatEvent, globalLogPublisher, textFileLogObserver)
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import ProxyAgent, readBody
from twisted.web.resource import Resource

from keeptrusts.api.accesslog import (
    NAMESPACE, LoggedLines, StreamLines, accessLine, accessLinesFor,
    shownTarget)
from keeptrusts.api.site import GatewaySite


def twistdWrites(line, when):
    """
    What twistd's own text observer writes for a logged C{line}.
    """
    out = io.StringIO()
    textFileLogObserver(out)({
        "log_format": "{line}", "line": line, "log_time": when,
        "log_namespace": NAMESPACE, "log_level": LogLevel.info})
    return out.getvalue()


class Lines:
    def __init__(self):
        self.written = []

    def write(self, line, fields):
        self.written.append((line, fields))


class Recording(io.StringIO):
    """
    A stream that records its calls, or fails them with C{error}.
    """

    def __init__(self, error=None):
        io.StringIO.__init__(self)
        self.calls = []
        self.error = error

    def write(self, text):
        if self.error is not None:
            raise self.error
        self.calls.append("write")
        return io.StringIO.write(self, text)

    def flush(self):
        self.calls.append("flush")


class StreamLinesTests(SynchronousTestCase):
    def test_asTwistdWritesIt(self):
        """
        Each line is byte for byte what twistd's text observer writes for
        the same line at the same time, across second boundaries and with
        a line that spans two.
        """
        times = [1700000000.0, 1700000000.25, 1700000000.999999,
                 1700000001.0, 1700000061.5, 1700003600.0,
                 # twistd rounds to the microsecond: the next second
                 1700003600.5, 1700003600.9999996]
        lines = ["POST /v1/chat/completions 200 1.2ms allow",
                 '{"method": "GET"}', "two\nlines", "a", "b", "c", "d", "e"]
        clock = iter(times)
        out = io.StringIO()
        sink = StreamLines(out, now=lambda: next(clock))
        for line in lines:
            sink.write(line, {})
        self.assertEqual(out.getvalue(), "".join(
            twistdWrites(line, when) for line, when in zip(lines, times)))

    def test_flushedEachLine(self):
        """
        Each line is flushed as it is written, as twistd flushes its own
        lines: the two sets keep their order.
        """
        out = Recording()
        sink = StreamLines(out, now=time.time)
        sink.write("one", {})
        sink.write("two", {})
        self.assertEqual(out.calls, ["write", "flush", "write", "flush"])

    def test_unencodable(self):
        """
        A character the stream cannot encode (a client's path, on a stream
        that is not UTF-8) is escaped in that line; the next line is
        written as usual (found by review: the first such line sent every
        later one down the slow way).
        """
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding="ascii")
        fallback = Lines()
        sink = StreamLines(out, now=lambda: 1700000000.0, fallback=fallback)
        sink.write("GET /\u4e2d 200 1.0ms -", {})
        sink.write("GET /x 200 1.0ms -", {})
        self.assertEqual(fallback.written, [])
        self.assertEqual(raw.getvalue().decode("ascii").splitlines(), [
            line.rstrip("\n") for line in (
                twistdWrites("GET /\\u4e2d 200 1.0ms -", 1700000000.0),
                twistdWrites("GET /x 200 1.0ms -", 1700000000.0))])

    def test_neverRaises(self):
        """
        Whatever the stream raises, the line goes to the fallback: a log
        line never fails the request it is about.
        """
        fallback = Lines()
        StreamLines(None, now=time.time, fallback=fallback).write("x", {})
        self.assertEqual(fallback.written, [("x", {})])

    def test_brokenStream(self):
        """
        Once the stream fails (closed, a broken pipe), lines go to the
        fallback, this one and the next, and nothing is raised.
        """
        for error in [OSError(32, "Broken pipe"),
                      ValueError("I/O operation on closed file")]:
            fallback = Lines()
            out = Recording(error)
            sink = StreamLines(out, now=time.time, fallback=fallback)
            sink.write("one", {"status": 200})
            sink.write("two", {"status": 201})
            self.assertEqual(fallback.written, [
                ("one", {"status": 200}), ("two", {"status": 201})])

    def test_loggedByDefault(self):
        """
        The fallback by default is twisted.logger.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        StreamLines(Recording(OSError()), now=time.time).write(
            "one", {"status": 200})
        [event] = [e for e in events if e.get("log_namespace") == NAMESPACE]
        self.assertEqual((event["line"], event["status"]), ("one", 200))


class LoggedLinesTests(SynchronousTestCase):
    def test_event(self):
        """
        A line is an info event of the site's namespace, its fields with it.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        LoggedLines().write("GET /x 200 1.0ms -", {"status": 200})
        [event] = [e for e in events if e.get("log_namespace") == NAMESPACE]
        self.assertEqual(
            (event["log_level"], event["log_format"], event["line"],
             event["status"]),
            (LogLevel.info, "{line}", "GET /x 200 1.0ms -", 200))


class AccessLinesForTests(SynchronousTestCase):
    """
    Lines go straight to standard output only where twistd logs there as
    text.
    """

    def options(self, **changed):
        options = {"nodaemon": True, "logfile": None, "syslog": False,
                   "logger": None}
        options.update(changed)
        return options

    def test_stdout(self):
        stdout = io.StringIO()
        for options in [self.options(), self.options(logfile="-"),
                        self.options(logfile="")]:
            sink = accessLinesFor(options, stdout)
            self.assertIsInstance(sink, StreamLines, options)
            sink.write("x", {})
            self.assertTrue(stdout.getvalue().endswith("#info] x\n"))

    def test_noStdout(self):
        """
        A process without a standard output (its descriptor 1 closed at
        start) logs through twisted.logger.
        """
        self.assertIsInstance(accessLinesFor(self.options(), None),
                              LoggedLines)

    def test_elsewhere(self):
        for options in [None, self.options(nodaemon=False),
                        self.options(logfile="gateway.log"),
                        self.options(syslog=True),
                        self.options(logger="my.observer")]:
            self.assertIsInstance(accessLinesFor(options, io.StringIO()),
                                  LoggedLines, options)


class SiteTests(SynchronousTestCase):
    def request(self):
        return SimpleNamespace(method=b"POST", path=b"/v1/embeddings?k=v",
                               code=200, ktStarted=time.monotonic(),
                               ktVerdict="redact")

    def test_siteWritesToItsLines(self):
        """
        A site writes each request's line to the sink it was given, in the
        format configured.
        """
        for accessLog, expected in [("text", "POST /v1/embeddings 200 "),
                                    ("json", '{"method": "POST", ')]:
            lines = Lines()
            GatewaySite(Resource(), 1024, accessLog=accessLog,
                        accessLines=lines).log(self.request())
            [(line, fields)] = lines.written
            self.assertTrue(line.startswith(expected), line)
            self.assertEqual(fields["path"], "/v1/embeddings")

    def test_off(self):
        lines = Lines()
        GatewaySite(Resource(), 1024, accessLog="off",
                    accessLines=lines).log(self.request())
        self.assertEqual(lines.written, [])

    def test_accessLine(self):
        line, fields = accessLine(self.request(), False)
        self.assertRegex(line, r"^POST /v1/embeddings 200 [0-9.]+ms redact$")
        self.assertEqual(set(fields),
                         {"method", "path", "status", "ms", "verdict"})

    def test_methodScrubbed(self):
        """
        A key sent as the method, as it came or upper-cased, is not in the
        line (found by review).
        """
        token = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
        for method in (token, token.upper()):
            request = self.request()
            request.method = method.encode("ascii")
            for asJSON in (False, True):
                line, fields = accessLine(request, asJSON)
                self.assertNotIn(method, line)
                self.assertEqual(fields["method"], "[REDACTED:GITHUB_TOKEN]")


class ShownTargetTests(SynchronousTestCase):
    def test_percentEncodedKey(self):
        """
        A key a proxied path hides by percent-encoding is kept out of the
        line, which shows the decoded path, redacted (found by review).
        """
        self.assertEqual(
            shownTarget(b"http://127.0.0.1:8080/keys/AKIA%49OSFODNN7EXAMPLE/"
                        b"ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3x%595?k=1"),
            "http://127.0.0.1:8080/keys/[REDACTED:AWS_ACCESS_KEY_ID]/"
            "[REDACTED:GITHUB_TOKEN]")
        self.assertEqual(shownTarget(b"/keys/%41KIAIOSFODNN7EXAMPLE"),
                         "/keys/[REDACTED:AWS_ACCESS_KEY_ID]")
        self.assertEqual(shownTarget(b"/a%20b"), "/a%20b")

    def test_keyInTheHost(self):
        """
        A key in an absolute URL's host is found in any casing.
        """
        for target in (b"http://AKIAIOSFODNN7EXAMPLE.invalid/x%20y",
                       b"http://u:p@akiaiosfodnn7example.invalid:80/x%20y"):
            self.assertIn(shownTarget(target), (
                "http://[REDACTED:AWS_ACCESS_KEY_ID].invalid/x%20y",
                "http://[REDACTED:AWS_ACCESS_KEY_ID].invalid:80/x%20y"))
        self.assertEqual(shownTarget(b"http://API.example/x"),
                         "http://API.example/x")


class MethodEndToEndTests(TestCase):
    @defer.inlineCallbacks
    def test_methodKeyNotRecorded(self):
        """
        A key sent as the method of a proxied request (any HTTP token is
        one) reaches neither the journal nor the access log (found by
        review).
        """
        from tests.test_api import Gateway
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        gw = Gateway(self)
        origin = gw.config.providers.targets[0].base_url.rsplit("/v1", 1)[0]
        agent = ProxyAgent(TCP4ClientEndpoint(reactor, "127.0.0.1",
                                              gw.port.getHost().port))
        token = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
        for method in (token, token.upper()):
            response = yield agent.request(method.encode("ascii"),
                                           (origin + "/v1/models").encode())
            yield readBody(response)
        records = [r for r in gw.journal.records if r.get("mode") == "proxy"]
        self.assertEqual([r["method"] for r in records],
                         ["[REDACTED:GITHUB_TOKEN]"] * 2)
        lines = [formatEvent(e) for e in events
                 if e.get("log_namespace") == NAMESPACE]
        self.assertEqual(len(lines), 2, lines)
        for method in (token, token.upper()):
            self.assertNotIn(method, json.dumps(gw.journal.records))
            self.assertNotIn(method, " ".join(lines))
