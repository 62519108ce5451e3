"""
C{twistd keeptrusts} as users run it: options, refusal of bad configs with
a non-zero exit, and a real gateway process serving a chat call whose
events C{kt events tail} then shows.
"""

import json
import os
import socket
import sys

import treq
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

import keeptrusts
from keeptrusts.parts import isLoopback
from keeptrusts.tap import Options, configure
from keeptrusts.testing import FakeProvider, listenFake

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(keeptrusts.__file__)))

GOOD = """
pack: {name: tap-test, version: 1.2.3, enabled: true}
gateway:
  state_dir: %(state)s
  journal: {sync: always}
providers:
  targets:
    - {id: fake, provider: openai, base_url: "%(base)s",
       secret_key_ref: {env: FAKE_KEY}}
policies: {chain: [dlp-filter, audit-logger]}
policy:
  dlp-filter: {detect_patterns: ['ACME-[0-9]{8}']}
"""


def environ():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    env["FAKE_KEY"] = "sk-provider"
    return env


def freePort():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ConfigureTests(SynchronousTestCase):
    def options(self, *argv):
        options = Options()
        options.parseOptions(list(argv))
        return options

    def writeConfig(self, text):
        path = FilePath(self.mktemp())
        path.setContent(text.encode("utf-8"))
        return path.path

    def test_configRequired(self):
        error = self.assertRaises(SystemExit, configure, self.options())
        self.assertIn("--config", str(error))

    def test_badConfigNamesPath(self):
        path = self.writeConfig(GOOD.replace("detect_patterns", "detect_pattern")
                                % dict(state="/tmp/x", base="http://a/v1"))
        error = self.assertRaises(SystemExit, configure,
                                  self.options("-c", path))
        self.assertIn("policy.dlp-filter.detect_pattern: unknown key "
                      "(did you mean 'detect_patterns'?)", str(error))

    def test_badConfigScrubbed(self):
        """
        The message of a bad configuration, which twistd's log shows, is
        scrubbed of keys, whatever part of it names one (here a duplicate
        id's).
        """
        key = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9o"
        target = "    - {id: %s, provider: openai}\n" % (key,)
        path = self.writeConfig((GOOD % dict(
            state="/tmp/x", base="http://a/v1")).replace(
                "  targets:\n", "  targets:\n" + target * 2))
        error = self.assertRaises(SystemExit, configure,
                                  self.options("-c", path))
        self.assertIn("duplicate target id '[REDACTED:OPENAI_API_KEY]'",
                      str(error))
        self.assertNotIn(key, str(error))

    def test_overrides(self):
        path = self.writeConfig(GOOD % dict(state="/tmp/x", base="http://a/v1"))
        config, factories = configure(self.options(
            "-c", path, "--listen", "tcp:0:interface=127.0.0.1",
            "--state-dir", "/tmp/y", "--fail-mode", "allow"))
        self.assertEqual((config.gateway.listen, config.gateway.state_dir,
                          config.gateway.fail_mode),
                         ("tcp:0:interface=127.0.0.1", "/tmp/y", "allow"))
        self.assertIn("dlp-filter", factories)

    def test_badFailMode(self):
        path = self.writeConfig(GOOD % dict(state="/tmp/x", base="http://a/v1"))
        self.assertRaises(SystemExit, configure,
                          self.options("-c", path, "--fail-mode", "maybe"))

    def test_openListenerRefused(self):
        path = self.writeConfig(GOOD % dict(state="/tmp/x", base="http://a/v1"))
        error = self.assertRaises(SystemExit, configure, self.options(
            "-c", path, "--listen", "tcp:41002"))
        self.assertIn("access_keys", str(error))

    def test_isLoopback(self):
        self.assertTrue(isLoopback("tcp:41002:interface=127.0.0.1"))
        self.assertTrue(isLoopback("tcp6:41002:interface=\\:\\:1"))
        self.assertFalse(isLoopback("systemd:domain=INET:index=0"))
        self.assertTrue(isLoopback("unix:/run/keeptrusts.sock"))
        self.assertFalse(isLoopback("tcp:41002"))
        self.assertFalse(isLoopback("tcp:41002:interface=0.0.0.0"))
        self.assertTrue(isLoopback("tcp:41002:interface=127.0.0.2"))
        self.assertTrue(isLoopback("tcp:41002:interface=localhost"))

    def test_isLoopbackReadsAsTwistedDoes(self):
        """
        Twisted binds the last C{interface=}; a name or an address that
        only begins like a loopback one is not loopback.
        """
        for description in [
                "tcp:41002:interface=127.0.0.1:interface=0.0.0.0",
                "tcp6:41002:interface=\\:\\:10",
                "tcp:41002:interface=localhost.example.com",
                "tcp:41002:interface=127.0.0.1.nip.io",
                "tcp:41002:interface=",
                "stdio:"]:
            self.assertFalse(isLoopback(description), description)
        self.assertTrue(isLoopback(
            "tcp:41002:interface=0.0.0.0:interface=127.0.0.1"))


