"""
Tests for L{keeptrusts.api.openai}: where the texts are in OpenAI requests,
answers and stream chunks, read and rewritten through slots.
"""

import base64
import copy

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.api.errors import GatewayError
from keeptrusts.api.endpoint import readSlots, writeSlots
from keeptrusts.api.paths import otherJSON
from keeptrusts.api.openai import ENDPOINTS, usageOf
from keeptrusts.api.responses import RESPONSES
from keeptrusts.api.texts import (
    answerTextSlots, readAnswer, readRequest, requestTextSlots)

CHAT = ENDPOINTS["chat/completions"]
COMPLETIONS = ENDPOINTS["completions"]
EMBEDDINGS = ENDPOINTS["embeddings"]


def chatBody():
    return {
        "model": "gpt-4o",
        "stream": True,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "look at this"},
                {"type": "image_url", "image_url": {"url": "data:..."}},
                {"type": "text", "text": "and this"},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {
                    "name": "lookup", "arguments": '{"q": "secret"}'}},
                {"id": "call_2", "type": "function", "function": {
                    "name": "other", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "found"},
        ],
    }


class EndpointTableTests(SynchronousTestCase):
    """
    L{ENDPOINTS} knows the three OpenAI text endpoints.
    """

    def test_names(self):
        self.assertEqual(sorted(ENDPOINTS),
                         ["chat/completions", "completions", "embeddings"])
        for name, endpoint in ENDPOINTS.items():
            self.assertEqual(endpoint.name, name)

    def test_embeddingsHaveNoAnswerText(self):
        self.assertIsNone(EMBEDDINGS.answerSlots)
        self.assertIsNone(EMBEDDINGS.deltaSlots)
        self.assertIsNotNone(CHAT.answerSlots)
        self.assertIsNotNone(COMPLETIONS.deltaSlots)


class ChatRequestTests(SynchronousTestCase):
    """
    The texts of a chat request: string content, text parts, tool call
    arguments, in message order.
    """

    def test_readSlots(self):
        body = chatBody()
        self.assertEqual(readSlots(list(CHAT.requestSlots(body))), (
            "be brief", "look at this", "and this", '{"q": "secret"}', "{}",
            "found"))

    def test_writeSlotsInPlace(self):
        body = chatBody()
        expected = copy.deepcopy(body)
        parts = body["messages"][1]["content"]
        slots = list(CHAT.requestSlots(body))
        writeSlots(slots, ["A", "B", "C", "D", "E", "F"])
        expected["messages"][0]["content"] = "A"
        expected["messages"][1]["content"][0]["text"] = "B"
        expected["messages"][1]["content"][2]["text"] = "C"
        expected["messages"][2]["tool_calls"][0]["function"]["arguments"] = "D"
        expected["messages"][2]["tool_calls"][1]["function"]["arguments"] = "E"
        expected["messages"][3]["content"] = "F"
        self.assertEqual(body, expected)
        # The same containers, rewritten: nothing was copied.
        self.assertIs(body["messages"][1]["content"], parts)
        self.assertEqual(readSlots(slots), ("A", "B", "C", "D", "E", "F"))

    def test_nonTextContentSkipped(self):
        body = {"model": "m", "messages": [
            {"role": "user", "content": 42},
            {"role": "user", "content": ["bare string", {"text": 3},
                                         {"type": "text", "text": "ok"}]},
            {"role": "assistant", "tool_calls": [
                "junk", {"function": "junk"},
                {"function": {"arguments": {"not": "a string"}}}]},
        ]}
        CHAT.validate(body)
        self.assertEqual(readSlots(list(CHAT.requestSlots(body))), ("ok",))

    def test_toolCallsNotAList(self):
        # Regression: A non-list tool_calls is a 422, not a crash in the slot walk.
        for bad in (5, True, 1.5):
            body = {"model": "m", "messages": [
                {"role": "assistant", "content": "hi", "tool_calls": bad}]}
            try:
                CHAT.validate(body)
            except GatewayError as error:
                self.assertEqual((error.status, error.type),
                                 (422, "validation_error"))
                continue
            self.assertEqual(readSlots(list(CHAT.requestSlots(body))),
                             ("hi",))

    def test_emptyStringIsASlot(self):
        body = {"model": "m", "messages": [{"role": "user", "content": ""}]}
        self.assertEqual(readSlots(list(CHAT.requestSlots(body))), ("",))


