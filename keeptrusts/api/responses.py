# -*- test-case-name: tests.test_api_responses -*-
"""
The OpenAI Responses surface, C{POST /v1/responses} (Codex): texts in
C{instructions} and C{input}, answers in C{output[].content[]}, streamed
as C{response.output_text.delta} events; every other C{response.*.delta}
(reasoning and its summary, a refusal, a call's arguments, an
interpreter's code, a transcript) streams a text of its own.

A stream is rewritten by L{keeptrusts.api.responsestream}, in the terms of
L{keeptrusts.api.responseevents}.
"""

import json

from keeptrusts.api.endpoint import Endpoint
from keeptrusts.api.errors import validationError
from keeptrusts.api.responseevents import usageOf
from keeptrusts.api.responsestream import ResponsesRewriter

_TEXT_PARTS = ("input_text", "output_text", "text")


def _contentSlots(holder, key):
    content = holder.get(key)
    if isinstance(content, str):
        yield holder, key
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS \
                    and isinstance(part.get("text"), str):
                yield part, "text"


def _requestSlots(body):
    if isinstance(body.get("instructions"), str):
        yield body, "instructions"
    items = body.get("input")
    if isinstance(items, str):
        yield body, "input"
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        yield from _contentSlots(item, "content")
        if isinstance(item.get("output"), str):  # function_call_output
            yield item, "output"
        if isinstance(item.get("arguments"), str):  # function_call
            yield item, "arguments"


def _outputSlots(response):
    output = response.get("output") if isinstance(response, dict) else None
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict):
            yield from _contentSlots(item, "content")
            field = _callField(item)
            if field is not None:
                yield item, field


def _validate(body):
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise validationError("'model' must be a non-empty string")
    if not isinstance(body.get("input"), (str, list)):
        raise validationError("'input' must be a string or a list")
    if not isinstance(body.get("instructions", ""), (str, type(None))):
        raise validationError("'instructions' must be a string")


def errorEvent(error):
    return b"event: error\ndata: " + json.dumps({
        "type": "error", "code": error.code or error.type,
        "message": error.message, "param": None}).encode("utf-8") + b"\n\n"


# An output item's texts besides its content: a tool call's arguments (or a
# custom tool's input), in a whole answer.
_CALL_FIELDS = {"function_call": "arguments", "custom_tool_call": "input"}


def _callField(item):
    field = _CALL_FIELDS.get(item.get("type")) if isinstance(
        item.get("type"), str) else None
    return field if isinstance(item.get(field), str) else None


RESPONSES = Endpoint(
    "responses", _validate, _requestSlots, _outputSlots,
    usage=usageOf, errorEvent=errorEvent, rewriter=ResponsesRewriter)
