"""
Requests for their original destination: absolute-form forward proxying
(mode C{proxy}) with OpenAI-shaped and Sourcegraph (Cody) LLM calls going
through the policies, and other traffic relayed as it is.
"""

import base64
import gzip
import json
from types import SimpleNamespace

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import ProxyAgent, readBody
from twisted.web.http_headers import Headers

from keeptrusts.api.errors import GatewayError
from keeptrusts.api.paths import llmEndpoint
from keeptrusts.api.upstream import BytesProducer, UsableTarget
from keeptrusts.events import eventRecord
from keeptrusts.policy.values import Exchange
from keeptrusts.proxy.forward import ForwardProxy
from keeptrusts.proxy.origin import OriginTarget, splitTarget
from keeptrusts.testing import FakeProvider, Script, echoPrompt, listenFake
from tests.test_api_documents import pdf
from tests.test_api import Gateway


def sourcegraphBody(text):
    return {"messages": [{"speaker": "system", "text": "You are Cody"},
                         {"speaker": "human", "text": text}],
            "maxTokensToSample": 100, "temperature": 0}


class PathTests(SynchronousTestCase):
    def test_llmPaths(self):
        self.assertEqual(llmEndpoint(b"POST", b"/v1/chat/completions").name,
                         "chat/completions")
        self.assertEqual(llmEndpoint(b"POST", b"/chat/completions").name,
                         "chat/completions")
        self.assertEqual(
            llmEndpoint(b"POST", b"/v1/engines/copilot-codex/completions").name,
            "completions")
        self.assertEqual(llmEndpoint(b"POST", b"/.api/completions/stream").name,
                         "completions/stream")
        self.assertEqual(
            llmEndpoint(b"POST", b"/.api/completions/stream").provider,
            "sourcegraph")
        # What a server may read as the call itself is the call.
        for variant in [b"/v1//chat/completions", b"/v1/chat/completions/",
                        b"/v1/chat%2Fcompletions", b"//v1/chat/completions",
                        b"/openai/deployments/gpt4/chat/completions",
                        b"/openai/v1/chat/completions",
                        b"/.api/llm/chat/completions",
                        b"/v1/./chat/completions", b"/v1/x/../chat/completions",
                        b"/v1/%2e%2e/v1/chat/completions",
                        b"/../../v1/chat/completions",
                        b"/v1/chat/completions;v=1", b"/v1/chat/completions%3B",
                        b"/v1;x/chat/completions", b"/V1/CHAT/COMPLETIONS",
                        b"/v1\\chat\\completions", b"/v1/chat%5Ccompletions",
                        b"/openai/deployments/d/Chat/Completions"]:
            self.assertEqual(llmEndpoint(b"POST", variant).name,
                             "chat/completions", variant)
        for other in [b"/v1/chat/completions/..", b"/v1/chat/x/../../completions",
                      b"/v1/chat.completions", b"/v1/chat/completions.",
                      b"/v1/chat/completions/x"]:
            self.assertNotEqual(getattr(llmEndpoint(b"POST", other), "name",
                                        None), "chat/completions", other)
        self.assertEqual(
            llmEndpoint(b"POST", b"/v1/messages/count_tokens").name,
            "messages/count_tokens")
        self.assertEqual(
            llmEndpoint(b"POST", b"/openai/deployments/e/embeddings").name,
            "embeddings")
        # Azure names the model in the path: a body without one is valid.
        llmEndpoint(b"POST", b"/openai/deployments/gpt4/chat/completions"
                    ).validate({"messages": [{"role": "user",
                                              "content": "hi"}]})
        self.assertRaises(
            GatewayError, llmEndpoint(
                b"POST", b"/openai/deployments/gpt4/chat/completions"
            ).validate, {"messages": "x"})
        self.assertIsNone(llmEndpoint(b"GET", b"/v1/chat/completions"))
        self.assertIsNone(llmEndpoint(b"POST", b"/.api/graphql"))

    def test_originURL(self):
        self.assertEqual(OriginTarget("https", "example.com", 443).url(
            b"/a", b"x=1"), b"https://example.com/a?x=1")
        self.assertEqual(OriginTarget("http", "127.0.0.1", 8080).url(b"/a"),
                         b"http://127.0.0.1:8080/a")
        self.assertEqual(OriginTarget("https", "::1", 8443).url(b"/"),
                         b"https://[::1]:8443/")
        # Only the host is IDNA-encoded (the whole URL was: a long first
        # label failed, a name became "xn--http://...").
        self.assertEqual(
            OriginTarget("http", "münchen.example", 80).url(b"/x"),
            b"http://xn--mnchen-3ya.example/x")
        self.assertEqual(OriginTarget("https", "a" * 60 + ".example",
                                      443).url(b"/"),
                         b"https://" + b"a" * 60 + b".example/")


class OriginCredentialTests(SynchronousTestCase):
    """
    Which proxied requests get a configured target's key.
    """

    def origin(self, scheme, host, port, baseURL, kind="openai"):
        target = SimpleNamespace(id="t", type=kind, base_url=baseURL)
        return OriginTarget(scheme, host, port, UsableTarget(
            target, (b"authorization", b"Bearer sk-key")))

    def test_overTLS(self):
        self.assertEqual(self.origin(
            "https", "api.openai.com", 443,
            "https://api.openai.com/v1").credential,
            (b"authorization", b"Bearer sk-key"))

    def test_notInClearToATLSTarget(self):
        """
        A plain-HTTP request to a TLS target's host gets no key: it would
        cross the network in clear.
        """
        for port in (80, 443):
            self.assertIsNone(self.origin(
                "http", "api.openai.com", port,
                "https://api.openai.com/v1").credential)

    def test_inClearOnlyWhereTheTargetIs(self):
        base = "http://llm.internal:8080/v1"
        self.assertIsNotNone(
            self.origin("http", "llm.internal", 8080, base).credential)
        self.assertIsNotNone(
            self.origin("http", "LLM.internal", 8080, base).credential)
        self.assertIsNone(
            self.origin("http", "llm.internal", 8081, base).credential)
        self.assertIsNone(
            self.origin("http", "llm.internal", 8080, base,
                        kind="passthrough").credential)


