"""
C{POST /v1/responses} (Codex) through the gateway with the real C{openai}
SDK, streamed and not; the closing events never carry unredacted text.
"""

import json

from twisted.internet import threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from keeptrusts.api.endpoint import readSlots
from keeptrusts.api.responses import RESPONSES, ResponsesRewriter
from keeptrusts.api.rewrite import forgetLogprobs
from keeptrusts.api.stream import Outcome
from keeptrusts.testing import Script, echoPrompt
from tests.test_api import Gateway
from tests.test_api_anthropic import acmeScanners
from tests.test_api_stream import checkKeptAsItCame, checkOnlyWhatWasRead


class SlotTests(SynchronousTestCase):
    def test_requestSlots(self):
        body = {"model": "m", "instructions": "be terse", "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "hello"},
                {"type": "input_image", "image_url": "data:..."}]},
            {"type": "function_call", "call_id": "c", "name": "f",
             "arguments": "{\"x\": 1}"},
            {"type": "function_call_output", "call_id": "c",
             "output": "result"}]}
        RESPONSES.validate(body)
        self.assertEqual(readSlots(list(RESPONSES.requestSlots(body))),
                         ("be terse", "hello", "{\"x\": 1}", "result"))
        self.assertEqual(readSlots(list(RESPONSES.requestSlots(
            {"model": "m", "input": "just text"}))), ("just text",))

    def test_answerSlots(self):
        """
        A whole answer's texts: messages' and calls' arguments or input.
        """
        answer = {"output": [
            {"type": "message", "content": [
                {"type": "output_text", "text": "hi"}]},
            {"type": "function_call", "arguments": "{\"a\": 1}"},
            {"type": "custom_tool_call", "input": "*** patch"}]}
        self.assertEqual(readSlots(list(RESPONSES.answerSlots(answer))),
                         ("hi", "{\"a\": 1}", "*** patch"))


def _event(payload):
    return b"event: %s\ndata: %s\n\n" % (payload["type"].encode(),
                                         json.dumps(payload).encode())


def _payloads(out):
    return [json.loads(e.split(b"data: ", 1)[1])
            for e in out.split(b"\n\n") if b"data: " in e]