class EveryTextTests(SynchronousTestCase):
    """
    L{requestTextSlots}: the surface's own slots first, then every other
    string but identifiers, enumerations and encoded data.
    """

    def test_otherStringsRead(self):
        body = {
            "model": "gpt-4o", "user": "u1", "stop": ["END"],
            "messages": [
                {"role": "user", "name": "alice", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "refusal", "refusal": "no"},
                    {"type": "image_url", "image_url": {
                        "url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "image_url", "image_url": {
                        "url": "https://b.s3.amazonaws.com/x?X-Amz=1"}},
                    {"type": "input_audio", "input_audio": {
                        "data": "UklGRg==", "format": "wav"}},
                    {"type": "input_audio", "input_audio": {
                        "data": "words, not base64", "format": "text"}}]},
                {"role": "assistant", "function_call": {
                    "name": "f", "arguments": "{\"k\": 1}"}}],
            "prediction": {"type": "content", "content": "predicted"},
            "tools": [{"type": "function", "function": {
                "name": "ls", "description": "lists files",
                "parameters": {"type": "object", "properties": {
                    "dir": {"type": "string", "description": "where"}}}}}],
            "tool_choice": "auto", "reasoning_effort": "low"}
        texts = readSlots(requestTextSlots(
            ENDPOINTS["chat/completions"], body))
        self.assertEqual(texts[0], "hi")
        self.assertEqual(sorted(texts[1:]), sorted([
            "u1", "END", "predicted", "no", "{\"k\": 1}", "lists files",
            "where", "https://b.s3.amazonaws.com/x?X-Amz=1",
            "words, not base64"]))

    def test_onlyTheSkippedKeysOwnStrings(self):
        """
        A key left out leaves out its own string, not what is nested below
        it (a schema property called "name" keeps its description); only
        base64 data URLs where media go and the known base64 shapes are
        encoded data; a thinking block's text is read, signed or not, its
        signature and a redacted block's data are not.
        """
        body = {"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "mine", "signature": "s"},
                {"type": "thinking", "thinking": "unsigned"},
                {"type": "redacted_thinking", "data": "opaque"}]}],
            "tools": [{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object", "properties": {
                    "name": {"type": "string", "description": "d1"},
                    "type": {"type": "string", "description": "d2"}}}}}],
            "metadata": {"note": "data: not an image",
                         "url": "data:text/plain,plain words",
                         "image": "data:image/png;base64,iVBORw0KGgo=",
                         "tail": "data:;base64,QUJD then words"},
            "extra": {"data": "d3", "format": "f", "more": "m1"}}
        texts = readSlots(requestTextSlots(
            ENDPOINTS["chat/completions"], body))
        self.assertEqual(sorted(texts), sorted([
            "hi", "mine", "unsigned", "d1", "d2", "data: not an image",
            "data:text/plain,plain words", "data:image/png;base64,iVBORw0KGgo=",
            "data:;base64,QUJD then words", "d3", "m1"]))

    def test_dataURLsOnlyAsMedia(self):
        """
        A base64 data URL is encoded data only where a surface carries
        media (an image part's URL, a Responses input image, a file's data)
        and only of a binary type; anywhere else, or of another type (none,
        text), it is read; and where a name goes it is a name (found by
        review).
        """
        key = "AKIAIOSFODNN7EXAMPLE"
        png = "data:image/png;base64,iVBORw0KGgo="
        pdf = "data:application/pdf;base64,JVBERi0x"
        body = {"model": "data:;base64," + key, "messages": [
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": png}},
                {"type": "image_url", "image_url": {
                    "url": "data:text/plain;base64," + key}},
                {"type": "image_url", "image_url": {
                    "url": "data:;base64," + key}},
                {"type": "file", "file": {"file_data": pdf,
                                          "filename": "a.pdf"}},
                {"type": "input_audio", "input_audio": {
                    "data": "UklGRg==", "format": "wav"}},
                {"type": "input_audio", "input_audio": {
                    "data": key, "format": "text"}},
                {"type": "text", "text": png}]}],
            "input": [{"type": "input_image", "image_url": png},
                      {"type": "input_text", "image_url": png},
                      {"type": "input_image",
                       "image_url": "data:text/plain;base64," + key}],
            "system": [{"type": "image", "source": {
                "type": "base64", "media_type": "image/png",
                "data": "iVBORw0KGgo="}},
                {"type": "document", "source": {
                    "type": "base64", "media_type": "text/plain",
                    "data": key}}],
            "tools": [{"type": "function", "function": {
                "name": "f", "description": "data:text/plain;base64," + key,
                "parameters": {"type": "object"}}}],
            "metadata": {"image": png}}
        reading = readRequest(otherJSON("any"), body)
        # Base64 of a type that is text (none is text/plain) is read as it
        # is and as what it decodes to, its bytes taken as Latin-1 when
        # they are not UTF-8.
        decoded = base64.b64decode(key).decode("latin-1")
        self.assertEqual(sorted(readSlots(reading.slots)), sorted([
            "data:text/plain;base64," + key, "data:;base64," + key, "a.pdf",
            key, png, png, "data:text/plain;base64," + key, key,
            "data:text/plain;base64," + key, png] + [decoded] * 4))
        self.assertIn("data:;base64," + key, reading.names.split("\n"))

    def test_base64TextDecoded(self):
        """
        Base64 of text where files go (a chat file's data, a Responses
        input file, Claude's base64 document source, Gemini's inline data,
        an image part's data URL) is read as it is and as the text it
        decodes to; writing the slots back encodes a changed text again, in
        its place (found by review: a .env as C{data:text/plain;base64,...}
        reached the provider, which decodes it), whatever its label claims
        (found by review: a .env labelled image/png went on unread).  A
        picture's bytes are not read.
        """
        env = "AWS_ACCESS_KEY_ID=AKIAQYLPMN5HFIQZ7XYZ\n"
        data = base64.b64encode(env.encode()).decode()
        url = "data:text/plain;base64," + data
        png = "data:image/png;base64," + data
        picture = "data:image/png;base64," + base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR " + env.encode()).decode()
        body = {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": ".env", "file_data": url}},
            {"type": "file", "file": {"file_data": png}},
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "image_url", "image_url": {"url": picture}}]}],
            "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": ".env",
                 "file_data": "data:application/x-sh;base64," + data},
                {"type": "input_file", "file_data": data}]}],
            "system": [{"type": "document", "source": {
                "type": "base64", "media_type": "text/plain", "data": data}},
                {"type": "document", "source": {
                    "type": "base64", "media_type": "application/pdf",
                    "data": data}}],
            "contents": [{"parts": [
                {"inline_data": {"mime_type": "text/plain", "data": data}},
                {"inlineData": {"mimeType": "application/json",
                                "data": data}},
                {"inline_data": {"mime_type": "image/png", "data": data}}]}],
            "metadata": {"data": data, "file": url}}
        reading = readRequest(otherJSON("any"), body)
        texts = readSlots(reading.slots)
        # Every file, whatever its label, but the picture; not base64 out
        # of the places of files.
        self.assertEqual(texts.count(env), 10)
        self.assertNotIn(picture, texts)
        self.assertIn(data, texts)
        self.assertIn(url, texts)
        writeSlots(reading.slots, [t.replace("AKIAQYLPMN5HFIQZ7XYZ", "[R]")
                                   for t in texts])
        redacted = base64.b64encode(
            b"AWS_ACCESS_KEY_ID=[R]\n").decode()
        content = body["messages"][0]["content"]
        self.assertEqual(
            [content[0]["file"]["file_data"], content[1]["file"]["file_data"],
             content[2]["image_url"]["url"],
             body["input"][0]["content"][0]["file_data"],
             body["input"][0]["content"][1]["file_data"],
             body["system"][0]["source"]["data"],
             body["system"][1]["source"]["data"],
             body["contents"][0]["parts"][0]["inline_data"]["data"],
             body["contents"][0]["parts"][1]["inlineData"]["data"],
             body["contents"][0]["parts"][2]["inline_data"]["data"],
             body["metadata"]],
            ["data:text/plain;base64," + redacted,
             "data:image/png;base64," + redacted,
             "data:text/plain;base64," + redacted,
             "data:application/x-sh;base64," + redacted, redacted, redacted,
             redacted, redacted, redacted, redacted,
             {"data": data, "file": url}])
        self.assertEqual(content[3]["image_url"]["url"], picture)

    def test_encodedOnlyInItsPlace(self):
        """
        A request's logprobs are read (only an answer's are not); a
        C{signature} is encoded data only in Claude's thinking blocks, an
        C{encrypted_content} only in OpenAI's reasoning and compaction
        items and Claude's search results, a redacted thinking block's data
        only there, and each only when it is base64; a signed thinking
        block's text is read (found by review).
        """
        key = "AKIAIOSFODNN7EXAMPLE"
        github = "ghp_R8k2mQ9vX4tL7nP3wZ6yB1cF5hJ0dS2aG8eK"
        body = {"model": "m", "logprobs": [key], "top_logprobs": {"a": key},
                "messages": [
            {"role": "assistant", "content": "x",
             "logprobs": {"content": [{"token": "t1"}]}},
            {"role": "user", "content": [
                {"type": "text", "text": "hi", "signature": "s1"}],
             "encrypted_content": "e1"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "thought",
                 "signature": "RXFRQkNnSVlBaElN+/="},
                {"type": "thinking", "thinking": "t2", "signature": github},
                {"type": "redacted_thinking", "data": "RW1vS0FoZ0I="},
                {"type": "redacted_thinking", "data": github},
                {"type": "web_search_tool_result", "content": [
                    {"type": "web_search_result", "title": "page",
                     "encrypted_content": "RXFnZkNpb0lB"}]}]}],
            "input": [
                {"type": "reasoning", "summary": [],
                 "encrypted_content": "gAAAAABo-_X="},
                {"type": "compaction", "encrypted_content": "gAAAAABp"},
                {"type": "reasoning", "encrypted_content": "not base64!"}]}
        reading = readRequest(otherJSON("any"), body)
        self.assertEqual(sorted(readSlots(reading.slots)), sorted([
            key, key, "x", "t1", "hi", "s1", "e1", "thought", "t2", github,
            github, "page", "not base64!"]))
        for encoded in ("RXFRQkNnSVlBaElN+/=", "RW1vS0FoZ0I=", "RXFnZkNpb0lB",
                        "gAAAAABo-_X=", "gAAAAABp"):
            self.assertNotIn(encoded, reading.names.split("\n"))
        # An answer's logprobs are not read, nor its base64 embeddings and
        # images; its signed thinking is.
        answer = {"content": [{"type": "thinking", "thinking": "thought",
                               "signature": "RXFRQkNn"}],
                  "logprobs": [key],
                  "data": [{"object": "embedding", "embedding": "AACAPw=="},
                           {"b64_json": "iVBORw0KGgo="},
                           {"b64_json": "not base64!"}]}
        self.assertEqual(readSlots(answerTextSlots(otherJSON("any"), answer)),
                         ("thought", "not base64!"))

    def test_writesBack(self):
        body = {"model": "m", "prompt": "p", "suffix": "s"}
        slots = requestTextSlots(ENDPOINTS["completions"], body)
        writeSlots(slots, ["P", "S"])
        self.assertEqual(body, {"model": "m", "prompt": "P", "suffix": "S"})