class TargetFormTests(SynchronousTestCase):
    """
    Only a path or an absolute URL is a request target for an origin: any
    other form would extend the origin's host or port, and take its key
    there (C{GET .evil.example/v1/models} inside a tunnel to
    api.openai.com).
    """

    def test_pathsAndURLs(self):
        for uri, path in [(b"/v1/models?a=1", b"/v1/models"),
                          (b"http://h/v1/x", b"/v1/x"), (b"http://h", b"/"),
                          (b"http://h//v1/x", b"//v1/x"),
                          (b"/v1/x?a=1#f", b"/v1/x")]:
            self.assertEqual(splitTarget(SimpleNamespace(uri=uri))[0], path)

    def test_doubleSlashIsAPath(self):
        """
        An origin-form target is a path, whatever follows its first slash:
        C{//v1/chat/completions} is not a host C{v1} and a path
        C{/chat/completions} (found by review: inside a tunnel the call
        reached the provider on another path than the client's).
        """
        for uri, expected in [
                (b"//v1/chat/completions", (b"//v1/chat/completions", b"")),
                (b"//h/x?a=1", (b"//h/x", b"a=1")),
                (b"//v1:443/x", (b"//v1:443/x", b"")),
                (b"/a?b?c", (b"/a", b"b?c"))]:
            self.assertEqual(splitTarget(SimpleNamespace(uri=uri)), expected)

    def test_otherFormsRefused(self):
        for uri in [b".evil.example/v1/models", b":8443/v1/models",
                    b"@evil.example/v1", b"*", b"http:/v1/x", b"v1/models"]:
            with self.assertRaises(GatewayError) as caught:
                splitTarget(SimpleNamespace(uri=uri))
            self.assertEqual(caught.exception.status, 400, uri)

    def test_urlNeedsAPath(self):
        origin = OriginTarget("https", "api.openai.com", 443, None)
        self.assertEqual(origin.url(b"/v1/models"),
                         b"https://api.openai.com/v1/models")
        self.assertRaises(ValueError, origin.url, b".evil.example/v1")


class ShownHostTests(SynchronousTestCase):
    """
    What records show of a proxied request's destination: the host as the
    client wrote it, which the journal then scrubs in any casing.
    """

    def test_forwardProxy(self):
        current = SimpleNamespace(parts=SimpleNamespace(targetsByHost={}))
        proxy = ForwardProxy(current)
        for uri, host, shown in [
                (b"http://AKIAIOSFODNN7EXAMPLE.invalid:8080/x",
                 "akiaiosfodnn7example.invalid",
                 "AKIAIOSFODNN7EXAMPLE.invalid"),
                (b"http://u:p@API.Example/x", "api.example", "API.Example"),
                (b"http://api.example/x", "api.example", "api.example")]:
            origin = proxy.resourceFor(SimpleNamespace(uri=uri))._origin
            self.assertEqual((origin.host, origin.shownHost, origin.id),
                             (host, shown, shown))
            record = eventRecord("access", "allow", Exchange(
                request_id="r", mode="proxy", target=origin.id,
                host=origin.shownHost), "t@1")
            self.assertNotIn("iosfodnn7", record["target"].lower())
            self.assertNotIn("iosfodnn7", record["host"].lower())


