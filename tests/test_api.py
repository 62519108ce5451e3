"""
The /v1 reverse proxy end to end, over real loopback sockets: the real
C{openai} SDK (in a thread) and treq in front of the gateway, the fake
provider behind it.
"""

import base64
import gzip
import json
import os
import socket
import time
from types import SimpleNamespace

import treq
try:
    from openai import OpenAI
except ImportError:  # Debian 12 has no python3-openai
    OpenAI = None
from twisted.internet import defer, reactor, task, tcp, threads
from twisted.internet.protocol import Protocol, ClientFactory
from twisted.internet.abstract import FileDescriptor
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IReadWriteDescriptor
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import URI, HTTPConnectionPool, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from zope.interface import implementer

from keeptrusts.api.sending import sendNow, writeNow
from keeptrusts.api.accesslog import shownTarget
from keeptrusts.api.draining import ActiveRequests
from keeptrusts.api.site import GatewaySite
from keeptrusts.api import documents, pipeline
from keeptrusts.api.upstream import KeptEndpoints, Upstream
from keeptrusts.config import parseConfig
from keeptrusts.policy.registry import policyFactories
from keeptrusts.policy.values import Decision
from keeptrusts.api.http1 import KeptConnections
from keeptrusts.parts import buildSite
from keeptrusts.tls.trust import upstreamPolicy
from keeptrusts.testing import (
    FakeProvider, MemoryJournal, Script, echoPrompt, listenFake, waitUntil)

CONFIG = """
pack: {name: test, version: 1.0.0, enabled: true}
gateway:
  fail_mode: %(fail_mode)s
  journal: {sync: %(sync)s}
  limits: {max_body_bytes: %(max_body)d, upstream_idle_timeout_s: %(idle)s}
%(gateway)s
providers:
  targets:
    - id: fake
      provider: openai
      base_url: %(base)s
%(key)s
%(models)s
%(extra)s
policies:
  chain: %(chain)s
policy:
  dlp-filter:
    action: %(action)s
    detect_patterns: ['ACME-[0-9]{8}']
    blocked_terms: [bluebird]
  audit-logger: {log_all_access: true}
%(top)s
"""


