"""
Tests for L{keeptrusts.api.stream}: the SSE rewriter that passes OpenAI
stream deltas through the policies' scanners, the response bridge with its
backpressure and idle timeout, and the whole-body collector.
"""

import json

from twisted.internet.abstract import FileDescriptor
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

try:
    from twisted.internet.testing import MemoryReactorClock, StringTransport
except ImportError:
    from twisted.test.proto_helpers import MemoryReactorClock, StringTransport

from keeptrusts.api.errors import GatewayError, upstreamError
from keeptrusts.api.openai import ENDPOINTS
from keeptrusts.api.sse import EventSplitter, eventData
from keeptrusts.api.openai import errorEvent
from keeptrusts.api.chatstream import SseRewriter
from keeptrusts.api.stream import (
    BodyCollector, Outcome, Passthrough, ResponseBridge)
from keeptrusts.policy.chain import PolicyChain, PolicyOutcome
from keeptrusts.policy.dlp import DlpFilter, DlpOptions
from keeptrusts.policy.values import (
    ALLOW, BLOCK, REDACT, Blocked, Exchange, Finding)

AWS = "AKIAIOSFODNN7EXAMPLE"
REDACTED_AWS = "[REDACTED:AWS_ACCESS_KEY_ID]"
EXCHANGE = Exchange(request_id="r1", endpoint="chat/completions",
                    stream=True)
CHAT_DELTAS = ENDPOINTS["chat/completions"]
TEXT_DELTAS = ENDPOINTS["completions"]
IDLE = 30.0


def newScanner(action="redact"):
    """
    A scanner factory as the pipeline makes it: the chain's composed
    scanner, with a fixed timer.
    """
    chain = PolicyChain([DlpFilter(DlpOptions(action=action))], "block",
                        Clock(), timer=lambda: 0.0)
    return lambda: chain.scanOutput(EXCHANGE)


def checkKeptAsItCame(test, rewriter, event):
    """
    C{event}, whose text is C{Hello there}, goes through C{rewriter} byte for
    byte; the same event with a secret for that text is written anew,
    redacted.
    """
    test.assertEqual(rewriter.feed(event), event)
    changed = rewriter.feed(event.replace(b"Hello there", b"ACME-12345678 ok"))
    test.assertIn(b"[REDACTED:CUSTOM_PATTERN]", changed)
    test.assertNotIn(b"12345678", changed)
    return changed


def checkOnlyWhatWasRead(test, rewriter, event, key):
    """
    C{event}, whose C{key} field holds C{Hello there}, given with a secret
    in that field before it (a key given twice: readers differ on which
    counts), or with a comment line holding one, goes on without the
    secret: written anew from what the policies read (found by review).
    """
    twice = event.replace(b'"Hello there"', b'"ACME-12345678", "%s": '
                          b'"Hello there"' % (key,))
    commented = b": ACME-12345678\n" + event
    for variant in (twice, commented):
        out = rewriter.feed(variant)
        test.assertIn(b"Hello there", out)
        test.assertNotIn(b"12345678", out)


def event(obj):
    if isinstance(obj, bytes):
        return b"data: " + obj + b"\n\n"
    return b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n"


def chunk(content=None, index=0, role=None, finish=None, **extra):
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
            "created": 1, "model": "gpt-fake",
            "choices": [{"index": index, "delta": delta,
                         "finish_reason": finish}]}
    body.update(extra)
    return body


USAGE = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
         "created": 1, "model": "gpt-fake", "choices": [],
         "usage": {"prompt_tokens": 9, "completion_tokens": 12,
                   "total_tokens": 21}}


def chatStream(*contents, usage=True):
    """
    The bytes of a chat stream: a role chunk, one chunk per content, a
    finish chunk, a usage chunk, [DONE].
    """
    parts = [event(chunk("", role="assistant"))]
    parts.extend(event(chunk(c)) for c in contents)
    parts.append(event(chunk(finish="stop")))
    if usage:
        parts.append(event(USAGE))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def parse(data):
    """
    The events of an output stream: the parsed JSON of each data event, or
    the raw data for [DONE] and non-JSON events.
    """
    splitter = EventSplitter()
    events = []
    for raw in splitter.feed(data):
        _, payload = eventData(raw)
        try:
            events.append(json.loads(payload))
        except (TypeError, ValueError):
            events.append(payload if payload is not None else raw)
    return events, splitter.rest()


def contentOf(events, index=0):
    return "".join(
        c["delta"].get("content") or ""
        for e in events if isinstance(e, dict)
        for c in e.get("choices", ()) if c.get("index") == index)