def names(body):
    return readRequest(otherJSON("any"), body).names


def rewritten(body):
    return readRequest(otherJSON("any"), body).rewritten


class RequestNamesTests(SynchronousTestCase):
    def test_names(self):
        """
        Object keys and the identifiers left out of the texts, once each, in
        the order met; encoded data is not among them.
        """
        body = {"model": "gpt-x", "messages": [
            {"role": "user", "name": "bob", "content": [
                {"type": "image_url", "image_url": {
                    "url": "data:image/png;base64,QUtJQQ=="}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": "c2ln"},
                {"type": "reasoning", "encrypted_content": "ZW5j"}]}],
            "metadata": {"team": "infra"}}
        self.assertEqual(names(body).split("\n"), [
            "model", "gpt-x", "messages", "metadata", "team", "role", "user",
            "name", "bob", "content", "assistant", "type", "image_url",
            "thinking", "signature", "reasoning", "encrypted_content", "url"])
        self.assertEqual(names({}), "")


class AnswerTextTests(SynchronousTestCase):
    def test_everyTextButLogprobs(self):
        """
        Every text of an answer is read but its logprobs, which spell its
        text out token by token (dropped when that text is redacted).
        """
        answer = {"id": "c", "object": "chat.completion", "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hi",
                        "refusal": "no", "audio": {"id": "a", "transcript": "t"}},
            "logprobs": {"content": [{"token": "hi", "top_logprobs": [
                {"token": "hey"}]}]}}], "system_fingerprint": "fp"}
        texts = readSlots(answerTextSlots(ENDPOINTS["chat/completions"],
                                          answer))
        self.assertEqual(texts[0], "hi")
        self.assertEqual(sorted(texts[1:]), ["fp", "no", "t"])


