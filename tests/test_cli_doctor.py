"""
Tests for C{kt doctor} (L{keeptrusts.cli.doctor}, L{keeptrusts.cli.probes}).
"""

import http.client
import http.server
import io
import json
import os
import socket
import threading

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.cli import doctor
from keeptrusts.cli.doctor import (
    FAIL, OK, WARN, checkCA, checkGateway, checkJournal, listenURL, runDoctor)
from keeptrusts.cli.init import template
from keeptrusts.cli.main import Runtime, buildParser, main
from keeptrusts.cli.probes import Probes, httpGet, resolveHosts
from keeptrusts.journal import Journal
from keeptrusts.journalformat import segmentName
from keeptrusts.tls.ca import CertificateAuthority

# 2026-11-17T03:33:20Z
NOW = 1795000000
SECRET = "sk-test-do-not-print-1234567890"


def fakeProbes(environ=None, unresolved=(), get=None):
    def resolve(hosts, timeout):
        return {h: (OSError(-2, "Name or service not known")
                    if h in unresolved else None) for h in hosts}
    if environ is None:
        environ = {"OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET}
    return Probes(environ, resolve, get or (lambda url, timeout: 200))


class DoctorTestMixin:

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        self.stateDir = os.path.join(self.directory, "state")
        os.makedirs(self.stateDir)
        self.configPath = os.path.join(self.directory, "policy-config.yaml")
        self.writeConfig(template().replace(
            "  # state_dir: ~/.local/state/keeptrusts",
            "  state_dir: " + self.stateDir))
        self.clock = Clock()
        self.clock.advance(NOW)

    def writeConfig(self, text):
        with open(self.configPath, "w") as f:
            f.write(text)

    def makeCA(self):
        return CertificateAuthority.loadOrCreate(self.stateDir, self.clock)

    def makeJournal(self, count=3):
        journal = Journal.open(os.path.join(self.stateDir, "journal"),
                               self.clock, sync="never")
        for i in range(count):
            journal.append({"phase": "input", "n": i})
        journal.close()

    def doctor(self, *args, probes=None):
        """
        @return: C{(exit code, stdout lines)}; stderr must stay empty.
        """
        options = buildParser().parse_args(["doctor", *args])
        out, err = io.StringIO(), io.StringIO()
        code = runDoctor(options, Runtime(out, err, now=lambda: NOW),
                         probes or fakeProbes())
        self.assertEqual(err.getvalue(), "")
        self.assertNotIn(SECRET, out.getvalue())
        return code, out.getvalue().splitlines()

    def statuses(self, lines):
        """
        Check name -> status, from the text lines.
        """
        found = {}
        for line in lines[1:-1]:
            if not line.startswith(" "):
                status, _, rest = line.partition(" ")
                found[rest.strip().partition(":")[0]] = status
        return found


class DoctorTests(DoctorTestMixin, SynchronousTestCase):

    def test_allGood(self):
        self.makeCA()
        self.makeJournal()
        code, lines = self.doctor("-c", self.configPath)
        self.assertEqual(code, 0)
        self.assertEqual(lines[0], "Keeptrusts Gateway Diagnostics")
        self.assertEqual(lines[-1], "10 OK, 0 WARN, 0 FAIL")
        self.assertEqual(set(self.statuses(lines).values()), {OK})
        self.assertIn("OK   target openai key: OPENAI_API_KEY is set", lines)
        self.assertIn("OK   gateway: answers at http://127.0.0.1:41002 "
                      "(GET /healthz: 200)", lines)

    def test_freshMachine(self):
        """
        No keys, no DNS, no CA, no journal, no gateway: all WARN, exit 0;
        nothing is created.
        """
        def refused(url, timeout):
            raise ConnectionRefusedError(111, "Connection refused")
        probes = fakeProbes(
            environ={}, get=refused, unresolved=(
                "sourcegraph.com", "api.openai.com", "api.anthropic.com"))
        code, lines = self.doctor("-c", self.configPath, probes=probes)
        self.assertEqual(code, 0)
        self.assertEqual(lines[-1], "2 OK, 8 WARN, 0 FAIL")
        self.assertIn(
            "WARN target openai key: OPENAI_API_KEY is not set in this "
            "environment: the gateway marks openai unavailable", lines)
        self.assertIn(
            "WARN target openai hosts: cannot resolve (offline?): "
            "api.openai.com: Name or service not known", lines)
        self.assertIn("WARN gateway: not running (connection refused at "
                      "http://127.0.0.1:41002)", lines)
        self.assertEqual(os.listdir(self.stateDir), [])

    def test_badConfig(self):
        """
        A config that does not load fails with each problem at its path;
        the checks that need no config still run, on the defaults.
        """
        self.writeConfig(template().replace("action: redact", "acton: x"))
        code, lines = self.doctor("-c", self.configPath,
                                  "--state-dir", self.stateDir)
        self.assertEqual(code, 1)
        self.assertEqual(lines[1], "FAIL config: %s: 1 problem"
                         % (self.configPath,))
        self.assertEqual(lines[2].strip(), "policy.dlp-filter.acton: unknown "
                         "key (did you mean 'action'?)")
        self.assertEqual(list(self.statuses(lines)),
                         ["config", "ca", "journal", "gateway"])

    def test_missingConfigFile(self):
        code, lines = self.doctor("-c", self.configPath + ".missing")
        self.assertEqual(code, 1)
        self.assertIn("No such file or directory", lines[2])

    def test_noConfigFound(self):
        self.patch(doctor, "DEFAULT_CONFIGS",
                   (os.path.join(self.directory, "nowhere.yaml"),))
        code, lines = self.doctor("--state-dir", self.stateDir)
        self.assertEqual(code, 1)
        self.assertIn("give -c FILE", lines[1])

    def test_stateDirOverrides(self):
        other = os.path.join(self.directory, "other")
        code, lines = self.doctor("-c", self.configPath, "--state-dir", other)
        self.assertIn(os.path.join(other, "journal"), "\n".join(lines))

    def test_json(self):
        self.makeJournal()
        code, lines = self.doctor("-c", self.configPath, "--json")
        result = json.loads("\n".join(lines))
        self.assertEqual((code, result["ok"]), (0, True))
        checks = {c["name"]: c for c in result["checks"]}
        self.assertEqual(checks["ca"]["status"], "warn")
        self.assertEqual(checks["journal"]["status"], "ok")
        self.assertEqual(checks["config"]["details"], [])

    def test_throughMain(self):
        """
        C{kt doctor} is found as a command; here with the real probes
        patched out.
        """
        self.patch(doctor, "Probes", lambda: fakeProbes())
        out, err = io.StringIO(), io.StringIO()
        code = main(["doctor", "-c", self.configPath],
                    Runtime(out, err, now=lambda: NOW))
        self.assertEqual(code, 0)
        self.assertIn("Keeptrusts Gateway Diagnostics", out.getvalue())


class CATests(DoctorTestMixin, SynchronousTestCase):

    def test_good(self):
        ca = self.makeCA()
        self.assertEqual(checkCA(self.stateDir, NOW).status, OK)
        self.assertIn(ca.certPath, checkCA(self.stateDir, NOW).message)

    def test_keyMode(self):
        ca = self.makeCA()
        os.chmod(ca.keyPath, 0o644)
        check = checkCA(self.stateDir, NOW)
        self.assertEqual(check.status, FAIL)
        self.assertIn("has mode 0644", check.message)
        self.assertIn("chmod 600 " + ca.keyPath, check.message)

    def test_directoryMode(self):
        ca = self.makeCA()
        os.chmod(os.path.dirname(ca.certPath), 0o755)
        check = checkCA(self.stateDir, NOW)
        self.assertEqual(check.status, WARN)
        self.assertIn("not 0700", check.message)

    def test_incomplete(self):
        ca = self.makeCA()
        os.remove(ca.keyPath)
        check = checkCA(self.stateDir, NOW)
        self.assertEqual((check.status, check.message),
                         (FAIL, "%s is missing: the CA is incomplete"
                          % (ca.keyPath,)))

    def test_expiry(self):
        self.makeCA()
        self.assertEqual(checkCA(self.stateDir, NOW + 3640 * 86400).status,
                         WARN)
        self.assertEqual(checkCA(self.stateDir, NOW + 3660 * 86400).status,
                         FAIL)

    def test_notPEM(self):
        ca = self.makeCA()
        with open(ca.certPath, "wb") as f:
            f.write(b"junk")
        self.assertEqual(checkCA(self.stateDir, NOW).status, FAIL)


class JournalTests(DoctorTestMixin, SynchronousTestCase):

    def test_intact(self):
        self.makeJournal()
        path = os.path.join(self.stateDir, "journal")
        check = checkJournal(path)
        self.assertEqual((check.status, check.message),
                         (OK, path + ": 3 records in 1 segments, chain "
                          "intact"))

    def test_edited(self):
        self.makeJournal()
        path = os.path.join(self.stateDir, "journal", segmentName(1))
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data.replace(b'"n":1', b'"n":5'))
        check = checkJournal(os.path.dirname(path))
        self.assertEqual(check.status, FAIL)
        self.assertIn("00000001.jsonl line 2 (seq 2): hash mismatch",
                      check.message)

    def test_notADirectory(self):
        path = os.path.join(self.stateDir, "journal")
        open(path, "w").close()
        self.assertEqual(checkJournal(path).status, FAIL)

    def test_notWritable(self):
        """
        Checked with C{os.access} for this user (faked here: root may
        write anywhere).
        """
        self.makeJournal()
        path = os.path.join(self.stateDir, "journal")
        asked = []
        self.patch(os, "access", lambda p, mode: asked.append((p, mode)))
        check = checkJournal(path)
        self.assertEqual(asked, [(path, os.W_OK | os.X_OK)])
        self.assertEqual(check.status, FAIL)
        self.assertIn("not writable", check.message)