class Gateway:
    """
    A gateway on 127.0.0.1 in front of a fake provider, for one test.
    """

    def __init__(self, testCase, chain="[dlp-filter, audit-logger]",
                 action="redact", failMode="block", maxBody=1024 * 1024,
                 idle=5, factories=None, environ=None, base=None,
                 keyRef=True, models=True, extraTargets="", extraTop="",
                 sync="batch", extraGateway=""):
        self.provider = FakeProvider(reactor)
        _, fakeBase = listenFake(reactor, self.provider, testCase.addCleanup)
        base = base or fakeBase
        factories = factories or policyFactories()
        self.config = parseConfig(CONFIG % dict(
            base=base, chain=chain, action=action, fail_mode=failMode,
            max_body=maxBody, idle=idle, sync=sync,
            key="      secret_key_ref: {env: FAKE_KEY}" if keyRef else "",
            models="      models: [gpt-fake, gpt-fake-mini]" if models else "",
            extra=extraTargets % dict(base=base.rsplit("/v1", 1)[0]),
            top=extraTop, gateway=extraGateway),
            factories)
        self.journal = MemoryJournal()
        pool = KeptConnections(reactor)
        testCase.addCleanup(pool.closeCachedConnections)
        site = buildSite(self.config, reactor, self.journal, pool, factories,
                         {"FAKE_KEY": "sk-provider-key"}
                         if environ is None else environ)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        testCase.addCleanup(self.port.stopListening)
        self.url = "http://127.0.0.1:%d" % (self.port.getHost().port,)
        self._clientPool = HTTPConnectionPool(reactor, persistent=False)
        testCase.addCleanup(self._clientPool.closeCachedConnections)

    def post(self, path, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return treq.post(self.url + path, data=data, headers=headers or {
            b"content-type": b"application/json"}, pool=self._clientPool)

    def get(self, path, headers=None):
        return treq.get(self.url + path, headers=headers or {},
                        pool=self._clientPool)

    def sdk(self):
        if OpenAI is None:
            raise SkipTest("the openai SDK is not installed")
        return OpenAI(base_url=self.url + "/v1", api_key="client-key",
                      max_retries=0, timeout=10)

    def events(self, phase=None):
        return [r for r in self.journal.records
                if phase is None or r["phase"] == phase]


def chat(text, model="gpt-fake", **extra):
    body = {"model": model,
            "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


def fixedProvider(testCase, status, answer,
                  contentType=b"application/json"):
    """
    A provider answering every call with C{status} and C{answer} (JSON, or
    bytes as they are): its base URL.
    """
    class Provider(Resource):
        isLeaf = True

        def render_POST(self, request):
            request.setResponseCode(status)
            request.setHeader(b"content-type", contentType)
            return answer if isinstance(answer, bytes) else json.dumps(
                answer).encode()
    port = reactor.listenTCP(0, Site(Provider()), interface="127.0.0.1")
    testCase.addCleanup(port.stopListening)
    return "http://127.0.0.1:%d/v1" % (port.getHost().port,)


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


def inThread(f, *args):
    return threads.deferToThread(f, *args)


class OpenAISDKTests(TestCase):
    """
    The real openai SDK pointed at the gateway.
    """

    def test_chatCompletion(self):
        gw = Gateway(self)

        def call():
            with gw.sdk() as client:
                return client.chat.completions.create(
                    model="gpt-fake",
                    messages=[{"role": "user", "content": "Say hello"}])

        d = inThread(call)

        def check(completion):
            self.assertEqual(completion.choices[0].message.content,
                             "Hello from the fake provider.")
            received = gw.provider.requests[-1]
            self.assertEqual(received.headers["authorization"],
                             "Bearer sk-provider-key")
            self.assertEqual(received.json["messages"][0]["content"],
                             "Say hello")
            phases = [(e["phase"], e["verdict"], e["status"])
                      for e in gw.events()]
            self.assertEqual(phases, [("input", "allow", None),
                                      ("output", "allow", 200)])
            self.assertEqual(gw.events("output")[0]["tokens"],
                             {"input": 2, "output": 5})
        return d.addCallback(check)

    def test_streamFirstChunkWhileProviderHolds(self):
        """
        The first chunk reaches the SDK while the provider still holds the
        rest of the stream.
        """
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["Hel", "lo", " world"], hold=True)

        def checkHeldAndRelease():
            held = gw.provider.holding
            gw.provider.release()
            return held

        def call():
            with gw.sdk() as client:
                stream = client.chat.completions.create(
                    model="gpt-fake", stream=True,
                    messages=[{"role": "user", "content": "hi"}])
                chunks = iter(stream)
                first = next(chunks)
                held = threads.blockingCallFromThread(
                    reactor, checkHeldAndRelease)
                rest = list(chunks)
            return first, held, rest

        def check(result):
            first, held, rest = result
            self.assertEqual(first.choices[0].delta.content, "Hel")
            self.assertEqual(held, 1)
            text = "".join(c.choices[0].delta.content or ""
                           for c in rest if c.choices)
            self.assertEqual(text, "lo world")
            out = gw.events("output")[0]
            self.assertEqual((out["verdict"], out["stream"], out["status"]),
                             ("allow", True, 200))
        return inThread(call).addCallback(check)

    def test_streamRedactsSplitSecret(self):
        """
        A pattern split across stream events is still redacted.
        """
        gw = Gateway(self)
        gw.provider.script = Script(
            chunks=["Your id is AC", "ME-123", "45678, ok"])

        def call():
            with gw.sdk() as client:
                stream = client.chat.completions.create(
                    model="gpt-fake", stream=True,
                    messages=[{"role": "user", "content": "hi"}])
                return "".join(c.choices[0].delta.content or ""
                               for c in stream if c.choices)

        def check(text):
            self.assertEqual(text, "Your id is [REDACTED:CUSTOM_PATTERN], ok")
            out = gw.events("output")[0]
            self.assertEqual(out["verdict"], "redact")
            [dlp] = [p for p in out["policies"] if p["name"] == "dlp-filter"]
            self.assertEqual(dlp["findings"],
                             [{"type": "custom_pattern", "count": 1}])
            self.assertEqual(dlp["verdict"], "redact")
            self.assertNotIn("12345678", json.dumps(gw.events()))
        return inThread(call).addCallback(check)


class PolicyTests(TestCase):
    """
    Redact, block and fail_mode through the chain.
    """

    @defer.inlineCallbacks
    def test_everyAnswerTextRead(self):
        """
        Every text of a whole answer is read, not only those the surface
        names: a refusal, reasoning, a legacy function call, an audio
        transcript (found by review).
        """
        key = "AKIAIOSFODNN7EXAMPLE"
        answer = {"id": "c1", "object": "chat.completion", "model": "gpt-fake",
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {
                                   "role": "assistant", "content": "ok",
                                   "refusal": "no " + key,
                                   "reasoning_content": "think " + key,
                                   "function_call": {
                                       "name": "f",
                                       "arguments": '{"k": "%s"}' % (key,)},
                                   "audio": {"id": "a1",
                                             "transcript": "said " + key}}}]}

        gw = Gateway(self, base=fixedProvider(self, 200, answer))
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(response.code, 200)
        self.assertNotIn(key, json.dumps(body))
        marker = "[REDACTED:AWS_ACCESS_KEY_ID]"
        message = body["choices"][0]["message"]
        self.assertEqual(
            (message["content"], message["refusal"],
             message["reasoning_content"], message["audio"]["transcript"],
             json.loads(message["function_call"]["arguments"])),
            ("ok", "no " + marker, "think " + marker, "said " + marker,
             {"k": marker}))
        self.assertEqual((body["id"], message["audio"]["id"]), ("c1", "a1"))
        self.assertEqual(gw.events("output")[0]["verdict"], "redact")

    @defer.inlineCallbacks
    def test_errorAnswersRead(self):
        """
        A provider's error in JSON, an object or not, is read like an answer
        (it may quote what it was sent) and keeps its status; another error
        body is read as one text; none passes as it came; a failed call is
        not charged.
        """
        key = "AKIAIOSFODNN7EXAMPLE"
        error = {"error": {"type": "invalid_request_error",
                           "message": "bad value %s" % (key,)}}
        gw = Gateway(self, base=fixedProvider(self, 400, error))
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(response.code, 400)
        self.assertEqual(body["error"]["message"],
                         "bad value [REDACTED:AWS_ACCESS_KEY_ID]")
        # A failed call is not charged.
        self.assertEqual([(e["status"], e["verdict"], e["tokens"])
                          for e in gw.events("output")],
                         [(400, "redact", {"input": None, "output": None})])
        for answer, contentType in [
                (b"<html>bad gateway %s</html>" % (key.encode(),),
                 b"text/html"),
                (b"", b"application/json"),
                (json.dumps([{"error": {"code": 429, "message": key}}]).encode(),
                 b"application/json")]:
            gw = Gateway(self, base=fixedProvider(self, 429, answer,
                                                  contentType))
            response = yield gw.post("/v1/chat/completions", chat("hi"))
            content = yield response.content()
            self.assertEqual(response.code, 429)
            self.assertEqual(content, answer.replace(
                key.encode(), b"[REDACTED:AWS_ACCESS_KEY_ID]"))

    @defer.inlineCallbacks
    def test_findingInANameBlocks(self):
        """
        A credential sent as a name (an object key, a tool's or a message's
        name, the model) cannot be rewritten without changing the call: the
        request is blocked by the credential policy, the provider asked
        nothing (found by review).
        """
        key = "AKIAIOSFODNN7EXAMPLE"
        gw = Gateway(self)
        bodies = [
            chat("hi", tools=[{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object", "properties": {
                    key: {"type": "string"}}}}}]),
            chat("hi", metadata={key: "x"}),
            chat("hi", tools=[{"type": "function", "function": {
                "name": key}}]),
            {"model": "gpt-fake", "messages": [
                {"role": "user", "content": "hi", "name": key}]},
            chat("hi", model=key)]
        for body in bodies:
            response = yield gw.post("/v1/chat/completions", body)
            error = (yield response.json())["error"]
            self.assertEqual((response.code, error["type"], error["code"]),
                             (409, "policy_violation", "input_blocked"), body)
            self.assertIn("a name of the request", error["message"])
        self.assertEqual(gw.provider.requests, [])
        self.assertEqual(
            [(e["verdict"], e["policies"]) for e in gw.events("input")],
            [("block", [{"name": "dlp-filter", "verdict": "block", "ms": 0.0,
                         "findings": [{"type": "aws_access_key_id",
                                       "count": 1}]}])] * 5)
        self.assertNotIn(key, json.dumps(gw.journal.records))
        # Names without findings pass as they came; without the credential
        # policy, names are not read.
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", metadata={"team": "infra", "10.20.30.40": "host"}))
        yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(gw.provider.requests[-1].json["metadata"],
                         {"team": "infra", "10.20.30.40": "host"})
        gw = Gateway(self, chain="[audit-logger]")
        response = yield gw.post("/v1/chat/completions", bodies[1])
        yield response.content()
        self.assertEqual(response.code, 200)

    @defer.inlineCallbacks
    def test_redactReachesProvider(self):
        gw = Gateway(self)
        gw.provider.script = Script(answer=echoPrompt)
        response = yield gw.post("/v1/chat/completions", chat(
            "token ACME-12345678 for Bluebird"))
        body = yield response.json()
        self.assertEqual(response.code, 200)
        sent = gw.provider.requests[-1].json["messages"][0]["content"]
        self.assertEqual(sent, "token [REDACTED:CUSTOM_PATTERN] for "
                               "[REDACTED:BLOCKED_TERM]")
        # The echoed answer carries markers only.
        self.assertEqual(body["choices"][0]["message"]["content"], sent)
        event = gw.events("input")[0]
        self.assertEqual(event["verdict"], "redact")
        self.assertEqual(event["policies"][0]["findings"], [
            {"type": "blocked_term", "count": 1},
            {"type": "custom_pattern", "count": 1}])
        journal = json.dumps(gw.events())
        self.assertNotIn("12345678", journal)
        self.assertNotIn("luebird", journal)

    @defer.inlineCallbacks
    def test_fieldsNoSurfaceNamesAreRead(self):
        """
        A text in a field the surfaces do not name (legacy function calls,
        predictions, refusals, tool descriptions, a completion's suffix,
        Codex's custom tool input and shell commands, reasoning summaries,
        list tool outputs) is read and redacted like any other: none went
        to the provider unread.
        """
        secret = "ACME-12345678"
        bodies = [
            ("/v1/chat/completions", {"model": "gpt-fake", "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "refusal", "refusal": "x " + secret}]},
                {"role": "assistant", "content": None, "function_call": {
                    "name": "f", "arguments": '{"k": "%s"}' % secret}}],
                "prediction": {"type": "content", "content": secret},
                "tools": [{"type": "function", "function": {
                    "name": "ls", "description": "key " + secret}}]}),
            ("/v1/completions", {"model": "gpt-fake", "prompt": "def f():",
                                 "suffix": "  return '%s'" % secret}),
            ("/v1/responses", {"model": "gpt-fake", "input": [
                {"type": "message", "role": "user", "content": "go"},
                {"type": "custom_tool_call", "call_id": "c1",
                 "name": "apply_patch", "input": "+key = " + secret},
                {"type": "local_shell_call", "call_id": "c2", "action": {
                    "type": "exec", "command": ["echo", secret]}},
                {"type": "reasoning", "id": "r1", "summary": [
                    {"type": "summary_text", "text": "saw " + secret}]},
                {"type": "function_call_output", "call_id": "c3",
                 "output": [{"type": "input_text", "text": secret}]}]})]
        gw = Gateway(self)
        for path, body in bodies:
            response = yield gw.post(path, body)
            yield response.content()
            self.assertEqual(response.code, 200, path)
            received = gw.provider.requests[-1]
            self.assertNotIn(b"12345678", received.body, path)
            self.assertIn(b"[REDACTED:CUSTOM_PATTERN]", received.body)
        self.assertEqual([e["verdict"] for e in gw.events("input")],
                         ["redact"] * 3)

    @defer.inlineCallbacks
    def test_logprobsOfARedactedAnswerDropped(self):
        """
        The logprobs of a redacted answer spell out what was taken: gone.
        """
        gw = Gateway(self)
        gw.provider.script = Script(
            answer="id ACME-12345678",
            logprobs={"content": [{"token": "ACME-12345678",
                                   "logprob": -0.5}]})
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(body["choices"][0]["message"]["content"],
                         "id [REDACTED:CUSTOM_PATTERN]")
        self.assertIsNone(body["choices"][0]["logprobs"])
        gw.provider.script = Script(answer="plain", logprobs={"content": []})
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(body["choices"][0]["logprobs"], {"content": []})

    @defer.inlineCallbacks
    def test_blockSendsNothing(self):
        gw = Gateway(self, action="block")
        response = yield gw.post("/v1/chat/completions",
                                 chat("leak ACME-12345678"))
        body = yield response.json()
        self.assertEqual(response.code, 409)
        self.assertEqual(body["error"]["type"], "policy_violation")
        self.assertEqual(body["error"]["code"], "input_blocked")
        self.assertEqual(body["error"]["policy"], "dlp-filter")
        self.assertNotIn("12345678", json.dumps(body))
        self.assertEqual(gw.provider.requests, [])
        self.assertEqual([(e["phase"], e["verdict"]) for e in gw.events()],
                         [("input", "block")])

    @defer.inlineCallbacks
    def test_answerBlocked(self):
        gw = Gateway(self, action="block")
        gw.provider.script = Script(answer="here: ACME-12345678")
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(response.code, 409)
        self.assertEqual((body["error"]["code"], body["error"]["policy"]),
                         ("output_blocked", "dlp-filter"))
        self.assertNotIn("12345678", json.dumps(body))
        self.assertEqual(gw.events("output")[0]["verdict"], "block")

    @defer.inlineCallbacks
    def test_streamBlockedMidway(self):
        """
        A block after the first bytes ends the stream with an error event,
        never with [DONE], and the secret never reaches the client.
        """
        gw = Gateway(self, action="block")
        gw.provider.script = Script(chunks=["fine ", "so far AC", "ME-1234",
                                            "5678 and more"])
        response = yield gw.post("/v1/chat/completions",
                                 chat("hi", stream=True))
        text = yield response.text()
        self.assertEqual(response.code, 200)
        events = [e for e in text.split("\n\n") if e]
        self.assertIn("fine ", events[0])
        last = json.loads(events[-1][len("data: "):])
        self.assertEqual((last["error"]["type"], last["error"]["code"]),
                         ("policy_violation", "output_blocked"))
        self.assertNotIn("[DONE]", text)
        self.assertNotIn("1234", text)
        out = gw.events("output")[0]
        self.assertEqual(out["verdict"], "block")
        self.assertEqual(out["policies"][0]["verdict"], "block")

    def _raisingFactories(self):
        factories = dict(policyFactories())

        class Boom:
            name = "boom"

            def checkInput(self, exchange):
                raise RuntimeError("exploded on ACME-12345678")

            def checkOutput(self, exchange, texts):
                return defer.succeed(Decision())

            def scanOutput(self, exchange):
                return None

        class BoomFactory:
            kind = "boom"

            @staticmethod
            def parseOptions(raw, path):
                return None

            @staticmethod
            def build(options, clock):
                return Boom()

        factories["boom"] = BoomFactory
        return factories

    @defer.inlineCallbacks
    def test_failModeBlock(self):
        gw = Gateway(self, chain="[boom, audit-logger]",
                     factories=self._raisingFactories())
        response = yield gw.post("/v1/chat/completions", chat("hello"))
        body = yield response.json()
        self.assertEqual(response.code, 503)
        self.assertEqual((body["error"]["type"], body["error"]["policy"]),
                         ("policy_error", "boom"))
        self.assertEqual(gw.provider.requests, [])
        self.assertEqual(gw.events("input")[0]["verdict"], "error")
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_failModeAllow(self):
        gw = Gateway(self, chain="[boom, audit-logger]", failMode="allow",
                     factories=self._raisingFactories())
        response = yield gw.post("/v1/chat/completions", chat("hello"))
        yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(len(gw.provider.requests), 1)
        event = gw.events("input")[0]
        self.assertEqual((event["verdict"], event["degraded"]),
                         ("allow", True))
        self.assertEqual(event["policies"][0]["verdict"], "error")


