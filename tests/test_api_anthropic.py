"""
C{POST /v1/messages} with the real C{anthropic} SDK (in a thread) through
the gateway to an Anthropic-format fake provider; and the surface's slots
and stream rewriting in memory.
"""

import json

try:
    from anthropic import Anthropic
except ImportError:  # Debian 12 has no python3-anthropic
    Anthropic = None
from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from keeptrusts.api.anthropic import MESSAGES, MessagesRewriter, usageOf
from keeptrusts.api.rewrite import namedEvent
from keeptrusts.api.endpoint import readSlots
from keeptrusts.api.errors import GatewayError
from keeptrusts.api.stream import Outcome
from keeptrusts.policy.chain import PolicyChain
from keeptrusts.policy.dlp import DlpFilter, DlpOptions
from keeptrusts.testing import Script, echoPrompt
from tests.test_api import Gateway
from tests.test_api_stream import checkKeptAsItCame, checkOnlyWhatWasRead

ANTHROPIC_TARGET = """
    - id: claude
      provider: anthropic
      base_url: %(base)s
      secret_key_ref: {env: FAKE_KEY}
"""


def acmeScanners():
    """
    A factory of the chain's answer scanners, as the pipeline makes them,
    for a policy that redacts C{ACME-} and eight digits.
    """
    chain = PolicyChain([DlpFilter(DlpOptions(
        detect_patterns=("ACME-[0-9]{8}",)))], "block", Clock(),
        timer=lambda: 0.0)
    return lambda: chain.scanOutput(None)


def acmeRewriter(outcome):
    """
    A L{MessagesRewriter} over L{acmeScanners}.
    """
    return MessagesRewriter(outcome, MESSAGES, acmeScanners())


