# -*- test-case-name: tests.test_api_accesslog -*-
"""
The access log: one compact line per request, and where it is written.

Through twisted.logger a line costs about as much as a tenth of the
gateway's own work on a request (the publisher, the classic text
formatter, a C{strftime} per line).  When twistd writes its log as text to
its standard output (C{twistd --nodaemon}, as the systemd unit and
C{scripts/run} run it), L{StreamLines} writes the very line twistd would,
itself, with its time stamp formatted once a second.
"""

import json
import time

from twisted.logger import Logger, formatTime
from zope.interface import implementer

from keeptrusts.interfaces import IAccessLog
from keeptrusts.policy.scrub import scrubbed, scrubbedName, scrubbedPath

# The lines' namespace: where the site logged them before they had a module.
NAMESPACE = "keeptrusts.api.site"


def accessLine(request, asJSON):
    """
    The line of one request: method, path (never its query, which may carry
    a key), status, milliseconds, and the verdict when policies ran.

    @return: the line (text or JSON), and its fields.
    """
    started = getattr(request, "ktStarted", None)
    fields = {
        # Any HTTP token is a method, a key too, upper-cased by the
        # client's library as like as not.
        "method": scrubbedName(request.method.decode("ascii", "replace")),
        "path": shownTarget(request.path),
        "status": request.code,
        "ms": round((time.monotonic() - started) * 1000.0, 1)
        if started is not None else None,
        "verdict": getattr(request, "ktVerdict", None)}
    if asJSON:
        return json.dumps(fields, sort_keys=True), fields
    return "%s %s %s %sms %s" % (
        fields["method"], fields["path"], fields["status"], fields["ms"],
        fields["verdict"] or "-"), fields


def shownTarget(target):
    """
    A request target as logs show it: without its query or the userinfo of
    an absolute URL, either of which may carry a key, and with the keys a
    path may hold (C{/bot<token>/getMe}), percent-encoded or not, or a host
    in any of its casings, replaced by their markers.
    """
    target = target.split(b"?", 1)[0].split(b"#", 1)[0]
    scheme, sep, rest = target.partition(b"://")
    if sep:
        authority, slash, path = rest.partition(b"/")
        authority = authority.rpartition(b"@")[2]
        target = scheme + sep + authority + slash + path
        host = authority.decode("utf-8", "replace")
        if scrubbedName(host) != scrubbed(host):
            # A key the host holds only in another casing (a DNS name has
            # none): the host and the path scrubbed each on its own.
            return (scheme.decode("utf-8", "replace") + "://"
                    + scrubbedName(host) + scrubbedPath(
                        (slash + path).decode("utf-8", "replace")))[:200]
    # Keys out before the cut: cut first, a key's tail would stay.
    return scrubbedPath(target.decode("utf-8", "replace"))[:200]


@implementer(IAccessLog)
class LoggedLines:
    """
    Lines as twisted.logger events, for whatever observers twistd has (a
    log file, syslog, a custom C{--logger}); the fields ride along for
    observers that keep them.
    """

    def __init__(self, logger=None):
        self._log = logger or Logger(namespace=NAMESPACE)

    def write(self, line, fields):
        self._log.info("{line}", line=line, **fields)


@implementer(IAccessLog)
class StreamLines:
    """
    Lines written as twistd's text observer writes an event
    (C{textFileLogObserver}: RFC 3339 time, C{[namespace#info]}, the line,
    continuation lines indented), straight to the stream it writes to.
    Each line is flushed at once, as that observer flushes its own, so the
    two keep their order.

    @param stream: the text stream twistd logs to.
    @param now: the clock of the time stamps, in seconds since the epoch.
    @param fallback: the L{IAccessLog} lines go to once the stream fails.
    """

    def __init__(self, stream, now=time.time, fallback=None):
        self._stream = stream
        self._now = now
        self._fallback = fallback or LoggedLines()
        self._failed = False
        self._second = None
        self._stamp = ""

    def write(self, line, fields):
        if self._failed:
            return self._fallback.write(line, fields)
        now = self._now()
        # The stamp shows whole seconds (twistd rounds to the microsecond
        # first), and the zone's offset then.
        second = int(round(now, 6))
        if second != self._second:
            self._second, self._stamp = second, formatTime(now)
        text = "%s [%s#info] %s\n" % (self._stamp, NAMESPACE,
                                      line.replace("\n", "\n\t"))
        try:
            try:
                self._stream.write(text)
            except UnicodeEncodeError:
                # A stream that cannot show a character (a client's path):
                # escaped, this line only.
                encoding = self._stream.encoding
                self._stream.write(text.encode(
                    encoding, "backslashreplace").decode(encoding))
            self._stream.flush()
        except Exception:
            # A closed or broken stream: twisted.logger's observers decide.
            # A log line never fails the request it is about.
            self._failed = True
            self._fallback.write(line, fields)


def accessLinesFor(twistdOptions, stdout):
    """
    Where access lines go, from twistd's own options: C{stdout} when twistd
    logs there as text (C{--nodaemon} without C{--logfile}, or
    C{--logfile=-}), else the logger.

    @param twistdOptions: twistd's L{ServerOptions}, or L{None} when the
        service is not made by twistd.
    @param stdout: the standard output as twistd finds it (it replaces
        C{sys.stdout} once it starts logging); L{None} when the process has
        none.
    """
    if (stdout is None or twistdOptions is None
            or not twistdOptions.get("nodaemon")):
        return LoggedLines()
    if twistdOptions.get("syslog") or twistdOptions.get("logger"):
        return LoggedLines()
    if twistdOptions.get("logfile") not in (None, "", "-"):
        return LoggedLines()
    return StreamLines(stdout)