class ProxyTestCase(TestCase):
    """
    A gateway in front of a fake provider, used as a plain HTTP proxy by
    Twisted's own ProxyAgent.
    """

    def setUp(self):
        self.gw = Gateway(self, action="redact")
        self.providerURL = self.gw.config.providers.targets[0].base_url
        self.origin = self.providerURL.rsplit("/v1", 1)[0]
        self.agent = ProxyAgent(TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.gw.port.getHost().port))

    @defer.inlineCallbacks
    def request(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        response = yield self.agent.request(
            method, (self.origin + path).encode(),
            Headers(headers or {b"content-type": [b"application/json"]}),
            BytesProducer(data) if data is not None else None)
        content = yield readBody(response)
        defer.returnValue((response, content))

    @defer.inlineCallbacks
    def send(self, method, path, body, headers=None, origin=None):
        response = yield self.agent.request(
            method, ((origin or self.origin) + path).encode(),
            Headers(headers or {}), BytesProducer(body) if body else None)
        content = yield readBody(response)
        defer.returnValue((response, content))


class ForwardProxyTests(ProxyTestCase):
    """
    The gateway as a plain HTTP proxy.
    """

    @defer.inlineCallbacks
    def test_chatRedacted(self):
        self.gw.provider.script = Script(answer=echoPrompt)
        response, content = yield self.request(b"POST", "/v1/chat/completions", {
            "model": "gpt-fake", "messages": [
                {"role": "user", "content": "id ACME-12345678"}]})
        self.assertEqual(response.code, 200)
        received = self.gw.provider.requests[-1]
        self.assertEqual(received.json["messages"][0]["content"],
                         "id [REDACTED:CUSTOM_PATTERN]")
        # The target serving this host injects its key.
        self.assertEqual(received.headers["authorization"],
                         "Bearer sk-provider-key")
        event = self.gw.events("input")[0]
        self.assertEqual((event["mode"], event["host"], event["verdict"],
                          event["provider"], event["target"]),
                         ("proxy", "127.0.0.1", "redact", "openai", "fake"))

    @defer.inlineCallbacks
    def test_routesReadTheCallAsItIsRead(self):
        """
        A route rule's path prefix is matched against the path as the call
        was read: a variant of a chat call under a lighter rule's prefix
        (C{/v1/completions/../chat/completions}) gets the chat call's chain,
        not the lighter one (found by review: routes read the raw path).
        """
        self.gw = Gateway(self, action="redact", extraTop=(
            "routes:\n  - match: {path_prefix: /v1/completions}\n"
            "    chain: [audit-logger]"))
        self.agent = ProxyAgent(TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.gw.port.getHost().port))
        self.origin = self.gw.config.providers.targets[0].base_url.rsplit(
            "/v1", 1)[0]
        for path, chain in [
                ("/v1/completions/../chat/completions",
                 ["dlp-filter", "audit-logger"]),
                ("/v1//Chat/Completions", ["dlp-filter", "audit-logger"]),
                # The rule still fits its own calls, whatever their case.
                ("/v1/COMPLETIONS", ["audit-logger"])]:
            yield self.request(b"POST", path, {
                "model": "gpt-fake", "prompt": "p", "messages": [
                    {"role": "user", "content": "id ACME-12345678"}]})
            event = self.gw.events("input")[-1]
            self.assertEqual([p["name"] for p in event["policies"]], chain,
                             path)

    @defer.inlineCallbacks
    def test_otherProviderCallsRead(self):
        """
        A JSON call to the provider's host on a path no surface knows
        (batches, threads, the legacy completions) is read all the same:
        every string of its body; it goes out on its own path, and its
        answer comes back as it is (found by review).  Bodies of binary
        media are relayed (forms and text are read: L{FormBodyTests}).
        """
        for path in ["/v1/messages/batches", "/v1/complete",
                     "/v1/threads/t/messages", "/openai/v1/embeddings"]:
            response, content = yield self.request(b"POST", path, {
                "requests": [{"params": {"prompt": "id ACME-12345678"}}]})
            received = self.gw.provider.requests[-1]
            self.assertEqual(received.path, path)
            self.assertEqual(received.json["requests"][0]["params"]["prompt"],
                             "id [REDACTED:CUSTOM_PATTERN]", path)
        events = self.gw.events("input")
        self.assertEqual([(e["verdict"], e["endpoint"]) for e in events], [
            ("redact", "v1/messages/batches"), ("redact", "v1/complete"),
            ("redact", "v1/threads/t/messages"),
            ("redact", "openai/v1/embeddings")])
        # A body of binary media (an image), an empty one (the SDK's
        # cancels): relayed.
        for path, body in [
                ("/v1/files", b"\x89PNG\r\n\x1a\n\x00id ACME-12345678"),
                ("/v1/batches/b1/cancel", b"")]:
            response = yield self.agent.request(
                b"POST", (self.origin + path).encode(),
                Headers({b"content-type": [b"image/png"]}),
                BytesProducer(body) if body else None)
            yield readBody(response)
            self.assertEqual(self.gw.provider.requests[-1].path, path)
            self.assertEqual(self.gw.provider.requests[-1].body, body)
        self.assertEqual(len(self.gw.events("input")), 4)

    @defer.inlineCallbacks
    def test_jsonKnownByReading(self):
        """
        Whether a body is JSON to read is decided by reading it, not by its
        media type or its first byte: C{text/plain} (fetch()'s default for
        a string), no media type, a byte order mark, an array; and PUT,
        PATCH and a GET with a body are read as POST is, and go out with
        their own method and body (found by review: all of these passed
        unread).
        """
        body = b'{"prompt": "id ACME-12345678"}'
        cases = [
            (b"POST", body, {b"content-type": [b"text/plain;charset=UTF-8"]}),
            (b"POST", body, {}),
            (b"POST", b"\xef\xbb\xbf" + body,
             {b"content-type": [b"application/json"]}),
            (b"PUT", body, {b"content-type": [b"application/json"]}),
            (b"PATCH", body, {b"content-type": [b"application/json"]}),
            # A search's JSON query (found by review: it went out bodiless).
            (b"GET", body, {b"content-type": [b"application/json"]}),
            (b"POST", b"[" + body + b"]",
             {b"content-type": [b"application/json"]})]
        for method, data, headers in cases:
            yield self.send(method, "/v1/complete", data, headers)
            received = self.gw.provider.requests[-1]
            self.assertEqual(received.method, method.decode())
            self.assertNotIn(b"12345678", received.body, (method, data))
            self.assertIn(b"[REDACTED:CUSTOM_PATTERN]", received.body)
        self.assertEqual(
            [(e["method"], e["verdict"], e["endpoint"])
             for e in self.gw.events("input")],
            [(m.decode(), "redact", "v1/complete") for m, _, _ in cases])
        self.assertEqual(json.loads(self.gw.provider.requests[-1].body),
                         [{"prompt": "id [REDACTED:CUSTOM_PATTERN]"}])

    @defer.inlineCallbacks
    def test_encodedBodyRefused(self):
        """
        A body with a C{Content-Encoding} cannot be read: it is refused
        (415, in the envelope, journaled), never relayed unread (found by
        review: a gzip body passed as it was).
        """
        data = gzip.compress(b'{"prompt": "id ACME-12345678"}')
        for method, path in [(b"POST", "/v1/complete"),
                             (b"POST", "/v1/chat/completions"),
                             (b"PUT", "/v1/files/f"),
                             (b"POST", "/elsewhere")]:
            response, content = yield self.send(method, path, data, {
                b"content-type": [b"application/json"],
                b"content-encoding": [b"gzip"]})
            self.assertEqual(response.code, 415, path)
            error = json.loads(content)["error"]
            self.assertEqual((error["type"], error["code"]), (
                "validation_error", "unsupported_content_encoding"))
        self.assertEqual(self.gw.provider.requests, [])
        self.assertEqual([(e["phase"], e["status"], e["verdict"])
                          for e in self.gw.events()],
                         [("access", 415, "error")] * 4)
        # Identity is no encoding; a request without a body has nothing to
        # read.
        response, _ = yield self.send(
            b"POST", "/v1/complete", b'{"prompt": "id ACME-12345678"}',
            {b"content-encoding": [b"identity"]})
        self.assertEqual(self.gw.provider.requests[-1].json,
                         {"prompt": "id [REDACTED:CUSTOM_PATTERN]"})
        response, _ = yield self.send(b"GET", "/v1/models", None,
                                      {b"content-encoding": [b"gzip"]})
        self.assertEqual(response.code, 200)

    @defer.inlineCallbacks
    def test_unreadableJSONRefused(self):
        """
        JSON the gateway cannot read as the destination may is refused
        (422), not relayed unread: a key given twice, text that is not
        UTF-8 (a lenient reader replaces it), an object followed by more (a
        Go server reads the first value), a string alone.
        """
        for data in [b'{"prompt": "x", "prompt": "id ACME-12345678"}',
                     b'{"prompt": "id ACME-12345678 \xff"}',
                     b'{"prompt": "id ACME-12345678"} trailing',
                     b'\n[{"prompt": "id ACME-12345678"}]\n{}',
                     b'"id ACME-12345678"',
                     b'{"prompt": "id ACME-12345678 \\ud800"}']:
            response, content = yield self.send(
                b"POST", "/v1/complete", data,
                {b"content-type": [b"text/plain"]})
            self.assertEqual(response.code, 422, data)
            self.assertEqual(json.loads(content)["error"]["type"],
                             "validation_error")
        self.assertEqual(self.gw.provider.requests, [])
        # What only begins as JSON might is text, read as text; a number
        # has nothing to read: they go on.
        for data, sent in [
                (b"12", b"12"), (b'"a" b', b'"a" b'),
                (b"{not json} ACME-12345678",
                 b"{not json} [REDACTED:CUSTOM_PATTERN]")]:
            yield self.send(b"POST", "/v1/complete", data,
                            {b"content-type": [b"text/plain"]})
            self.assertEqual(self.gw.provider.requests[-1].body, sent)

    @defer.inlineCallbacks
    def test_anyHostRead(self):
        """
        A JSON call to a host no target names is read as well: the
        OpenAI-shaped paths of OpenRouter, Gemini, Azure's extensions and
        Ollama's own are not surfaces the gateway knows (found by review:
        they were relayed unread).  No key goes there.
        """
        other = FakeProvider(reactor)
        _, otherURL = listenFake(reactor, other, self.addCleanup)
        # Not the target's host (127.0.0.1), on any port.
        origin = otherURL.rsplit("/v1", 1)[0].replace("127.0.0.1",
                                                      "localhost")
        paths = ["/api/v1/chat/completions", "/v1beta/openai/chat/completions",
                 "/openai/deployments/x/extensions/chat/completions",
                 "/api/chat", "/api/generate"]
        for path in paths:
            yield self.send(b"POST", path, json.dumps({
                "model": "llama3", "prompt": "id ACME-12345678",
                "messages": [{"role": "user", "content": "id ACME-12345678"}]
            }).encode(), {b"content-type": [b"application/json"]},
                origin=origin)
            received = other.requests[-1]
            self.assertEqual(received.path, path)
            self.assertNotIn(b"12345678", received.body, path)
            self.assertNotIn("authorization", received.headers)
        self.assertEqual(
            [(e["mode"], e["verdict"], e["endpoint"], e["model"])
             for e in self.gw.events("input")],
            [("proxy", "redact", p.lstrip("/"), "llama3") for p in paths])
        self.assertEqual({(e["host"], e["target"])
                          for e in self.gw.events("input")},
                         {("localhost", "localhost")})
        self.assertEqual(self.gw.provider.requests, [])

    @defer.inlineCallbacks
    def test_percentEncodedKeyInPath(self):
        """
        A key a path hides by percent-encoding is kept out of the journal's
        endpoint, which shows the decoded path, redacted (found by review:
        C{/keys/AKIA%49OSFODNN7EXAMPLE} was recorded whole); and out of the
        provider's hands: the call is refused (a later review: it went on).
        """
        response, _ = yield self.send(
            b"GET", "/keys/AKIA%49OSFODNN7EXAMPLE/x%20y", None)
        self.assertEqual(response.code, 409)
        [event] = self.gw.events()
        self.assertEqual(event["verdict"], "block")
        self.assertEqual(event["endpoint"],
                         "keys/[REDACTED:AWS_ACCESS_KEY_ID]/x y")
        self.assertEqual(self.gw.provider.requests, [])

    @defer.inlineCallbacks
    def test_pathVariantsRead(self):
        """
        A call on a variant of its path (doubled or trailing slashes, an
        encoded slash) goes through the policies, and out as it came.
        """
        paths = ["/v1//chat/completions", "/v1/chat%2Fcompletions",
                 "/v1/chat/completions/", "/v1/./chat/completions",
                 "/v1/x/../chat/completions", "/v1/chat/completions%3B",
                 "/V1/CHAT/COMPLETIONS"]
        for path in paths:
            response, content = yield self.request(
                b"POST", path, {"model": "gpt-fake", "messages": [
                    {"role": "user", "content": "id ACME-12345678"}]})
            received = self.gw.provider.requests[-1]
            self.assertEqual(received.uri, path)
            self.assertNotIn(b"12345678", received.body, path)
        self.assertEqual([e["verdict"] for e in self.gw.events("input")],
                         ["redact"] * len(paths))

    @defer.inlineCallbacks
    def test_noKeyToAnotherPortOfTheTargetsHost(self):
        """
        The target's host on another port is not the target: its key stays
        out (a plain-HTTP request there would carry it in clear).
        """
        other = FakeProvider(reactor)
        _, otherURL = listenFake(reactor, other, self.addCleanup)
        other.script = Script(answer=echoPrompt)
        response = yield self.agent.request(
            b"POST", otherURL.encode() + b"/chat/completions",
            Headers({b"content-type": [b"application/json"]}),
            BytesProducer(json.dumps({"model": "gpt-fake", "messages": [
                {"role": "user", "content": "hi"}]}).encode()))
        yield readBody(response)
        self.assertEqual(response.code, 200)
        self.assertNotIn("authorization", other.requests[-1].headers)
        self.assertEqual(self.gw.provider.requests, [])

    @defer.inlineCallbacks
    def test_guardedOffLoopback(self):
        """
        A gateway listening off loopback does not proxy to its own machine
        (a 403, journaled as blocked), except to the origins its
        configuration names, on their own port: a key holder cannot reach
        what only the gateway's machine can (found by review: another port
        of a loopback target's host was reachable).
        """
        self.gw = Gateway(self, environ={"FAKE_KEY": "sk-provider-key",
                                         "KT_KEY": "kt-secret"},
                          extraGateway='  listen: "tcp:41002:interface=0.0.0.0"\n'
                          "  access_keys: [{id: a, user: alice, "
                          "key_env: KT_KEY}]")
        self.agent = ProxyAgent(TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.gw.port.getHost().port))
        self.origin = self.gw.config.providers.targets[0].base_url.rsplit(
            "/v1", 1)[0]
        auth = {b"proxy-authorization": [
            b"Basic " + base64.b64encode(b"alice:kt-secret")]}
        port = self.origin.rsplit(":", 1)[1]
        response, content = yield self.request(
            b"GET", "/v1/models", headers=auth)
        self.assertEqual(response.code, 200, content)  # the target's own host
        self.origin = "http://localhost:" + port
        response, content = yield self.request(
            b"GET", "/v1/models", headers=auth)
        self.assertEqual(response.code, 403)
        self.assertEqual(json.loads(content)["error"]["code"],
                         "internal_address")
        event = self.gw.events()[-1]
        self.assertEqual(
            (event["mode"], event["host"], event["status"], event["verdict"]),
            ("proxy", "localhost", 403, "block"))
        other = self.gw.port.getHost().port  # another service of that host
        self.origin = "http://127.0.0.1:%d" % (other,)
        response, content = yield self.request(
            b"GET", "/keeptrusts/health", headers=auth)
        self.assertEqual(response.code, 403)
        self.assertEqual(json.loads(content)["error"]["code"],
                         "internal_address")

    @defer.inlineCallbacks
    def test_otherTrafficRelayed(self):
        response, content = yield self.request(b"GET", "/v1/models")
        self.assertEqual(response.code, 200)
        self.assertEqual([m["id"] for m in json.loads(content)["data"]],
                         list(self.gw.provider.models))
        [event] = self.gw.events()
        self.assertEqual((event["phase"], event["mode"], event["endpoint"],
                          event["status"]),
                         ("access", "proxy", "v1/models", 200))

    @defer.inlineCallbacks
    def test_sourcegraphDeltaStream(self):
        self.gw.provider.script = Script(
            chunks=["The key ", "ACME-12", "345678 is", " secret"])
        response, content = yield self.request(
            b"POST", "/.api/completions/stream?api-version=1",
            sourcegraphBody("leak ACME-87654321 please"),
            {b"content-type": [b"application/json"],
             b"authorization": [b"token sgp_abc123"]})
        received = self.gw.provider.requests[-1]
        self.assertEqual(received.json["messages"][1]["text"],
                         "leak [REDACTED:CUSTOM_PATTERN] please")
        self.assertEqual(received.uri, "/.api/completions/stream?api-version=1")
        events = [e for e in content.decode().split("\n\n") if e]
        deltas = "".join(json.loads(e.split("data: ", 1)[1]).get(
            "deltaText", "") for e in events if e.startswith("event: completion"))
        self.assertEqual(deltas, "The key [REDACTED:CUSTOM_PATTERN] is secret")
        self.assertEqual(events[-1], "event: done\ndata: {}")
        self.assertEqual([(e["phase"], e["provider"], e["endpoint"],
                           e["verdict"]) for e in self.gw.events()],
                         [("input", "sourcegraph", "completions/stream",
                           "redact"),
                          ("output", "sourcegraph", "completions/stream",
                           "redact")])

    @defer.inlineCallbacks
    def test_sourcegraphCumulativeStream(self):
        """
        The cumulative form never sends an unredacted prefix again.
        """
        self.gw.provider.script = Script(
            chunks=["The key ", "ACME-12", "345678 is", " secret"],
            cumulative=True)
        response, content = yield self.request(
            b"POST", "/.api/completions/stream", sourcegraphBody("hi"))
        completions = [json.loads(e.split("data: ", 1)[1])["completion"]
                       for e in content.decode().split("\n\n")
                       if e.startswith("event: completion")]
        self.assertEqual(completions[-1],
                         "The key [REDACTED:CUSTOM_PATTERN] is secret")
        for text in completions:
            self.assertNotIn("ACME-12", text)
            self.assertTrue(completions[-1].startswith(text), text)

    @defer.inlineCallbacks
    def test_sourcegraphCode(self):
        self.gw.provider.script = Script(answer="x = 'ACME-12345678'")
        response, content = yield self.request(
            b"POST", "/.api/completions/code", sourcegraphBody("def f():"))
        self.assertEqual(json.loads(content)["completion"],
                         "x = '[REDACTED:CUSTOM_PATTERN]'")

    @defer.inlineCallbacks
    def test_portZeroRefused(self):
        """
        Port 0 (it went to port 80) is refused with a 400 in the envelope.
        """
        for url in ["http://127.0.0.1:0/x"]:
            out, err, code = yield getProcessOutputAndValue(
                "/usr/bin/curl", ["-s", "-o", "-", "-w", "\n%{http_code}",
                                  "--proxy", "http://127.0.0.1:%d" % (
                                      self.gw.port.getHost().port,), url])
            body, status = out.rsplit(b"\n", 1)
            self.assertEqual(status, b"400", (url, out, err))
            self.assertEqual(json.loads(body)["error"]["type"],
                             "validation_error")
        self.assertEqual(self.gw.provider.requests, [])

    @defer.inlineCallbacks
    def test_curl(self):
        """
        curl through the gateway as an HTTP proxy.
        """
        out, err, code = yield getProcessOutputAndValue(
            "/usr/bin/curl", ["-s", "--proxy", "http://127.0.0.1:%d" % (
                self.gw.port.getHost().port,),
                "-H", "content-type: application/json", "-d", json.dumps({
                    "model": "gpt-fake", "messages": [
                        {"role": "user", "content": "bluebird"}]}),
                self.origin + "/v1/chat/completions"])
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["object"], "chat.completion")
        self.assertEqual(
            self.gw.provider.requests[-1].json["messages"][0]["content"],
            "[REDACTED:BLOCKED_TERM]")