class SlotTests(SynchronousTestCase):
    def test_requestSlots(self):
        body = {"model": "m", "max_tokens": 10,
                "system": [{"type": "text", "text": "sys"}],
                "messages": [
                    {"role": "user", "content": "plain"},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "a"},
                        {"type": "tool_use", "id": "t", "name": "run",
                         "input": {"cmd": "echo x", "n": 3,
                                   "env": ["K=v"]}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t",
                         "content": [{"type": "text", "text": "out"}]},
                        {"type": "image", "source": {"data": "AAAA"}}]}]}
        MESSAGES.validate(body)
        self.assertEqual(readSlots(list(MESSAGES.requestSlots(body))),
                         ("sys", "plain", "a", "echo x", "K=v", "out"))

    def test_validation(self):
        for body in ({"model": "m", "messages": []},
                     {"model": "m", "max_tokens": 1, "messages": []},
                     {"model": "m", "max_tokens": 1,
                      "messages": [{"role": "system", "content": "x"}]},
                     {"model": "m", "max_tokens": True,
                      "messages": [{"role": "user", "content": "x"}]}):
            error = self.assertRaises(GatewayError, MESSAGES.validate, body)
            self.assertEqual(error.status, 422)

    def test_usage(self):
        self.assertEqual(usageOf({"type": "message_start", "message": {
            "usage": {"input_tokens": 7, "output_tokens": 1}}}),
            {"input": 7, "output": 1})
        self.assertEqual(usageOf({"type": "message_delta",
                                  "usage": {"output_tokens": 9}}),
                         {"output": 9})
        self.assertIsNone(usageOf({"type": "ping"}))

    def test_unchangedDeltaKeptAsItCame(self):
        """
        A text delta the scanners release whole goes on byte for byte (not
        re-encoded); one they change or hold is written anew.
        """
        changed = checkKeptAsItCame(self, acmeRewriter(Outcome()), (
            b'event: content_block_delta\ndata: {"type": '
            b'"content_block_delta", "index": 0, "delta": '
            b'{"type": "text_delta", "text": "Hello there"}}\n\n'))
        self.assertNotIn(b'"type": ', changed)

    def test_onlyWhatWasReadGoesOn(self):
        checkOnlyWhatWasRead(self, acmeRewriter(Outcome()), (
            b'event: content_block_delta\ndata: {"type": '
            b'"content_block_delta", "index": 0, "delta": '
            b'{"type": "text_delta", "text": "Hello there"}}\n\n'), b"text")

    def test_stopsRead(self):
        """
        A stop event's own fields are read, and one that gives its type
        twice goes on as read (found by review).
        """
        rewriter = acmeRewriter(Outcome())
        for raw in (
                b'event: content_block_stop\ndata: {"type": '
                b'"content_block_stop", "index": 0, "note": "ACME-12345678"}'
                b'\n\n',
                b'event: message_stop\ndata: {"type": "message_stop", '
                b'"note": "ACME-12345678"}\n\n',
                b'event: content_block_stop\ndata: {"type": '
                b'"content_block_delta", "index": 0, "delta": {"type": '
                b'"text_delta", "text": "ACME-12345678"}, "type": '
                b'"content_block_stop"}\n\n'):
            self.assertNotIn(b"12345678", rewriter.feed(raw))

    def test_rewriterHoldsUntilBlockStops(self):
        outcome = Outcome()
        rewriter = acmeRewriter(outcome)
        event = namedEvent
        out = rewriter.feed(
            event(b"message_start", {"type": "message_start", "message": {
                "usage": {"input_tokens": 3, "output_tokens": 1}}})
            + event(b"content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "id ACME-1234"}}))
        self.assertNotIn(b"ACME", out)
        out += rewriter.feed(event(b"content_block_stop", {
            "type": "content_block_stop", "index": 0}))
        texts = [json.loads(e.split(b"data: ", 1)[1])["delta"]["text"]
                 for e in out.split(b"\n\n")
                 if e.startswith(b"event: content_block_delta")]
        self.assertEqual("".join(texts), "id ACME-1234")
        self.assertTrue(out.rstrip().endswith(b'"index":0}'))
        self.assertEqual(outcome.tokens, {"input": 3, "output": 1})


    def test_toolInputAndThinkingScanned(self):
        """
        A tool call's streamed input (the JSON of, say, a file being
        written) and thinking are scanned like the answer's text; what is
        held goes out as the same kind of delta before the block stops.
        (A thinking that was redacted no longer matches its signature: the
        provider refuses it on the next turn, as it should a secret.)
        """
        rewriter = acmeRewriter(Outcome())

        def delta(index, kind, field, text):
            return b"event: content_block_delta\ndata: %s\n\n" % (
                json.dumps({"type": "content_block_delta", "index": index,
                            "delta": {"type": kind, field: text}}).encode(),)

        def stop(index):
            return (b"event: content_block_stop\ndata: "
                    b'{"type": "content_block_stop", "index": %d}\n\n'
                    % (index,))
        out = b"".join(rewriter.feed(e) for e in [
            delta(0, "thinking_delta", "thinking", "the id ACME-1234"),
            delta(0, "thinking_delta", "thinking", "5678 is"), stop(0),
            delta(1, "input_json_delta", "partial_json",
                  '{"content": "id ACME-12'),
            delta(1, "input_json_delta", "partial_json", '345678"}'),
            delta(2, "input_json_delta", "partial_json", '{"a": "ACME-1'),
            stop(2), stop(1)])
        self.assertNotIn(b"345678", out)
        deltas = [json.loads(e.split(b"data: ", 1)[1])
                  for e in out.split(b"\n\n")
                  if e.startswith(b"event: content_block_delta")]
        joined = {}
        for d in deltas:
            field = {"thinking_delta": "thinking",
                     "input_json_delta": "partial_json"}[d["delta"]["type"]]
            joined[d["index"]] = joined.get(d["index"], "") + d["delta"][field]
        self.assertEqual(joined, {
            0: "the id [REDACTED:CUSTOM_PATTERN] is",
            1: '{"content": "id [REDACTED:CUSTOM_PATTERN]"}',
            2: '{"a": "ACME-1'})

    def test_escapedInputWrittenPlainly(self):
        """
        A tool's streamed input is a JSON text: a key written with escapes,
        split inside one, is read as the SDK decodes it and sent written
        plainly (found by review: it passed).
        """
        rewriter = acmeRewriter(Outcome())
        partial = '{"k": "ACME-\\u0031234\\u0035678", "e": "\\ud83d\\ude00"}'
        out = b"".join(rewriter.feed(namedEvent(
            b"content_block_delta", {
                "type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": piece}}))
            for piece in (partial[:13], partial[13:24], partial[24:44],
                          partial[44:]))
        out += rewriter.feed(namedEvent(b"content_block_stop", {
            "type": "content_block_stop", "index": 0}))
        self.assertNotIn(b"5678", out)
        sent = "".join(json.loads(e.split(b"data: ", 1)[1])["delta"][
            "partial_json"] for e in out.split(b"\n\n")
            if e.startswith(b"event: content_block_delta"))
        self.assertEqual(json.loads(sent), {
            "k": "[REDACTED:CUSTOM_PATTERN]", "e": "\U0001f600"})

    def test_startTextJoined(self):
        """
        A block that starts with its text (or thinking) goes on with its
        deltas: the SDK adds them to it, and so does the scanner (found by
        review: the start was read on its own).
        """
        for kind, field, deltaKind in [("text", "text", "text_delta"),
                                       ("thinking", "thinking",
                                        "thinking_delta")]:
            rewriter = acmeRewriter(Outcome())
            out = rewriter.feed(namedEvent(b"content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": kind, field: "id ACME-1234"}}))
            out += rewriter.feed(namedEvent(b"content_block_delta", {
                "type": "content_block_delta", "index": 0, "delta": {
                    "type": deltaKind, field: "5678 ok"}}))
            out += rewriter.feed(namedEvent(b"content_block_stop", {
                "type": "content_block_stop", "index": 0}))
            self.assertNotIn(b"5678", out)
            payloads = [json.loads(e.split(b"data: ", 1)[1])
                        for e in out.split(b"\n\n") if b"data: " in e]
            self.assertEqual(payloads[0]["content_block"][field], "id ")
            self.assertEqual("".join(
                p["delta"][field] for p in payloads[1:] if "delta" in p),
                "[REDACTED:CUSTOM_PATTERN] ok")

    def test_indexNotAnIntegerRefused(self):
        """
        A block index that is not an integer (the SDKs would take C{"1"}
        for 1) ends the stream as an invalid event (found by review: it
        was taken for 0).
        """
        for bad in ("1", 1.0, True):
            rewriter = acmeRewriter(Outcome())
            rewriter.feed(namedEvent(b"content_block_delta", {
                "type": "content_block_delta", "index": 1, "delta": {
                    "type": "text_delta", "text": "ACME-1234"}}))
            error = self.assertRaises(
                GatewayError, rewriter.feed, namedEvent(
                    b"content_block_delta", {
                        "type": "content_block_delta", "index": bad,
                        "delta": {"type": "text_delta", "text": "5678"}}))
            self.assertEqual(error.message,
                             "invalid event in the provider's stream")

    def test_textAfterStopRefused(self):
        """
        A delta of a block that stopped would be scanned afresh (a key split
        across the stop unseen): it ends the stream as an invalid event
        (found by review).
        """
        def delta(text):
            return namedEvent(b"content_block_delta", {
                "type": "content_block_delta", "index": 0, "delta": {
                    "type": "text_delta", "text": text}})
        rewriter = acmeRewriter(Outcome())
        out = rewriter.feed(delta("id ACME-1234"))
        out += rewriter.feed(namedEvent(b"content_block_stop", {
            "type": "content_block_stop", "index": 0}))
        self.assertEqual(out.count(b"ACME-1234"), 1)
        self.assertRaises(GatewayError, rewriter.feed, delta("5678"))

    def test_thinkingSignatureNotRead(self):
        """
        Thinking is read like text (see L{test_toolInputAndThinkingScanned});
        its signature is not: it is no text anyone wrote.
        """
        chain = PolicyChain([DlpFilter(DlpOptions(
            detect_patterns=("ACME[0-9]{8}",)))], "block", Clock(),
            timer=lambda: 0.0)

        def signatureDelta(signature):
            return namedEvent(b"content_block_delta", {
                "type": "content_block_delta", "index": 0, "delta": {
                    "type": "signature_delta", "signature": signature}})
        rewriter = MessagesRewriter(Outcome(), MESSAGES,
                                    lambda: chain.scanOutput(None))
        sealed = signatureDelta("EqQBCkYIBRgCACME12345678xQ==")
        self.assertEqual(rewriter.feed(sealed), sealed)
        # What is no base64 is no signature: read (see texts._encoded).
        self.assertNotIn(b"ACME12345678",
                         rewriter.feed(signatureDelta("ACME12345678 !")))

    def test_otherEventsScannedWhole(self):
        """
        Events the rewriter does not stream (a block that starts with
        content other than text, a citation) have their texts scanned whole
        (found by review).
        """
        outcome = Outcome()
        rewriter = acmeRewriter(outcome)
        event = namedEvent
        start = {"type": "content_block_start", "index": 0, "content_block": {
            "type": "mcp_tool_result", "tool_use_id": "t1",
            "content": [{"type": "text", "text": "found ACME-12345678"}]}}
        citation = {"type": "content_block_delta", "index": 1, "delta": {
            "type": "citations_delta", "citation": {
                "type": "char_location", "cited_text": "ACME-87654321 here"}}}
        thinking = {"type": "content_block_delta", "index": 2, "delta": {
            "type": "thinking_delta", "thinking": "ACME-11112222"}}
        ping = event(b"ping", {"type": "ping"})
        out = b"".join(rewriter.feed(e) for e in [
            event(b"content_block_start", start),
            event(b"content_block_delta", citation),
            event(b"content_block_delta", thinking), ping])
        self.assertNotIn(b"12345678", out)
        self.assertNotIn(b"87654321", out)
        self.assertNotIn(b"11112222", out)
        self.assertTrue(out.endswith(ping))
        payloads = [json.loads(e.split(b"data: ", 1)[1])
                    for e in out.split(b"\n\n") if b"data: " in e]
        self.assertEqual(
            payloads[0]["content_block"]["content"][0]["text"],
            "found [REDACTED:CUSTOM_PATTERN]")
        self.assertEqual(payloads[1]["delta"]["citation"]["cited_text"],
                         "[REDACTED:CUSTOM_PATTERN] here")
        self.assertTrue(out.startswith(b"event: content_block_start\n"))