class SseRewriterTests(SynchronousTestCase):
    """
    L{SseRewriter} rewrites the text deltas of an OpenAI chat stream and
    keeps everything else.
    """

    def rewriter(self, action="redact", deltaSlots=CHAT_DELTAS):
        self.outcome = Outcome()
        return SseRewriter(self.outcome, deltaSlots, newScanner(action))

    def runPieces(self, pieces, action="redact"):
        rewriter = self.rewriter(action)
        out = b"".join(rewriter.feed(p) for p in pieces) + rewriter.end()
        self.rewriterUsed = rewriter
        return out

    def runStream(self, data, pieces):
        return self.runPieces([data[i:i + pieces] for i in range(0, len(data),
                                                            pieces)])

    def test_textAfterFinishRefused(self):
        """
        Text of a choice that finished would be scanned afresh, a key split
        across the finish unseen: it ends the stream as an invalid event
        (found by review).  An empty reason finishes nothing.
        """
        rewriter = self.rewriter()
        rewriter.feed(event(chunk("key AKIAIOSF", finish="")))
        out = rewriter.feed(event(chunk("ODNN7EXAMPLE", finish="stop")))
        self.assertNotIn(b"EXAMPLE", out)
        toolCall = chunk()
        toolCall["choices"][0]["delta"]["tool_calls"] = [
            {"index": 0, "function": {"arguments": "x"}}]
        for late in (chunk("x"), toolCall):
            self.assertRaises(GatewayError, rewriter.feed, event(late))
        # An empty text is no text.
        rewriter.feed(event(chunk("")))

    def test_secretSplitAcrossChunks(self):
        data = chatStream("Your key is AKIAIO", "SFODNN7EXA", "MPLE, keep it.")
        for size in (len(data), 1, 7, 50):
            out = self.runStream(data, size)
            events, rest = parse(out)
            self.assertEqual(rest, b"")
            self.assertEqual(contentOf(events),
                             "Your key is %s, keep it." % (REDACTED_AWS,),
                             size)
            self.assertNotIn(b"AKIAIO", out)
            self.assertNotIn(b"EXAMPLE", out)

    def test_otherEventsKept(self):
        out = self.runPieces([chatStream("hello ", "world")])
        events, _ = parse(out)
        self.assertEqual(events[0], chunk("", role="assistant"))
        self.assertEqual(events[-3], chunk(finish="stop"))
        self.assertEqual(events[-2], USAGE)
        self.assertEqual(events[-1], b"[DONE]")
        self.assertEqual(contentOf(events), "hello world")

    def test_unchangedEventsKeptByteForByte(self):
        data = (b": keep-alive\n\n" + event(USAGE) +
                b"event: ping\ndata: {}\n\n" + b"data: [DONE]\n\n")
        self.assertEqual(self.runPieces([data]),
                         b": keep-alive\n\n" + event(USAGE) +
                         b"event: ping\ndata: {}\n\n" + b"data: [DONE]\n\n")

    def test_onlyWhatWasReadGoesOn(self):
        checkOnlyWhatWasRead(self, self.rewriter(), event(
            b'{"choices": [{"index": 0, "delta": {"content": '
            b'"Hello there"}}]}'), b"content")

    def test_oddEventsRead(self):
        """
        What no chunk is (a text, a list) is read whole; the end marker's
        other lines (a comment, an id) do not go on (found by review).
        """
        rewriter = self.rewriter()
        for raw in (b'data: "key AKIAIOSFODNN7EXAMPLE"\n\n',
                    b'data: ["AKIAIOSFODNN7EXAMPLE"]\n\n'):
            out = rewriter.feed(raw)
            self.assertIn(REDACTED_AWS.encode(), out)
            self.assertNotIn(b"AKIAIOSFODNN7EXAMPLE", out)
        self.assertEqual(rewriter.feed(
            b": AKIAIOSFODNN7EXAMPLE\nid: AKIAIOSFODNN7EXAMPLE\n"
            b"data: [DONE]\n\n"), b"data: [DONE]\n\n")

    def test_obfuscationNotRead(self):
        """
        OpenAI's padding of every chunk ("obfuscation": random characters)
        is no text of the model: not read, the chunk kept as it came.
        """
        padded = event(dict(chunk("hello"), obfuscation="Yq8TzV2m"))
        scanners = []
        factory = newScanner()

        def counted():
            scanners.append(factory())
            return scanners[-1]
        rewriter = SseRewriter(Outcome(), CHAT_DELTAS, counted)
        self.assertEqual(rewriter.feed(padded), padded)
        self.assertEqual(len(scanners), 1)  # the choice's own

    def test_usageRecorded(self):
        self.runPieces([chatStream("hi")])
        self.assertEqual(self.outcome.tokens, {"input": 9, "output": 12})

    def test_nullUsageIgnored(self):
        self.runPieces([event(USAGE), event(chunk("x", usage=None)),
                  b"data: [DONE]\n\n"])
        self.assertEqual(self.outcome.tokens, {"input": 9, "output": 12})

    def test_noUsage(self):
        self.runPieces([chatStream("hi", usage=False)])
        self.assertIsNone(self.outcome.tokens)

    def test_heldTextFlushedBeforeDone(self):
        rewriter = self.rewriter()
        first = rewriter.feed(event(chunk("the key: " + AWS)))
        self.assertEqual(contentOf(parse(first)[0]), "the key: ")
        out = rewriter.feed(event(USAGE) + b"data: [DONE]\n\n")
        events, _ = parse(out)
        flushed = events[1]
        self.assertEqual(events[0], USAGE)
        self.assertEqual(flushed, {
            "id": "chatcmpl-1", "object": "chat.completion.chunk",
            "created": 1, "model": "gpt-fake",
            "choices": [{"index": 0, "delta": {"content": REDACTED_AWS},
                         "finish_reason": None}]})
        self.assertEqual(events[2], b"[DONE]")
        self.assertEqual(rewriter.end(), b"")

    def test_flushedChunkHasNoUsage(self):
        rewriter = self.rewriter()
        rewriter.feed(event(chunk("x " + AWS, usage={"prompt_tokens": 1})))
        events, _ = parse(rewriter.feed(b"data: [DONE]\n\n"))
        self.assertNotIn("usage", events[0])
        self.assertEqual(contentOf(events), REDACTED_AWS)

    def test_endWithoutDoneFlushes(self):
        rewriter = self.rewriter()
        rewriter.feed(event(chunk("ends with " + AWS)))
        events, rest = parse(rewriter.end())
        self.assertEqual(contentOf(events), REDACTED_AWS)
        self.assertEqual(rest, b"")

    def test_unterminatedLastEventScanned(self):
        # Regression: The bytes after the last blank line are scanned like any event, before the held text.
        rewriter = self.rewriter()
        out = rewriter.feed(event(chunk("one ")))
        out += rewriter.feed(event(chunk("two " + AWS))[:-2])
        out += rewriter.end()
        self.assertNotIn(AWS.encode("ascii"), out)
        events, _ = parse(out + b"\n\n")
        self.assertEqual(contentOf(events), "one two " + REDACTED_AWS)

    def test_malformedEvent(self):
        rewriter = self.rewriter()
        error = self.assertRaises(GatewayError, rewriter.feed,
                                  b"data: {not json\n\n")
        self.assertEqual((error.status, error.type, error.message),
                         (502, "upstream_error",
                          "invalid event in the provider's stream"))

    def test_doneWithSpaces(self):
        rewriter = self.rewriter()
        rewriter.feed(event(chunk(AWS)))
        events, _ = parse(rewriter.feed(b"data:  [DONE] \n\n"))
        self.assertEqual(contentOf(events), REDACTED_AWS)

    def test_crlfStream(self):
        data = chatStream("key " + AWS, " done").replace(b"\n\n", b"\r\n\r\n")
        events, _ = parse(self.runPieces([data]))
        self.assertEqual(contentOf(events), "key %s done" % (REDACTED_AWS,))
        self.assertEqual(events[-1], b"[DONE]")

    def test_choicesScannedSeparately(self):
        """
        Each choice (C{n > 1}) has its own scanner: one choice's held text
        neither leaks nor mixes into another's.
        """
        rewriter = self.rewriter()
        pieces = [event(chunk("a AKIAIOSF", index=0)),
                  event(chunk("b AKIA", index=1)),
                  event(chunk("ODNN7EXAMPLE!", index=0)),
                  event(chunk("-not-a-key", index=1)),
                  event(chunk(" and " + AWS, index=1)),
                  b"data: [DONE]\n\n"]
        out = b"".join(rewriter.feed(p) for p in pieces) + rewriter.end()
        events, _ = parse(out)
        self.assertEqual(contentOf(events, 0), "a %s!" % (REDACTED_AWS,))
        self.assertEqual(contentOf(events, 1),
                         "b AKIA-not-a-key and %s" % (REDACTED_AWS,))
        self.assertEqual(rewriter.outcomes(), (
            PolicyOutcome("dlp-filter", REDACT, 0.0,
                          (Finding("aws_access_key_id", 2),)),))

    def test_toolCallArgumentsScanned(self):
        """
        A tool call's streamed arguments are a text of their own: a key
        split across their chunks is redacted, and what is held when the
        choice finishes goes out as arguments, before the finish.
        """
        def call(arguments, index=0, **extra):
            return chunk(index=0, choices=[{"index": 0, "delta": {
                "tool_calls": [dict(extra, index=index, function={
                    "arguments": arguments})]}, "finish_reason": None}])
        first = chunk(index=0, choices=[{"index": 0, "delta": {
            "role": "assistant", "content": "writing "}, "finish_reason": None}])
        pieces = [event(first),
                  event(call("", id="c1", type="function")),
                  event(call('{"key": "AKIAIOSF')),
                  event(call('ODNN7EXAMPLE", "n": 1}')),
                  event(call('{"k": "AKIA', index=1)),
                  event(chunk(finish="tool_calls")),
                  b"data: [DONE]\n\n"]
        out = self.runPieces(pieces)
        self.assertNotIn(b"AKIAIOSF", out)
        self.assertNotIn(b"ODNN7EXAMPLE", out)
        events, _ = parse(out)
        arguments = {}
        for e in events:
            for choice in (e.get("choices") or ()) if isinstance(e, dict) else ():
                for c in choice["delta"].get("tool_calls") or ():
                    arguments[c["index"]] = arguments.get(c["index"], "") + \
                        c["function"]["arguments"]
        self.assertEqual(arguments, {0: '{"key": "%s", "n": 1}' % (
            REDACTED_AWS,), 1: '{"k": "AKIA'})
        self.assertEqual(events[-2]["choices"][0]["finish_reason"],
                         "tool_calls")
        self.assertEqual(contentOf(events), "writing ")

    def test_eventsWithoutDataRead(self):
        """
        What has no data line (a comment, or JSON sent under the stream's
        media type) is read whole, not passed on unread (found by review).
        """
        answer = json.dumps({"choices": [{"message": {
            "content": "key AKIAIOSFODNN7EXAMPLE"}}]}).encode()
        for pieces in ([answer], [answer[:30], answer[30:]],
                       [b": note AKIAIOSFODNN7EXAMPLE\n\n"]):
            out = self.runPieces(pieces)
            self.assertNotIn(b"AKIAIOSFODNN7EXAMPLE", out)
            self.assertIn(REDACTED_AWS.encode(), out)
        self.assertEqual(self.runPieces([b": keep-alive\n\n"]),
                         b": keep-alive\n\n")

    def test_otherDeltaTextsScanned(self):
        """
        A refusal, reasoning as some servers name it, and a legacy function
        call's arguments are streamed texts of their own too: a key split
        across their chunks is redacted, and what is held goes out in its own
        field (found by review).
        """
        def delta(**fields):
            return event(chunk(index=0, choices=[{
                "index": 0, "delta": fields, "finish_reason": None}]))
        pieces = [delta(role="assistant", content="ok "),
                  delta(audio={"id": "a1", "transcript": "said AKIAIOSF"}),
                  delta(audio={"transcript": "ODNN7EXAMPLE!"}),
                  delta(refusal="no AKIAIOSF"), delta(refusal="ODNN7EXAMPLE."),
                  delta(reasoning="think AKIAIOSF"),
                  delta(reasoning="ODNN7EXAMPLE "),
                  delta(function_call={"name": "f", "arguments": '{"k": "AKIA'}),
                  delta(function_call={"arguments": 'IOSFODNN7EXAMPLE"}'}),
                  delta(reasoning="held AKIA"),
                  event(chunk(finish="stop")), b"data: [DONE]\n\n"]
        out = self.runPieces(pieces)
        self.assertNotIn(b"IOSF", out)
        events, _ = parse(out)
        texts = {}
        for e in events:
            for choice in (e.get("choices") or ()) if isinstance(e, dict) else ():
                d = choice["delta"]
                for field in ("refusal", "reasoning"):
                    if field in d:
                        texts[field] = texts.get(field, "") + d[field]
                if "function_call" in d:
                    texts["call"] = texts.get("call", "") + \
                        d["function_call"]["arguments"]
                if "audio" in d:
                    texts["audio"] = texts.get("audio", "") + \
                        d["audio"]["transcript"]
        self.assertEqual(texts, {
            "audio": "said %s!" % (REDACTED_AWS,),
            "refusal": "no %s." % (REDACTED_AWS,),
            "reasoning": "think %s held AKIA" % (REDACTED_AWS,),
            "call": '{"k": "%s"}' % (REDACTED_AWS,)})
        self.assertEqual(events[-2]["choices"][0]["finish_reason"], "stop")

    def test_otherChoiceTextsScannedWhole(self):
        """
        A text of a choice no surface streams (a new delta field, a final
        chunk carrying a whole message), or beside the choices (an error in
        mid-stream), is scanned whole.
        """
        pieces = [event(chunk(index=0, choices=[{"index": 0, "delta": {
                      "role": "assistant", "content": "ok ",
                      "novel": {"note": "key AKIAIOSFODNN7EXAMPLE"}},
                      "finish_reason": None}])),
                  event(chunk(index=0, choices=[{"index": 0, "delta": {},
                      "message": {"role": "assistant",
                                  "content": "ok AKIAIOSFODNN7EXAMPLE"},
                      "finish_reason": "stop"}])),
                  event({"error": {"message": "bad AKIAIOSFODNN7EXAMPLE"}}),
                  b"data: [DONE]\n\n"]
        out = self.runPieces(pieces)
        self.assertNotIn(b"AKIAIOSFODNN7EXAMPLE", out)
        events, _ = parse(out)
        self.assertEqual(events[2]["error"]["message"], "bad " + REDACTED_AWS)
        self.assertEqual(events[0]["choices"][0]["delta"]["novel"]["note"],
                         "key " + REDACTED_AWS)
        self.assertEqual(events[1]["choices"][0]["message"]["content"],
                         "ok " + REDACTED_AWS)

    def test_unnumberedToolCallsKeptApart(self):
        """
        Calls without an index (some compatible servers) are told apart by
        their places: one's held text never goes into another's.
        """
        pieces = [event(chunk(index=0, choices=[{"index": 0, "delta": {
                      "tool_calls": [
                          {"function": {"arguments": '{"k": "AKIA'}},
                          {"function": {"arguments": '{"x": 1}'}}]},
                      "finish_reason": None}])),
                  event(chunk(finish="tool_calls")),
                  b"data: [DONE]\n\n"]
        events, _ = parse(self.runPieces(pieces))
        arguments = {}
        for e in events:
            for choice in e.get("choices") or () if isinstance(e, dict) else ():
                for position, c in enumerate(
                        choice["delta"].get("tool_calls") or ()):
                    index = c.get("index", position)
                    arguments[index] = arguments.get(index, "") + \
                        c["function"]["arguments"]
        self.assertEqual(arguments, {0: '{"k": "AKIA', 1: '{"x": 1}'})

    def test_logprobsOfAlteredTextDropped(self):
        """
        The logprobs of a chunk whose text was redacted or held spell the
        secret out: they are dropped; an untouched chunk keeps its own.
        """
        logprobs = {"content": [{"token": "t", "logprob": -0.1}]}
        pieces = [event(dict(chunk("plain "), choices=[{
                      "index": 0, "delta": {"content": "plain "},
                      "logprobs": logprobs, "finish_reason": None}])),
                  event(dict(chunk("k"), choices=[{
                      "index": 0, "delta": {"content": "AKIAIOSF"},
                      "logprobs": {"content": [{"token": "AKIAIOSF"}]},
                      "finish_reason": None}])),
                  event(dict(chunk("k"), choices=[{
                      "index": 0, "delta": {"content": "ODNN7EXAMPLE"},
                      "logprobs": {"content": [{"token": "ODNN7EXAMPLE"}]},
                      "finish_reason": None}])),
                  b"data: [DONE]\n\n"]
        out = self.runPieces(pieces)
        self.assertNotIn(b"AKIAIOSF", out)
        self.assertNotIn(b"ODNN7EXAMPLE", out)
        events, _ = parse(out)
        self.assertEqual(events[0]["choices"][0]["logprobs"], logprobs)

    def test_outcomesNothingFound(self):
        self.runPieces([chatStream("hello")])
        self.assertEqual(self.rewriterUsed.outcomes(), (
            PolicyOutcome("dlp-filter", ALLOW, 0.0, ()),))

    def test_outcomesNoDeltas(self):
        self.runPieces([event(USAGE), b"data: [DONE]\n\n"])
        self.assertEqual(self.rewriterUsed.outcomes(), ())

    def test_blockRaises(self):
        rewriter = self.rewriter(action=BLOCK)
        self.assertEqual(contentOf(parse(rewriter.feed(
            event(chunk("fine "))))[0]), "fine ")
        exc = self.assertRaises(Blocked, rewriter.feed,
                                event(chunk("key %s here" % (AWS,))))
        self.assertEqual(exc.policy, "dlp-filter")

    def test_blockRaisesAtDone(self):
        rewriter = self.rewriter(action=BLOCK)
        rewriter.feed(event(chunk("key " + AWS)))
        self.assertRaises(Blocked, rewriter.feed, b"data: [DONE]\n\n")

    def test_completionsStream(self):
        rewriter = self.rewriter(deltaSlots=TEXT_DELTAS)
        data = b"".join([
            event({"object": "text_completion", "choices": [
                {"index": 0, "text": "key AKIAIOSFO", "finish_reason": None}]}),
            event({"object": "text_completion", "choices": [
                {"index": 0, "text": "DNN7EXAMPLE.", "finish_reason": None}]}),
            b"data: [DONE]\n\n"])
        events, _ = parse(rewriter.feed(data))
        self.assertEqual("".join(c["text"] for e in events[:-1]
                                 for c in e["choices"]),
                         "key %s." % (REDACTED_AWS,))

    def test_completionsHeldTextFlushedAsText(self):
        # Regression: Held text is released in the endpoint's own delta shape (choices[].text here).
        rewriter = self.rewriter(deltaSlots=TEXT_DELTAS)
        data = b"".join([
            event({"object": "text_completion", "choices": [
                {"index": 0, "text": "key " + AWS, "finish_reason": None}]}),
            b"data: [DONE]\n\n"])
        events, _ = parse(rewriter.feed(data))
        self.assertEqual("".join(c.get("text", "") for e in events[:-1]
                                 for c in e["choices"]),
                         "key " + REDACTED_AWS)

    def test_reasoningDetailsStreamed(self):
        """
        OpenRouter's C{reasoning_details} texts are streamed each on its
        own scanner (by the detail's index, 0 when it gives none, as clients
        take it): a key split between two events is redacted, and what is
        held goes out as a detail of the same type (found by review: each
        event was read whole).
        """
        def details(*items):
            return event(chunk(index=0, choices=[{"index": 0, "delta": {
                "reasoning_details": list(items)}, "finish_reason": None}]))
        text = {"type": "reasoning.text", "format": "anthropic-claude-v1"}
        pieces = [details(dict(text, text="think AKIAIOSF")),
                  details(dict(text, text="ODNN7EXAMPLE then")),
                  details(dict(text, index=1, text="other AKIA"),
                          {"type": "reasoning.summary", "summary": "s AKIA"}),
                  details({"type": "reasoning.summary",
                           "summary": "IOSFODNN7EXAMPLE."}),
                  event(chunk(finish="stop")), b"data: [DONE]\n\n"]
        out = self.runPieces(pieces)
        self.assertNotIn(b"IOSF", out)
        events, _ = parse(out)
        joined = {}
        for e in events:
            for choice in e.get("choices") or () if isinstance(
                    e, dict) else ():
                for d in choice["delta"].get("reasoning_details") or ():
                    for field in ("text", "summary"):
                        if field in d:
                            key = (d.get("index", 0), field)
                            joined[key] = joined.get(key, "") + d[field]
        self.assertEqual(joined, {
            (0, "text"): "think %s then" % (REDACTED_AWS,),
            (1, "text"): "other AKIA",
            (0, "summary"): "s %s." % (REDACTED_AWS,)})

    def test_escapedArgumentsWrittenPlainly(self):
        """
        A tool call's arguments are a JSON text inside a string: a key
        written with escapes (C{\\u0041KIA...}, split anywhere, even inside
        an escape) is read as what a client decodes, and goes to the client
        written plainly (found by review: it passed).
        """
        arguments = ('{"k": "\\u0041KIAIOSFODNN7EXAMPL\\u0045", '
                     '"e": "\\ud83d\\ude00 \\\\u0041 \\/ \\u0022"}')
        self.assertEqual(json.loads(arguments)["k"], AWS)

        def call(text):
            return event(chunk(index=0, choices=[{"index": 0, "delta": {
                "tool_calls": [{"index": 0, "function": {
                    "arguments": text}}]}, "finish_reason": None}]))
        for size in (1, 3, 5, 7, 11, len(arguments)):
            pieces = [arguments[i:i + size]
                      for i in range(0, len(arguments), size)]
            out = self.runPieces([call(p) for p in pieces] + [
                event(chunk(finish="tool_calls")), b"data: [DONE]\n\n"])
            self.assertNotIn(b"IOSF", out)
            sent = "".join(
                c["function"]["arguments"]
                for e in parse(out)[0] if isinstance(e, dict)
                for choice in e["choices"]
                for c in choice["delta"].get("tool_calls") or ())
            self.assertEqual(json.loads(sent), {
                "k": REDACTED_AWS, "e": "\U0001f600 \\u0041 / \""})
            self.assertNotIn("\\u0041K", sent)
        # Unchanged arguments, without escapes, pass as they came.
        plain = call('{"k": "v\\"w"}')
        self.assertEqual(self.rewriter().feed(plain), plain)

    def test_indexNotAnIntegerRefused(self):
        """
        A choice's, a tool call's or a reasoning detail's index that is not
        an integer (a string, a float, a boolean: clients coerce C{"1"} to
        1) ends the stream as an invalid event, before its text goes out
        (found by review: it was taken for 0).  A null one counts as none.
        """
        for bad in ("1", 1.0, True):
            for payload in (
                    chunk(index=bad, content="x"),
                    chunk(index=0, choices=[{"index": 0, "delta": {
                        "tool_calls": [{"index": bad, "function": {
                            "arguments": "x"}}]}}]),
                    chunk(index=0, choices=[{"index": 0, "delta": {
                        "reasoning_details": [{"type": "reasoning.text",
                                               "index": bad,
                                               "text": "x"}]}}]),
                    chunk(index=0, choices=[{"index": bad, "delta": {},
                                             "finish_reason": "stop"}])):
                rewriter = self.rewriter()
                rewriter.feed(event(chunk("AKIAIOSF", index=1)))
                error = self.assertRaises(GatewayError, rewriter.feed,
                                          event(payload))
                self.assertEqual((error.status, error.message), (
                    502, "invalid event in the provider's stream"))
        out = self.runPieces([event(chunk(index=None, content="AKIAIOSF")),
                              event(chunk("ODNN7EXAMPLE")),
                              b"data: [DONE]\n\n"])
        self.assertEqual(contentOf(parse(out)[0]), REDACTED_AWS)

    def test_contentListStreamed(self):
        """
        A content given as a list of parts (Mistral's) is read: its text
        parts go through the choice's scanner, its thinking through one of
        its own (found by review: the list passed unread).
        """
        def parts(*items):
            return event(chunk(index=0, choices=[{"index": 0, "delta": {
                "content": list(items)}, "finish_reason": None}]))
        pieces = [parts({"type": "thinking", "thinking": [
                      {"type": "text", "text": "hmm AKIAIOSF"}]}),
                  parts({"type": "thinking", "thinking": [
                      {"type": "text", "text": "ODNN7EXAMPLE ok AKIA"}]}),
                  parts({"type": "text", "text": "key AKIAIOSF"}),
                  event(chunk("ODNN7EXAMPLE")),
                  parts({"type": "text", "text": " and " + AWS}),
                  b"data: [DONE]\n\n"]
        out = self.runPieces(pieces)
        self.assertNotIn(b"IOSF", out)
        events, _ = parse(out)
        text, thinking = "", ""
        for e in events:
            for choice in e.get("choices") or () if isinstance(
                    e, dict) else ():
                content = choice["delta"].get("content")
                if isinstance(content, str):
                    text += content
                for part in content if isinstance(content, list) else ():
                    if part["type"] == "text":
                        text += part["text"]
                    else:
                        thinking += "".join(
                            t["text"] for t in part["thinking"])
        self.assertEqual(text, "key %s and %s" % (REDACTED_AWS,
                                                  REDACTED_AWS))
        self.assertEqual(thinking, "hmm %s ok AKIA" % (REDACTED_AWS,))

    def test_choicesNotAListRefused(self):
        """
        Choices that are no list (an object a client may read by its keys)
        or a choice that is no object end the stream as an invalid event
        (found by review: they passed unread).
        """
        for choices in ({"0": {"index": 0, "delta": {"content": AWS}}},
                        AWS, [AWS]):
            rewriter = self.rewriter()
            error = self.assertRaises(GatewayError, rewriter.feed, event(
                chunk(index=0, choices=choices)))
            self.assertEqual(error.message,
                             "invalid event in the provider's stream")
        nothing = event(chunk(index=0, choices=None))
        self.assertEqual(self.rewriter().feed(nothing), nothing)

    def test_choiceTextBesideDeltaStreamed(self):
        """
        A chat choice's C{text} beside its delta (the legacy field) is
        streamed, and any other field of a choice read (found by review:
        a choice whose delta held only a role and a content passed
        unread, whatever else it carried).
        """
        pieces = [event(chunk(index=0, choices=[{"index": 0, "delta": {},
                                                 "text": "a AKIAIOSF"}])),
                  event(chunk(index=0, choices=[{"index": 0, "delta": {},
                                                 "text": "ODNN7EXAMPLE"}])),
                  event(chunk(index=0, choices=[{
                      "index": 0, "delta": {"content": "x"},
                      "note": "b " + AWS, "native_finish_reason": None}])),
                  b"data: [DONE]\n\n"]
        out = self.runPieces(pieces)
        self.assertNotIn(b"IOSF", out)
        events, _ = parse(out)
        self.assertEqual("".join(
            c.get("text", "") for e in events if isinstance(e, dict)
            for c in e["choices"]), "a " + REDACTED_AWS)
        self.assertEqual(events[2]["choices"][0]["note"],
                         "b " + REDACTED_AWS)
        # Null fields beside a plain delta leave the chunk as it came.
        rewriter = self.rewriter()
        padded = event(chunk(index=0, choices=[{
            "index": 0, "delta": {"content": "hi"}, "finish_reason": None,
            "native_finish_reason": None}]))
        self.assertEqual(rewriter.feed(padded), padded)

    def test_escapedJsonWithoutDataLinesRead(self):
        """
        JSON sent under the stream's media type, outside data lines, is
        read with its escapes written plainly, as its reader decodes them.
        """
        answer = b'{"choices": [{"message": {"content": ' \
                 b'"\\u0041KIAIOSFODNN7EXAMPLE"}}]}'
        out = self.runPieces([answer])
        self.assertNotIn(b"KIAIOSFODNN7EXAMPLE", out)
        self.assertIn(REDACTED_AWS.encode(), out)

    def test_fail(self):
        rewriter = self.rewriter()
        self.assertEqual(rewriter.fail(upstreamError("gone")),
                         b'data: {"error": {"type": "upstream_error", '
                         b'"message": "gone", "code": null, '
                         b'"policy": null}}\n\n')


