# -*- test-case-name: tests.test_api_translate -*-
"""
OpenAI chat requests served by an Anthropic target: the request goes out
in the Messages format, and the answer (JSON or stream) comes back in the
chat format, before the output policies read it.  The client keeps
speaking OpenAI.
"""

import json

from keeptrusts.api.anthropic import MESSAGES
from keeptrusts.api.cost import tokenCount
from keeptrusts.api.sse import EventSplitter, eventData

ANTHROPIC_VERSION = b"2023-06-01"
_FINISH = {"end_turn": "stop", "stop_sequence": "stop",
           "max_tokens": "length", "tool_use": "tool_calls"}


# Whatever a client or a provider sends, of whatever type: what is not of
# the shape a field should have is left out, never a crash.

def _text(content):
    # An answer's text blocks, joined before the output policies read them.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content
                       if isinstance(part, dict) and part.get("type") == "text"
                       and isinstance(part.get("text"), str))
    return ""


def _textBlocks(content):
    """
    A system or tool message's content as text blocks: its parts stay
    apart, as the policies read them; joined here, the halves of a key
    split between two parts would go out whole.
    """
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    # Anthropic refuses an empty text block.
    return [block for block in _blocks(content)
            if block["type"] == "text" and block["text"]]


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def _string(value):
    return value if isinstance(value, str) else ""


def _blocks(content):
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in _list(content):
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            # The chat format takes an object or, in older clients, the URL.
            url = image if isinstance(image, str) else _mapping(image).get(
                "url")
            if not isinstance(url, str):
                continue
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {
                    "type": "base64", "media_type": media, "data": data}})
            else:
                blocks.append({"type": "image",
                               "source": {"type": "url", "url": url}})
    return blocks


def _toolUse(call):
    function = _mapping(call.get("function"))
    text = function.get("arguments")
    try:
        arguments = json.loads(text) if isinstance(text, str) and text else {}
    except (ValueError, RecursionError):
        arguments = {"arguments": text}
    return {"type": "tool_use", "id": call.get("id"),
            "name": function.get("name"), "input": arguments}


