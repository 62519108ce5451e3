"""
The forward proxy end to end, as VS Code and Cody use it: a real gateway
service, CONNECT with TLS interception by the local CA in front of a fake
provider that serves real TLS with a test CA; real clients: curl, httpx,
and a Node.js client through https-proxy-agent.
"""

import inspect
import json
import os
import shutil

import httpx
from twisted.internet import defer, reactor, threads
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.server import Site

from keeptrusts.config import parseConfig
from keeptrusts.policy.registry import policyFactories
from keeptrusts.service import GatewayService
from keeptrusts.testing import FakeProvider, Script, echoPrompt
from keeptrusts.tls.ca import CertificateAuthority, certificatePath
from keeptrusts.tls.sni import FixedServerCreator

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_CLIENT = os.path.join(HERE, "node", "proxy-client.js")

CONFIG = """
pack: {name: intercept, version: 1.0.0, enabled: true}
gateway:
  listen: "tcp:0:interface=127.0.0.1"
  state_dir: %(state)s
  intercept: {hosts: [localhost], upstream_ca_file: %(upstreamCA)s}
  proxy: {allowed_ports: [%(port)d]}
providers:
  targets:
    - id: sourcegraph
      provider: sourcegraph
      type: passthrough
      hosts: [localhost]
policies: {chain: [dlp-filter, audit-logger]}
policy:
  dlp-filter: {detect_patterns: ['ACME-[0-9]{8}']}
  audit-logger: {log_all_access: true}
"""