class PlainArgumentsTests(SynchronousTestCase):
    def test_escapesWrittenPlainly(self):
        """
        The \\uXXXX and \\/ escapes of arguments are written plainly,
        wherever the arguments are; what a JSON string must escape, a lone
        surrogate and an escaped backslash stay; numbers, duplicate keys and
        what is not JSON stay as they came.
        """
        body = {"messages": [{"tool_calls": [{"function": {
            "arguments": '{"k": "AKIA\\u0049X", "p": "a\\/b", '
                         '"n": 1e400, "f": 0.12345678901234567891}'}}]},
            {"function_call": {"arguments":
                '{"k": "\\\\u0041", "q": "\\u0022", "c": "\\u000a", '
                '"e": "\\ud83d\\ude00", "s": "\\ud800x", "d": 1, "d": 2}'}}],
            "input": [{"type": "function_call",
                       "arguments": '{"k": "\\u00e9'}]}
        self.assertTrue(rewritten(body))
        self.assertEqual(
            body["messages"][0]["tool_calls"][0]["function"]["arguments"],
            '{"k": "AKIAIX", "p": "a/b", "n": 1e400, '
            '"f": 0.12345678901234567891}')
        self.assertEqual(
            body["messages"][1]["function_call"]["arguments"],
            '{"k": "\\\\u0041", "q": "\\u0022", "c": "\\u000a", '
            '"e": "\U0001f600", "s": "\\ud800x", "d": 1, "d": 2}')
        self.assertEqual(body["input"][0]["arguments"], '{"k": "\u00e9')
        self.assertFalse(rewritten({"messages": [{"tool_calls": [
            {"function": {"arguments": '{"k": "v\\n", "b": "\\\\u0041"}'}}]}]}))


