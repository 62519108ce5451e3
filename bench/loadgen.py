"""
The benchmark's own clients, for what wrk cannot do: timed SSE streams,
many idle streams, CONNECT tunnels and TLS interception, and a closed-loop
load generator (several worker processes) used when wrk is missing and to
measure this generator's own ceiling.

Plain blocking sockets and selectors, standard library only; loopback only.
Every loop is bounded by a count and a deadline.
"""

import multiprocessing
import os
import re
import selectors
import socket
import ssl
import time

# The fake provider stamps stream chunks with time.monotonic_ns(): the same
# clock, so that delivery delays can be measured across processes.
_NOW = time.monotonic
_STAMP = re.compile(rb'"id":"chatcmpl-bench-(\d+)-(\d+)"')


class ProtocolError(Exception):
    pass


def connect(port, host="127.0.0.1", timeout=10.0):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def requestBytes(method, path, body=b"", headers=(), host="127.0.0.1"):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % (host,)]
    if body or method == "POST":
        lines.append("Content-Type: application/json")
        lines.append("Content-Length: %d" % (len(body),))
    lines.extend("%s: %s" % pair for pair in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Reader:
    """
    Read HTTP/1.1 responses from a blocking socket, noting when bytes came.
    """

    def __init__(self, sock, deadline=60.0):
        self.sock = sock
        self.buffer = b""
        self.deadline = deadline

    def _more(self):
        data = self.sock.recv(262144)
        if not data:
            raise ProtocolError("connection closed")
        self.buffer += data
        return _NOW()

    def head(self):
        """
        @return: C{(status, headers dict, time the head was complete)}.
        """
        when = None
        while b"\r\n\r\n" not in self.buffer:
            when = self._more()
        end = self.buffer.index(b"\r\n\r\n")
        raw, self.buffer = self.buffer[:end], self.buffer[end + 4:]
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers, when or _NOW()

    def body(self, headers):
        """
        The whole body (Content-Length or chunked).
        """
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(self.buffer) < size:
                self._more()
            body, self.buffer = self.buffer[:size], self.buffer[size:]
            return body
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join(piece for piece, _ in self.chunks())
        data = self.buffer
        try:
            while True:
                self._more()
        except ProtocolError:
            pass
        return data + self.buffer

    def chunks(self):
        """
        Yield C{(chunk data, arrival time)} of a chunked body, in order; the
        arrival time is when the chunk's last byte came.
        """
        when = _NOW()
        while True:
            while b"\r\n" not in self.buffer:
                when = self._more()
            line, _, rest = self.buffer.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            self.buffer = rest
            while len(self.buffer) < size + 2:
                when = self._more()
            data, self.buffer = self.buffer[:size], self.buffer[size + 2:]
            if size == 0:
                return
            yield data, when


def call(sock, reader, method, path, body=b"", headers=()):
    """
    One request on a keep-alive connection.

    @return: C{(status, body, seconds)}.
    """
    started = _NOW()
    sock.sendall(requestBytes(method, path, body, headers))
    status, head, _ = reader.head()
    data = reader.body(head)
    return status, data, _NOW() - started


def timedStream(sock, reader, body, headers=()):
    """
    One SSE request on a keep-alive connection, timed event by event.

    @return: a dict: C{status}; C{ttfb} (seconds from the send until the
        first data event was complete); C{times} (arrival of each data
        event, from the send); C{total} (until the end of the body);
        C{events} (data events, C{[DONE]} included); C{text} (their data);
        and, from the provider's stamps, C{path} (send to the provider
        having the whole request) and C{delivery} (per stamped event, its
        arrival minus when the provider wrote it).
    """
    started = _NOW()
    sock.sendall(requestBytes("POST", "/v1/chat/completions", body, headers))
    status, head, _ = reader.head()
    times = []
    delivery = []
    received = None
    pending = b""
    texts = []
    if head.get("transfer-encoding", "").lower() == "chunked":
        pieces = reader.chunks()
    else:
        pieces = [(reader.body(head), _NOW())]
    for data, when in pieces:
        pending += data
        while b"\n\n" in pending:
            event, _, pending = pending.partition(b"\n\n")
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    times.append(when - started)
                    texts.append(line[5:].strip())
                    stamp = _STAMP.search(line)
                    if stamp:
                        received = int(stamp.group(1)) / 1e9
                        delivery.append(when - int(stamp.group(2)) / 1e9)
                    break
    return {"status": status, "ttfb": times[0] if times else None,
            "times": times, "total": _NOW() - started, "events": len(times),
            "text": texts, "delivery": delivery,
            "path": received - started if received is not None else None}


# -- closed-loop load, for the wrk fallback and the generator's ceiling


def _worker(port, path, body, conns, duration, queue):
    request = requestBytes("POST" if body else "GET", path, body)
    selector = selectors.DefaultSelector()
    latencies = []
    errors = 0
    deadline = _NOW() + duration
    state = {}
    for _ in range(conns):
        sock = connect(port)
        sock.setblocking(False)
        state[sock] = [b"", _NOW()]
        sock.send(request)
        selector.register(sock, selectors.EVENT_READ)
    while state and _NOW() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            entry = state[sock]
            try:
                data = sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                errors += 1
                selector.unregister(sock)
                sock.close()
                del state[sock]
                continue
            entry[0] += data
            buffer = entry[0]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                continue
            head = buffer[:end].lower()
            i = head.find(b"content-length:")
            if i >= 0:
                stop = head.find(b"\r\n", i)
                size = int(head[i + 15:stop if stop > 0 else None])
                if len(buffer) < end + 4 + size:
                    continue
            elif b"transfer-encoding: chunked" in head:
                # JSON bodies never hold the last-chunk marker.
                last = buffer.find(b"\r\n0\r\n\r\n", end + 4)
                if last < 0:
                    continue
                size = last + 7 - (end + 4)
            else:
                errors += 1
                selector.unregister(sock)
                sock.close()
                del state[sock]
                continue
            if not buffer.startswith(b"HTTP/1.1 200"):
                errors += 1
            now = _NOW()
            latencies.append(now - entry[1])
            entry[0] = buffer[end + 4 + size:]
            entry[1] = now
            sock.send(request)
    for sock in state:
        sock.close()
    queue.put((latencies, errors))


def closedLoop(port, path, body, conns, duration, processes):
    """
    C{conns} keep-alive connections spread over C{processes} worker
    processes, each sending its next request as soon as an answer is in.

    @return: C{dict(rps, p50_ms, p99_ms, requests, errors)}.
    """
    processes = max(1, min(processes, conns))
    queue = multiprocessing.get_context("fork").Queue()
    share = [conns // processes + (1 if i < conns % processes else 0)
             for i in range(processes)]
    workers = [multiprocessing.get_context("fork").Process(
        target=_worker, args=(port, path, body, n, duration, queue))
        for n in share]
    started = _NOW()
    for w in workers:
        w.start()
    results = [queue.get(timeout=duration + 60) for _ in workers]
    elapsed = _NOW() - started
    for w in workers:
        w.join(10)
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    return {"rps": len(latencies) / duration if latencies else 0.0,
            "p50_ms": percentile(latencies, 50) * 1e3 if latencies else None,
            "p99_ms": percentile(latencies, 99) * 1e3 if latencies else None,
            "requests": len(latencies), "errors": errors,
            "wall_s": elapsed}


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


# -- many idle streams


def openIdleStreams(port, count, body, hold, batch=100, timeout=120.0):
    """
    Open C{count} streams whose provider holds them after the first event,
    C{batch} connections at a time.

    @return: C{(sockets, seconds to open them all, how many got their first
        event)}.
    """
    request = requestBytes("POST", "/v1/chat/completions", body,
                           [("x-bench-hold", "%g" % (hold,))])
    deadline = _NOW() + timeout
    started = _NOW()
    opened = []
    ready = 0
    selector = selectors.DefaultSelector()
    while len(opened) < count and _NOW() < deadline:
        group = []
        for _ in range(min(batch, count - len(opened))):
            sock = connect(port)
            sock.sendall(request)
            sock.setblocking(False)
            group.append(sock)
            opened.append(sock)
            selector.register(sock, selectors.EVENT_READ, [b""])
        waiting = set(group)
        while waiting and _NOW() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    waiting.discard(key.fileobj)
                    selector.unregister(key.fileobj)
                    continue
                key.data[0] += data
                if b"data:" in key.data[0] and b"\n\n" in key.data[0]:
                    waiting.discard(key.fileobj)
                    selector.unregister(key.fileobj)
                    ready += 1
        for sock in waiting:
            selector.unregister(sock)
    selector.close()
    return opened, _NOW() - started, ready


def closeAll(sockets):
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass


# -- CONNECT and TLS interception


def connectTunnel(proxyPort, host, port, timeout=5.0):
    """
    @return: C{(socket, status, leftover bytes)}; status 0 when the proxy
        closed or answered nothing within C{timeout}.
    """
    sock = connect(proxyPort, timeout=timeout)
    sock.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                  % (host, port, host, port)).encode("ascii"))
    buffer = b""
    deadline = _NOW() + timeout
    try:
        while b"\r\n\r\n" not in buffer and _NOW() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            buffer += data
    except (socket.timeout, OSError):
        pass
    if b"\r\n\r\n" not in buffer:
        return sock, 0, buffer
    head, _, rest = buffer.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return sock, status, rest


def bulkDownload(sock, size, already=b"", timeout=120.0):
    """
    Ask a bulk server (through a tunnel or directly) for C{size} bytes.

    @return: seconds from the ask to the last byte, or L{None}.
    """
    sock.settimeout(timeout)
    started = _NOW()
    sock.sendall(b"%d\n" % (size,))
    got = len(already)
    buf = bytearray(1 << 20)
    deadline = started + timeout
    while got < size and _NOW() < deadline:
        n = sock.recv_into(buf)
        if not n:
            break
        got += n
    elapsed = _NOW() - started
    return elapsed if got >= size else None


def tlsClientContext():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def rss(pid):
    """
    VmRSS of a process, in bytes (from /proc/<pid>/status).
    """
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def cpuTimes(pid):
    """
    User plus system CPU seconds of a process, from /proc/<pid>/stat.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