ANTHROPIC_TARGET = """
    - id: claude
      provider: anthropic
      base_url: %(base)s
      secret_key_ref: {env: FAKE_KEY}
"""
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_MARKER = "[REDACTED:AWS_ACCESS_KEY_ID]"
GITHUB_TOKEN = "ghp_R8k2mQ9vX4tL7nP3wZ6yB1cF5hJ0dS2aG8eK"


class NothingUnreadTests(TestCase):
    """
    What a request or an answer carries goes nowhere unread: each test one
    way around the policies (found by review).
    """

    @defer.inlineCallbacks
    def test_answerArgumentsWrittenPlainly(self):
        """
        The escapes of a whole answer's tool-call arguments (chat, and a
        Responses function call) are written plainly before the policies
        read them: the client, which decodes them, is sent the plain,
        redacted text.
        """
        escaped = '{"k": "\\u0041KIAIOSFODNN7EXAMPLE", "p": "a\\/b"}'
        chatAnswer = {"id": "c", "object": "chat.completion",
                      "model": "gpt-fake", "choices": [{
                          "index": 0, "finish_reason": "tool_calls",
                          "message": {"role": "assistant", "content": None,
                                      "tool_calls": [{
                                          "id": "t", "type": "function",
                                          "function": {
                                              "name": "f",
                                              "arguments": escaped}}]}}]}
        gw = Gateway(self, base=fixedProvider(self, 200, chatAnswer))
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(response.code, 200)
        arguments = body["choices"][0]["message"]["tool_calls"][0][
            "function"]["arguments"]
        self.assertEqual(arguments, '{"k": "%s", "p": "a/b"}' % (AWS_MARKER,))
        self.assertEqual(gw.events("output")[0]["verdict"], "redact")
        answer = {"id": "r", "object": "response", "status": "completed",
                  "output": [{"type": "function_call", "id": "fc",
                              "call_id": "c", "name": "f",
                              "arguments": escaped}]}
        gw = Gateway(self, base=fixedProvider(self, 200, answer))
        response = yield gw.post("/v1/responses", {"model": "gpt-fake",
                                                   "input": "hi"})
        body = yield response.json()
        self.assertEqual(body["output"][0]["arguments"],
                         '{"k": "%s", "p": "a/b"}' % (AWS_MARKER,))
        # Escapes and nothing found: the plain text all the same.
        chatAnswer["choices"][0]["message"]["tool_calls"][0]["function"][
            "arguments"] = '{"k": "\\u00e9"}'
        gw = Gateway(self, base=fixedProvider(self, 200, chatAnswer))
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(body["choices"][0]["message"]["tool_calls"][0][
            "function"]["arguments"], '{"k": "\u00e9"}')
        self.assertEqual(gw.events("output")[0]["verdict"], "allow")

    @defer.inlineCallbacks
    def test_dataURLsRead(self):
        """
        A string shaped like a base64 data URL is read but as an image
        part's or file's data of a binary type: as a tool's description,
        an image part of type text, it is redacted; as the model (a name),
        it blocks.
        """
        gw = Gateway(self)
        png = "data:image/png;base64,iVBORw0KGgo="
        response = yield gw.post("/v1/chat/completions", {
            "model": "gpt-fake", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": png}},
                {"type": "image_url", "image_url": {
                    "url": "data:text/plain;base64," + AWS_KEY}}]}],
            "tools": [{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object"},
                "description": "data:text/plain;base64," + AWS_KEY}}]})
        yield response.content()
        self.assertEqual(response.code, 200)
        sent = gw.provider.requests[-1].json
        self.assertNotIn(AWS_KEY, json.dumps(sent))
        parts = sent["messages"][0]["content"]
        self.assertEqual(
            (parts[1]["image_url"]["url"], parts[2]["image_url"]["url"],
             sent["tools"][0]["function"]["description"]),
            (png, "data:text/plain;base64," + AWS_MARKER,
             "data:text/plain;base64," + AWS_MARKER))
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", model="data:;base64," + AWS_KEY))
        error = (yield response.json())["error"]
        self.assertEqual((response.code, error["code"]),
                         (409, "input_blocked"))
        self.assertEqual(len(gw.provider.requests), 1)

    @defer.inlineCallbacks
    def test_base64TextFilesRead(self):
        """
        A text file sent as base64 (a chat file's data URL, a Responses
        input file, Claude's base64 document of a text type) is read as the
        text the provider decodes: redacted, it goes on encoded again, of
        its type; base64 that does not decode is read as it is (found by
        review: a .env's keys reached the provider).
        """
        env = "AWS_ACCESS_KEY_ID=%s\nGITHUB_TOKEN=%s\n" % (AWS_KEY,
                                                            GITHUB_TOKEN)
        data = base64.b64encode(env.encode()).decode()
        redacted = "AWS_ACCESS_KEY_ID=%s\nGITHUB_TOKEN=%s\n" % (
            AWS_MARKER, "[REDACTED:GITHUB_TOKEN]")
        gw = Gateway(self, extraTargets=ANTHROPIC_TARGET)
        response = yield gw.post("/v1/chat/completions", chat("hi", messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "what is in my .env?"},
                {"type": "file", "file": {
                    "filename": ".env",
                    "file_data": "data:text/plain;base64," + data}},
                {"type": "file", "file": {
                    "file_data": "data:text/plain;base64,%s!" % (AWS_KEY,)}}
            ]}]))
        yield response.content()
        self.assertEqual(response.code, 200)
        parts = gw.provider.requests[-1].json["messages"][0]["content"]
        head, _, sent = parts[1]["file"]["file_data"].partition(",")
        self.assertEqual((head, base64.b64decode(sent).decode()),
                         ("data:text/plain;base64", redacted))
        # A stray character: canonical base64 of what was read goes on.
        self.assertEqual(parts[2]["file"]["file_data"],
                         "data:text/plain;base64,%s" % (AWS_MARKER,))
        response = yield gw.post("/v1/responses", {
            "model": "gpt-fake", "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": "env.json",
                 "file_data": "data:application/json;base64," + data}]}]})
        yield response.content()
        sent = gw.provider.requests[-1].json["input"][0]["content"][0]
        self.assertEqual(base64.b64decode(sent["file_data"].partition(
            "data:application/json;base64,")[2]).decode(), redacted)
        response = yield gw.post("/v1/messages", {
            "model": "claude-fake", "max_tokens": 10, "messages": [
                {"role": "user", "content": [
                    {"type": "document", "source": {
                        "type": "base64", "media_type": "text/plain",
                        "data": data}},
                    {"type": "text", "text": "summarize"}]}]})
        yield response.content()
        source = gw.provider.requests[-1].json["messages"][0]["content"][0][
            "source"]
        self.assertEqual(base64.b64decode(source["data"]).decode(), redacted)
        self.assertEqual(
            [(e["verdict"], e["policies"][0]["findings"])
             for e in gw.events("input")],
            [("redact", [{"type": "aws_access_key_id", "count": 2},
                         {"type": "github_token", "count": 1}])] + [
                ("redact", [{"type": "aws_access_key_id", "count": 1},
                            {"type": "github_token", "count": 1}])] * 2)

    @defer.inlineCallbacks
    def test_base64TextFilesReadEveryWay(self):
        """
        A file's base64 is read as every reader may decode it (review s9b):
        UTF-16 after its byte order mark is redacted and goes on UTF-16;
        base64 only a lenient decoder takes is redacted and goes on
        canonical; UTF-16 without its mark, whose key only a reading that
        cannot be written back shows, blocks the request.
        """
        env = "AWS_ACCESS_KEY_ID=%s\n" % (AWS_KEY,)
        redacted = "AWS_ACCESS_KEY_ID=%s\n" % (AWS_MARKER,)
        utf16 = base64.b64encode(env.encode("utf-16")).decode()
        lenient = base64.b64encode(env.encode()).decode()
        lenient = lenient[:8] + "!" + lenient[8:] + "A"
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions", chat("hi", messages=[
            {"role": "user", "content": [
                {"type": "file", "file": {
                    "file_data": "data:text/plain;base64," + data}}
                for data in (utf16, lenient)]}]))
        yield response.content()
        self.assertEqual(response.code, 200)
        parts = gw.provider.requests[-1].json["messages"][0]["content"]
        sent = [base64.b64decode(part["file"]["file_data"].partition(",")[2])
                for part in parts]
        self.assertEqual(sent, [redacted.encode("utf-16"), redacted.encode()])
        response = yield gw.post("/v1/responses", {
            "model": "gpt-fake", "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": "env.txt",
                 "file_data": "data:text/plain;base64," + base64.b64encode(
                     env.encode("utf-16-le")).decode()}]}]})
        error = (yield response.json())["error"]
        self.assertEqual((response.code, error["code"]),
                         (409, "input_blocked"))
        # The message says where, a name being no likelier than the file.
        self.assertIn("a reading of a file", error["message"])
        self.assertEqual(len(gw.provider.requests), 1)
        self.assertEqual(
            [(e["verdict"], e["policies"][0]["findings"])
             for e in gw.events("input")],
            [("redact", [{"type": "aws_access_key_id", "count": 2}]),
             ("block", [{"type": "aws_access_key_id", "count": 1}])])

    @defer.inlineCallbacks
    def test_base64FilesByTheirBytes(self):
        """
        What a base64 file is, its bytes say with its label: a .env
        labelled image/png is read and redacted (found by review: it went
        on unread); a PDF whose bytes hold a key cannot be rewritten:
        refused (409); a picture goes on as it came.
        """
        env = "AWS_ACCESS_KEY_ID=%s\n" % (AWS_KEY,)
        picture = "data:image/png;base64," + base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00").decode()
        gw = Gateway(self, extraTargets=ANTHROPIC_TARGET)
        response = yield gw.post("/v1/chat/completions", chat("hi", messages=[
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": picture}},
                {"type": "file", "file": {
                    "filename": ".env", "file_data": "data:image/png;base64,"
                    + base64.b64encode(env.encode()).decode()}}]}]))
        yield response.content()
        parts = gw.provider.requests[-1].json["messages"][0]["content"]
        self.assertEqual(parts[0]["image_url"]["url"], picture)
        self.assertEqual(base64.b64decode(parts[1]["file"]["file_data"][
            len("data:image/png;base64,"):]).decode(),
            "AWS_ACCESS_KEY_ID=%s\n" % (AWS_MARKER,))
        response = yield gw.post("/v1/messages", {
            "model": "claude-fake", "max_tokens": 10, "messages": [
                {"role": "user", "content": [
                    {"type": "document", "source": {
                        "type": "base64", "media_type": "application/pdf",
                        "data": base64.b64encode(
                            b"%PDF-1.4\n(" + env.encode() + b") Tj").decode()
                    }}]}]})
        error = (yield response.json())["error"]
        self.assertEqual((response.code, error["type"]),
                         (409, "policy_violation"))
        self.assertEqual(len(gw.provider.requests), 1)
        self.assertEqual([e["verdict"] for e in gw.events("input")],
                         ["redact", "block"])
        # Base64 that decoders read differently ("-" among "+" and "/":
        # Python's drops it, Node's reads "+") goes on as canonical base64
        # of what the policies read (found by review: the provider got the
        # .env the gateway read shifted).
        data = "-" + base64.b64encode(("\n" + env).encode()).decode()
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", messages=[{"role": "user", "content": [
                {"type": "file", "file": {
                    "file_data": "data:text/plain;base64," + data}}]}]))
        yield response.content()
        sent = gw.provider.requests[-1].json["messages"][0]["content"][0][
            "file"]["file_data"].partition(",")[2]
        self.assertNotEqual(sent, data)
        self.assertEqual(base64.b64encode(base64.b64decode(
            sent, validate=True)).decode(), sent)
        self.assertNotIn(b"AKIA", base64.b64decode(sent))

    @defer.inlineCallbacks
    def test_filesDecodeWithinABudget(self):
        """
        What a request's files decode to is bounded in all (found by
        review: many small zip bombs held the reactor for minutes): past
        the bound, the request is refused (422), nothing sent.
        """
        self.patch(documents, "INFLATED", 100000)
        bomb = base64.b64encode(gzip.compress(b"A" * 60000)).decode()
        gw = Gateway(self)
        gw.port.factory.active = ActiveRequests()
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", messages=[{"role": "user", "content": [
                {"type": "file", "file": {
                    "file_data": "data:application/gzip;base64," + bomb}},
                {"type": "file", "file": {
                    "file_data": "data:application/gzip;base64," + bomb
                    + "AAAA"}}]}]))
        error = (yield response.json())["error"]
        self.assertEqual((response.code, error["type"]),
                         (422, "validation_error"))
        self.assertEqual(gw.provider.requests, [])
        self.assertTrue(gw.port.factory.active.whenIdle().called)

    @defer.inlineCallbacks
    def test_requestSubtreesRead(self):
        """
        A request's logprobs, a C{signature} or C{encrypted_content} out of
        their places, Claude's signed thinking and a redacted thinking
        block's data that is not base64: all read, and redacted.
        """
        gw = Gateway(self, extraTargets=ANTHROPIC_TARGET)
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", logprobs=[AWS_KEY], top_logprobs={"a": GITHUB_TOKEN},
            messages=[
                {"role": "assistant", "content": "x", "logprobs": {
                    "content": [{"token": AWS_KEY}]}},
                {"role": "user", "encrypted_content": GITHUB_TOKEN,
                 "content": [{"type": "text", "text": "hi",
                              "signature": AWS_KEY}]}]))
        yield response.content()
        self.assertEqual(response.code, 200)
        sent = gw.provider.requests[-1].body
        self.assertNotIn(AWS_KEY.encode(), sent)
        self.assertNotIn(GITHUB_TOKEN.encode(), sent)
        self.assertEqual(sent.count(AWS_MARKER.encode()), 3)
        response = yield gw.post("/v1/messages", {
            "model": "claude-fake", "max_tokens": 10, "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "the key is " + AWS_KEY,
                     "signature": "RXFRQkNnSVlB"},
                    {"type": "redacted_thinking", "data": GITHUB_TOKEN},
                    {"type": "redacted_thinking", "data": "RW1vS0FoZ0I="},
                    {"type": "text", "text": "ok"}]},
                {"role": "user", "content": "go on"}]})
        yield response.content()
        self.assertEqual(response.code, 200)
        blocks = gw.provider.requests[-1].json["messages"][1]["content"]
        self.assertEqual(
            (blocks[0]["thinking"], blocks[0]["signature"],
             blocks[1]["data"], blocks[2]["data"]),
            ("the key is " + AWS_MARKER, "RXFRQkNnSVlB",
             "[REDACTED:GITHUB_TOKEN]", "RW1vS0FoZ0I="))

    @defer.inlineCallbacks
    def test_otherAnswersRead(self):
        """
        An error sent as a stream or as plain text, an embeddings answer, a
        token count: each read before the client has it.
        """
        for status, contentType, answer, expected in [
                (400, b"text/event-stream",
                 b'data: {"error": {"message": "' + AWS_KEY.encode()
                 + b'"}}\n\n',
                 b'data: {"error": {"message": "' + AWS_MARKER.encode()
                 + b'"}}\n\n'),
                (500, b"text/plain", b"upstream said " + AWS_KEY.encode(),
                 b"upstream said " + AWS_MARKER.encode()),
                (502, b"text/html", b"<p>\xff " + AWS_KEY.encode(),
                 b"<p>\xff " + AWS_MARKER.encode())]:
            gw = Gateway(self, base=fixedProvider(self, status, answer,
                                                  contentType))
            response = yield gw.post("/v1/chat/completions",
                                     chat("hi", stream=True))
            content = yield response.content()
            self.assertEqual((response.code, content), (status, expected))
            self.assertEqual(
                [(e["status"], e["verdict"]) for e in gw.events("output")],
                [(status, "redact")])
        embedding = {"object": "list", "model": "gpt-fake",
                     "data": [{"object": "embedding", "index": 0,
                               "embedding": [0.1, 0.2], "text": AWS_KEY},
                              {"object": "embedding", "index": 1,
                               "embedding": "AACAPwAAAEA="}],
                     "usage": {"prompt_tokens": 2, "total_tokens": 2}}
        gw = Gateway(self, base=fixedProvider(self, 200, embedding))
        response = yield gw.post("/v1/embeddings", {"model": "gpt-fake",
                                                    "input": "hi"})
        body = yield response.json()
        self.assertEqual(body["data"][0]["text"], AWS_MARKER)
        self.assertEqual([d["embedding"] for d in body["data"]],
                         [[0.1, 0.2], "AACAPwAAAEA="])
        self.assertEqual(gw.events("output")[0]["tokens"],
                         {"input": 2, "output": None})
        gw = Gateway(self, base=fixedProvider(
            self, 200, {"input_tokens": 3, "note": AWS_KEY}),
            extraTargets=ANTHROPIC_TARGET)
        response = yield gw.post("/v1/messages/count_tokens", {
            "model": "claude-fake",
            "messages": [{"role": "user", "content": "hi"}]})
        body = yield response.json()
        self.assertEqual(body, {"input_tokens": 3, "note": AWS_MARKER})

    @defer.inlineCallbacks
    def test_namesInStreamsChecked(self):
        """
        A credential among a streamed answer's names (a tool call's name,
        an object key) stops the stream with the surface's error event, as
        one in a whole answer blocks it (found by review: it passed).
        """
        def toolCall(name):
            return ("data: " + json.dumps({
                "id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "finish_reason": None, "delta": {
                    "tool_calls": [{"index": 0, "id": "call_1",
                                    "type": "function", "function": {
                                        "name": name,
                                        "arguments": "{}"}}]}}]})
                    + "\n\ndata: [DONE]\n\n").encode()
        for stream in (toolCall(AWS_KEY), toolCall("run").replace(
                b'"arguments": "{}"', b'"' + AWS_KEY.encode() + b'": 1, '
                b'"arguments": "{}"')):
            gw = Gateway(self, base=fixedProvider(
                self, 200, stream, contentType=b"text/event-stream"))
            response = yield gw.post("/v1/chat/completions",
                                     chat("hi", stream=True))
            text = yield response.text()
            self.assertNotIn(AWS_KEY, text)
            self.assertIn("output_blocked", text)
            self.assertNotIn("[DONE]", text)
            self.assertEqual(gw.events("output")[0]["verdict"], "block")
            self.assertNotIn(AWS_KEY, json.dumps(gw.journal.records))
        gw = Gateway(self, base=fixedProvider(
            self, 200, toolCall("run"), contentType=b"text/event-stream"))
        response = yield gw.post("/v1/chat/completions",
                                 chat("hi", stream=True))
        text = yield response.text()
        self.assertIn('"name": "run"', text)
        self.assertIn("[DONE]", text)

    @defer.inlineCallbacks
    def test_forwardedModelsRead(self):
        """
        The provider's model list, when no target lists models, is read
        like any answer: its ids are names, a credential there blocks it.
        """
        gw = Gateway(self, models=False)
        gw.provider.models = ["gpt-x", AWS_KEY]
        response = yield gw.get("/v1/models")
        body = yield response.json()
        self.assertEqual((response.code, body["error"]["code"]),
                         (409, "output_blocked"))
        self.assertNotIn(AWS_KEY, json.dumps(body))
        self.assertEqual(
            [(e["phase"], e["verdict"], e["endpoint"], e["method"])
             for e in gw.events()],
            [("input", "allow", "models", "GET"),
             ("output", "block", "models", "GET")])
        self.assertNotIn(AWS_KEY, json.dumps(gw.journal.records))
        gw.provider.models = ["gpt-x"]
        response = yield gw.get("/v1/models?limit=1")
        body = yield response.json()
        self.assertEqual([m["id"] for m in body["data"]], ["gpt-x"])
        self.assertEqual(gw.provider.requests[-1].path, "/v1/models")
        self.assertEqual(gw.events("output")[-1]["tokens"],
                         {"input": None, "output": None})

    @defer.inlineCallbacks
    def test_queryAndHeadersRead(self):
        """
        A credential in the query string or in a header the provider is
        sent blocks the request, as one in a name does; the credentials
        meant for the provider (the target's key, the client's own it
        passes, a C{key} parameter among them) are not read, nor are the
        headers the provider is not sent.
        """
        gw = Gateway(self)
        for path, headers in [
                ("/v1/chat/completions?a=1&api_key=" + AWS_KEY, {}),
                ("/v1/chat/completions?k=AKIA%49OSFODNN7EXAMPLE", {}),
                ("/v1/chat/completions", {b"x-note": [AWS_KEY.encode()]}),
                ("/v1/chat/completions", {
                    b"openai-organization": [GITHUB_TOKEN.encode()]})]:
            headers[b"content-type"] = [b"application/json"]
            response = yield gw.post(path, chat("hi"), headers=headers)
            error = (yield response.json())["error"]
            self.assertEqual((response.code, error["code"]),
                             (409, "input_blocked"), path)
            self.assertIn("query string or a header", error["message"])
        self.assertEqual(gw.provider.requests, [])
        self.assertNotIn(AWS_KEY, json.dumps(gw.journal.records))
        response = yield gw.post("/v1/chat/completions?key=" + AWS_KEY,
                                 chat("hi"), headers={
            b"content-type": [b"application/json"],
            b"authorization": [b"Bearer " + GITHUB_TOKEN.encode()],
            b"x-user-id": [b"u-" + AWS_KEY.encode()]})
        yield response.content()
        self.assertEqual(response.code, 200)
        # To a target with a key of its own, the client's credentials do
        # not go on (found by review: api-key and the like went on unread).
        for name in (b"api-key", b"x-goog-api-key", b"cookie"):
            response = yield gw.post("/v1/chat/completions", chat("hi"),
                                     headers={
                b"content-type": [b"application/json"],
                name: [GITHUB_TOKEN.encode()]})
            yield response.content()
            self.assertEqual(response.code, 200)
            self.assertNotIn(name.decode(), gw.provider.requests[-1].headers)
        gw = Gateway(self, keyRef=False)
        response = yield gw.post("/v1/chat/completions", chat("hi"), headers={
            b"content-type": [b"application/json"],
            b"x-api-key": [GITHUB_TOKEN.encode()]})
        yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(gw.provider.requests[-1].headers["x-api-key"],
                         GITHUB_TOKEN)