class PlainAnswerArgumentsTests(SynchronousTestCase):
    def test_answerEscapesWrittenPlainly(self):
        """
        An answer's arguments (a chat tool call's, a legacy function
        call's, a Responses function call's) have their escapes written
        plainly, as a request's, before the policies read them: a client
        decodes them (found by review).
        """
        escaped = '{"k": "\\u0041KIAIOSFODNN7EXAMPLE"}'
        chat = {"choices": [{"index": 0, "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "t", "type": "function", "function": {
                "name": "f", "arguments": escaped}}],
            "function_call": {"name": "g", "arguments": escaped}}}]}
        reading = readAnswer(CHAT, chat)
        self.assertTrue(reading.rewritten)
        plain = '{"k": "AKIAIOSFODNN7EXAMPLE"}'
        self.assertEqual(readSlots(reading.slots), (plain, plain))
        answer = {"output": [{"type": "function_call", "call_id": "c",
                              "name": "f", "arguments": escaped}]}
        reading = readAnswer(RESPONSES, answer)
        self.assertTrue(reading.rewritten)
        self.assertEqual(answer["output"][0]["arguments"], plain)
        self.assertEqual(readSlots(reading.slots), (plain,))
        self.assertFalse(readAnswer(CHAT, {"choices": [{"message": {
            "tool_calls": [{"function": {"arguments": plain}}]}}]}
        ).rewritten)


