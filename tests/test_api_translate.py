"""
OpenAI chat requests served by an Anthropic target: the translation both
ways, and the real openai SDK reaching an Anthropic-format fake provider.
"""

import json

from twisted.internet import defer, threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from keeptrusts.api.openai import ENDPOINTS
from keeptrusts.api.chatstream import SseRewriter
from keeptrusts.api.rewrite import namedEvent
from keeptrusts.api.stream import Outcome
from keeptrusts.api.translate import (
    StreamToChat, TranslatedStream, answerToChat, requestToMessages)
from keeptrusts.testing import Script
from tests.test_api import Gateway
from tests.test_api_anthropic import acmeScanners

CLAUDE = """
    - id: claude
      provider: anthropic
      base_url: %(base)s
      secret_key_ref: {env: FAKE_KEY}
      models: [claude-fake]
"""


AWS = "AKIAIOSFODNN7EXAMPLE"


class TranslationTests(SynchronousTestCase):
    def test_request(self):
        body = {"model": "claude-fake", "max_tokens": 50, "stream": True,
                "temperature": 0.2, "stop": "END",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {
                            "name": "ls", "arguments": "{\"dir\": \"/\"}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "a b"},
                    {"role": "user", "content": "and?"}],
                "tools": [{"type": "function", "function": {
                    "name": "ls", "parameters": {"type": "object"}}}]}
        self.assertEqual(requestToMessages(body), {
            "model": "claude-fake", "max_tokens": 50, "stream": True,
            "temperature": 0.2, "stop_sequences": ["END"],
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "c1", "name": "ls",
                     "input": {"dir": "/"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "c1",
                     "content": "a b"},
                    {"type": "text", "text": "and?"}]}],
            "tools": [{"name": "ls", "description": "",
                       "input_schema": {"type": "object"}}]})

    def test_partsStayApart(self):
        """
        The text parts of system, developer and tool messages go out as
        blocks, as the policies read them: joined, the halves of a key split
        between two parts would leave whole (found by review).
        """
        halves = [{"type": "text", "text": "key AKIAIOSFOD"},
                  {"type": "text", "text": ""},
                  {"type": "text", "text": "NN7EXAMPLE"}]
        out = requestToMessages({"model": "claude-fake", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": halves},
            {"role": "tool", "tool_call_id": "c1", "content": halves},
            {"role": "user", "content": "hi"}]})
        self.assertEqual(out["system"], [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "key AKIAIOSFOD"},
            {"type": "text", "text": "NN7EXAMPLE"}])
        self.assertEqual(out["messages"][0]["content"][0]["content"], [
            {"type": "text", "text": "key AKIAIOSFOD"},
            {"type": "text", "text": "NN7EXAMPLE"}])
        self.assertNotIn(AWS, json.dumps(out))

    def test_oddRequestShapes(self):
        """
        Fields of another type than the chat format gives them are left
        out of the translation, never a crash (each was a 500).
        """
        odd = [
            {"role": "user", "content": 5},
            {"role": "system", "content": [{"type": "text", "text": 5}]},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": "https://x/y.png"},
                {"type": "image_url", "image_url": 5}, "part", None]},
            {"role": "assistant", "tool_calls": [
                {"function": "f"}, {"function": {"arguments": 5}},
                {"function": {"arguments": "[" * 5000}}, 7]},
            {"role": "user", "content": "ok"}]
        out = requestToMessages({"model": "claude-fake", "messages": odd,
                                 "tools": 5})
        self.assertEqual(out["system"], [])
        self.assertEqual(out["messages"][0]["content"][0],
                         {"type": "image", "source": {
                             "type": "url", "url": "https://x/y.png"}})
        self.assertEqual(out["messages"][-1]["content"][-1],
                         {"type": "text", "text": "ok"})
        self.assertNotIn("tools", out)

    def test_oddAnswerShapes(self):
        for answer in [{"content": 5}, {"content": [{"type": "text",
                                                     "text": 5}]},
                       {"stop_reason": ["x"], "usage": [1]},
                       {"content": "text", "usage": {"input_tokens": "3"}}]:
            chat = answerToChat(answer)
            self.assertEqual(chat["choices"][0]["finish_reason"], "stop")
            self.assertIsNone(chat["choices"][0]["message"]["content"])

    def test_oddStreamShapes(self):
        translate = StreamToChat()
        events = [{"type": "message_start", "message": [1]},
                  {"type": "message_start", "message": {"usage": 5}},
                  {"type": "content_block_start", "index": [0],
                   "content_block": {"type": "tool_use"}},
                  {"type": "content_block_delta", "delta": [1]},
                  {"type": "content_block_delta", "index": {},
                   "delta": {"type": "text_delta", "text": 5}},
                  {"type": "message_delta", "usage": "x",
                   "delta": {"stop_reason": {"a": 1}}},
                  {"type": "error", "error": "boom"}]
        out = b"".join(translate.feed(
            b"data: " + json.dumps(e).encode() + b"\n\n") for e in events)
        self.assertIn(b'"finish_reason": "stop"', out)

    def test_answer(self):
        chat = answerToChat({
            "id": "msg_1", "model": "claude-fake", "stop_reason": "max_tokens",
            "content": [{"type": "text", "text": "Hel"},
                        {"type": "text", "text": "lo"}],
            "usage": {"input_tokens": 3, "output_tokens": 2}})
        self.assertEqual(chat["choices"][0]["message"],
                         {"role": "assistant", "content": "Hello"})
        self.assertEqual(chat["choices"][0]["finish_reason"], "length")
        self.assertEqual(chat["usage"], {"prompt_tokens": 3,
                                         "completion_tokens": 2,
                                         "total_tokens": 5})

    def test_stream(self):
        def event(payload):
            return b"event: %s\ndata: %s\n\n" % (
                payload["type"].encode(), json.dumps(payload).encode())
        stream = b"".join(event(p) for p in [
            {"type": "message_start", "message": {
                "id": "m", "model": "c", "usage": {"input_tokens": 4}}},
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "Hi"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
             "usage": {"output_tokens": 1}},
            {"type": "message_stop"}])
        translator = StreamToChat()
        # Byte by byte: event boundaries are the translator's business.
        out = b"".join(translator.feed(stream[i:i + 1])
                       for i in range(len(stream))) + translator.rest()
        events = [e for e in out.split(b"\n\n") if e]
        self.assertEqual(events[-1], b"data: [DONE]")
        chunks = [json.loads(e[6:]) for e in events[:-1]]
        self.assertEqual([c["choices"][0]["delta"] if c["choices"] else None
                          for c in chunks],
                         [{"role": "assistant", "content": ""},
                          {"content": "Hi"}, {}, None])
        self.assertEqual(chunks[2]["choices"][0]["finish_reason"], "stop")
        self.assertEqual(chunks[3]["usage"], {"prompt_tokens": 4,
                                              "completion_tokens": 1,
                                              "total_tokens": 5})