class DuplicateKeyAnswerTests(TestCase):
    """
    An answer that gives a key twice goes to the client written anew from
    what the policies read, not as it came: readers differ on which value
    counts (found by review).
    """

    @defer.inlineCallbacks
    def test_writtenAnew(self):
        answer = (b'{"id": "c1", "object": "chat.completion", "model": '
                  b'"gpt-fake", "choices": [{"index": 0, "message": {"role": '
                  b'"assistant", "content": "AKIAIOSFODNN7EXAMPLE", "content": '
                  b'"hello"}, "finish_reason": "stop"}]}')
        gw = Gateway(self, base=fixedProvider(self, 200, answer))
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.content()
        self.assertEqual(response.code, 200)
        self.assertNotIn(b"AKIAIOSFODNN7EXAMPLE", body)
        self.assertEqual(
            json.loads(body)["choices"][0]["message"]["content"], "hello")


class ErrorTests(TestCase):
    """
    The gateway's own errors, and the provider's passed through.
    """

    @defer.inlineCallbacks
    def test_sendingRaisedKeepsInputRecord(self):
        """
        A request whose sending raised at once still leaves its input
        record (written after the sending) and gets a 500.
        """
        def raising(*args, **kwargs):
            raise RuntimeError("sending raised")
        self.patch(Upstream, "request", raising)
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual((response.code, body["error"]["type"]),
                         (500, "internal_error"))
        self.assertEqual([r["phase"] for r in gw.events()], ["input"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @defer.inlineCallbacks
    def test_readingRaisedReleasesDrain(self):
        """
        A request whose reading raised gets a 500 and holds no drain (found
        by review: the hold taken for its records was never released, and
        a graceful stop would have waited for ever).
        """
        def raising(*args, **kwargs):
            raise RuntimeError("reading raised")
        self.patch(pipeline, "readRequest", raising)
        gw = Gateway(self)
        gw.port.factory.active = ActiveRequests()
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual((response.code, body["error"]["type"]),
                         (500, "internal_error"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        idle = gw.port.factory.active.whenIdle()
        self.assertTrue(idle.called)

    @defer.inlineCallbacks
    def test_oddFileLabels(self):
        """
        A file's label that is no string is no label, not a crash (found by
        review: a 500); a data URL without a comma costs its length, not
        its length squared (one of 1 MB took minutes).
        """
        gw = Gateway(self, extraTargets=ANTHROPIC_TARGET)
        picture = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(
            range(256)) * 2).decode()
        for label in (5, ["image/png"], {"a": 1}, True, None):
            response = yield gw.post("/v1/messages", {
                "model": "claude-fake", "max_tokens": 10, "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {
                        "type": "base64", "media_type": label,
                        "data": picture}}]}]})
            yield response.content()
            self.assertEqual(response.code, 200, label)
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {
                    "url": "data:" + "a" * 1000000}}]}]))
        yield response.content()
        self.assertEqual(response.code, 200)

    @defer.inlineCallbacks
    def assertError(self, response, status, type):
        body = yield response.json()
        self.assertEqual(response.code, status)
        self.assertEqual(body["error"]["type"], type)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                         [b"application/json"])
        defer.returnValue(body)

    @defer.inlineCallbacks
    def test_badJSON(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions", b'{"model": ')
        yield self.assertError(response, 422, "validation_error")
        self.assertEqual(gw.provider.requests, [])

    @defer.inlineCallbacks
    def test_missingMessages(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions", {"model": "x"})
        body = yield self.assertError(response, 422, "validation_error")
        self.assertIn("messages", body["error"]["message"])

    @defer.inlineCallbacks
    def test_tooLarge(self):
        gw = Gateway(self, maxBody=1000)
        response = yield gw.post("/v1/chat/completions", chat("x" * 5000))
        yield self.assertError(response, 413, "validation_error")
        self.assertEqual(gw.provider.requests, [])

    @defer.inlineCallbacks
    def test_providerErrorPassesThrough(self):
        gw = Gateway(self)
        gw.provider.script = Script(status=429)
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual(response.code, 429)
        self.assertEqual(body["error"]["code"], "rate_limit_exceeded")

    @defer.inlineCallbacks
    def test_providerReset(self):
        gw = Gateway(self)
        gw.provider.script = Script(reset=True)
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        yield self.assertError(response, 502, "upstream_error")
        self.assertEqual(gw.events("output")[0]["verdict"], "error")

    @defer.inlineCallbacks
    def test_providerUnreachable(self):
        # A port nobody listens on any more.
        port = reactor.listenTCP(0, ClientFactory(), interface="127.0.0.1")
        dead = port.getHost().port
        yield port.stopListening()
        gw = Gateway(self, base="http://127.0.0.1:%d/v1" % (dead,))
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        yield self.assertError(response, 502, "upstream_error")

    @defer.inlineCallbacks
    def test_providerHangTimesOut(self):
        gw = Gateway(self, idle=0.3)
        gw.provider.script = Script(hang=True)
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        yield self.assertError(response, 504, "upstream_timeout")

    @defer.inlineCallbacks
    def test_malformedProviderJSON(self):
        gw = Gateway(self)
        gw.provider.script = Script(malformed=True)
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        yield self.assertError(response, 502, "upstream_error")

    @defer.inlineCallbacks
    def test_resetMidStreamEndsWithErrorEvent(self):
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["a", "b", "c"], resetMidStream=1)
        response = yield gw.post("/v1/chat/completions",
                                 chat("hi", stream=True))
        text = yield response.text()
        self.assertEqual(response.code, 200)
        events = [e for e in text.split("\n\n") if e]
        self.assertIn('"error"', events[-1])
        self.assertNotIn("[DONE]", text)

    @defer.inlineCallbacks
    def test_requestIdEchoed(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions", chat("hi"), headers={
            b"content-type": b"application/json",
            b"x-request-id": b"abc-123"})
        yield response.content()
        self.assertEqual(response.headers.getRawHeaders(b"x-request-id"),
                         [b"abc-123"])
        self.assertEqual(gw.events()[0]["request_id"], "abc-123")
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        yield response.content()
        made = response.headers.getRawHeaders(b"x-request-id")[0]
        self.assertTrue(made.startswith(b"req_"))
        self.assertEqual({e["request_id"] for e in gw.events()[-2:]},
                         {made.decode()})

    @defer.inlineCallbacks
    def test_unknownEndpoint(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/nothing", chat("hi"))
        yield self.assertError(response, 404, "not_found")


class EndpointTests(TestCase):
    """
    The other OpenAI endpoints.
    """

    @defer.inlineCallbacks
    def test_modelsFromTargets(self):
        gw = Gateway(self)
        response = yield gw.get("/v1/models")
        body = yield response.json()
        self.assertEqual([m["id"] for m in body["data"]],
                         ["gpt-fake", "gpt-fake-mini"])

    @defer.inlineCallbacks
    def test_completionsRedacted(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/completions", {
            "model": "gpt-fake", "prompt": ["x ACME-11112222"]})
        yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(gw.provider.requests[-1].json["prompt"],
                         ["x [REDACTED:CUSTOM_PATTERN]"])

    @defer.inlineCallbacks
    def test_embeddingsRedacted(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/embeddings", {
            "model": "gpt-fake", "input": "bluebird"})
        body = yield response.json()
        self.assertEqual(body["object"], "list")
        self.assertEqual(gw.provider.requests[-1].json["input"],
                         "[REDACTED:BLOCKED_TERM]")

    @defer.inlineCallbacks
    def test_modelsFromProvider(self):
        """
        No target lists models: the provider's own list comes through.
        """
        gw = Gateway(self, models=False)
        response = yield gw.get("/v1/models")
        body = yield response.json()
        self.assertEqual([m["id"] for m in body["data"]],
                         list(gw.provider.models))
        self.assertEqual(gw.provider.requests[-1].headers["authorization"],
                         "Bearer sk-provider-key")

    @defer.inlineCallbacks
    def test_clientAuthPassedWithoutKey(self):
        gw = Gateway(self, keyRef=False)
        response = yield gw.post("/v1/chat/completions", chat("hi"), headers={
            b"content-type": b"application/json",
            b"authorization": b"Bearer sk-client-own"})
        yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(gw.provider.requests[-1].headers["authorization"],
                         "Bearer sk-client-own")

    @defer.inlineCallbacks
    def test_clientAuthReplacedByTargetKey(self):
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions", chat("hi"), headers={
            b"content-type": b"application/json",
            b"authorization": b"Bearer sk-client-own", b"x-user-id": b"u1"})
        yield response.content()
        headers = gw.provider.requests[-1].headers
        self.assertEqual(headers["authorization"], "Bearer sk-provider-key")
        self.assertNotIn("x-user-id", headers)
        self.assertEqual(gw.events()[0]["user"], "u1")

    @defer.inlineCallbacks
    def test_missingKeyMakesTargetUnavailable(self):
        gw = Gateway(self, environ={})
        response = yield gw.post("/v1/chat/completions", chat("hi"))
        body = yield response.json()
        self.assertEqual((response.code, body["error"]["type"]),
                         (503, "unavailable"))
        self.flushLoggedErrors()


