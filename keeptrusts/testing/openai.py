# -*- test-case-name: tests.test_testing -*-
"""
The OpenAI endpoints of the fake provider: chat and legacy completions
(both streamable), embeddings, models, and the Responses API.
"""

import base64
import hashlib
import json
import struct

from keeptrusts.testing.answers import (
    DONE, FILLER, Refusal, Stream, event, namedEvent, chatUsage, countTokens,
    requireBody)
from keeptrusts.testing.script import promptTexts


def chat(provider, received, script):
    body, ident, text, pieces, usage = _begin(provider, received, script,
                                              "messages", "chatcmpl-fake")
    model, created, choices = body.get("model"), provider.now(), _choiceCount(body)
    if not (body.get("stream") or script.bigStream):
        return {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": script.logprobs,
                    "finish_reason": "stop",
                }
                for index in range(choices)
            ],
            "usage": usage,
        }

    def chunk(delta, finish=None, index=0):
        return event(
            {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": index,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
            }
        )

    steps = []
    for number, piece in enumerate(pieces):
        delta = {"content": piece}
        if number == 0:
            delta = {"role": "assistant", "content": piece}
        steps.append(b"".join(chunk(delta, index=i) for i in range(choices)))
    tail = [chunk({}, "stop", i) for i in range(choices)]
    if _includeUsage(body):
        tail.append(
            event(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    tail.append(DONE)
    return Stream(
        steps,
        b"".join(tail),
        chunk({"content": FILLER}),
        b'data: {"id": "%s", "object": "chat.completion.chunk", "choi\n\n'
        % (ident.encode("ascii"),),
    )


def completions(provider, received, script):
    body, ident, text, pieces, usage = _begin(provider, received, script,
                                              "prompt", "cmpl-fake")
    model, created, choices = body.get("model"), provider.now(), _choiceCount(body)

    def choice(piece, finish, index):
        return {"text": piece, "index": index, "logprobs": None, "finish_reason": finish}

    def answer(choiceList, **extra):
        return dict(
            id=ident,
            object="text_completion",
            created=created,
            model=model,
            choices=choiceList,
            **extra
        )

    if not (body.get("stream") or script.bigStream):
        return answer([choice(text, "stop", i) for i in range(choices)], usage=usage)

    def chunk(piece, finish=None, index=0):
        return event(answer([choice(piece, finish, index)]))

    steps = [b"".join(chunk(piece, index=i) for i in range(choices)) for piece in pieces]
    tail = [chunk("", "stop", i) for i in range(choices)]
    if _includeUsage(body):
        tail.append(event(answer([], usage=usage)))
    tail.append(DONE)
    return Stream(
        steps,
        b"".join(tail),
        chunk(FILLER),
        b'data: {"id": "%s", "object": "text_comp\n\n' % (ident.encode("ascii"),),
    )


def embeddings(provider, received, script):
    body = requireBody(received, "input")
    items = body["input"]
    if not isinstance(items, list) or (items and isinstance(items[0], int)):
        # One string, or one text given as a list of token ids.
        items = [items]
    dimensions = body.get("dimensions") or 8
    base64Wanted = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector = _vector(item, dimensions)
        if base64Wanted:
            packed = struct.pack("<%df" % (len(vector),), *vector)
            vector = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = countTokens(promptTexts(body))
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def listModels(provider, received, script):
    return {"object": "list", "data": [_model(ident) for ident in provider.models]}


def oneModel(provider, received, script):
    ident = received.path[len("/v1/models/"):]
    if ident not in provider.models:
        message = "The model '%s' does not exist" % (ident,)
        raise Refusal(404, message, "model_not_found")
    return _model(ident)


def responses(provider, received, script):
    body = requireBody(received, "input")
    ident = "resp_fake%d" % (len(provider.requests),)
    text, pieces = script.compose(received)
    inputTexts = promptTexts(body)
    if isinstance(body.get("instructions"), str):
        inputTexts.append(body["instructions"])
    for item in body["input"] if isinstance(body["input"], list) else ():
        for part in (item.get("content") or ()) if isinstance(
                item, dict) and isinstance(item.get("content"), list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                inputTexts.append(part["text"])
    usage = {"input_tokens": countTokens(inputTexts),
             "output_tokens": countTokens([text]),
             "total_tokens": countTokens(inputTexts) + countTokens([text])}
    item = {"id": "msg_" + ident, "type": "message", "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text,
                         "annotations": []}]}
    response = {"id": ident, "object": "response",
                "created_at": provider.now(), "status": "completed",
                "model": body.get("model"), "output": [item],
                "usage": usage}
    if not (body.get("stream") or script.bigStream):
        return response

    def typed(payload):
        return namedEvent(payload["type"].encode("ascii"), payload)

    def delta(piece):
        return typed({"type": "response.output_text.delta",
                      "item_id": item["id"], "output_index": 0,
                      "content_index": 0, "delta": piece})

    started = dict(response, status="in_progress", output=[], usage=None)
    steps = [delta(piece) for piece in pieces]
    steps[0] = typed({"type": "response.created",
                      "response": started}) + steps[0]
    tail = (typed({"type": "response.output_text.done",
                   "item_id": item["id"], "output_index": 0,
                   "content_index": 0, "text": text})
            + typed({"type": "response.output_item.done",
                     "output_index": 0, "item": item})
            + typed({"type": "response.completed", "response": response}))
    return Stream(steps, tail, delta(FILLER),
                  b"event: response.output_text.delta\ndata: {\n\n")


def _begin(provider, received, script, required, prefix):
    """
    What a chat or legacy completion starts from: the body (with its
    C{required} key), the answer's id, text and pieces, its usage.
    """
    body = requireBody(received, required)
    ident = "%s%d" % (prefix, len(provider.requests))
    text, pieces = script.compose(received)
    usage = script.usage if script.usage is not None else chatUsage(body, text)
    return body, ident, text, pieces, usage


def _model(ident):
    return {"id": ident, "object": "model", "created": 0, "owned_by": "fake"}


def _choiceCount(body):
    n = body.get("n")
    return n if isinstance(n, int) and 1 <= n <= 16 else 1


def _includeUsage(body):
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _vector(item, dimensions):
    # Deterministic per input; k/128 is exact in float32, so the float and
    # base64 encodings carry the same numbers.
    if not isinstance(item, str):
        item = json.dumps(item)
    digest = hashlib.sha256(item.encode("utf-8")).digest()
    return [(digest[i % len(digest)] - 128) / 128.0 for i in range(dimensions)]