class PassthroughTests(SynchronousTestCase):
    """
    The transforms that keep the bytes as they come.
    """

    def test_passthrough(self):
        outcome = Outcome()
        transform = Passthrough(outcome)
        self.assertIs(transform.outcome, outcome)
        self.assertEqual(transform.feed(b"abc"), b"abc")
        self.assertEqual(transform.end(), b"")
        self.assertIsNone(transform.fail(upstreamError("x")))

    def test_unscannedStreamKeptAsItCame(self):
        """
        With no policy scanning answers, events go out byte for byte (not
        re-encoded) and a failure still ends with the surface's error.
        """
        outcome = Outcome()
        transform = SseRewriter(outcome, CHAT_DELTAS, lambda: None)
        event = (b'data: {"choices": [{"index": 0, "delta": '
                 b'{"content": "hi"}}]}\n\n')
        self.assertEqual(transform.feed(event), event)
        self.assertEqual(transform.fail(upstreamError("x")),
                         errorEvent(upstreamError("x")))

    def test_outcomeStartsEmpty(self):
        outcome = Outcome()
        self.assertEqual((outcome.ending, outcome.error, outcome.bytes,
                          outcome.tokens), (None, None, 0, None))


class FakeChannel:
    def __init__(self):
        self.transport = StringTransport()