class FlowControlTests(TestCase):
    """
    Backpressure and disconnects on the streaming path.
    """

    def _rawStream(self, gw, paused):
        body = json.dumps(chat("hi", stream=True)).encode()
        request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % (len(body),) + body)

        class Client(Protocol):
            received = 0

            def connectionMade(self):
                self.transport.write(request)
                if paused:
                    self.transport.pauseProducing()

            def dataReceived(self, data):
                self.received += len(data)

        factory = ClientFactory.forProtocol(Client)
        from twisted.internet.endpoints import TCP4ClientEndpoint
        d = TCP4ClientEndpoint(reactor, "127.0.0.1",
                               gw.port.getHost().port).connect(factory)

        def connected(protocol):
            self.addCleanup(protocol.transport.abortConnection)
            return protocol
        return d.addCallback(connected)

    @defer.inlineCallbacks
    def test_slowClientPausesProvider(self):
        gw = Gateway(self, chain="[audit-logger]")
        gw.provider.script = Script(bigStream=256 * 1024 * 1024)
        yield self._rawStream(gw, paused=True)
        yield waitUntil(reactor, lambda: gw.provider.paused, timeout=10)
        # Kernel buffers fill for a while; then nothing moves any more.
        yield sleep(1.0)
        produced = gw.provider.bytesProduced
        yield sleep(0.5)
        self.assertTrue(gw.provider.paused)
        self.assertEqual(gw.provider.bytesProduced, produced)
        self.assertLess(produced, 64 * 1024 * 1024)

    @defer.inlineCallbacks
    def test_clientGoneDropsProvider(self):
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["a", "b"], hold=True)
        client = yield self._rawStream(gw, paused=False)
        yield gw.provider.whenHeld()
        yield waitUntil(reactor, lambda: client.received > 0)
        client.transport.abortConnection()
        yield waitUntil(reactor, lambda: gw.provider.disconnects == 1)
        yield waitUntil(reactor, lambda: len(gw.events("output")) == 1)
        self.assertTrue(gw.events("output")[0].get("client_gone"))