class EveryTextTests(TestCase):
    """
    Blocks the Messages surface does not name are read all the same.
    """

    @defer.inlineCallbacks
    def test_documentsAndSearchResults(self):
        gw = Gateway(self, extraTargets=ANTHROPIC_TARGET)
        secret = "ACME-12345678"
        response = yield gw.post("/v1/messages", {
            "model": "claude-fake", "max_tokens": 10, "messages": [
                {"role": "user", "content": [
                    {"type": "document", "source": {
                        "type": "text", "media_type": "text/plain",
                        "data": "plain " + secret}},
                    {"type": "document", "source": {
                        "type": "content", "content": [
                            {"type": "text", "text": secret}]}},
                    {"type": "search_result", "source": "https://x",
                     "title": "t", "content": [
                         {"type": "text", "text": "found " + secret}]},
                    {"type": "text", "text": "summarise"}]}]})
        yield response.content()
        self.assertEqual(response.code, 200)
        received = gw.provider.requests[-1].body
        self.assertNotIn(b"12345678", received)
        self.assertEqual(gw.events("input")[0]["verdict"], "redact")


class CountTokensTests(TestCase):

    @defer.inlineCallbacks
    def test_promptReadAnswerPassed(self):
        """
        Counting tokens sends the prompt: it is read like a message's; the
        count comes back as it is.
        """
        gw = Gateway(self, extraTargets=ANTHROPIC_TARGET)
        response = yield gw.post("/v1/messages/count_tokens", {
            "model": "claude-fake", "system": "key ACME-12345678",
            "messages": [{"role": "user", "content": "one two three"}]})
        body = yield response.json()
        self.assertEqual(response.code, 200)
        received = gw.provider.requests[-1]
        self.assertEqual(received.path, "/v1/messages/count_tokens")
        self.assertNotIn(b"12345678", received.body)
        self.assertEqual(body, {"input_tokens": 5})
        self.assertEqual([(e["phase"], e["verdict"], e["endpoint"])
                          for e in gw.events()],
                         [("input", "redact", "messages/count_tokens"),
                          ("output", "allow", "messages/count_tokens")])