class RewriterTests(SynchronousTestCase):
    """
    L{ResponsesRewriter} over streams the fake provider does not send.
    """

    def rewriter(self, newScanner=None):
        return ResponsesRewriter(Outcome(), RESPONSES,
                                 newScanner or acmeScanners())

    def test_unchangedDeltaKeptAsItCame(self):
        """
        A text delta the scanners release whole goes on byte for byte (not
        re-encoded), OpenAI's padding and all; one they change is written
        anew.
        """
        changed = checkKeptAsItCame(self, self.rewriter(), (
            b'event: response.output_text.delta\ndata: {"type": '
            b'"response.output_text.delta", "output_index": 0, '
            b'"content_index": 0, "delta": "Hello there", '
            b'"obfuscation": "Xk3dP9"}\n\n'))
        self.assertNotIn(b'"type": ', changed)

    def test_onlyWhatWasReadGoesOn(self):
        checkOnlyWhatWasRead(self, self.rewriter(), (
            b'event: response.output_text.delta\ndata: {"type": '
            b'"response.output_text.delta", "output_index": 0, '
            b'"content_index": 0, "delta": "Hello there"}\n\n'), b"delta")

    def test_otherEventsScannedWhole(self):
        """
        Events the rewriter does not stream (a refusal's or a reasoning
        summary's deltas, an item that comes whole) have their texts scanned
        whole (found by review).
        """
        events = [
            {"type": "response.refusal.delta", "output_index": 0,
             "content_index": 0, "delta": "no ACME-12345678"},
            {"type": "response.reasoning_summary_text.delta",
             "output_index": 1, "summary_index": 0,
             "delta": "ACME-87654321 seen"},
            {"type": "response.output_item.added", "output_index": 2,
             "item": {"type": "local_shell_call", "id": "ls1",
                      "action": {"command": ["echo", "ACME-11112222"]}}},
            {"type": "response.in_progress", "response": {"id": "r"}}]
        out = b"".join(self.rewriter().feed(_event(e)) for e in events)
        for digits in (b"12345678", b"87654321", b"11112222"):
            self.assertNotIn(digits, out)
        payloads = _payloads(out)
        self.assertEqual([p["type"] for p in payloads],
                         [e["type"] for e in events])
        self.assertEqual(payloads[0]["delta"], "no [REDACTED:CUSTOM_PATTERN]")
        self.assertEqual(payloads[2]["item"]["action"]["command"],
                         ["echo", "[REDACTED:CUSTOM_PATTERN]"])

    def test_callArgumentsScanned(self):
        """
        A function call's streamed arguments are scanned, and its closing
        events (done, item done, completed) carry the redacted arguments,
        never the ones the provider repeated.
        """
        raw = '{"key": "ACME-12345678"}'
        item = {"type": "function_call", "id": "fc1", "call_id": "c1",
                "name": "f", "arguments": raw}
        events = [
            {"type": "response.function_call_arguments.delta",
             "item_id": "fc1", "output_index": 0, "delta": raw[:14]},
            {"type": "response.function_call_arguments.delta",
             "item_id": "fc1", "output_index": 0, "delta": raw[14:]},
            {"type": "response.function_call_arguments.done",
             "item_id": "fc1", "output_index": 0, "arguments": raw},
            {"type": "response.output_item.done", "output_index": 0,
             "item": item},
            {"type": "response.completed", "response": {
                "id": "r", "output": [dict(item)], "usage": None}}]
        rewriter = self.rewriter()
        out = b"".join(rewriter.feed(_event(e)) for e in events)
        out += rewriter.end()
        self.assertNotIn(b"12345678", out)
        payloads = _payloads(out)
        redacted = '{"key": "[REDACTED:CUSTOM_PATTERN]"}'
        self.assertEqual("".join(
            p["delta"] for p in payloads
            if p["type"] == "response.function_call_arguments.delta"),
            redacted)
        self.assertEqual(payloads[-1]["response"]["output"][0]["arguments"],
                         redacted)
        self.assertEqual(rewriter.releasedChars(), len(redacted))

    def test_incompleteResponseRewritten(self):
        """
        A response that ends incomplete repeats its text as the completed
        one does: rewritten too.
        """
        message = {"type": "message", "content": [
            {"type": "output_text", "text": "id ACME-12345678"}]}
        rewriter = self.rewriter()
        out = rewriter.feed(_event(
            {"type": "response.output_text.delta", "output_index": 0,
             "content_index": 0, "delta": "id ACME-12345678"}))
        out += rewriter.feed(_event(
            {"type": "response.incomplete", "response": {
                "output": [message]}}))
        self.assertNotIn(b"12345678", out)

    def test_logprobsOfChangedTextsDropped(self):
        """
        A delta, done event or closing copy whose text was redacted loses
        its logprobs; an untouched one keeps them.
        """
        tokens = [{"token": "id", "logprob": -0.1}]
        rewriter = self.rewriter()
        out = rewriter.feed(_event(
            {"type": "response.output_text.delta", "output_index": 0,
             "content_index": 0, "delta": "fine ", "logprobs": tokens}))
        out += rewriter.feed(_event(
            {"type": "response.output_text.delta", "output_index": 0,
             "content_index": 0, "delta": "id ACME-12345678",
             "logprobs": [{"token": "-12345678"}]}))
        out += rewriter.feed(_event(
            {"type": "response.output_text.done", "output_index": 0,
             "content_index": 0, "text": "fine id ACME-12345678",
             "logprobs": [{"token": "-12345678"}]}))
        out += rewriter.feed(_event(
            {"type": "response.completed", "response": {"output": [
                {"type": "message", "content": [
                    {"type": "output_text", "text": "fine id ACME-12345678",
                     "logprobs": [{"token": "-12345678"}]}]}]}}))
        self.assertNotIn(b"12345678", out)
        payloads = _payloads(out)
        self.assertEqual(payloads[0]["logprobs"], tokens)

    def test_wholeAnswerLogprobsDropped(self):
        answer = {"output": [{"type": "message", "content": [
            {"type": "output_text", "text": "x", "logprobs": [{"t": 1}]}]}],
            "choices": [{"index": 0, "logprobs": {"content": [1]}}]}
        forgetLogprobs(answer)
        self.assertEqual(answer["output"][0]["content"][0]["logprobs"], [])
        self.assertIsNone(answer["choices"][0]["logprobs"])

    def test_oddEventTypes(self):
        """
        Events whose type is not a string, or another than the event's
        name, or that are no object, have their texts read whole (found by
        review: they passed unread).
        """
        rewriter = self.rewriter()
        odd = [_event({"type": "x", "delta": "ACME-12345678"}).replace(
            b'"type": "x"', b'"type": ' + json.dumps(kind).encode())
            for kind in (["response.completed"], {"a": 1}, 5)]
        odd.append(b'event: response.output_text.delta\ndata: {"type": '
                   b'"response.created", "delta": "ACME-12345678"}\n\n')
        odd.append(b'event: response.output_text.delta\ndata: '
                   b'["ACME-12345678"]\n\n')
        odd.append(b'data: "ACME-12345678"\n\n')
        for raw in odd:
            out = rewriter.feed(raw)
            self.assertNotIn(b"12345678", out)
            self.assertIn(b"[REDACTED:CUSTOM_PATTERN]", out)

    def test_noOutputScanner(self):
        """
        A chain that scans no answers (the scanner is L{None}): texts that
        come whole in closing events pass, counted.
        """
        rewriter = self.rewriter(newScanner=lambda: None)
        out = rewriter.feed(_event(
            {"type": "response.output_text.done", "output_index": 0,
             "content_index": 0, "text": "hello"}))
        self.assertEqual(_payloads(out)[0]["text"], "hello")
        self.assertEqual(rewriter.releasedChars(), 5)