class AccessLogTests(TestCase):
    """
    One line per request, without the query, header values or bodies.
    """

    @defer.inlineCallbacks
    def test_line(self):
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions?key=sk-in-query",
                                 chat("ACME-12345678"), headers={
                                     b"content-type": b"application/json",
                                     b"authorization": b"Bearer sk-header"})
        yield response.content()
        mine = [e for e in events
                if e.get("log_namespace") == "keeptrusts.api.site"]
        lines = [formatEvent(e) for e in mine]
        self.assertEqual(len(lines), 1, lines)
        # (The prompt's ACME id was redacted: the line shows it.)
        self.assertRegex(lines[0], r"^POST /v1/chat/completions 200 "
                                   r"[0-9.]+ms redact$")
        # The fields stay in the event, for observers that keep them.
        self.assertEqual(
            [mine[0][k] for k in ("method", "path", "status", "verdict")],
            ["POST", "/v1/chat/completions", 200, "redact"])
        everything = " ".join(formatEvent(e) for e in events)
        for secret in ("sk-in-query", "sk-header", "12345678"):
            self.assertNotIn(secret, everything)

    @defer.inlineCallbacks
    def test_strongestVerdict(self):
        """
        A request whose prompt was redacted and whose answer was not shows
        C{redact}: the strongest verdict of its records, not the last.
        """
        from twisted.logger import globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        gw = Gateway(self)
        response = yield gw.post("/v1/chat/completions",
                                 chat("key AKIAIOSFODNN7EXAMPLE"))
        yield response.content()
        self.assertEqual([e["verdict"] for e in gw.journal.records],
                         ["redact", "allow"])
        [line] = [e for e in events
                  if e.get("log_namespace") == "keeptrusts.api.site"]
        self.assertEqual(line["verdict"], "redact")

    @defer.inlineCallbacks
    def test_keysInRecordedFieldsAndPaths(self):
        """
        What the client names besides its texts (the model, its request,
        agent and user ids, the path) is scrubbed of keys in the journal
        and the access-log line (found by review).
        """
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        gw = Gateway(self)
        key = "AKIAIOSFODNN7EXAMPLE"
        headers = {b"content-type": b"application/json",
                   b"x-request-id": b"id-" + key.encode(),
                   b"x-keeptrusts-agent-id": b"agent-" + key.encode(),
                   b"x-user-id": b"user-" + key.encode()}
        response = yield gw.post("/v1/chat/completions", chat("hi"),
                                 headers=headers)
        yield response.content()
        # The request id goes to the provider: blocked (the gateway's own
        # headers are not sent, not read).
        self.assertEqual(response.code, 409)
        response = yield gw.post("/v1/chat/completions", chat(
            "hi", model="model-" + key), headers=headers)
        yield response.content()
        response = yield gw.post("/v1/" + key, chat("hi"))
        yield response.content()
        self.assertEqual(response.code, 404)
        records = json.dumps(gw.journal.records)
        self.assertNotIn(key, records)
        marker = "[REDACTED:AWS_ACCESS_KEY_ID]"
        [first] = [r for r in gw.events("input")
                   if r["model"] == "gpt-fake"]
        self.assertEqual(
            [first[k] for k in ("request_id", "agent", "user")],
            ["id-" + marker, "agent-" + marker, "user-" + marker])
        self.assertIn("model-" + marker, records)
        lines = " ".join(formatEvent(e) for e in events)
        self.assertIn("/v1/" + marker, lines)
        self.assertNotIn(key, lines)

    def siteEvents(self, accessLog, verdict="redact"):
        """
        The events of the gateway's site for one logged request.
        """
        from twisted.logger import globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        request = SimpleNamespace(method=b"POST", path=b"/v1/embeddings?k=v",
                                  code=200, ktStarted=time.monotonic(),
                                  ktVerdict=verdict)
        GatewaySite(Resource(), 1024, accessLog=accessLog).log(request)
        return [e for e in events
                if e.get("log_namespace") == "keeptrusts.api.site"]

    def test_jsonLine(self):
        from twisted.logger import formatEvent
        [event] = self.siteEvents("json")
        line = json.loads(formatEvent(event))
        self.assertEqual(
            (line.pop("method"), line.pop("path"), line.pop("status"),
             line.pop("verdict")), ("POST", "/v1/embeddings", 200, "redact"))
        self.assertIsInstance(line.pop("ms"), float)
        self.assertEqual(line, {})

    def test_textLineWithoutVerdict(self):
        from twisted.logger import formatEvent
        [event] = self.siteEvents("text", verdict=None)
        self.assertRegex(formatEvent(event),
                         r"^POST /v1/embeddings 200 [0-9.]+ms -$")

    def test_off(self):
        self.assertEqual(self.siteEvents("off"), [])

    def test_shownTarget(self):
        """
        Logs show a target without its query, fragment or userinfo.
        """
        for target, shown in [
                (b"/v1/models?key=sk-1", "/v1/models"),
                (b"http://deploy:S3cret@pypi.internal:8080/simple/?t=1",
                 "http://pypi.internal:8080/simple/"),
                (b"http://user@host", "http://host"),
                (b"http://host/a@b/c#frag", "http://host/a@b/c")]:
            self.assertEqual(shownTarget(target), shown)