class AnthropicSDKTests(TestCase):
    """
    The real anthropic SDK pointed at the gateway.
    """

    skip = None if Anthropic is not None else "anthropic is not installed"

    def setUp(self):
        self.gw = Gateway(self, extraTargets=ANTHROPIC_TARGET)
        self.gw.provider.script = Script(answer=echoPrompt)

    def client(self):
        return Anthropic(base_url=self.gw.url, api_key="client-key",
                         max_retries=0, timeout=10)

    def test_message(self):
        def call():
            with self.client() as client:
                return client.messages.create(
                    model="claude-fake", max_tokens=100,
                    system="Be brief.",
                    messages=[{"role": "user",
                               "content": "my id ACME-12345678"}])

        def check(message):
            self.assertEqual(message.content[0].text,
                             "my id [REDACTED:CUSTOM_PATTERN]")
            received = self.gw.provider.requests[-1]
            self.assertEqual(received.path, "/v1/messages")
            self.assertEqual(received.headers["x-api-key"], "sk-provider-key")
            self.assertNotIn("authorization", received.headers)
            self.assertEqual(received.json["system"], "Be brief.")
            output = self.gw.events("output")[0]
            self.assertEqual((output["provider"], output["target"],
                              output["endpoint"]),
                             ("anthropic", "claude", "messages"))
            self.assertEqual(output["tokens"], {"input": 5, "output": 3})
        return threads.deferToThread(call).addCallback(check)

    def test_stream(self):
        self.gw.provider.script = Script(
            chunks=["The id ", "ACME-1", "2345678", " is out"])

        def call():
            with self.client() as client:
                with client.messages.stream(
                        model="claude-fake", max_tokens=100,
                        messages=[{"role": "user", "content": "hi"}]) as s:
                    text = "".join(s.text_stream)
                    final = s.get_final_message()
            return text, final

        def check(result):
            text, final = result
            self.assertEqual(text, "The id [REDACTED:CUSTOM_PATTERN] is out")
            self.assertEqual(final.usage.output_tokens, 5)
            output = self.gw.events("output")[0]
            self.assertEqual(output["verdict"], "redact")
            self.assertEqual(output["tokens"], {"input": 1, "output": 5})
            self.assertNotIn("12345678", json.dumps(self.gw.events()))
        return threads.deferToThread(call).addCallback(check)