class GatewayTests(SynchronousTestCase):

    def test_listenURL(self):
        for description, url in [
                ("tcp:41002:interface=127.0.0.1", "http://127.0.0.1:41002"),
                ("tcp:8080", "http://127.0.0.1:8080"),
                ("tcp:port=9000:interface=0.0.0.0", "http://127.0.0.1:9000"),
                ("tcp6:41002:interface=\\:\\:1", "http://[::1]:41002"),
                ("tcp:41002:interface=\\:\\:", "http://[::1]:41002"),
                ("systemd:domain=INET:index=0", None),
                ("unix:/run/kt.sock", None)]:
            self.assertEqual(listenURL(description), url, description)

    def test_fallbackToModels(self):
        asked = []

        def get(url, timeout):
            asked.append(url)
            return 404 if url.endswith("/healthz") else 401
        check = checkGateway("tcp:41002:interface=127.0.0.1", get)
        self.assertEqual((check.status, check.message), (OK, (
            "answers at http://127.0.0.1:41002 (GET /v1/models: 401)")))
        self.assertEqual(asked, ["http://127.0.0.1:41002/healthz",
                                 "http://127.0.0.1:41002/v1/models"])

    def test_unhealthy(self):
        check = checkGateway("tcp:41002", lambda url, timeout: 500)
        self.assertEqual(check.status, WARN)

    def test_errors(self):
        def raising(error):
            def get(url, timeout):
                raise error
            return get
        for error, status in [
                (TimeoutError("timed out"), FAIL),
                (http.client.BadStatusLine("SSH-2.0"), FAIL),
                (OSError(113, "No route to host"), WARN),
                (ConnectionRefusedError(111, "refused"), WARN)]:
            self.assertEqual(checkGateway("tcp:41002", raising(error)).status,
                             status, error)

    def test_systemd(self):
        check = checkGateway("systemd:domain=INET:index=0", None)
        self.assertEqual((check.status, check.message),
                         (WARN, "cannot check a systemd listener from here"))