class SentBeforeBookkeepingTests(TestCase):
    """
    The last bytes of an answer leave before the work that follows them in
    the same turn: the output record of a stream, the access-log line.
    What the client holds at that moment is read off a raw socket.
    """

    def rawClient(self, gw, body):
        sock = socket.create_connection(("127.0.0.1", gw.port.getHost().port))
        self.addCleanup(sock.close)
        sock.setblocking(False)
        data = json.dumps(body).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        return sock

    def received(self, sock, kept):
        """
        Append what the client's socket has now to C{kept}.
        """
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return kept
            if not data:
                return kept
            kept += data

    @defer.inlineCallbacks
    def test_streamEndBeforeItsRecord(self):
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["Hel", "lo"])
        sock = self.rawClient(gw, chat("hi", stream=True))
        kept = bytearray()
        heldAtRecord = []
        append = gw.journal.append

        def recording(record):
            if record["phase"] == "output":
                heldAtRecord.append(bytes(self.received(sock, kept)))
            return append(record)
        gw.journal.append = recording
        yield waitUntil(reactor, lambda: heldAtRecord, timeout=10)
        self.assertIn(b"data: [DONE]", heldAtRecord[0])
        # The end of the HTTP answer itself still follows the record.
        self.assertFalse(heldAtRecord[0].endswith(b"0\r\n\r\n"))
        yield waitUntil(reactor, lambda: self.received(sock, kept).endswith(
            b"0\r\n\r\n"), timeout=10)

    @defer.inlineCallbacks
    def test_answerBeforeItsRecord(self):
        """
        A whole answer is with the client before its output record is
        written (the input record came before the provider was asked).
        """
        gw = Gateway(self)
        sock = self.rawClient(gw, chat("hi"))
        kept = bytearray()
        heldAtRecord = {}
        append = gw.journal.append

        def recording(record):
            heldAtRecord[record["phase"]] = bytes(self.received(sock, kept))
            return append(record)
        gw.journal.append = recording
        yield waitUntil(reactor, lambda: "output" in heldAtRecord, timeout=10)
        self.assertEqual(heldAtRecord["input"], b"")
        head, _, body = heldAtRecord["output"].partition(b"\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200", head)
        self.assertEqual(json.loads(body)["object"], "chat.completion")
        self.assertEqual([r["phase"] for r in gw.events()],
                         ["input", "output"])

    @defer.inlineCallbacks
    def test_requestWithProviderBeforeInputRecord(self):
        """
        On a kept connection, the provider has the request before the
        gateway writes its input record: the provider works meanwhile.
        The provider here is a raw socket, read when the record is written.
        """
        server = socket.socket()
        self.addCleanup(server.close)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        gw = Gateway(self, base="http://127.0.0.1:%d/v1" % (
            server.getsockname()[1],))
        conns = []

        def accepted():
            try:
                conn, _ = server.accept()
            except BlockingIOError:
                return False
            conn.setblocking(False)
            self.addCleanup(conn.close)
            conns.append(conn)
            return True
        answer = json.dumps({
            "id": "c", "object": "chat.completion", "model": "gpt-fake",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "ok"}}]}).encode()

        def answerOne():
            conns[0].sendall(b"HTTP/1.1 200 OK\r\nContent-Type: "
                             b"application/json\r\nContent-Length: %d\r\n"
                             b"\r\n%s" % (len(answer), answer))
        provider = bytearray()
        first = gw.post("/v1/chat/completions", chat("one"))
        yield waitUntil(reactor, accepted, timeout=10)
        yield waitUntil(reactor, lambda: b"one" in self.received(
            conns[0], provider), timeout=10)
        answerOne()
        yield (yield first).json()

        providerHad = []
        append = gw.journal.append

        def recording(record):
            if record["phase"] == "input":
                providerHad.append(bytes(self.received(conns[0],
                                                       bytearray())))
            return append(record)
        gw.journal.append = recording
        second = gw.post("/v1/chat/completions", chat("two"))
        yield waitUntil(reactor, lambda: providerHad, timeout=10)
        self.assertIn(b"POST /v1/chat/completions", providerHad[0])
        self.assertIn(b"two", providerHad[0])
        answerOne()
        yield (yield second).json()
        self.assertEqual([r["phase"] for r in gw.events()],
                         ["input", "output"] * 2)

    @defer.inlineCallbacks
    def test_answerAfterDurableRecordsWhenAlways(self):
        """
        With C{journal.sync: always}, the answer waits until its records
        are durable.
        """
        gw = Gateway(self, sync="always")
        sock = self.rawClient(gw, chat("hi"))
        kept = bytearray()
        durable = []
        append = gw.journal.append

        def slowly(record):
            d = defer.Deferred()
            durable.append((record["phase"], d))
            return append(record).addCallback(lambda _: d)
        gw.journal.append = slowly
        yield waitUntil(reactor, lambda: len(durable) == 2, timeout=10)
        yield sleep(0.05)
        self.assertEqual(self.received(sock, kept), b"")
        for _, d in durable:
            d.callback(None)
        yield waitUntil(reactor, lambda: b"chat.completion" in self.received(
            sock, kept), timeout=10)

    @defer.inlineCallbacks
    def test_streamHeadBeforeItsFirstEvent(self):
        """
        The provider's head reaches the client while the provider still
        thinks about its first event.
        """
        gw = Gateway(self)
        gw.provider.script = Script(chunks=["late"], pauses=2.0)
        sock = self.rawClient(gw, chat("hi", stream=True))
        kept = bytearray()
        yield waitUntil(reactor, lambda: b"\r\n\r\n" in self.received(
            sock, kept), timeout=10)
        head, _, body = bytes(kept).partition(b"\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200", head)
        self.assertIn(b"text/event-stream", head.lower())
        self.assertNotIn(b"data:", body)
        self.assertTrue(gw.provider.requests)
        yield waitUntil(reactor, lambda: self.received(sock, kept).endswith(
            b"0\r\n\r\n"), timeout=10)
        self.assertIn(b"late", kept)

    def test_streamEndBeforeAccessLog(self):
        return self.test_answerBeforeAccessLog(stream=True)

    @defer.inlineCallbacks
    def test_answerBeforeAccessLog(self, stream=False):
        from twisted.logger import globalLogPublisher
        gw = Gateway(self)
        sock = self.rawClient(gw, chat("hi", stream=stream))
        kept = bytearray()
        heldAtLog = []

        def observe(event):
            if event.get("log_namespace") == "keeptrusts.api.site":
                heldAtLog.append(bytes(self.received(sock, kept)))
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        yield waitUntil(reactor, lambda: heldAtLog, timeout=10)
        head, _, body = heldAtLog[0].partition(b"\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200", head)
        if stream:
            self.assertTrue(body.endswith(b"0\r\n\r\n"), body[-40:])
        else:
            self.assertEqual(json.loads(body)["object"], "chat.completion")


class GatewayChannelTests(SynchronousTestCase):
    """
    The site's channel refuses malformed heads in the envelope, but never
    in the place of an answer still owed.
    """

    def test_pipelinedLineTooLong(self):
        """
        A request still being answered when the next one's head has an
        overlong line (Twisted 22.4 reads on): the connection closes, no
        refusal reads as the first request's answer.
        """
        pending = []

        class Slow(Resource):
            isLeaf = True

            def render_GET(self, request):
                pending.append(request)
                return NOT_DONE_YET

        site = GatewaySite(Slow(), 1000, reactor=Clock(), accessLog="off")
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /b HTTP/1.1\r\nX: " + b"a" * 20000
                             + b"\r\n\r\n")
        self.assertEqual(len(pending), 1)
        self.assertFalse(transport.value().startswith(b"HTTP/1.1 431"),
                         transport.value()[:80])
        channel.connectionLost(Failure(ConnectionDone()))

    def test_formBodiesNotParsed(self):
        """
        A form or multipart POST body reaches the resource as it came, with
        its type, and Twisted has not parsed it (Twisted 22.4 did: cgi,
        unbounded, before access keys are checked, and a bare 400 for what
        it could not parse).
        """
        seen = []

        class Seen(Resource):
            isLeaf = True

            def render_POST(self, request):
                seen.append((request.args, request.getHeader(b"content-type"),
                             request.content.read()))
                return b""
        site = GatewaySite(Seen(), 10000, reactor=Clock(), accessLog="off")
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        channel.makeConnection(StringTransport())
        self.addCleanup(channel.connectionLost, Failure(ConnectionDone()))
        multipart = (b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n"
                     b"1\r\n--b--\r\n")
        for kind, body in [(b"application/x-www-form-urlencoded", b"a=1"),
                           (b"multipart/form-data; boundary=b", multipart),
                           (b"multipart/form-data; boundary=b", b"--b\r\nX")]:
            channel.dataReceived(
                b"POST /f?q=2 HTTP/1.1\r\nHost: x\r\nContent-Type: " + kind
                + b"\r\nContent-Length: %d\r\n\r\n" % (len(body),) + body)
            self.assertEqual(seen[-1], ({b"q": [b"2"]}, kind, body))

    def _channel(self, clock):
        class Held(Resource):
            isLeaf = True

            def render_GET(self, request):
                return NOT_DONE_YET

        site = GatewaySite(Held(), 1000, reactor=clock, accessLog="off",
                           timeout=30)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        channel.makeConnection(transport)
        self.addCleanup(channel.connectionLost, Failure(ConnectionDone()))
        return channel, transport

    def test_headInPartsHasDeadline(self):
        """
        A head read in parts must be whole within the site's timeout of
        its first part, however often bytes come.
        """
        clock = Clock()
        channel, transport = self._channel(clock)
        channel.dataReceived(b"GET /a HTTP/1.1\r\n")
        for _ in range(29):
            clock.advance(1)
            channel.dataReceived(b"X: y\r\n")
        self.assertFalse(transport.disconnected)
        clock.advance(1)
        self.assertTrue(transport.disconnected)

    def test_headInOnePieceNoTimer(self):
        """
        A head read whole in one piece (the usual case) costs no timer of
        its own; a request that follows in parts gets its deadline.
        """
        scheduled = []

        class CountingClock(Clock):
            def callLater(self, delay, f, *args, **kwargs):
                scheduled.append(f)
                return Clock.callLater(self, delay, f, *args, **kwargs)

        clock = CountingClock()
        channel, transport = self._channel(clock)
        del scheduled[:]
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(len(channel.requests), 1)
        self.assertEqual(scheduled, [])
        channel.requests[-1].finish()
        idle = len(clock.getDelayedCalls())
        channel.dataReceived(b"GET /b HTTP/1.1\r\n")
        self.assertEqual(len(clock.getDelayedCalls()), idle + 1)
        clock.advance(30)
        self.assertTrue(transport.disconnected)


