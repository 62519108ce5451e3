"""
A fast, minimal fake LLM provider for the benchmarks: a raw HTTP/1.1
protocol on Twisted (no twisted.web), answering canned OpenAI JSON and SSE.

    python bench/fakeprovider.py [--tls-cert CERT --tls-key KEY]

prints one JSON line on stdout with its ports, e.g.
C{{"http": 40001, "bulk": 40002, "tls": null, "pid": 1234}}, then serves
until SIGTERM/SIGINT or C{--max-seconds} (a bound: it always stops).

What it answers:

- C{POST /v1/chat/completions}: a canned C{chat.completion} (about 400
  bytes), or, when the body has C{"stream": true}, an SSE stream in chunked
  encoding; request headers shape the stream (the gateway forwards them):
  C{x-bench-chunks: N} content chunks (default 10), then a finishing chunk
  and C{[DONE]}, shaped as OpenAI's (its C{obfuscation} padding included);
  every chunk's id is C{chatcmpl-bench-RECEIVED-SENT}, when the request was
  complete and when the chunk was written, in C{time.monotonic_ns()} (the
  client's clock too, on the same machine): no field a real chunk lacks;
  C{x-bench-gap-ms: G} between chunks; C{x-bench-hold: S}
  send the first chunk, then hold the stream open for S seconds (or until
  the client leaves) before the rest.
- C{GET /v1/models}: a one-model list.  C{GET /_bench/stats}: counters.
- The bulk port: read one line with a byte count N, send N bytes as fast as
  the transport takes them, close.  For CONNECT tunnel throughput.
- The TLS port (when given a certificate): the same HTTP as the main port.

Only loopback addresses are used.
"""

import argparse
import json
import os
import sys
from time import monotonic_ns

from twisted.internet import reactor
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

_JSON_ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
    "model": "gpt-fake",
    "choices": [{"index": 0, "message": {
        "role": "assistant",
        "content": "Hello from the bench provider. This is a canned answer "
                   "of a few dozen words, about the size of a short reply."},
        "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 20,
              "total_tokens": 30}}).encode()

_MODELS = json.dumps({"object": "list", "data": [
    {"id": "gpt-fake", "object": "model", "created": 0,
     "owned_by": "bench"}]}).encode()

_DONE = b"data: [DONE]\n\n"
_MAX_CHUNKS = 1000
_MAX_HOLD = 600.0
_MAX_HEAD = 64 * 1024

stats = {"requests": 0, "streams": 0, "open_streams": 0, "connections": 0,
         "open_connections": 0, "streams_abandoned": 0}


_STAMP = b"@STAMP@"


def _chunk(delta, finish=None):
    # The id ends with when the request was complete and when this chunk
    # was written, in time.monotonic_ns(), filled in per write (_stamped).
    return b"data: " + json.dumps({
        "id": "chatcmpl-bench-@STAMP@", "object": "chat.completion.chunk",
        "created": 0, "model": "gpt-fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None,
                     "finish_reason": finish}],
        "obfuscation": "Yq8TzV2mPk0a"},
        separators=(",", ":")).encode() + b"\n\n"


def _stamped(template, received):
    return template.replace(_STAMP, b"%d-%d" % (received, monotonic_ns()), 1)


_events = {}


def streamEvents(n):
    """
    The SSE events of an n-chunk stream: n content chunks, then the
    finishing chunk and [DONE] as one last write.
    """
    cached = _events.get(n)
    if cached is None:
        chunks = [_chunk({"role": "assistant", "content": "word0 "})]
        chunks += [_chunk({"content": "word%d " % (i,)}) for i in range(1, n)]
        cached = _events[n] = (chunks, _chunk({}, "stop") + _DONE)
    return cached


def _encodeChunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status, contentType, body, close=False):
    return (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (status, contentType, len(body),
               b"Connection: close\r\n" if close else b"") + body)


_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")


