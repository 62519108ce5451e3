"""
C{POST /v1/responses} (Codex) through the gateway with the real C{openai}
SDK, streamed and not; the closing events never carry unredacted text.
"""

import json

from twisted.internet import threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from keeptrusts.api.endpoint import readSlots
from keeptrusts.api.responses import RESPONSES
from keeptrusts.testing import Script, echoPrompt
from tests.test_api import Gateway


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