class ChatValidationTests(SynchronousTestCase):
    """
    A chat body that cannot be read is a 422 C{validation_error}.
    """

    def assertInvalid(self, body, message):
        error = self.assertRaises(GatewayError, CHAT.validate, body)
        self.assertEqual((error.status, error.type, error.message),
                         (422, "validation_error", message))
        self.assertEqual(error.envelope(), {"error": {
            "type": "validation_error", "message": message, "code": None,
            "policy": None}})

    def test_valid(self):
        self.assertIsNone(CHAT.validate(chatBody()))

    def test_model(self):
        for body in ({"messages": [{"role": "user"}]},
                     {"model": "", "messages": [{"role": "user"}]},
                     {"model": 4, "messages": [{"role": "user"}]}):
            self.assertInvalid(body, "'model' must be a non-empty string")

    def test_messages(self):
        for messages in (None, [], "hello", {"role": "user"}):
            body = {"model": "m"}
            if messages is not None:
                body["messages"] = messages
            self.assertInvalid(body, "'messages' must be a non-empty list")

    def test_messageShape(self):
        self.assertInvalid(
            {"model": "m", "messages": [{"role": "user"}, "hello"]},
            "'messages[1]' must be an object with a 'role'")
        self.assertInvalid(
            {"model": "m", "messages": [{"content": "x"}]},
            "'messages[0]' must be an object with a 'role'")
        self.assertInvalid(
            {"model": "m", "messages": [{"role": 1, "content": "x"}]},
            "'messages[0]' must be an object with a 'role'")


class CompletionsAndEmbeddingsTests(SynchronousTestCase):
    """
    Legacy completions (C{prompt}) and embeddings (C{input}).
    """

    def test_promptString(self):
        body = {"model": "m", "prompt": "write a poem", "suffix": "end"}
        COMPLETIONS.validate(body)
        slots = list(COMPLETIONS.requestSlots(body))
        self.assertEqual(readSlots(slots), ("write a poem",))
        writeSlots(slots, ["X"])
        self.assertEqual(body, {"model": "m", "prompt": "X", "suffix": "end"})

    def test_promptList(self):
        body = {"model": "m", "prompt": ["one", 7, "two", [1, 2]]}
        COMPLETIONS.validate(body)
        slots = list(COMPLETIONS.requestSlots(body))
        self.assertEqual(readSlots(slots), ("one", "two"))
        writeSlots(slots, ["1", "2"])
        self.assertEqual(body["prompt"], ["1", 7, "2", [1, 2]])

    def test_embeddingsInput(self):
        body = {"model": "e", "input": "embed me"}
        EMBEDDINGS.validate(body)
        self.assertEqual(readSlots(list(EMBEDDINGS.requestSlots(body))),
                         ("embed me",))
        body = {"model": "e", "input": ["a", "b"]}
        slots = list(EMBEDDINGS.requestSlots(body))
        writeSlots(slots, ["A", "B"])
        self.assertEqual(body, {"model": "e", "input": ["A", "B"]})

    def test_promptInvalid(self):
        for body in ({"model": "m"}, {"model": "m", "prompt": 3},
                     {"model": "m", "prompt": {"a": 1}}):
            error = self.assertRaises(GatewayError, COMPLETIONS.validate, body)
            self.assertEqual((error.status, error.type, error.message),
                             (422, "validation_error",
                              "'prompt' must be a string or a list"))

    def test_inputInvalid(self):
        error = self.assertRaises(GatewayError, EMBEDDINGS.validate,
                                  {"model": "e", "input": None})
        self.assertEqual((error.status, error.message),
                         (422, "'input' must be a string or a list"))

    def test_modelRequired(self):
        for endpoint, key in ((COMPLETIONS, "prompt"), (EMBEDDINGS, "input")):
            error = self.assertRaises(GatewayError, endpoint.validate,
                                      {key: "x"})
            self.assertEqual((error.status, error.message),
                             (422, "'model' must be a non-empty string"))