AWS_KEY = "AKIAQYLPMN5HFIQZ7XYZ"
AWS_MARKER = b"[REDACTED:AWS_ACCESS_KEY_ID]"
GITHUB_TOKEN = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AUDIO = (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\xff\xfe"
         + bytes(range(256)) * 2)
MULTIPART = {b"content-type": [b"multipart/form-data; boundary=kt-b0und"]}


def multipart(*parts):
    """
    A multipart body of C{(head, content)} parts, boundary C{kt-b0und}.
    """
    return b"".join(b"--kt-b0und\r\n" + head + b"\r\n\r\n" + content
                    + b"\r\n" for head, content in parts) + b"--kt-b0und--\r\n"


def field(name, filename=None, contentType=None):
    head = b'Content-Disposition: form-data; name="%s"' % (name,)
    if filename is not None:
        head += b'; filename="%s"' % (filename,)
    if contentType is not None:
        head += b"\r\nContent-Type: " + contentType
    return head


class FormBodyTests(ProxyTestCase):
    """
    Bodies through the proxy that are no JSON but text are read: multipart
    uploads, forms, text; written back as they came, only what a policy
    changed rewritten in place (found by review: they went on unread).
    """

    @defer.inlineCallbacks
    def test_batchFileUpload(self):
        """
        A batch's JSON lines uploaded to C{/v1/files} are read, each line's
        texts; the upload goes on with the same boundary, its other parts
        byte for byte, with a Content-Length that fits.
        """
        line = json.dumps({"custom_id": "1", "method": "POST",
                           "url": "/v1/chat/completions", "body": {
                               "model": "gpt-fake", "messages": [{
                                   "role": "user", "content":
                                   "deploy with %s and ACME-12345678" % (
                                       AWS_KEY,)}]}}).encode()
        other = b'{"custom_id": "2", "body": {"prompt": "fine"}}'
        png = (b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 2
               + AWS_KEY.encode())
        body = multipart(
            (field(b"purpose"), b"batch"),
            (field(b"file", b"batch.jsonl", b"application/octet-stream"),
             line + b"\n" + other + b"\n"),
            (field(b"image", b"a.png", b"image/png"), png))
        response, _ = yield self.send(b"POST", "/v1/files", body, MULTIPART)
        got = self.gw.provider.requests[-1]
        self.assertEqual(got.path, "/v1/files")
        self.assertNotIn(b"ACME-12345678", got.body)
        self.assertEqual(got.headers["content-length"], str(len(got.body)))
        self.assertEqual(got.headers["content-type"],
                         "multipart/form-data; boundary=kt-b0und")
        sent = json.loads(line)
        sent["body"]["messages"][0]["content"] = (
            "deploy with [REDACTED:AWS_ACCESS_KEY_ID] and "
            "[REDACTED:CUSTOM_PATTERN]")
        self.assertEqual(got.body, body.replace(
            line, json.dumps(sent).encode()))
        self.assertIn(png, got.body)
        [event] = self.gw.events("input")
        self.assertEqual(
            (event["verdict"], event["endpoint"], event["mode"],
             event["policies"][0]["findings"]),
            ("redact", "v1/files", "proxy",
             [{"type": "aws_access_key_id", "count": 1},
              {"type": "custom_pattern", "count": 1}]))

    @defer.inlineCallbacks
    def test_promptFields(self):
        """
        The C{prompt} of a transcription and of an image edit (multipart),
        and a form's fields, are read and redacted; the audio and the image
        go on as they came.
        """
        for path in ("/v1/audio/transcriptions", "/v1/images/edits"):
            body = multipart(
                (field(b"file", b"a.wav", b"audio/wav"), AUDIO),
                (field(b"model"), b"whisper-1"),
                (field(b"prompt"), b"names: ACME-12345678, " +
                 GITHUB_TOKEN.encode()))
            yield self.send(b"POST", path, body, MULTIPART)
            got = self.gw.provider.requests[-1].body
            self.assertEqual(got, body.replace(
                b"ACME-12345678", b"[REDACTED:CUSTOM_PATTERN]").replace(
                    GITHUB_TOKEN.encode(), b"[REDACTED:GITHUB_TOKEN]"))
        yield self.send(
            b"POST", "/v1/audio/transcriptions",
            b"model=whisper-1&prompt=key+%41KIAQYLPMN5HFIQZ7XYZ+ok",
            {b"content-type": [b"application/x-www-form-urlencoded"]})
        self.assertEqual(self.gw.provider.requests[-1].body,
                         b"model=whisper-1&prompt=key+%5BREDACTED%3A"
                         b"AWS_ACCESS_KEY_ID%5D+ok")
        yield self.send(b"PUT", "/v1/uploads/u/parts", b"id ACME-12345678",
                        {b"content-type": [b"text/plain"]})
        self.assertEqual(self.gw.provider.requests[-1].body,
                         b"id [REDACTED:CUSTOM_PATTERN]")
        self.assertEqual([e["verdict"] for e in self.gw.events("input")],
                         ["redact"] * 4)

    @defer.inlineCallbacks
    def test_textFilesInAnyEncoding(self):
        """
        A text file is read whatever its bytes (found by review: a UTF-16
        file with its byte order mark, as PowerShell writes it, a cp1252
        file, one NUL went out unread): redacted in its encoding.  A
        credential only another reading shows (UTF-16 without a byte order
        mark, ASCII labelled cp037) cannot be rewritten: refused (409), as
        names are.  An image goes on as it came.
        """
        text = "AWS_ACCESS_KEY_ID=%s\r\n" % (AWS_KEY,)
        for data in (text.encode("utf-16"),
                     text.encode("cp1252") + b"# caf\xe9\r\n",
                     text.encode() + b"\x00"):
            body = multipart(
                (field(b"purpose"), b"assistants"),
                (field(b"file", b"creds.txt", b"text/plain"), data),
                (field(b"image", b"a.png", b"image/png"), AUDIO + data))
            response, _ = yield self.send(b"POST", "/v1/files", body,
                                          MULTIPART)
            got = self.gw.provider.requests[-1].body
            self.assertEqual(got.count(data), 1, data[:12])
            self.assertIn(AUDIO + data, got)
        for data, contentType in [
                (text.encode("utf-16-le"), b"text/plain"),
                (text.encode(), b"text/plain; charset=cp037")]:
            response, content = yield self.send(
                b"POST", "/v1/files", multipart((field(
                    b"file", b"creds.txt", contentType), data)), MULTIPART)
            self.assertEqual((response.code, json.loads(content)["error"][
                "code"]), (409, "input_blocked"), contentType)
        self.assertEqual(len(self.gw.provider.requests), 3)
        self.assertEqual([e["verdict"] for e in self.gw.events("input")],
                         ["redact"] * 3 + ["block"] * 2)
        self.assertNotIn(AWS_KEY, json.dumps(self.gw.events()))

    @defer.inlineCallbacks
    def test_filesByTheirBytes(self):
        """
        What a file is, its bytes say with its label: a text labelled
        image/png is read and redacted (found by review: it went on
        unread); a document's bytes that hold a credential (in its
        compressed text too) cannot be rewritten: refused (409); a picture
        goes on as it came; a part that is multipart itself is refused
        (415).
        """
        text = ("AWS_ACCESS_KEY_ID=%s\r\n" % (AWS_KEY,)).encode()
        picture = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
        yield self.send(b"POST", "/v1/files", multipart(
            (field(b"file", b".env", b"image/png"), text),
            (field(b"image", b"a.png", b"image/png"), picture)), MULTIPART)
        got = self.gw.provider.requests[-1].body
        self.assertNotIn(AWS_KEY.encode(), got)
        self.assertIn(b"AWS_ACCESS_KEY_ID=" + AWS_MARKER, got)
        self.assertIn(picture, got)
        for body, status, code in [
                (multipart((field(b"file", b"a.pdf", b"application/pdf"),
                            b"%PDF-1.4\n(" + text + b") Tj")), 409,
                 "input_blocked"),
                (multipart((field(b"file", b"a.bin"), b"\x00\x01 " + text)),
                 409, "input_blocked"),
                (multipart((field(b"file", b"b.pdf", b"application/pdf"),
                            pdf(b"BT (" + text + b") Tj ET"))), 409,
                 "input_blocked"),
                (multipart((field(b"m", None, b"multipart/mixed; boundary=c"),
                            b"--c\r\n\r\nx\r\n--c--")), 415,
                 "unsupported_content_encoding")]:
            response, content = yield self.send(b"POST", "/v1/files", body,
                                                MULTIPART)
            self.assertEqual((response.code, json.loads(content)["error"][
                "code"]), (status, code))
        self.assertEqual(len(self.gw.provider.requests), 1)
        self.assertEqual([e["verdict"] for e in self.gw.events("input")],
                         ["redact", "block", "block", "block"])
        self.assertNotIn(AWS_KEY, json.dumps(self.gw.events()))

    @defer.inlineCallbacks
    def test_newBoundary(self):
        """
        A redaction that would make a delimiter of a part's line (a
        boundary no RFC 2046 client sends) goes out with a new boundary,
        in the body and its Content-Type.
        """
        boundary = b"x " + AWS_MARKER
        body = (b"--" + boundary + b"\r\n\r\nx\r\n--x " + AWS_KEY.encode()
                + b"\r\ny\r\n--" + boundary + b"--")
        yield self.send(b"POST", "/v1/files", body, {b"content-type": [
            b'multipart/form-data; boundary="' + boundary + b'"']})
        got = self.gw.provider.requests[-1]
        fresh = got.headers["content-type"].split('"')[1].encode()
        self.assertTrue(fresh.startswith(b"keeptrusts-"))
        self.assertEqual(got.body, b"--%s\r\n\r\nx\r\n--%s\r\ny\r\n--%s--"
                         % (fresh, boundary, fresh))

    @defer.inlineCallbacks
    def test_namesBlock(self):
        """
        A credential in a part's head (its file's name) or a field's name
        is not rewritten: the request is refused (409) and journaled.
        """
        for body, headers in [
                (multipart((field(b"file", GITHUB_TOKEN.encode() + b".txt"),
                            b"x")), MULTIPART),
                (AWS_KEY.encode() + b"=1", {b"content-type": [
                    b"application/x-www-form-urlencoded"]})]:
            response, content = yield self.send(b"POST", "/v1/files", body,
                                                headers)
            error = json.loads(content)["error"]
            self.assertEqual((response.code, error["code"]),
                             (409, "input_blocked"))
        self.assertEqual(self.gw.provider.requests, [])
        self.assertEqual([e["verdict"] for e in self.gw.events("input")],
                         ["block"] * 2)

    @defer.inlineCallbacks
    def test_queryStringRead(self):
        """
        The query string of a call to an LLM host is read whatever its body:
        a form, a file's bytes, none; a credential there is refused (409)
        and journaled, as on C{/v1} calls.  To a host that serves no LLM,
        traffic with nothing to read is relayed as it is.
        """
        for method, body, headers in [
                (b"POST", b"model=whisper-1", {b"content-type": [
                    b"application/x-www-form-urlencoded"]}),
                (b"POST", b"\x89PNG\r\n\x1a\n\x00", {b"content-type": [
                    b"image/png"]}),
                (b"GET", None, {})]:
            response, content = yield self.send(
                method, "/v1/files?note=" + GITHUB_TOKEN, body, headers)
            self.assertEqual(response.code, 409, body)
            self.assertEqual(json.loads(content)["error"]["policy"],
                             "dlp-filter")
        self.assertEqual(self.gw.provider.requests, [])
        self.assertEqual(
            [(e["phase"], e["verdict"], e["status"])
             for e in self.gw.events()], [("input", "block", None)] * 3)
        self.assertNotIn(GITHUB_TOKEN, json.dumps(self.gw.events()))
        # A Google API key is the client's own credential; another host.
        response, _ = yield self.send(b"GET", "/v1/models?key=" + AWS_KEY,
                                      None)
        self.assertEqual(response.code, 200)
        other = FakeProvider(reactor)
        _, otherURL = listenFake(reactor, other, self.addCleanup)
        origin = otherURL.rsplit("/v1", 1)[0].replace("127.0.0.1",
                                                      "localhost")
        response, _ = yield self.send(b"GET", "/v1/models?note=" +
                                      GITHUB_TOKEN, None, origin=origin)
        self.assertEqual(other.requests[-1].uri,
                         "/v1/models?note=" + GITHUB_TOKEN)

    @defer.inlineCallbacks
    def test_unreadableRefused(self):
        """
        A part with a transfer encoding (the gateway does not decode it) is
        refused with 415 and journaled; a multipart body without a part,
        too many parts, a part giving its charset twice, with 422; none goes
        on unread.
        """
        for body, status in [
                (multipart((field(b"prompt") + b"\r\nContent-Transfer-"
                            b"Encoding: base64", b"QUtJQQ==")), 415),
                (b"no part at all", 422),
                (multipart(*[(field(b"a"), b"x")] * 1001), 422),
                (multipart((field(b"prompt") + b"\r\nContent-Type: text/"
                            b"plain; charset=utf-8; charset=cp037",
                            b"key")), 422)]:
            response, content = yield self.send(b"POST", "/v1/files", body,
                                                MULTIPART)
            self.assertEqual(response.code, status)
            self.assertEqual(json.loads(content)["error"]["type"],
                             "validation_error")
        self.assertEqual(self.gw.provider.requests, [])
        self.assertEqual([(e["phase"], e["status"])
                          for e in self.gw.events()], [("access", 415)])