class HTTP(Protocol):
    """
    Just enough HTTP/1.1: keep-alive, pipelining, Content-Length bodies.
    """

    def connectionMade(self):
        self._buffer = b""
        self._head = None
        self._need = 0
        self._stream = None  # (events, index, gap, delayed call)
        # Stream chunks are small writes: without this, Nagle's algorithm
        # and the client's delayed ACK hold them back by up to 40 ms.
        self.transport.setTcpNoDelay(True)
        stats["connections"] += 1
        stats["open_connections"] += 1

    def dataReceived(self, data):
        self._buffer += data
        while True:
            if self._stream is not None:
                return  # the next pipelined request waits for the stream
            if self._head is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > _MAX_HEAD:
                        self.transport.loseConnection()
                    return
                head = self._buffer[:end].decode("latin-1")
                self._buffer = self._buffer[end + 4:]
                lines = head.split("\r\n")
                parts = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                self._head = (parts[0], parts[1] if len(parts) > 1 else "/",
                              headers)
                self._need = int(headers.get("content-length") or 0)
            if len(self._buffer) < self._need:
                return
            body = self._buffer[:self._need]
            self._buffer = self._buffer[self._need:]
            method, path, headers = self._head
            self._head = None
            self._answer(method, path, headers, body)

    def _answer(self, method, path, headers, body):
        stats["requests"] += 1
        close = headers.get("connection", "").lower() == "close"
        self._received = monotonic_ns()
        if method == "POST" and path.startswith("/v1/chat/completions"):
            if b'"stream": true' in body or b'"stream":true' in body:
                self._startStream(headers)
                return
            self.transport.write(_response(b"200 OK", b"application/json",
                                           _JSON_ANSWER, close))
        elif method == "GET" and path == "/v1/models":
            self.transport.write(_response(b"200 OK", b"application/json",
                                           _MODELS, close))
        elif method == "GET" and path == "/_bench/stats":
            self.transport.write(_response(b"200 OK", b"application/json",
                                           json.dumps(stats).encode(), close))
        else:
            self.transport.write(_response(
                b"404 Not Found", b"application/json",
                b'{"error": {"message": "no such path", "type": '
                b'"invalid_request_error", "param": null, "code": null}}',
                close))
        if close:
            self.transport.loseConnection()

    def _startStream(self, headers):
        n = max(1, min(_MAX_CHUNKS, int(headers.get("x-bench-chunks") or 10)))
        gap = max(0.0, float(headers.get("x-bench-gap-ms") or 0) / 1000.0)
        hold = max(0.0, min(_MAX_HOLD, float(headers.get("x-bench-hold") or 0)))
        chunks, tail = streamEvents(n)
        stats["streams"] += 1
        stats["open_streams"] += 1
        # [chunks, tail, next index, gap, delayed call]
        self._stream = [chunks, tail, 1, gap, None]
        self.transport.write(_STREAM_HEAD + _encodeChunk(
            _stamped(chunks[0], self._received)))
        if hold > 0 or gap > 0:
            self._stream[4] = reactor.callLater(hold or gap, self._next)
        else:
            self._next()

    def _next(self):
        stream = self._stream
        if stream is None:
            return
        chunks, tail, index, gap, _ = stream
        stream[4] = None
        write = self.transport.write
        while index < len(chunks):
            write(_encodeChunk(_stamped(chunks[index], self._received)))
            index += 1
            stream[2] = index
            if gap > 0:
                stream[4] = reactor.callLater(gap, self._next)
                return
        write(_encodeChunk(_stamped(tail, self._received)) + b"0\r\n\r\n")
        self._stream = None
        stats["open_streams"] -= 1
        if self._buffer:
            reactor.callLater(0, self.dataReceived, b"")

    def connectionLost(self, reason):
        stats["open_connections"] -= 1
        if self._stream is not None:
            call = self._stream[4]
            if call is not None and call.active():
                call.cancel()
            self._stream = None
            stats["open_streams"] -= 1
            stats["streams_abandoned"] += 1


@implementer(IPullProducer)
class Bulk(Protocol):
    """
    Read C{N\\n}, send N bytes, close.
    """

    block = b"x" * (256 * 1024)

    def connectionMade(self):
        self._line = b""
        self._left = None

    def dataReceived(self, data):
        if self._left is not None:
            return
        self._line += data
        if b"\n" not in self._line:
            if len(self._line) > 64:
                self.transport.loseConnection()
            return
        self._left = min(int(self._line.split(b"\n")[0] or 0), 2 ** 34)
        self.transport.registerProducer(self, False)

    def resumeProducing(self):
        if self._left <= 0:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        block = self.block
        for _ in range(4):
            if self._left <= 0:
                break
            piece = block if self._left >= len(block) else block[:self._left]
            self._left -= len(piece)
            self.transport.write(piece)

    def stopProducing(self):
        self._left = 0


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    options = parser.parse_args(argv)
    http = reactor.listenTCP(options.port, Factory.forProtocol(HTTP),
                             backlog=2048, interface="127.0.0.1")
    bulk = reactor.listenTCP(0, Factory.forProtocol(Bulk), backlog=128,
                             interface="127.0.0.1")
    tls = None
    if options.tls_cert:
        from twisted.internet import ssl
        with open(options.tls_cert, "rb") as f:
            cert = f.read()
        with open(options.tls_key, "rb") as f:
            key = f.read()
        certificate = ssl.PrivateCertificate.loadPEM(cert + key)
        tls = reactor.listenSSL(0, Factory.forProtocol(HTTP),
                                certificate.options(), backlog=1024,
                                interface="127.0.0.1")
    print(json.dumps({"http": http.getHost().port, "bulk": bulk.getHost().port,
                      "tls": tls.getHost().port if tls else None,
                      "pid": os.getpid()}), flush=True)
    reactor.callLater(options.max_seconds, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    sys.exit(main())