class AnswerSlotsTests(SynchronousTestCase):
    """
    The texts of whole answers.
    """

    def test_chatAnswer(self):
        answer = {"id": "c1", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "one"},
             "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": None,
                                     "tool_calls": [{"function": {
                                         "name": "f",
                                         "arguments": "{\"a\": 1}"}}]}},
            "junk",
            {"index": 2, "message": "junk"},
        ], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
        slots = list(CHAT.answerSlots(answer))
        self.assertEqual(readSlots(slots), ("one", '{"a": 1}'))
        writeSlots(slots, ["ONE", "{}"])
        self.assertEqual(answer["choices"][0]["message"]["content"], "ONE")
        self.assertEqual(answer["choices"][1]["message"]["tool_calls"][0]
                         ["function"]["arguments"], "{}")

    def test_noChoices(self):
        for answer in ({}, {"choices": None}, {"choices": "x"}, [], "x"):
            self.assertEqual(list(CHAT.answerSlots(answer)), [])
            self.assertEqual(list(COMPLETIONS.answerSlots(answer)), [])

    def test_completionsAnswer(self):
        answer = {"choices": [{"index": 0, "text": "hello"},
                              {"index": 1, "text": None}]}
        slots = list(COMPLETIONS.answerSlots(answer))
        self.assertEqual(readSlots(slots), ("hello",))


class DeltaSlotsTests(SynchronousTestCase):
    """
    The texts of stream chunks, with the index of their choice.
    """

    def test_chatDeltas(self):
        chunk = {"object": "chat.completion.chunk", "choices": [
            {"index": 1, "delta": {"content": "b"}},
            {"index": 0, "delta": {"content": "a"}},
            {"delta": {"content": "no index"}},
            {"index": 3, "delta": {"role": "assistant"}},
            {"index": 4, "delta": {"content": None}},
            {"index": 5, "delta": {}, "finish_reason": "stop"},
        ]}
        slots = list(CHAT.deltaSlots(chunk))
        self.assertEqual([(i, c[k]) for i, c, k in slots],
                         [(1, "b"), (0, "a"), (0, "no index")])
        for i, container, key in slots:
            container[key] = container[key].upper()
        self.assertEqual(chunk["choices"][0]["delta"], {"content": "B"})

    def test_roleChunkWithEmptyContent(self):
        chunk = {"choices": [{"index": 0, "delta": {
            "role": "assistant", "content": ""}}]}
        self.assertEqual([(i, c[k]) for i, c, k in CHAT.deltaSlots(chunk)],
                         [(0, "")])

    def test_usageChunkHasNone(self):
        chunk = {"choices": [], "usage": {"prompt_tokens": 3}}
        self.assertEqual(list(CHAT.deltaSlots(chunk)), [])

    def test_completionsDeltas(self):
        chunk = {"choices": [{"index": 0, "text": "he"},
                             {"index": 1, "text": "llo"},
                             {"index": 2, "finish_reason": "stop"}]}
        self.assertEqual(
            [(i, c[k]) for i, c, k in COMPLETIONS.deltaSlots(chunk)],
            [(0, "he"), (1, "llo")])


class UsageOfTests(SynchronousTestCase):
    """
    L{usageOf} reads the token counts of an answer or chunk.
    """

    def test_usage(self):
        self.assertEqual(usageOf({"usage": {
            "prompt_tokens": 12, "completion_tokens": 34,
            "total_tokens": 46}}), {"input": 12, "output": 34})

    def test_embeddingsUsage(self):
        self.assertEqual(usageOf({"usage": {"prompt_tokens": 8,
                                            "total_tokens": 8}}),
                         {"input": 8, "output": None})

    def test_noUsage(self):
        for answer in ({}, {"usage": None}, {"usage": 3}, [], None, "x"):
            self.assertIsNone(usageOf(answer), answer)


class WriteSlotsTests(SynchronousTestCase):
    """
    L{readSlots} and L{writeSlots} on plain containers.
    """

    def test_listAndDictSlots(self):
        items = ["a", "b"]
        mapping = {"k": "v"}
        slots = [(items, 1), (mapping, "k"), (items, 0)]
        self.assertEqual(readSlots(slots), ("b", "v", "a"))
        writeSlots(slots, ("B", "V", "A"))
        self.assertEqual((items, mapping), (["A", "B"], {"k": "V"}))

    def test_noSlots(self):
        self.assertEqual(readSlots([]), ())
        writeSlots([], ())
