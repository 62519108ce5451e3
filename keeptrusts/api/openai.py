# -*- test-case-name: tests.test_api_openai -*-
"""
The OpenAI surface: where the texts are in requests, answers and streamed
chunks, so that policies can read and rewrite them.
"""

from keeptrusts.api.cost import usageTokens
from keeptrusts.api.endpoint import Endpoint
from keeptrusts.api.errors import validationError
from keeptrusts.api.chatstream import SseRewriter
from keeptrusts.api.rewrite import indexOf


def _messageSlots(message):
    content = message.get("content")
    if isinstance(content, str):
        yield message, "content"
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part, "text"
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(
                function.get("arguments"), str):
            yield function, "arguments"


def _listSlots(body, key):
    value = body.get(key)
    if isinstance(value, str):
        yield body, key
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield value, i


def _chatRequestSlots(body):
    for message in body["messages"]:
        yield from _messageSlots(message)


def _chatAnswerSlots(answer):
    for choice in _choices(answer):
        message = choice.get("message")
        if isinstance(message, dict):
            yield from _messageSlots(message)


# Other texts a chat stream's delta may carry, each streamed on its own:
# a refusal, and reasoning as some servers name it.
_DELTA_FIELDS = ("refusal", "reasoning")


def _chatDeltaSlots(chunk):
    """
    A choice's streamed texts, each its own: the content (keyed by the
    choice's index), its reasoning, a refusal, an audio answer's transcript,
    a legacy function call's and each tool call's arguments (keyed
    C{(index, "reasoning")}, C{(index, "field", name)}, C{(index, "audio")},
    C{(index, "function_call")}, C{(index, "tool", call index)}).
    """
    for choice in _choices(chunk):
        index = indexOf(choice)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        if isinstance(delta.get("content"), str):
            yield index, delta, "content"
        if isinstance(delta.get("reasoning_content"), str):
            yield (index, "reasoning"), delta, "reasoning_content"
        for field in _DELTA_FIELDS:
            if isinstance(delta.get(field), str):
                yield (index, "field", field), delta, field
        call = delta.get("function_call")
        if isinstance(call, dict) and isinstance(call.get("arguments"), str):
            yield (index, "function_call"), call, "arguments"
        audio = delta.get("audio")
        if isinstance(audio, dict) and isinstance(audio.get("transcript"), str):
            yield (index, "audio"), audio, "transcript"
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list)
                                        else ()):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(
                    function.get("arguments"), str):
                # A server that numbers no calls: their places tell them
                # apart.
                yield ((index, "tool", indexOf(call, default=position)),
                       function, "arguments")


def _chatDeltaChoice(key, text):
    """
    A choice carrying text the gateway releases itself, for its
    L{_chatDeltaSlots} key.
    """
    if not isinstance(key, tuple):
        return {"index": key, "delta": {"content": text},
                "finish_reason": None}
    if key[1] == "reasoning":
        delta = {"reasoning_content": text}
    elif key[1] == "field":
        delta = {key[2]: text}
    elif key[1] == "function_call":
        delta = {"function_call": {"arguments": text}}
    elif key[1] == "audio":
        delta = {"audio": {"transcript": text}}
    else:
        delta = {"tool_calls": [{"index": key[2],
                                 "function": {"arguments": text}}]}
    return {"index": key[0], "delta": delta, "finish_reason": None}


def _textAnswerSlots(answer):
    for choice in _choices(answer):
        if isinstance(choice.get("text"), str):
            yield choice, "text"


def _textDeltaSlots(chunk):
    for choice in _choices(chunk):
        if isinstance(choice.get("text"), str):
            yield indexOf(choice), choice, "text"


def _choices(value):
    choices = value.get("choices") if isinstance(value, dict) else None
    return [c for c in choices if isinstance(c, dict)] if isinstance(
        choices, list) else ()


def _requireModel(body):
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise validationError("'model' must be a non-empty string")


def _validateChat(body):
    _requireModel(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise validationError("'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(
                message.get("role"), str):
            raise validationError(
                "'messages[%d]' must be an object with a 'role'" % (i,))
        if not isinstance(message.get("tool_calls", []), list):
            raise validationError(
                "'messages[%d].tool_calls' must be a list" % (i,))
    if not isinstance(body.get("stream_options", {}), (dict, type(None))):
        raise validationError("'stream_options' must be an object")


def _validateField(name):
    def validate(body):
        _requireModel(body)
        value = body.get(name)
        if not isinstance(value, (str, list)):
            raise validationError("'%s' must be a string or a list" % (name,))
    return validate


def usageOf(answer):
    """
    @return: C{{"input": n, "output": n}} from an answer's C{usage}, or
        L{None}.
    """
    usage = answer.get("usage") if isinstance(answer, dict) else None
    return usageTokens(usage, "prompt_tokens", "completion_tokens",
                       both=True)


def errorEvent(error):
    """
    The OpenAI surface's error event, for a stream that must stop.
    """
    return b"data: " + error.body() + b"\n\n"


def _promptAndSuffixSlots(body):
    yield from _listSlots(body, "prompt")
    yield from _listSlots(body, "suffix")


ENDPOINTS = {
    e.name: e for e in [
        Endpoint("chat/completions", _validateChat, _chatRequestSlots,
                 _chatAnswerSlots, _chatDeltaSlots, _chatDeltaChoice,
                 usageOf, errorEvent, SseRewriter,
                 # Anthropic targets are reached through translation.
                 formats=("openai", "openai-compatible", "anthropic")),
        Endpoint("completions", _validateField("prompt"),
                 lambda body: _listSlots(body, "prompt"),
                 _textAnswerSlots, _textDeltaSlots,
                 lambda index, text: {"index": index, "text": text,
                                      "finish_reason": None},
                 usageOf, errorEvent, SseRewriter),
        Endpoint("embeddings", _validateField("input"),
                 lambda body: _listSlots(body, "input"),
                 usage=usageOf, errorEvent=errorEvent),
    ]
}

# Copilot's /v1/engines/<engine>/completions: a prompt and a suffix, the
# model in the path.
ENGINE_COMPLETIONS = Endpoint(
    "completions", lambda body: None, _promptAndSuffixSlots,
    _textAnswerSlots, _textDeltaSlots, ENDPOINTS["completions"].deltaChoice,
    usageOf, errorEvent, SseRewriter)