class ResponsesSDKTests(TestCase):
    def setUp(self):
        self.gw = Gateway(self)

    def client(self):
        return self.gw.sdk()

    def test_response(self):
        self.gw.provider.script = Script(answer=echoPrompt)

        def call():
            with self.client() as client:
                return client.responses.create(
                    model="gpt-fake", instructions="Be brief.",
                    input="my id ACME-12345678")

        def check(response):
            self.assertEqual(response.output_text,
                             "my id [REDACTED:CUSTOM_PATTERN]")
            received = self.gw.provider.requests[-1]
            self.assertEqual(received.path, "/v1/responses")
            self.assertEqual(received.json["input"],
                             "my id [REDACTED:CUSTOM_PATTERN]")
            output = self.gw.events("output")[0]
            self.assertEqual((output["endpoint"], output["verdict"]),
                             ("responses", "allow"))
            self.assertEqual(output["tokens"], {"input": 5, "output": 3})
        return threads.deferToThread(call).addCallback(check)

    def test_stream(self):
        self.gw.provider.script = Script(
            chunks=["Key ", "ACME-1", "2345678", " found"])

        def call():
            events = []
            with self.client() as client:
                for event in client.responses.create(
                        model="gpt-fake", input="hi", stream=True):
                    events.append(event)
            return events

        def check(events):
            deltas = "".join(e.delta for e in events
                             if e.type == "response.output_text.delta")
            self.assertEqual(deltas, "Key [REDACTED:CUSTOM_PATTERN] found")
            [done] = [e for e in events
                      if e.type == "response.output_text.done"]
            self.assertEqual(done.text, deltas)
            [completed] = [e for e in events
                           if e.type == "response.completed"]
            self.assertEqual(completed.response.output_text, deltas)
            self.assertNotIn("12345678", json.dumps(
                [e.model_dump() for e in events]))
            output = self.gw.events("output")[0]
            self.assertEqual(output["verdict"], "redact")
            self.assertEqual(output["tokens"], {"input": 1, "output": 3})
        return threads.deferToThread(call).addCallback(check)