def requestToMessages(body):
    """
    An OpenAI chat body -> an Anthropic Messages body.
    """
    system = []
    messages = []

    def append(role, blocks):
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": list(blocks)})

    for message in body["messages"]:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(content)
        elif role == "tool":
            append("user", [{"type": "tool_result",
                             "tool_use_id": message.get("tool_call_id"),
                             "content": content if isinstance(content, str)
                             else _textBlocks(content)}])
        elif role == "assistant":
            calls = message.get("tool_calls")
            append("assistant", _blocks(content) + [
                _toolUse(c) for c in (calls if isinstance(calls, list)
                                      else ()) if isinstance(c, dict)])
        else:
            append("user", _blocks(content))
    out = {"model": body["model"], "messages": messages,
           "max_tokens": body.get("max_completion_tokens")
           or body.get("max_tokens") or 4096}
    if all(isinstance(content, str) for content in system):
        if system:
            out["system"] = "\n\n".join(system)
    else:
        out["system"] = [block for content in system
                         for block in _textBlocks(content)]
    for key in ("temperature", "top_p", "stream"):
        if key in body:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    tools = [t.get("function") for t in _list(body.get("tools"))
             if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if tools:
        out["tools"] = [{"name": f.get("name"),
                         "description": f.get("description", ""),
                         "input_schema": f.get("parameters") or {
                             "type": "object"}} for f in tools]
    return out


def _finish(stopReason):
    return _FINISH.get(stopReason, "stop") if isinstance(
        stopReason, str) else "stop"


def _blockIndex(payload):
    index = payload.get("index")
    return index if isinstance(index, int) else None


def _usage(usage):
    usage = usage if isinstance(usage, dict) else {}
    prompt = tokenCount(usage.get("input_tokens")) or 0
    completion = tokenCount(usage.get("output_tokens")) or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def answerToChat(message):
    """
    An Anthropic message -> an OpenAI chat completion.
    """
    content = _list(message.get("content"))
    calls = [{"id": b.get("id"), "type": "function", "function": {
        "name": b.get("name"), "arguments": json.dumps(b.get("input"))}}
        for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
    reply = {"role": "assistant", "content": _text(content) or None}
    if calls:
        reply["tool_calls"] = calls
    return {"id": message.get("id"), "object": "chat.completion",
            "created": 0, "model": message.get("model"),
            "choices": [{"index": 0, "message": reply,
                         "finish_reason": _finish(
                             message.get("stop_reason"))}],
            "usage": _usage(message.get("usage"))}


class StreamToChat:
    """
    Anthropic stream bytes -> OpenAI chat stream bytes, event by event.
    """

    def __init__(self):
        self._splitter = EventSplitter()
        self._id = None
        self._model = None
        self._usage = {}
        self._tools = {}

    def feed(self, data):
        return b"".join(self._event(e) for e in self._splitter.feed(data))

    def rest(self):
        rest = self._splitter.rest()
        return self._event(rest) if rest.strip() else b""

    def _chunk(self, delta=None, finish=None, usage=None):
        chunk = {"id": self._id, "object": "chat.completion.chunk",
                 "created": 0, "model": self._model,
                 "choices": [] if delta is None and finish is None else [{
                     "index": 0, "delta": delta or {},
                     "finish_reason": finish}]}
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk).encode("utf-8") + b"\n\n"

    def _event(self, event):
        name, data = eventData(event)
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            return event + b"\n\n"  # the rewriter reports it as invalid
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "message_start":
            message = _mapping(payload.get("message"))
            self._id, self._model = message.get("id"), message.get("model")
            self._usage.update(_mapping(message.get("usage")))
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = _mapping(payload.get("content_block"))
            if block.get("type") == "tool_use":
                index = len(self._tools)
                self._tools[_blockIndex(payload)] = index
                return self._chunk({"tool_calls": [{
                    "index": index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"),
                                 "arguments": ""}}]})
            if block.get("type") == "text" and _string(block.get("text")):
                # A block that starts with its text: the deltas go on it.
                return self._chunk({"content": block["text"]})
            return b""
        if kind == "content_block_delta":
            delta = _mapping(payload.get("delta"))
            if delta.get("type") == "text_delta":
                return self._chunk({"content": _string(delta.get("text"))})
            if delta.get("type") == "input_json_delta":
                return self._chunk({"tool_calls": [{
                    "index": self._tools.get(_blockIndex(payload), 0),
                    "function": {
                        "arguments": _string(delta.get("partial_json"))}}]})
            return b""
        if kind == "message_delta":
            self._usage.update(_mapping(payload.get("usage")))
            stop = _mapping(payload.get("delta")).get("stop_reason")
            return self._chunk(finish=_finish(stop)) + \
                self._chunk(usage=_usage(self._usage))
        if kind == "message_stop":
            return b"data: [DONE]\n\n"
        if kind == "error" or name == b"error":
            error = _mapping(payload.get("error"))
            return b"data: " + json.dumps({"error": {
                "type": error.get("type", "upstream_error"),
                "message": error.get("message", "")}}).encode() + b"\n\n"
        return b""  # ping, content_block_stop


class TranslatedStream:
    """
    A stream transform in front of another: Anthropic bytes in, the inner
    transform's OpenAI bytes out.
    """

    def __init__(self, inner):
        self._inner = inner
        self._translate = StreamToChat()
        self.outcome = inner.outcome

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def feed(self, data):
        return self._inner.feed(self._translate.feed(data))

    def end(self):
        return self._inner.feed(self._translate.rest()) + self._inner.end()


def translates(endpoint, provider):
    """
    Whether C{endpoint}'s requests to a C{provider} target are translated.
    """
    return endpoint.name == "chat/completions" and provider == "anthropic"


def upstreamPath(endpoint, target):
    """
    The path to append to C{target}'s base URL for C{endpoint}.
    """
    if translates(endpoint, target.provider):
        return MESSAGES.pathFor(target.target.base_url)
    return endpoint.pathFor(target.target.base_url)