class FakeRequest:
    """
    The parts of L{twisted.web.server.Request} the bridge uses.
    """

    def __init__(self):
        self.written = []
        self.calls = []
        self.producer = None
        self.streaming = None
        self.registrations = 0
        self.unregistrations = 0
        self.channel = FakeChannel()

    def registerProducer(self, producer, streaming):
        self.producer = producer
        self.streaming = streaming
        self.registrations += 1

    def unregisterProducer(self):
        self.producer = None
        self.unregistrations += 1

    startedWriting = False  # the head went out (an empty write sends it)

    def write(self, data):
        self.startedWriting = True
        self.calls.append(data)
        if data:
            self.written.append(data)

    @property
    def data(self):
        return b"".join(self.written)


class Crashing(Passthrough):
    def feed(self, data):
        raise ValueError("provider said " + AWS)


class ResponseBridgeTests(SynchronousTestCase):
    """
    L{ResponseBridge} moves an upstream body to the client request.
    """

    def bridge(self, makeTransform=lambda outcome: SseRewriter(
            outcome, CHAT_DELTAS, lambda: None)):
        """
        A bridge to a fake request, connected to a fake upstream transport.

        @param makeTransform: called with the L{Outcome}.
        """
        self.clock = Clock()
        self.request = FakeRequest()
        self.transport = StringTransport()
        self.outcome = Outcome()
        transform = makeTransform(self.outcome)
        bridge = ResponseBridge(self.request, transform, self.clock, IDLE)
        bridge.makeConnection(self.transport)
        self.results = []
        bridge.finished.addBoth(self.results.append)
        return bridge

    def rewriting(self, action="redact"):
        return self.bridge(lambda outcome: SseRewriter(
            outcome, CHAT_DELTAS, newScanner(action)))

    def assertFinished(self, ending):
        self.assertEqual(len(self.results), 1)
        self.assertIs(self.results[0], self.outcome)
        self.assertEqual(self.outcome.ending, ending)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def errorEvent(self):
        """
        The error event at the end of what the client got.
        """
        events, rest = parse(self.request.data)
        self.assertEqual(rest, b"")
        self.assertNotIn(b"[DONE]", events)
        return events[-1]["error"]

    def test_registersTransportAsStreamingProducer(self):
        self.bridge()
        self.assertIs(self.request.producer, self.transport)
        self.assertTrue(self.request.streaming)
        self.assertEqual(self.request.registrations, 1)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.results, [])

    def started(self, *pieces, end=None, ending=None):
        """
        A bridge started on an answer whose body has C{pieces} (and
        C{end}) in hand; its outcome's C{ending} set before.
        """
        self.clock = Clock()
        self.request = FakeRequest()
        self.transport = StringTransport()
        self.outcome = Outcome()
        self.outcome.ending = ending
        bridge = ResponseBridge(self.request, Passthrough(self.outcome),
                                self.clock, IDLE)
        self.results = []
        bridge.finished.addBoth(self.results.append)
        transport = self.transport

        class Answer:
            def deliverBody(self, protocol):
                protocol.makeConnection(transport)
                for piece in pieces:
                    protocol.dataReceived(piece)
                if end is not None:
                    protocol.connectionLost(Failure(end()))
        bridge.start(Answer())
        return bridge

    def test_headWithWhatCameWithIt(self):
        """
        The head goes to the client with what of the body came with it:
        one write, no empty one before it.
        """
        self.started(b"data: 1\n\n")
        self.assertEqual(self.request.calls, [b"data: 1\n\n"])

    def test_headAloneWhenNothingCame(self):
        """
        When no body came with the head, the head goes on alone at once:
        the first event may be a long time coming.
        """
        self.started()
        self.assertEqual(self.request.calls, [b""])
        self.assertEqual(self.results, [])

    def test_noHeadAfterTheEnd(self):
        """
        A body over before the bridge started is written and finished: the
        bridge writes nothing more (the request's finish sends the head of
        an empty answer).
        """
        self.started(b"data: 1\n\n", end=ResponseDone)
        self.assertEqual(self.request.calls, [b"data: 1\n\n"])
        self.assertFinished("complete")
        self.started(end=ResponseDone)
        self.assertEqual(self.request.calls, [])
        self.assertFinished("complete")

    def test_noHeadForAGoneClient(self):
        """
        No head for a client gone before the answer came.
        """
        self.started(ending="client_gone")
        self.assertEqual(self.request.calls, [])

    def test_writesAsItComes(self):
        bridge = self.bridge()
        bridge.dataReceived(b"data: 1\n\n")
        bridge.dataReceived(b"")
        bridge.dataReceived(b"data: 2\n\n")
        self.assertEqual(self.request.written, [b"data: 1\n\n",
                                                b"data: 2\n\n"])
        self.assertEqual(self.outcome.bytes, 18)

    def test_eventsSentAtOnce(self):
        """
        Each written event is handed to the client's socket before the
        bridge returns, not when the reactor next polls: it waits for no
        other work of the turn.  Nothing is sent when nothing was written.
        """
        sent = []

        class Socket(FileDescriptor):
            connected = True
            dataBuffer = b"queued"  # (the fake request writes elsewhere)

            def doWrite(self):
                sent.append(b"".join(written))
        bridge = self.bridge()
        written = self.request.written
        self.request.channel.transport = Socket(MemoryReactorClock())
        bridge.dataReceived(b"data: 1\n\n")
        bridge.dataReceived(b"data: ")
        self.assertEqual(sent, [b"data: 1\n\n"])
        bridge.dataReceived(b"2\n\n")
        self.assertEqual(sent, [b"data: 1\n\n", b"data: 1\n\ndata: 2\n\n"])

    def test_writesTransformedData(self):
        bridge = self.rewriting()
        data = chatStream("key " + AWS, " end")
        for i in range(0, len(data), 11):
            bridge.dataReceived(data[i:i + 11])
        bridge.connectionLost(Failure(ResponseDone()))
        self.assertFinished("complete")
        self.assertNotIn(AWS.encode("ascii"), self.request.data)
        events, _ = parse(self.request.data)
        self.assertEqual(contentOf(events), "key %s end" % (REDACTED_AWS,))
        self.assertEqual(events[-1], b"[DONE]")
        self.assertEqual(self.outcome.tokens, {"input": 9, "output": 12})
        self.assertEqual(self.outcome.bytes, len(self.request.data))

    def test_complete(self):
        bridge = self.bridge()
        bridge.dataReceived(b'data: {"x": 1}\n\n')
        self.assertEqual(self.results, [])
        bridge.connectionLost(Failure(ResponseDone()))
        self.assertFinished("complete")
        self.assertIsNone(self.outcome.error)
        self.assertEqual(self.request.unregistrations, 1)
        self.assertEqual(self.request.data, b'data: {"x": 1}\n\n')

    def test_potentialDataLossCompletes(self):
        bridge = self.bridge(Passthrough)
        bridge.dataReceived(b"body")
        bridge.connectionLost(Failure(PotentialDataLoss()))
        self.assertFinished("complete")
        self.assertEqual(self.request.data, b"body")

    def test_endWrittenOnComplete(self):
        bridge = self.rewriting()
        bridge.dataReceived(event(chunk("held " + AWS)))
        bridge.connectionLost(Failure(ResponseDone()))
        self.assertFinished("complete")
        self.assertEqual(contentOf(parse(self.request.data)[0]),
                         "held " + REDACTED_AWS)

    def test_upstreamFailsMidAnswerSse(self):
        bridge = self.bridge()
        bridge.dataReceived(b"data: 1\n\n")
        bridge.connectionLost(Failure(ResponseFailed([Failure(
            ConnectionLost())])))
        self.assertFinished("upstream_failed")
        self.assertEqual(self.outcome.error.status, 502)
        self.assertEqual(self.errorEvent(), {
            "type": "upstream_error",
            "message": "the provider's connection failed mid-answer",
            "code": None, "policy": None})
        self.assertEqual(self.request.unregistrations, 1)
        self.assertFalse(self.request.channel.transport.disconnected)

    def test_upstreamFailsMidAnswerPassthroughAborts(self):
        bridge = self.bridge(Passthrough)
        bridge.dataReceived(b'{"partial": ')
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("upstream_failed")
        self.assertTrue(self.request.channel.transport.disconnected)
        self.assertEqual(self.request.data, b'{"partial": ')

    def test_idleTimeout(self):
        bridge = self.bridge()
        self.clock.advance(IDLE - 1)
        bridge.dataReceived(b"data: 1\n\n")
        self.clock.advance(IDLE - 1)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertIsNone(self.outcome.ending)
        self.clock.advance(1)
        self.assertEqual(self.transport.producerState, "stopped")
        self.assertEqual(self.outcome.ending, "upstream_failed")
        self.assertEqual((self.outcome.error.status, self.outcome.error.type),
                         (504, "upstream_timeout"))
        self.assertEqual(self.results, [])
        # Data still on its way after the stop is dropped.
        bridge.dataReceived(b"data: 2\n\n")
        self.assertEqual(self.request.data, b"data: 1\n\n")
        bridge.connectionLost(Failure(ResponseFailed([Failure(
            ConnectionLost())])))
        self.assertFinished("upstream_failed")
        self.assertEqual(self.errorEvent(), {
            "type": "upstream_timeout",
            "message": "the provider stopped sending",
            "code": None, "policy": None})

    def test_idleTimeoutWithHeldText(self):
        """
        A stream cut by the timeout ends with the error event; the held
        text is not released.
        """
        bridge = self.rewriting()
        bridge.dataReceived(event(chunk("x " + AWS)))
        self.clock.advance(IDLE)
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("upstream_failed")
        self.assertNotIn(REDACTED_AWS.encode("ascii"), self.request.data)
        self.assertEqual(self.errorEvent()["type"], "upstream_timeout")

    def test_blockedMidStream(self):
        bridge = self.rewriting(action=BLOCK)
        bridge.dataReceived(event(chunk("fine ")))
        bridge.dataReceived(event(chunk("key %s more" % (AWS,))))
        self.assertEqual(self.transport.producerState, "stopped")
        self.assertEqual(self.outcome.ending, "blocked")
        self.assertIsInstance(self.outcome.error, Blocked)
        bridge.dataReceived(event(chunk("after")))
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("blocked")
        self.assertNotIn(AWS.encode("ascii"), self.request.data)
        self.assertNotIn(b"after", self.request.data)
        self.assertEqual(contentOf(parse(self.request.data)[0]), "fine ")
        self.assertEqual(self.errorEvent(), {
            "type": "policy_violation",
            "message": "Answer blocked by dlp-filter: aws_access_key_id "
                       "detected",
            "code": "output_blocked", "policy": "dlp-filter"})

    def test_blockedAtEndOfStreamWithoutDone(self):
        # Regression: A block raised by the final flush is a block (409 event), not a provider failure.
        bridge = self.rewriting(action=BLOCK)
        bridge.dataReceived(event(chunk("ends with " + AWS)))
        bridge.connectionLost(Failure(ResponseDone()))
        self.assertFinished("blocked")
        self.assertNotIn(AWS.encode("ascii"), self.request.data)
        self.assertEqual(self.errorEvent()["type"], "policy_violation")

    def test_malformedEventStopsStream(self):
        bridge = self.rewriting()
        bridge.dataReceived(event(chunk("ok ")) + b"data: {oops\n\n")
        self.assertEqual(self.transport.producerState, "stopped")
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("upstream_failed")
        self.assertEqual(self.errorEvent(), {
            "type": "upstream_error",
            "message": "invalid event in the provider's stream",
            "code": None, "policy": None})

    def test_transformCrashHidesDetails(self):
        bridge = self.bridge(Crashing)
        bridge.dataReceived(b"x")
        self.assertEqual(self.transport.producerState, "stopped")
        self.assertEqual(self.outcome.error.message,
                         "invalid answer from the provider")
        self.assertEqual(self.outcome.error.status, 502)
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("upstream_failed")
        self.assertEqual(self.request.written, [])
        self.assertTrue(self.request.channel.transport.disconnected)

    def test_clientGone(self):
        bridge = self.bridge()
        bridge.dataReceived(b"data: 1\n\n")
        bridge.clientGone()
        self.assertEqual(self.transport.producerState, "stopped")
        self.assertEqual(self.outcome.ending, "client_gone")
        bridge.dataReceived(b"data: 2\n\n")
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("client_gone")
        self.assertEqual(self.request.written, [b"data: 1\n\n"])
        # The request went with its channel: no producer calls on it.
        self.assertEqual(self.request.unregistrations, 0)
        self.assertFalse(self.request.channel.transport.disconnected)

    def test_clientGoneThenIdleTimer(self):
        # Regression: The first ending wins: a later idle timeout changes nothing.
        bridge = self.bridge()
        bridge.clientGone()
        self.clock.advance(IDLE)
        self.assertEqual(self.outcome.ending, "client_gone")
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("client_gone")
        self.assertEqual(self.request.written, [])
        self.assertEqual(self.request.unregistrations, 0)

    def test_blockedThenIdleTimer(self):
        # Same bug as test_clientGoneThenIdleTimer: a block is turned into
        # a timeout.
        bridge = self.rewriting(action=BLOCK)
        bridge.dataReceived(event(chunk("key %s more" % (AWS,))))
        self.clock.advance(IDLE)
        bridge.connectionLost(Failure(ConnectionLost()))
        self.assertFinished("blocked")
        self.assertEqual(self.errorEvent()["type"], "policy_violation")