class SendNowTests(SynchronousTestCase):
    """
    L{sendNow} flushes a socket's own transport, nothing else.
    """

    def request(self, transport):
        return SimpleNamespace(channel=SimpleNamespace(transport=transport))

    def test_notASocket(self):
        """
        A TLS transport provides its socket's interfaces, but writing its
        socket directly would skip its own state: left alone.
        """
        @implementer(IReadWriteDescriptor)
        class Wrapper:
            connected = True
            disconnecting = False

            def doWrite(self):
                raise AssertionError("flushed through a wrapper")
        sendNow(self.request(Wrapper()))
        sendNow(SimpleNamespace(channel=None))

    def test_underTLS(self):
        """
        Under a TLS connection (and an interception's byte counter) is a
        socket: what TLS encrypted is there, and goes now.
        """
        flushed = []

        class Pending(FileDescriptor):
            connected = True
            dataBuffer = b"encrypted"

            def doWrite(self):
                flushed.append(self)
        socket = Pending(MemoryReactorClock())
        tls = TLSMemoryBIOProtocol(None, Protocol())
        tls.transport = SimpleNamespace(transport=socket)
        sendNow(self.request(tls))
        self.assertEqual(flushed, [socket])

    def test_failureLeftToTheReactor(self):
        """
        A write that fails is left registered, for the reactor to meet the
        failure again and close the connection.
        """
        class Failing(FileDescriptor):
            connected = True
            dataBuffer = b"queued"

            def doWrite(self):
                return ConnectionLost()
        clock = MemoryReactorClock()
        transport = Failing(clock)
        sendNow(self.request(transport))
        self.assertIn(transport, clock.getWriters())

    def test_closingLeftAlone(self):
        class Closing(FileDescriptor):
            connected = True
            disconnecting = True
            dataBuffer = b"queued"

            def doWrite(self):
                raise AssertionError("flushed while closing")
        sendNow(self.request(Closing(MemoryReactorClock())))

    def test_nothingQueued(self):
        """
        Nothing queued, nothing to do: not even an empty send.
        """
        class Empty(FileDescriptor):
            connected = True

            def doWrite(self):
                raise AssertionError("flushed with nothing queued")
        sendNow(self.request(Empty(MemoryReactorClock())))


class WriteNowTests(SynchronousTestCase):
    """
    L{writeNow} hands bytes to a socket at once when nothing is queued
    before them, and queues the rest as Twisted does.
    """

    def connection(self):
        """
        A Twisted TCP connection over one end of a real socket pair, on a
        memory reactor (its registrations are visible), and the other end.
        """
        listening = socket.socket()
        self.addCleanup(listening.close)
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        theirs = socket.create_connection(listening.getsockname())
        ours, peer = listening.accept()
        for end in (ours, theirs):
            end.setblocking(False)
            self.addCleanup(end.close)
        reactor = MemoryReactorClock()
        transport = tcp.Server(ours, Protocol(), peer, None, 0, reactor)
        return transport, theirs, reactor

    def test_sentAtOnce(self):
        transport, peer, reactor = self.connection()
        writeNow(transport, b"hello")
        self.assertEqual(peer.recv(100), b"hello")
        self.assertEqual(reactor.getWriters(), [])

    def test_queuedBehind(self):
        """
        Bytes queued already go first: the new ones queue behind them.
        """
        transport, peer, reactor = self.connection()
        transport.write(b"first ")
        writeNow(transport, b"second")
        self.assertRaises(BlockingIOError, peer.recv, 100)
        transport.doWrite()
        self.assertEqual(peer.recv(100), b"first second")

    def test_restQueued(self):
        """
        What the kernel does not take now is queued, and the reactor told
        to send it when it can.
        """
        transport, peer, reactor = self.connection()
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                    4096)
        data = os.urandom(1 << 20)
        writeNow(transport, data)
        self.assertIn(transport, reactor.getWriters())
        received = b""
        while len(received) < len(data):
            try:
                received += peer.recv(1 << 16)
            except BlockingIOError:
                transport.doWrite()
        self.assertEqual(received, data)

    def test_notASocket(self):
        """
        Another transport (TLS, a test's) gets an ordinary write.
        """
        transport = StringTransport()
        writeNow(transport, b"hello")
        self.assertEqual(transport.value(), b"hello")

    def test_answerInOnePiece(self):
        """
        The gateway's channel sends an answer's head and body in one piece,
        before the request's write returns.
        """
        class Answer(Resource):
            isLeaf = True

            def render_GET(self, request):
                request.setHeader(b"content-length", b"2")
                request.write(b"ok")
                sent.append(peer.recv(1000))
                return NOT_DONE_YET
        sent = []
        site = GatewaySite(Answer(), 1000, reactor=Clock(), accessLog="off")
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport, peer, reactor = self.connection()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(len(sent), 1)
        self.assertTrue(sent[0].startswith(b"HTTP/1.1 200 OK\r\n"), sent)
        self.assertTrue(sent[0].endswith(b"\r\n\r\nok"), sent)
        self.assertEqual(reactor.getWriters(), [])
        channel.requests[-1].finish()
        channel.connectionLost(Failure(ConnectionDone()))


class SendNowOverTLSTests(TestCase):
    """
    Over a real TLS listener, what an answer wrote is in the kernel once
    L{sendNow} returns: Twisted 23.10 and later hold small TLS writes for
    the next turn, which L{sendNow} hands down first.
    """

    @defer.inlineCallbacks
    def test_answerWithTheKernel(self):
        from twisted.internet import ssl
        from twisted.internet.endpoints import (
            SSL4ClientEndpoint, SSL4ServerEndpoint, connectProtocol)
        import twisted
        pem = os.path.join(os.path.dirname(twisted.__file__), "test",
                           "server.pem")
        if not os.path.exists(pem):
            raise SkipTest("no test certificate in this Twisted")
        cert = ssl.PrivateCertificate.loadPEM(open(pem, "rb").read())
        held = []

        class Answer(Resource):
            isLeaf = True

            def render(self, request):
                request.setHeader(b"content-length", b"5")
                request.write(b"hello")
                sendNow(request)
                tls = request.channel.transport
                socket_ = tls.transport
                held.append(sum(map(len, getattr(getattr(
                    tls, "_aggregator", None), "_buffer", []))) + len(
                    socket_.dataBuffer) + socket_._tempDataLen)
                request.finish()
                return NOT_DONE_YET
        site = GatewaySite(Answer(), 1024, accessLog="off")
        port = yield SSL4ServerEndpoint(
            reactor, 0, cert.options(), interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        lost = defer.Deferred()

        class Client(Protocol):
            def connectionLost(self, reason):
                lost.callback(None)
        client = yield connectProtocol(SSL4ClientEndpoint(
            reactor, "127.0.0.1", port.getHost().port,
            ssl.CertificateOptions()), Client())
        client.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        yield waitUntil(reactor, lambda: held, timeout=10)
        client.transport.loseConnection()
        yield lost
        self.assertEqual(held, [0])


class UpstreamTests(SynchronousTestCase):

    def test_notSentTwice(self):
        """
        A request whose connection closed before any answer is not sent
        again here: the agent knows whether it went stale on a kept
        connection (and tries again itself) or the provider may have it.
        """
        calls = []

        def request(*args):
            calls.append(args)
            return defer.fail(ResponseNeverReceived([Failure(
                ConnectionDone())]))
        upstream = Upstream(SimpleNamespace(request=request), Clock(), 5)
        failure = self.failureResultOf(upstream.request(
            b"POST", b"http://a/v1/chat/completions", Headers(), b"{}"))
        self.assertEqual(failure.value.status, 502)
        self.assertEqual(len(calls), 1)


class KeptEndpointsTests(SynchronousTestCase):
    """
    L{KeptEndpoints} makes one endpoint per scheme, host and port.
    """

    def setUp(self):
        self.policy = upstreamPolicy()
        self.endpoints = KeptEndpoints(MemoryReactorClock(), self.policy, 7,
                                       maxKept=2)

    def endpoint(self, url):
        return self.endpoints.endpointForURI(URI.fromBytes(url))

    def test_reused(self):
        first = self.endpoint(b"http://127.0.0.1:8080/v1/chat/completions")
        self.assertIs(self.endpoint(b"http://127.0.0.1:8080/v1/models"), first)
        self.assertIsNot(self.endpoint(b"http://127.0.0.1:8081/v1/models"),
                         first)

    def test_connectTimeout(self):
        endpoint = self.endpoint(b"http://127.0.0.1:8080/")
        self.assertIsInstance(endpoint, HostnameEndpoint)
        self.assertEqual(endpoint._timeout, 7)

    def test_https(self):
        """
        An C{https} URI gets TLS over a kept endpoint of its own, with the
        upstream policy's options for that host, asked for once.
        """
        asked = []
        policy = self.policy

        class Recording:
            def creatorForNetloc(self, hostname, port):
                asked.append((hostname, port))
                return policy.creatorForNetloc(hostname, port)
        self.endpoints._tlsPolicy = Recording()
        endpoint = self.endpoint(b"https://api.openai.com/v1/models")
        self.assertIs(self.endpoint(b"https://api.openai.com/v1/chat"),
                      endpoint)
        self.assertNotIsInstance(endpoint, HostnameEndpoint)
        self.assertIsInstance(self.endpoint(b"http://api.openai.com:443/"),
                              HostnameEndpoint)
        self.assertEqual(asked, [(b"api.openai.com", 443)])

    def test_bounded(self):
        first = self.endpoint(b"http://a.example/")
        self.endpoint(b"http://b.example/")
        self.endpoint(b"http://c.example/")
        self.assertEqual(len(self.endpoints._kept), 1)
        self.assertIsNot(self.endpoint(b"http://a.example/"), first)

    def test_otherScheme(self):
        self.assertRaises(SchemeNotSupported, self.endpoint, b"ftp://a.example/")