class ProbeTests(SynchronousTestCase):
    """
    The real probes, on loopback only.
    """

    def test_resolveHosts(self):
        release = threading.Event()
        self.addCleanup(release.set)
        realGetaddrinfo = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            if host == "slow.invalid":
                release.wait()
            if host == "bad.invalid":
                raise socket.gaierror(-2, "Name or service not known")
            return realGetaddrinfo(host, *args, **kwargs)
        self.patch(socket, "getaddrinfo", getaddrinfo)
        result = resolveHosts(["localhost", "bad.invalid", "slow.invalid"],
                              0.01)
        self.assertIsNone(result["localhost"])
        self.assertIsInstance(result["bad.invalid"], socket.gaierror)
        self.assertIsInstance(result["slow.invalid"], TimeoutError)

    def test_httpGet(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(204 if self.path == "/healthz" else 404)
                self.end_headers()

            def log_message(self, *args):
                pass
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.addCleanup(server.server_close)
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        self.addCleanup(thread.join)
        port = server.server_address[1]
        self.assertEqual(httpGet("http://127.0.0.1:%d/healthz" % (port,), 5),
                         204)

    def test_httpGetRefused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.assertRaises(ConnectionRefusedError, httpGet,
                          "http://127.0.0.1:%d/healthz" % (port,), 5)
