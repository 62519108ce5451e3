"""
The gateway service as twistd runs it: operations endpoints, metrics,
reload (good and bad configurations) and drain on stop.
"""

import hashlib
import json
from urllib.parse import urlsplit

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from prometheus_client.parser import text_string_to_metric_families
from twisted.web.client import HTTPConnectionPool
from twisted.web.test.requesthelper import DummyRequest

from keeptrusts.admin import Readyz

from keeptrusts.config import loadConfig
from keeptrusts.policy.registry import policyFactories
from keeptrusts.schema import ConfigError
from keeptrusts.service import GatewayService
from keeptrusts.testing import FakeProvider, Script, listenFake, waitUntil

CONFIG = """
pack: {name: service-test, version: %(version)s, enabled: true}
gateway:
  listen: "%(listen)s"
  state_dir: %(state)s
%(keys)s
providers:
  targets:
    - {id: fake, provider: openai, base_url: "%(base)s", models: [gpt-fake]}
policies: {chain: [dlp-filter, audit-logger]}
policy:
  dlp-filter: {blocked_terms: [bluebird]}
"""


def readRecords(directory):
    journal = FilePath(directory)
    return [json.loads(line) for segment in sorted(journal.children())
            if segment.basename().endswith(".jsonl")
            for line in segment.getContent().splitlines()]