class BodyCollectorTests(SynchronousTestCase):
    """
    L{BodyCollector} gathers a whole answer up to a limit.
    """

    def collector(self, limit=10):
        self.transport = StringTransport()
        collector = BodyCollector(limit)
        collector.makeConnection(self.transport)
        return collector

    def test_collects(self):
        collector = self.collector()
        collector.dataReceived(b"01234")
        collector.dataReceived(b"56789")
        collector.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(collector.finished),
                         b"0123456789")

    def test_potentialDataLoss(self):
        collector = self.collector()
        collector.dataReceived(b"abc")
        collector.connectionLost(Failure(PotentialDataLoss()))
        self.assertEqual(self.successResultOf(collector.finished), b"abc")

    def test_tooLarge(self):
        collector = self.collector()
        collector.dataReceived(b"0123456")
        self.assertEqual(self.transport.producerState, "producing")
        collector.dataReceived(b"7890")
        self.assertEqual(self.transport.producerState, "stopped")
        collector.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(collector.finished, GatewayError).value
        self.assertEqual((error.status, error.type, error.message),
                         (502, "upstream_error",
                          "the provider's answer is too large"))

    def test_failedMidAnswer(self):
        collector = self.collector()
        collector.dataReceived(b"012")
        collector.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(collector.finished, GatewayError).value
        self.assertEqual((error.status, error.message),
                         (502, "the provider's connection failed mid-answer"))

    def test_clientGone(self):
        collector = self.collector()
        collector.clientGone()
        self.assertEqual(self.transport.producerState, "stopped")
