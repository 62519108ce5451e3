"""
C{POST /v1/responses} (Codex) through the gateway with the real C{openai}
SDK, streamed and not; the closing events never carry unredacted text.
"""

import json

from twisted.internet import threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from keeptrusts.api.endpoint import readSlots
from keeptrusts.api.errors import GatewayError
from keeptrusts.api.responses import RESPONSES
from keeptrusts.api.responsestream import ResponsesRewriter
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
        Events the rewriter does not stream (an item of a kind that comes
        whole, an echo without output) have their texts scanned whole
        (found by review); a refusal's and a reasoning summary's deltas are
        read too (streamed, see L{test_otherDeltasStreamed}).
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

    def test_otherDeltasStreamed(self):
        """
        Every C{response.*.delta} with a text has a scanner of its own,
        keyed by its type, output index and content or summary index: a
        secret split between two reasoning summary, reasoning text,
        interpreter code, refusal or transcript deltas is redacted, and
        the done events and closing copies carry the redacted text (found
        by review: each delta was read on its own).
        """
        families = [
            ("response.reasoning_summary_text", {"summary_index": 0}),
            ("response.reasoning_text", {"content_index": 0}),
            ("response.code_interpreter_call_code", {}),
            ("response.refusal", {"content_index": 0}),
            ("response.audio.transcript", {})]
        for output, (family, ids) in enumerate(families):
            def delta(text):
                return _event(dict(ids, type=family + ".delta",
                                   output_index=output, delta=text))
            rewriter = self.rewriter()
            out = rewriter.feed(delta("id ACME-1234") + delta("5678 ok"))
            self.assertNotIn(b"5678", out, family)
            out += rewriter.end()
            self.assertEqual("".join(
                p["delta"] for p in _payloads(out)),
                "id [REDACTED:CUSTOM_PATTERN] ok", family)
            self.assertTrue(all(p["type"] == family + ".delta"
                                for p in _payloads(out)))
        # A summary's deltas keep apart from another summary's.
        rewriter = self.rewriter()
        out = b"".join(rewriter.feed(_event({
            "type": "response.reasoning_summary_text.delta", "item_id": "r",
            "output_index": 0, "summary_index": index, "delta": text}))
            for index, text in [(0, "a ACME-1234"), (1, "b "),
                                (0, "5678 c")])
        reasoning = {"type": "reasoning", "id": "r", "summary": [
            {"type": "summary_text", "text": "a ACME-12345678 c"},
            {"type": "summary_text", "text": "b "}]}
        out += rewriter.feed(_event({
            "type": "response.reasoning_summary_text.done", "item_id": "r",
            "output_index": 0, "summary_index": 0,
            "text": "a ACME-12345678 c"}))
        out += rewriter.feed(_event({
            "type": "response.output_item.done", "output_index": 0,
            "item": reasoning}))
        out += rewriter.feed(_event({
            "type": "response.completed", "response": {
                "id": "x", "output": [reasoning]}}))
        self.assertNotIn(b"5678", out)
        payloads = _payloads(out)
        self.assertEqual(payloads[-1]["response"]["output"][0]["summary"],
                         [{"type": "summary_text",
                           "text": "a [REDACTED:CUSTOM_PATTERN] c"},
                          {"type": "summary_text", "text": "b "}])

    def test_textAfterItsEndRefused(self):
        """
        A delta of a text whose part is done, or of an item that is done,
        would be scanned afresh (a key split across the end unseen): it
        ends the stream as an invalid event (found by review).
        """
        def delta(text, output=0, content=0):
            return _event({"type": "response.output_text.delta",
                           "output_index": output, "content_index": content,
                           "delta": text})
        rewriter = self.rewriter()
        rewriter.feed(delta("id ACME-1234"))
        rewriter.feed(_event({"type": "response.output_text.done",
                              "output_index": 0, "content_index": 0,
                              "text": "id ACME-1234"}))
        self.assertRaises(GatewayError, rewriter.feed, delta("5678"))
        rewriter = self.rewriter()
        rewriter.feed(delta("id ACME-1234"))
        rewriter.feed(_event({"type": "response.output_item.done",
                              "output_index": 0, "item": {
                                  "type": "message", "content": []}}))
        self.assertRaises(GatewayError, rewriter.feed, delta("5678", 0, 1))
        self.assertNotIn(b"5678", rewriter.feed(delta("ACME-12345678", 1)))

    def test_nameOtherThanType(self):
        """
        An event whose name is not its data's type is read by its type, as
        the SDKs read it, and goes on under that name (found by review: it
        was read on its own, whole).
        """
        rewriter = self.rewriter()
        delta = (b'event: x\ndata: {"type": "response.output_text.delta", '
                 b'"output_index": 0, "content_index": 0, "delta": "%s"}\n\n')
        out = rewriter.feed(delta % (b"id ACME-1234",))
        out += rewriter.feed(delta % (b"5678 ok",)) + rewriter.end()
        self.assertNotIn(b"5678", out)
        self.assertNotIn(b"event: x", out)
        self.assertEqual("".join(p["delta"] for p in _payloads(out)),
                         "id [REDACTED:CUSTOM_PATTERN] ok")
        renamed = self.rewriter().feed(delta % (b"fine",))
        self.assertTrue(renamed.startswith(
            b"event: response.output_text.delta\n"))
        self.assertRaises(GatewayError, rewriter.feed, _event(
            {"type": "response.output_text.delta\ndata: {}", "delta": "x"}))

    def test_escapedArgumentsWrittenPlainly(self):
        """
        A call's streamed arguments are a JSON text: a key written with
        escapes, split inside one, is read as the client decodes it and
        sent written plainly (found by review: it passed).
        """
        arguments = '{"k": "\\u0041KIA", "a": "ACME-\\u0031234\\u0035678"}'
        rewriter = self.rewriter()
        out = b""
        for piece in (arguments[:8], arguments[8:33], arguments[33:]):
            out += rewriter.feed(_event({
                "type": "response.function_call_arguments.delta",
                "output_index": 0, "delta": piece}))
        out += rewriter.feed(_event({
            "type": "response.function_call_arguments.done",
            "output_index": 0, "arguments": arguments}))
        self.assertNotIn(b"5678", out)
        payloads = _payloads(out)
        sent = "".join(p["delta"] for p in payloads
                       if p["type"].endswith(".delta"))
        self.assertEqual(json.loads(sent), {
            "k": "AKIA", "a": "[REDACTED:CUSTOM_PATTERN]"})
        self.assertEqual(payloads[-1]["arguments"], sent)

    def test_openingTextJoined(self):
        """
        A text that opens with its part or item (a part added with its
        text, an item added, a created response with output) goes through
        the scanner its deltas use: the SDKs add the deltas to it (found
        by review: each was read on its own).
        """
        openings = [
            {"type": "response.content_part.added", "output_index": 0,
             "content_index": 0, "part": {"type": "output_text",
                                          "text": "id ACME-1234"}},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {"type": "message", "id": "m", "content": [
                 {"type": "output_text", "text": "id ACME-1234"}]}},
            {"type": "response.created", "response": {"id": "r", "output": [
                {"type": "message", "id": "m", "content": [
                    {"type": "output_text", "text": "id ACME-1234"}]}]}}]
        for opening in openings:
            rewriter = self.rewriter()
            out = rewriter.feed(_event(opening))
            out += rewriter.feed(_event({
                "type": "response.output_text.delta", "output_index": 0,
                "content_index": 0, "delta": "5678 ok"}))
            out += rewriter.end()
            self.assertNotIn(b"5678", out, opening["type"])
            payloads = _payloads(out)
            self.assertEqual(payloads[0]["type"], opening["type"])
            self.assertIn("[REDACTED:CUSTOM_PATTERN] ok", "".join(
                p.get("delta", "") for p in payloads))
        # A call's arguments opened with its item, then streamed.
        rewriter = self.rewriter()
        out = rewriter.feed(_event({
            "type": "response.output_item.added", "output_index": 1,
            "item": {"type": "function_call", "id": "fc", "arguments":
                     '{"a": "ACME-1234'}}))
        out += rewriter.feed(_event({
            "type": "response.function_call_arguments.delta",
            "output_index": 1, "delta": '5678"}'})) + rewriter.end()
        self.assertNotIn(b"5678", out)

    def test_indexNotAnIntegerRefused(self):
        """
        An output, content or summary index that is not an integer (clients
        coerce C{"1"} to 1) ends the stream as an invalid event (found by
        review: it was taken for 0).
        """
        for field, bad in [("output_index", "1"), ("output_index", 1.0),
                           ("content_index", True),
                           ("content_index", "0")]:
            rewriter = self.rewriter()
            payload = {"type": "response.output_text.delta",
                       "output_index": 1, "content_index": 0,
                       "delta": "ACME-1234"}
            rewriter.feed(_event(payload))
            error = self.assertRaises(GatewayError, rewriter.feed, _event(
                dict(payload, delta="5678", **{field: bad})))
            self.assertEqual(error.message,
                             "invalid event in the provider's stream")
        rewriter = self.rewriter()
        self.assertRaises(GatewayError, rewriter.feed, _event({
            "type": "response.reasoning_summary_text.delta",
            "output_index": 0, "summary_index": "1", "delta": "x"}))

    def test_echoesRead(self):
        """
        The events that repeat the response (created, in progress, queued;
        and its end) have their texts read: each once, however often it is
        repeated, and not counted as answer text (found by review: they
        passed unread).
        """
        scanners = []
        factory = acmeScanners()

        def counted():
            scanners.append(factory())
            return scanners[-1]
        rewriter = self.rewriter(counted)
        response = {"id": "r", "instructions": "note ACME-12345678",
                    "output": []}
        out = b""
        for kind in ("response.created", "response.queued",
                     "response.in_progress"):
            out += rewriter.feed(_event({"type": kind,
                                         "response": dict(response)}))
        echoed = len(scanners)
        self.assertEqual(echoed, 1)
        out += rewriter.feed(_event({
            "type": "response.in_progress", "response": dict(
                response, output=[{"type": "message", "content": [
                    {"type": "output_text", "text": "ACME-87654321"}]}])}))
        out += rewriter.feed(_event({"type": "response.completed",
                                     "response": dict(response)}))
        self.assertNotIn(b"12345678", out)
        self.assertNotIn(b"87654321", out)
        self.assertEqual(len(scanners), echoed + 1)
        self.assertEqual(rewriter.releasedChars(), 0)
        self.assertEqual(_payloads(out)[-1]["response"]["instructions"],
                         "note [REDACTED:CUSTOM_PATTERN]")

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