class ServiceTests(TestCase):
    def setUp(self):
        self.provider = FakeProvider(reactor)
        _, self.base = listenFake(reactor, self.provider, self.addCleanup)
        self.state = FilePath(self.mktemp())
        self.configFile = FilePath(self.mktemp())
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    def writeConfig(self, version="1.0.0", keys="", extra="",
                    listen="tcp:0:interface=127.0.0.1"):
        self.configFile.setContent((CONFIG % dict(
            version=version, state=self.state.path, base=self.base,
            keys=keys, listen=listen) + extra).encode())

    def load(self):
        try:
            return loadConfig(self.configFile.path, policyFactories())
        except ConfigError as e:
            raise SystemExit(str(e))

    def start(self, keys="", extra="", **kw):
        self.writeConfig(keys=keys, extra=extra, **kw)
        self.service = GatewayService(self.load(), reactor, policyFactories(),
                                      environ={"KT_KEY": "kt-secret"},
                                      loadConfig=self.load)
        self.service.privilegedStartService()
        self.service.startService()
        self.stopped = False

        def stop():
            if not self.stopped:
                return self.service.stopService()
        self.addCleanup(stop)
        self.url = "http://127.0.0.1:%d" % (self.service.port.getHost().port,)

    def get(self, path, **kw):
        return treq.get(self.url + path, pool=self.pool, **kw)

    def post(self, path, body=b"", **kw):
        return treq.post(self.url + path, data=body, pool=self.pool, **kw)

    def chat(self, text="hi", stream=False):
        return self.post("/v1/chat/completions", json.dumps({
            "model": "gpt-fake", "stream": stream,
            "messages": [{"role": "user", "content": text}]}).encode())

    @defer.inlineCallbacks
    def test_health(self):
        self.start()
        response = yield self.get("/healthz")
        self.assertEqual(response.code, 200)
        yield response.content()
        response = yield self.get("/readyz")
        self.assertEqual(response.code, 200)
        yield response.content()
        health = yield (yield self.get("/health")).json()
        self.assertEqual((health["status"], health["config"]),
                         ("ok", "service-test@1.0.0"))
        self.assertEqual(health["targets"], [{
            "id": "fake", "provider": "openai", "available": True,
            "circuit": "closed"}])

    @defer.inlineCallbacks
    def test_metrics(self):
        self.start()
        response = yield self.chat("a bluebird")
        yield response.content()
        text = yield (yield self.get("/metrics")).text()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text)
                   for s in family.samples}
        self.assertEqual(samples[("keeptrusts_requests_total", (
            ("mode", "api"), ("model", "gpt-fake"), ("provider", "openai"),
            ("status", "200")))], 1.0)
        self.assertEqual(samples[("keeptrusts_policy_verdicts_total", (
            ("policy", "dlp-filter"), ("verdict", "redact")))], 1.0)
        self.assertEqual(samples[("keeptrusts_tokens_total", (
            ("direction", "input"), ("model", "gpt-fake"),
            ("provider", "openai")))], 2.0)
        self.assertEqual(samples[("keeptrusts_open_requests", ())], 1.0)

    @defer.inlineCallbacks
    def test_headLogsNoQuery(self):
        """
        A HEAD on an operations endpoint has the GET's head and no body:
        twisted.web logs a warning quoting the request, its query string
        and all, for a resource that returns one (found by review).
        """
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.start()
        key = "AKIAIOSFODNN7EXAMPLE"
        for path in ["/healthz", "/readyz", "/health", "/metrics"]:
            got = yield self.get(path)
            body = yield got.content()
            response = yield treq.request("HEAD", self.url + path + "?token="
                                          + key, pool=self.pool)
            self.assertEqual((yield response.content()), b"")
            self.assertEqual(response.code, 200, path)
            self.assertEqual(
                response.headers.getRawHeaders(b"content-type"),
                got.headers.getRawHeaders(b"content-type"))
            length = response.headers.getRawHeaders(b"content-length")
            if path in ("/healthz", "/readyz"):  # the others' figures move
                self.assertEqual(length, [b"%d" % (len(body),)])
            else:
                self.assertTrue(int(length[0]) > 0)
        self.assertEqual([formatEvent(e) for e in events
                          if key in formatEvent(e)], [])

    @defer.inlineCallbacks
    def test_configMasked(self):
        digest = hashlib.sha256(b"kt-other").hexdigest()
        self.start(keys="  access_keys:\n    - {id: a, user: alice, "
                        "key_env: KT_KEY}\n    - {id: b, user: bob, "
                        "key_sha256: %s}" % (digest,))
        response = yield self.get("/keeptrusts/config")
        self.assertEqual(response.code, 401)
        yield response.content()
        body = yield (yield self.get("/keeptrusts/config", headers={
            b"authorization": b"Bearer kt-secret"})).json()
        keys = body["config"]["gateway"]["access_keys"]
        self.assertEqual([k["key_sha256"] for k in keys], [None, "***"])
        self.assertNotIn(digest, json.dumps(body))
        self.assertEqual(body["name"], "service-test@1.0.0")

    @defer.inlineCallbacks
    def test_reload(self):
        self.start()
        self.writeConfig(version="2.0.0")
        response = yield self.post("/keeptrusts/config/reload")
        body = yield response.json()
        self.assertEqual((response.code, body["config"]),
                         (200, "service-test@2.0.0"))
        health = yield (yield self.get("/health")).json()
        self.assertEqual(health["config"], "service-test@2.0.0")
        response = yield self.chat()
        yield response.content()
        yield self.service.stopService()
        self.stopped = True
        records = list(readRecords(self.state.child("journal").path))
        self.assertEqual(records[0]["phase"], "config")
        self.assertEqual(records[0]["config"], "service-test@2.0.0")
        self.assertEqual(records[-1]["config"], "service-test@2.0.0")

    @defer.inlineCallbacks
    def test_reloadCannotOpenTheListener(self):
        """
        A new C{gateway.listen} waits for a restart, so a reload is judged
        as bound where the gateway listens: one that moves C{listen} to
        loopback and drops the access keys would leave the listener, still
        off loopback, open to anyone; it is refused.  One that keeps the keys
        is taken, and the keys still hold.
        """
        keys = "  access_keys:\n    - {id: a, user: alice, key_env: KT_KEY}"
        self.start(keys=keys, listen="tcp:0:interface=0.0.0.0")
        self.writeConfig(version="2.0.0")
        problems = self.service.reload()
        self.assertIn("tcp:0:interface=0.0.0.0 is not a loopback address",
                      problems)
        response = yield self.chat()
        self.assertEqual(response.code, 401)
        yield response.content()
        self.writeConfig(version="3.0.0", keys=keys)
        self.assertIsNone(self.service.reload())
        response = yield self.chat()
        self.assertEqual(response.code, 401)
        yield response.content()
        response = yield self.post("/v1/chat/completions", json.dumps({
            "model": "gpt-fake",
            "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={b"authorization": b"Bearer kt-secret"})
        self.assertEqual(response.code, 200)
        yield response.content()

    @defer.inlineCallbacks
    def connectStatus(self, target):
        """
        The status a CONNECT to C{target} (C{host:port}) gets.
        """
        class Head(Protocol):
            data = b""

            def connectionMade(self):
                self.transport.write(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                                     % (target, target))

            def dataReceived(self, data):
                self.data += data
        head = yield connectProtocol(TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.service.port.getHost().port), Head())
        yield waitUntil(reactor, lambda: b"\r\n\r\n" in head.data)
        head.transport.abortConnection()
        return int(head.data.split(b" ", 2)[1])

    @defer.inlineCallbacks
    def test_reloadChangesProxyPolicy(self):
        """
        A reload changes what CONNECT allows: the ports (and with them the
        rest of the proxy policy) of the configuration in force.
        """
        target = b"127.0.0.1:%d" % (urlsplit(self.base).port,)
        self.start(keys="  proxy: {allowed_ports: [443]}")
        self.assertEqual((yield self.connectStatus(target)), 403)
        self.writeConfig(keys="  proxy: {allowed_ports: [%d]}"
                         % (urlsplit(self.base).port,))
        self.assertIsNone(self.service.reload())
        self.assertEqual((yield self.connectStatus(target)), 200)

    @defer.inlineCallbacks
    def test_reloadKeepsCounts(self):
        """
        Rate-limit windows (and budgets) go on across a reload: a reload is
        no way around a limit.
        """
        limit = "global_rate_limit: {max_requests: 1, window_seconds: 600}\n"
        self.start(extra=limit)
        response = yield self.chat()
        yield response.content()
        self.assertEqual(response.code, 200)
        self.writeConfig(version="2.0.0", extra=limit)
        self.assertIsNone(self.service.reload())
        response = yield self.chat()
        yield response.content()
        self.assertEqual(response.code, 429)

    def test_readyzBeforeReady(self):
        class Starting:
            ready = False
        request = DummyRequest([b""])
        body = Readyz(Starting()).render_GET(request)
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(json.loads(body), {"status": "starting"})

    @defer.inlineCallbacks
    def test_streamAcrossReload(self):
        """
        A stream in flight during a reload finishes on the configuration
        it started with; the next request uses the new one.
        """
        self.start()
        self.provider.script = Script(chunks=["a", "b", "c"], hold=True)
        response = yield self.chat(stream=True)
        yield self.provider.whenHeld()
        self.writeConfig(version="2.0.0")
        self.assertIsNone(self.service.reload())
        self.provider.release()
        text = yield response.text()
        self.assertTrue(text.rstrip().endswith("data: [DONE]"))
        self.provider.script = Script()
        response = yield self.chat()
        yield response.content()
        yield self.service.stopService()
        self.stopped = True
        phases = [(r["phase"], r["config"]) for r in
                  readRecords(self.state.child("journal").path)]
        self.assertEqual(phases, [
            ("input", "service-test@1.0.0"), ("config", "service-test@2.0.0"),
            ("output", "service-test@1.0.0"), ("input", "service-test@2.0.0"),
            ("output", "service-test@2.0.0")])

    @defer.inlineCallbacks
    def test_badReloadKeepsConfig(self):
        self.start()
        self.configFile.setContent(self.configFile.getContent().replace(
            b"blocked_terms", b"blocked_term"))
        response = yield self.post("/keeptrusts/config/reload")
        body = yield response.json()
        self.assertEqual(response.code, 422)
        self.assertIn("policy.dlp-filter.blocked_term: unknown key",
                      body["error"]["message"])
        response = yield self.chat("bluebird")
        yield response.content()
        self.assertEqual(
            self.provider.requests[-1].json["messages"][0]["content"],
            "[REDACTED:BLOCKED_TERM]")
        yield self.service.stopService()
        self.stopped = True
        [event] = [r for r in readRecords(self.state.child("journal").path)
                   if r["phase"] == "config"]
        self.assertEqual((event["verdict"], event["config"]),
                         ("error", "service-test@1.0.0"))
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_badReloadScrubbed(self):
        """
        The problems of a refused configuration are scrubbed of keys where
        they are logged, journaled (for good) and answered: a key pasted
        into the file may be in a message (found by review), here a
        duplicate id's.
        """
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.start()
        key = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9o"
        target = b"    - {id: %s, provider: openai}\n" % (key.encode(),)
        self.configFile.setContent(self.configFile.getContent().replace(
            b"  targets:\n", b"  targets:\n" + target * 2))
        problems = self.service.reload()
        self.assertIn("duplicate target id '[REDACTED:OPENAI_API_KEY]'",
                      problems)
        self.assertNotIn(key, problems)
        logged = " ".join(formatEvent(e) for e in events)
        self.assertIn("[REDACTED:OPENAI_API_KEY]", logged)
        self.assertNotIn(key, logged)
        journal = self.state.child("journal").path
        yield self.service.stopService()
        self.stopped = True
        [event] = [r for r in readRecords(journal) if r["phase"] == "config"]
        self.assertIn("[REDACTED:OPENAI_API_KEY]", event["message"])
        self.assertNotIn(key, json.dumps(readRecords(journal)))
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def drainWithClientGone(self, stream):
        """
        The last request's client leaves during the drain: its output
        record still goes in the journal before the journal closes.
        """
        self.start()
        self.provider.script = Script(hang=True)
        body = json.dumps({
            "model": "gpt-fake", "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}).encode()
        client = yield connectProtocol(TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.service.port.getHost().port),
            Protocol())
        client.transport.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (len(body),) + body)
        yield waitUntil(reactor, lambda: self.provider.requests)
        stopping = self.service.stopService()
        self.stopped = True
        yield task.deferLater(reactor, 0.05, lambda: None)
        client.transport.loseConnection()
        yield stopping
        records = readRecords(self.state.child("journal").path)
        self.assertEqual([r["phase"] for r in records], ["input", "output"])
        self.assertTrue(records[1].get("client_gone"))

    def test_drainWithClientGone(self):
        return self.drainWithClientGone(stream=False)

    def test_drainWithStreamClientGone(self):
        return self.drainWithClientGone(stream=True)

    @defer.inlineCallbacks
    def test_drain(self):
        """
        A stop lets a stream in flight finish before the journal closes.
        """
        self.start()
        self.provider.script = Script(chunks=["a", "b", "c"], hold=True)
        response = yield self.chat(stream=True)
        yield self.provider.whenHeld()
        stopping = self.service.stopService()
        self.stopped = True
        done = []
        stopping.addBoth(lambda result: done.append(True) or result)
        yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(done, [])
        self.provider.release()
        text = yield response.text()
        self.assertTrue(text.rstrip().endswith("data: [DONE]"))
        yield stopping
        records = list(readRecords(self.state.child("journal").path))
        self.assertEqual([r["phase"] for r in records], ["input", "output"])