class GatewayProcess(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        # twistd stopped by SIGTERM ends itself with that signal, cleanly.
        self.ended.callback(reason.value.exitCode or reason.value.signal)


class TwistdTests(TestCase):
    """
    The real twistd, in a child process.
    """

    def twistd(self, *args):
        return [sys.executable, "-c",
                "from twisted.scripts.twistd import run; run()",
                "--nodaemon", "--pidfile=", "keeptrusts"] + list(args)

    @defer.inlineCallbacks
    def test_badConfigExitsNonZero(self):
        path = FilePath(self.mktemp())
        path.setContent(b"pack: {name: x, version: 1, enabled: true}\n"
                        b"policies: {chain: [dlp-filter]}\n")
        argv = self.twistd("-c", path.path)
        out, err, code = yield getProcessOutputAndValue(
            argv[0], argv[1:], env=environ(), path=ROOT)
        self.assertNotEqual(code, 0)
        self.assertIn(b"pack.version: expected a string, got 1", out + err)

    @defer.inlineCallbacks
    def test_servesAndJournals(self):
        provider = FakeProvider(reactor)
        _, base = listenFake(reactor, provider, self.addCleanup)
        state = FilePath(self.mktemp())
        config = FilePath(self.mktemp())
        config.setContent((GOOD % dict(state=state.path, base=base)).encode())
        port = freePort()
        child = GatewayProcess()
        argv = self.twistd("-c", config.path, "--listen",
                           "tcp:%d:interface=127.0.0.1" % (port,))
        process = reactor.spawnProcess(child, argv[0], argv, env=environ(),
                                       path=ROOT)

        def stop():
            if child.ended.called:
                return None
            process.signalProcess("TERM")
            return child.ended
        self.addCleanup(stop)
        pool = HTTPConnectionPool(reactor, persistent=False)
        url = "http://127.0.0.1:%d/v1/chat/completions" % (port,)
        body = json.dumps({"model": "gpt-fake", "messages": [
            {"role": "user", "content": "my id ACME-12345678"}]}).encode()
        response = None
        for attempt in range(100):
            try:
                response = yield treq.post(url, data=body, pool=pool,
                                           headers={b"x-user-id": b"dev1"})
                break
            except Exception:
                if child.ended.called:
                    break
                yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertIsNotNone(response, child.output)
        answer = yield response.json()
        self.assertEqual(answer["choices"][0]["message"]["content"],
                         "Hello from the fake provider.")
        self.assertEqual(provider.requests[-1].json["messages"][0]["content"],
                         "my id [REDACTED:CUSTOM_PATTERN]")
        code = yield stop()
        self.assertIn(code, (0, 15), child.output)
        self.assertIn(b"Server Shut Down.", child.output)
        # The access line, written as twistd writes its own lines.
        self.assertRegex(
            child.output, rb"\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} "
            rb"\[keeptrusts\.api\.site#info\] POST /v1/chat/completions 200 "
            rb"[0-9.]+ms redact\n")

        kt = [sys.executable, "-m", "keeptrusts.cli.main", "events", "tail",
              "--journal", state.child("journal").path]
        env = environ()
        env["TZ"] = "UTC"
        out, err, code = yield getProcessOutputAndValue(
            kt[0], kt[1:] + ["--filter", "action=redact"], env=env, path=ROOT)
        self.assertEqual(code, 0, err)
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 1, out)
        self.assertRegex(lines[0], r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "
                         r"INPUT openai chat/completions user:dev1 REDACT "
                         r"dlp-filter:custom_pattern x1 \d+\.\dms$")
        out, err, code = yield getProcessOutputAndValue(
            kt[0], [kt[1], kt[2], "events", "verify", "--journal",
                    state.child("journal").path], env=env, path=ROOT)
        self.assertEqual((code, out.decode().splitlines()[0]),
                         (0, "OK: 2 records in 1 segments, chain intact"))
        journal = state.child("journal").child("00000001.jsonl").getContent()
        self.assertNotIn(b"12345678", journal)