class InterceptTests(TestCase):
    def setUp(self):
        # The provider's own CA: the gateway trusts it as upstream_ca_file.
        upstreamCA = CertificateAuthority.loadOrCreate(self.mktemp(), reactor)
        certPEM, keyPEM = upstreamCA.issueServerCertificate(
            ["localhost", "127.0.0.1"])
        self.provider = FakeProvider(reactor, Script(answer=echoPrompt))
        site = Site(self.provider)
        site.log = lambda request: None
        port = reactor.listenSSL(0, site, FixedServerCreator.fromPEM(
            certPEM, keyPEM), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(self.provider.stop)
        self.providerPort = port.getHost().port
        state = FilePath(self.mktemp())
        config = parseConfig(CONFIG % dict(
            state=state.path, upstreamCA=upstreamCA.certPath,
            port=self.providerPort), policyFactories())
        self.service = GatewayService(config, reactor, policyFactories(),
                                      environ={})
        self.service.privilegedStartService()
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.proxy = "http://127.0.0.1:%d" % (
            self.service.port.getHost().port,)
        self.gatewayCA = certificatePath(state.path)
        self.journal = state.child("journal")

    def url(self, path):
        return "https://localhost:%d%s" % (self.providerPort, path)

    def records(self):
        return [json.loads(line) for segment in sorted(self.journal.children())
                for line in segment.getContent().splitlines()]

    def codyBody(self, text):
        return json.dumps({"messages": [{"speaker": "human", "text": text}],
                           "maxTokensToSample": 50})

    @defer.inlineCallbacks
    def test_curlChat(self):
        out, err, code = yield getProcessOutputAndValue("/usr/bin/curl", [
            "-s", "--proxy", self.proxy, "--cacert", self.gatewayCA,
            "-H", "content-type: application/json", "-d", json.dumps({
                "model": "gpt-fake", "messages": [
                    {"role": "user", "content": "id ACME-12345678"}]}),
            self.url("/v1/chat/completions")])
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["choices"][0]["message"]["content"],
                         "id [REDACTED:CUSTOM_PATTERN]")
        self.assertEqual(
            self.provider.requests[-1].json["messages"][0]["content"],
            "id [REDACTED:CUSTOM_PATTERN]")

    @defer.inlineCallbacks
    def test_curlCodyStream(self):
        self.provider.script = Script(chunks=["x ", "ACME-1", "2345678", " y"])
        out, err, code = yield getProcessOutputAndValue("/usr/bin/curl", [
            "-s", "-N", "--proxy", self.proxy, "--cacert", self.gatewayCA,
            "-H", "content-type: application/json",
            "-H", "authorization: token sgp_0123456789abcdef",
            "-d", self.codyBody("leak ACME-87654321"),
            self.url("/.api/completions/stream?api-version=1")])
        self.assertEqual(code, 0, err)
        received = self.provider.requests[-1]
        self.assertEqual(received.headers["authorization"],
                         "token sgp_0123456789abcdef")
        self.assertEqual(received.json["messages"][0]["text"],
                         "leak [REDACTED:CUSTOM_PATTERN]")
        deltas = "".join(json.loads(e.split("data: ", 1)[1]).get(
            "deltaText", "") for e in out.decode().split("\n\n")
            if e.startswith("event: completion"))
        self.assertEqual(deltas, "x [REDACTED:CUSTOM_PATTERN] y")
        yield self.service.stopService()
        events = [(r["phase"], r["mode"], r["provider"], r["endpoint"],
                   r["verdict"]) for r in self.records()]
        self.assertIn(("input", "intercept", "sourcegraph",
                       "completions/stream", "redact"), events)
        self.assertIn(("access", "intercept", "", "", "allow"), [
            (r["phase"], r["mode"], r["provider"], r["endpoint"],
             r["verdict"]) for r in self.records()])

    @defer.inlineCallbacks
    def test_codyContextSearchRead(self):
        """
        Cody's context search (Sourcegraph GraphQL, C{GetCodyContext})
        carries the user's chat text: it is read, redacted and journaled as
        any other JSON call, and goes on with Cody's own token (found by
        review: it reached Sourcegraph unread).
        """
        body = json.dumps({
            "query": "query GetCodyContext($repos: [ID!]!, $query: String!) "
                     "{ getCodyContext(repos: $repos, query: $query) "
                     "{ __typename } }",
            "variables": {"repos": ["UmVwb3NpdG9yeTox"],
                          "query": "how do I use my key ACME-12345678"}})
        out, err, code = yield getProcessOutputAndValue("/usr/bin/curl", [
            "-s", "--proxy", self.proxy, "--cacert", self.gatewayCA,
            "-H", "content-type: application/json",
            "-H", "authorization: token sgp_0123456789abcdef",
            "-d", body, self.url("/.api/graphql?GetCodyContext")])
        self.assertEqual(code, 0, err)
        received = self.provider.requests[-1]
        self.assertEqual(received.uri, "/.api/graphql?GetCodyContext")
        self.assertEqual(received.json["variables"]["query"],
                         "how do I use my key [REDACTED:CUSTOM_PATTERN]")
        self.assertEqual(received.headers["authorization"],
                         "token sgp_0123456789abcdef")
        yield self.service.stopService()
        self.assertIn(("input", "intercept", "sourcegraph", ".api/graphql",
                       "redact"),
                      [(r["phase"], r["mode"], r["provider"], r["endpoint"],
                        r["verdict"]) for r in self.records()])

    @defer.inlineCallbacks
    def test_doubleSlashPath(self):
        """
        Inside the tunnel, C{//v1/chat/completions} is read as the chat
        call and goes out on that very path (found by review: it went out
        as C{/chat/completions}).
        """
        out, err, code = yield getProcessOutputAndValue("/usr/bin/curl", [
            "-s", "--path-as-is", "--proxy", self.proxy,
            "--cacert", self.gatewayCA,
            "-H", "content-type: application/json", "-d", json.dumps({
                "model": "gpt-fake", "messages": [
                    {"role": "user", "content": "id ACME-12345678"}]}),
            self.url("//v1/chat/completions")])
        self.assertEqual(code, 0, err)
        received = self.provider.requests[-1]
        self.assertEqual(received.uri, "//v1/chat/completions")
        self.assertEqual(received.json["messages"][0]["content"],
                         "id [REDACTED:CUSTOM_PATTERN]")

    @defer.inlineCallbacks
    def test_curlUploads(self):
        """
        curl's multipart uploads inside the tunnel (a batch's JSON lines, a
        transcription's prompt beside its audio) and its query string are
        read: redacted in place, or refused (found by review: bodies that
        are no JSON went on unread).
        """
        jsonl = FilePath(self.mktemp())
        jsonl.setContent(json.dumps({"custom_id": "1", "body": {
            "messages": [{"role": "user", "content": "id ACME-12345678"}]}}
        ).encode() + b"\n")
        audio = FilePath(self.mktemp())
        audio.setContent(b"RIFF\x00\x00WAVE\xff\xfe ACME-12345678")
        for path, fields in [
                ("/v1/files", ["purpose=batch", "file=@%s;type=application/"
                               "jsonl" % (jsonl.path,)]),
                ("/v1/audio/transcriptions", [
                    "file=@%s;type=audio/wav" % (audio.path,),
                    "prompt=say ACME-87654321"])]:
            args = ["-s", "--proxy", self.proxy, "--cacert", self.gatewayCA]
            for f in fields:
                args += ["-F", f]
            out, err, code = yield getProcessOutputAndValue(
                "/usr/bin/curl", args + [self.url(path)])
            self.assertEqual(code, 0, err)
            received = self.provider.requests[-1]
            self.assertEqual(received.path, path)
            self.assertIn(b"[REDACTED:CUSTOM_PATTERN]", received.body)
            self.assertTrue(received.headers["content-type"].startswith(
                "multipart/form-data; boundary="))
        self.assertIn(b"id [REDACTED:CUSTOM_PATTERN]",
                      self.provider.requests[-2].body)
        self.assertIn(audio.getContent(), self.provider.requests[-1].body)
        self.assertNotIn(b"ACME-87654321", self.provider.requests[-1].body)
        count = len(self.provider.requests)
        out, err, code = yield getProcessOutputAndValue("/usr/bin/curl", [
            "-s", "-w", "%{http_code}", "-o", "/dev/null", "--proxy",
            self.proxy, "--cacert", self.gatewayCA,
            self.url("/v1/files?q=ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8")])
        self.assertEqual(out, b"409", err)
        self.assertEqual(len(self.provider.requests), count)

    def test_httpx(self):
        def call():
            # httpx 0.26 renamed proxies= (Debian 12 has 0.23) to proxy=.
            option = ("proxy" if "proxy" in inspect.signature(
                httpx.Client).parameters else "proxies")
            with httpx.Client(verify=self.gatewayCA,
                              **{option: self.proxy}) as c:
                return c.post(self.url("/.api/completions/code"),
                              content=self.codyBody("ACME-12345678"),
                              headers={"content-type": "application/json"})

        def check(response):
            self.assertEqual(response.status_code, 200)
            self.assertEqual(response.json()["completion"],
                             "[REDACTED:CUSTOM_PATTERN]")
        return threads.deferToThread(call).addCallback(check)

    @defer.inlineCallbacks
    def test_node(self):
        node = shutil.which("node")
        if node is None or not os.path.isdir(
                os.path.join(HERE, "node", "node_modules")):
            raise SkipTest("node or tests/node/node_modules missing "
                           "(scripts/test installs them)")
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=self.gatewayCA,
                   HTTPS_PROXY=self.proxy)
        out, err, code = yield getProcessOutputAndValue(node, [
            NODE_CLIENT, self.url("/.api/completions/code"),
            self.codyBody("ACME-12345678")], env=env)
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["completion"],
                         "[REDACTED:CUSTOM_PATTERN]")