class TranslatedStreamTests(SynchronousTestCase):
    """
    An Anthropic stream translated, then rewritten as a chat stream.
    """

    def rewrite(self, payloads):
        stream = TranslatedStream(SseRewriter(
            Outcome(), ENDPOINTS["chat/completions"], acmeScanners()))
        out = b"".join(stream.feed(namedEvent(p["type"].encode(), p))
                       for p in payloads) + stream.end()
        return [json.loads(e[6:]) for e in out.split(b"\n\n")
                if e.startswith(b"data: {")]

    def test_startTextJoined(self):
        """
        A block that starts with its text goes on with its deltas, into
        the choice's text (it was left out of the translation).
        """
        chunks = self.rewrite([
            {"type": "message_start", "message": {"id": "m"}},
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": "id ACME-1234"}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "5678 ok"}},
            {"type": "message_stop"}])
        self.assertEqual("".join(
            c["choices"][0]["delta"].get("content") or ""
            for c in chunks if c["choices"]),
            "id [REDACTED:CUSTOM_PATTERN] ok")

    def test_escapedInputWrittenPlainly(self):
        """
        A tool's input, a JSON text, goes on as the chat arguments written
        plainly, read as the client decodes it.
        """
        chunks = self.rewrite([
            {"type": "message_start", "message": {"id": "m"}},
            {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": "t", "name": "f", "input": {}}},
            {"type": "content_block_delta", "index": 0, "delta": {
                "type": "input_json_delta",
                "partial_json": '{"k": "ACME-\\u003'}},
            {"type": "content_block_delta", "index": 0, "delta": {
                "type": "input_json_delta", "partial_json": '1234567\\u0038"}'}},
            {"type": "message_stop"}])
        sent = "".join(call["function"]["arguments"]
                       for c in chunks if c["choices"]
                       for call in c["choices"][0]["delta"].get(
                           "tool_calls") or ())
        self.assertEqual(json.loads(sent), {"k": "[REDACTED:CUSTOM_PATTERN]"})


class OpenAIToAnthropicTests(TestCase):
    def setUp(self):
        self.gw = Gateway(self, extraTargets=CLAUDE)

    def test_chat(self):
        self.gw.provider.script = Script(answer="id ACME-12345678 here")

        def call():
            with self.gw.sdk() as client:
                return client.chat.completions.create(
                    model="claude-fake", messages=[
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "bluebird?"}])

        def check(completion):
            self.assertEqual(completion.choices[0].message.content,
                             "id [REDACTED:CUSTOM_PATTERN] here")
            received = self.gw.provider.requests[-1]
            self.assertEqual(received.path, "/v1/messages")
            self.assertEqual(received.headers["anthropic-version"],
                             "2023-06-01")
            self.assertEqual(received.headers["x-api-key"], "sk-provider-key")
            self.assertEqual(received.json["system"], "Be brief.")
            self.assertEqual(received.json["messages"], [
                {"role": "user", "content": [
                    {"type": "text", "text": "[REDACTED:BLOCKED_TERM]?"}]}])
            output = self.gw.events("output")[0]
            self.assertEqual((output["target"], output["provider"]),
                             ("claude", "anthropic"))
            self.assertEqual(output["tokens"], {"input": 3, "output": 3})
        return threads.deferToThread(call).addCallback(check)

    @defer.inlineCallbacks
    def test_escapedArguments(self):
        """
        Tool-call arguments are a JSON text in a string: a key written with
        escapes (C{AKIA\\u0049...}) is read as what it decodes to, so the
        translation's decoding cannot take it to the provider whole.
        """
        arguments = '{"k": "AKIA\\u0049OSFODNN7EXAMPLE"}'
        self.assertEqual(json.loads(arguments), {"k": AWS})
        response = yield self.gw.post("/v1/chat/completions", {
            "model": "claude-fake", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {
                        "name": "f", "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}]})
        yield response.content()
        self.assertEqual(response.code, 200)
        received = self.gw.provider.requests[-1]
        self.assertNotIn(AWS, received.body.decode())
        [use] = [b for b in received.json["messages"][1]["content"]
                 if b["type"] == "tool_use"]
        self.assertEqual(use["input"], {"k": "[REDACTED:AWS_ACCESS_KEY_ID]"})
        self.assertEqual(self.gw.events("input")[0]["verdict"], "redact")

    def test_stream(self):
        self.gw.provider.script = Script(
            chunks=["id ", "ACME-1234", "5678", " here"])

        def call():
            with self.gw.sdk() as client:
                stream = client.chat.completions.create(
                    model="claude-fake", stream=True,
                    messages=[{"role": "user", "content": "hi"}])
                return list(stream)

        def check(chunks):
            text = "".join(c.choices[0].delta.content or ""
                           for c in chunks if c.choices)
            self.assertEqual(text, "id [REDACTED:CUSTOM_PATTERN] here")
            self.assertEqual([c.choices[0].finish_reason for c in chunks
                              if c.choices and c.choices[0].finish_reason],
                             ["stop"])
            output = self.gw.events("output")[0]
            self.assertEqual(output["verdict"], "redact")
            self.assertEqual(output["tokens"], {"input": 1, "output": 3})
        return threads.deferToThread(call).addCallback(check)
