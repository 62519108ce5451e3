#!/usr/bin/env python3
"""
keeptrusts benchmarks against a fake provider, on loopback (DESIGN.md
section 9).  One command:

    python bench/run.py [--quick] [--scenarios 1,2,3,4,5,6] [--profile cprofile|py-spy]

It starts the fake provider (bench/fakeprovider.py) and the gateway
(twistd -n keeptrusts, default chain, journal.sync batch, state in a temp
dir) as processes, measures every scenario against the gateway AND directly
against the provider in the same run, and writes bench/results/latest.json
and bench/results/latest.md.  See bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
from prompts import chatBody  # noqa: E402

TWISTD = "from twisted.scripts.twistd import run; run()"
SCENARIOS = {
    "1": "latency", "2": "throughput", "3": "streams", "4": "idle",
    "5": "large", "6": "connect"}

CONFIG = """\
pack: {name: bench, version: 1.0.0, enabled: true}
gateway:
  state_dir: %(state)s
  fail_mode: block
  journal: {sync: batch}
%(proxy)s
providers:
  targets:
    - id: fake
      provider: openai
      base_url: http://127.0.0.1:%(port)d/v1
      secret_key_ref: {env: BENCH_FAKE_KEY}
      models: [gpt-fake]
policies:
  chain: [dlp-filter, audit-logger]
policy:
  dlp-filter: {action: redact, builtin: true}
  audit-logger: {immutable: true, retention_days: 365, log_all_access: true}
"""

PROXY = """\
  proxy: {allowed_ports: [%(ports)s]}
  intercept: {hosts: [localhost]%(ca)s}
"""


def log(message, *args):
    stamp = time.strftime("%H:%M:%S")
    print("[%s] %s" % (stamp, message % args if args else message),
          file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [v for v in values if v is not None]
    return [min(values), max(values)] if values else None


def freePort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the machine


def machine(gatewayPython):
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = subprocess.run(
        [gatewayPython, "-c", "import sys, twisted; print(sys.version.split()[0]);"
         " print(twisted.__version__); from keeptrusts.policy import literals;"
         " print(literals.hyperscan is not None)"],
        capture_output=True, text=True, env=_env()).stdout.split()
    return {
        "cpu_model": model, "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": versions[0] if versions else None,
        "twisted": versions[1] if len(versions) > 1 else None,
        "hyperscan": versions[2] == "True" if len(versions) > 2 else None,
        "gateway_python": gatewayPython,
        "loadavg_start": list(os.getloadavg()),
    }


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"]
                                if env.get("PYTHONPATH") else "")
    env["BENCH_FAKE_KEY"] = "sk-bench-provider-key"
    env.update(extra)
    return env


def _pinned(cpus):
    if not cpus:
        return None

    def pin():
        os.sched_setaffinity(0, cpus)
    return pin


# -- tools


def findWrk(install):
    path = shutil.which("wrk")
    if path or not install:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    log("wrk not found: installing it from Debian (apt-get install -y wrk)")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return shutil.which("wrk")


def findPySpy(given):
    for candidate in (given, shutil.which("py-spy"), "/tmp/pyspy/bin/py-spy",
                      os.path.join(ROOT, ".venv", "bin", "py-spy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


WRK_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
function done(summary, latency, requests)
  io.write(string.format('BENCH_JSON {"requests": %d, "duration_us": %d, '
    .. '"p50_us": %d, "p99_us": %d, "mean_us": %.1f, "connect": %d, '
    .. '"read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.mean, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
end
"""


class Load:
    """
    Closed-loop load: wrk when there is one, else loadgen.closedLoop.
    """

    def __init__(self, wrk, workdir, cpus, processes):
        self.wrk = wrk
        self.cpus = cpus
        self.processes = processes
        self.lua = os.path.join(workdir, "post.lua")
        with open(self.lua, "w") as f:
            f.write(WRK_LUA)
        self.workdir = workdir
        self._bodies = {}

    @property
    def name(self):
        return "wrk" if self.wrk else "python (bench/loadgen.py)"

    def bodyFile(self, body):
        path = self._bodies.get(body)
        if path is None:
            path = os.path.join(self.workdir, "body%d.json" % (len(self._bodies),))
            with open(path, "wb") as f:
                f.write(body)
            self._bodies[body] = path
        return path

    def run(self, port, body, conns, duration):
        """
        @return: dict(rps, p50_ms, p99_ms, requests, errors).
        """
        if not self.wrk:
            saved = os.sched_getaffinity(0)
            if self.cpus:
                os.sched_setaffinity(0, self.cpus)
            try:
                return loadgen.closedLoop(port, "/v1/chat/completions", body,
                                          conns, duration, self.processes)
            finally:
                os.sched_setaffinity(0, saved)
        threads = max(1, min(conns, len(self.cpus or os.sched_getaffinity(0))))
        out = subprocess.run(
            [self.wrk, "-t%d" % (threads,), "-c%d" % (conns,),
             "-d%ds" % (max(1, round(duration)),), "--timeout", "10s",
             "-s", self.lua, "http://127.0.0.1:%d/v1/chat/completions" % (port,)],
            capture_output=True, text=True, env=_env(BENCH_BODY=self.bodyFile(body)),
            preexec_fn=_pinned(self.cpus), timeout=duration + 60)
        for line in out.stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                r = json.loads(line[len("BENCH_JSON "):])
                errors = sum(r[k] for k in ("connect", "read", "write",
                                            "status", "timeout"))
                return {"rps": r["requests"] / (r["duration_us"] / 1e6),
                        "p50_ms": r["p50_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3,
                        "requests": r["requests"], "errors": errors}
        raise RuntimeError("wrk gave no result: %s %s" % (out.stdout, out.stderr))


# -- processes


class Proc:
    def __init__(self, name, popen):
        self.name = name
        self.popen = popen

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=15.0):
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def startProvider(python, workdir, cpus, tls=None):
    args = [python, os.path.join(HERE, "fakeprovider.py"), "--max-seconds", "7200"]
    if tls:
        args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    errors = open(os.path.join(workdir, "provider.err"), "wb")
    popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors,
                             env=_env(), preexec_fn=_pinned(cpus))
    line = popen.stdout.readline()
    if not line:
        raise SystemExit("the fake provider did not start; see %s"
                         % (errors.name,))
    return Proc("provider", popen), json.loads(line)


def startReference(python, workdir, providerPort, cpus):
    errors = open(os.path.join(workdir, "reference.err"), "wb")
    popen = subprocess.Popen(
        [python, os.path.join(HERE, "minimalproxy.py"), "--upstream",
         "http://127.0.0.1:%d" % (providerPort,), "--journal",
         os.path.join(workdir, "reference-journal.jsonl")],
        stdout=subprocess.PIPE, stderr=errors, env=_env(),
        preexec_fn=_pinned(cpus))
    line = popen.stdout.readline()
    if not line:
        raise SystemExit("the reference proxy did not start; see %s"
                         % (errors.name,))
    return Proc("reference", popen), json.loads(line)["port"]


def writeConfig(workdir, providerPort, proxy):
    state = os.path.join(workdir, "state")
    os.makedirs(state, exist_ok=True)
    path = os.path.join(workdir, "policy-config.yaml")
    with open(path, "w") as f:
        f.write(CONFIG % {"state": state, "port": providerPort,
                          "proxy": proxy})
    return path


def configLoads(python, path):
    out = subprocess.run(
        [python, "-c", "import sys; from keeptrusts.config import loadConfig; "
         "from keeptrusts.policy.registry import policyFactories; "
         "loadConfig(sys.argv[1], policyFactories())", path],
        capture_output=True, text=True, env=_env())
    return out.returncode == 0, out.stderr.strip()[-500:]


def startGateway(python, workdir, config, cpus, profile=None, tag="gateway"):
    port = freePort()
    # Logging to standard output, as the systemd unit and scripts/run do.
    twistd = ["-n", "--pidfile=", "keeptrusts", "-c", config,
              "--listen", "tcp:%d:interface=127.0.0.1" % (port,)]
    if profile:
        args = [python, os.path.join(HERE, "profiled.py"), profile] + twistd
    else:
        args = [python, "-c", TWISTD] + twistd
    output = open(os.path.join(workdir, tag + ".log"), "wb")
    popen = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT,
                             cwd=workdir, env=_env(), preexec_fn=_pinned(cpus))
    proc = Proc(tag, popen)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not proc.alive():
            raise SystemExit("the gateway exited (%s); see %s" % (
                popen.returncode, output.name))
        try:
            sock = loadgen.connect(port, timeout=2)
            status, _, _ = loadgen.call(sock, loadgen.Reader(sock), "GET",
                                        "/v1/models")
            sock.close()
            if status == 200:
                return proc, port
        except (OSError, loadgen.ProtocolError):
            pass
        time.sleep(0.2)
    proc.stop()
    raise SystemExit("the gateway did not answer within 60 s")


def providerStats(port):
    sock = loadgen.connect(port)
    try:
        _, body, _ = loadgen.call(sock, loadgen.Reader(sock), "GET",
                                  "/_bench/stats")
        return json.loads(body)
    finally:
        sock.close()


# -- scenarios


class Bench:
    def __init__(self, options, gateway, gatewayPort, provider, ports, load):
        self.options = options
        self.gateway = gateway
        self.gwPort = gatewayPort
        self.provider = provider
        self.ports = ports
        self.load = load
        self.runs = options.runs
        self.duration = options.duration
        self.body1k = chatBody(1024)
        self.reference = None  # (Proc, port) of bench/minimalproxy.py

    def both(self, measure, reference=False):
        """
        Measure direct then gateway (then the reference proxy), C{runs}
        times, interleaved.
        """
        runs = []
        for i in range(self.runs):
            run = {"direct": measure(self.ports["http"])}
            sides = [("gateway", self.gwPort, self.gateway)]
            if reference and self.reference is not None:
                sides.append(("reference", self.reference[1], self.reference[0]))
            for name, port, proc in sides:
                cpu0 = loadgen.cpuTimes(proc.pid)
                wall0 = time.perf_counter()
                via = measure(port)
                cpu = (loadgen.cpuTimes(proc.pid) - cpu0) / (
                    time.perf_counter() - wall0)
                if isinstance(via, dict):
                    via["gateway_cpu"] = cpu
                run[name] = via
            runs.append(run)
        return runs

    def latency(self):
        log("scenario 1: one client, non-streaming, 1 KB prompt")
        self.load.run(self.gwPort, self.body1k, 1, 1)  # warm up
        if self.reference:
            self.load.run(self.reference[1], self.body1k, 1, 1)
        runs = self.both(lambda port: self.load.run(port, self.body1k, 1,
                                                    self.duration),
                         reference=True)
        for r in runs:
            r["added_p50_ms"] = r["gateway"]["p50_ms"] - r["direct"]["p50_ms"]
            r["added_p99_ms"] = r["gateway"]["p99_ms"] - r["direct"]["p99_ms"]
            if "reference" in r:
                r["reference_added_p50_ms"] = (r["reference"]["p50_ms"]
                                               - r["direct"]["p50_ms"])
        return {"runs": runs, "summary": {
            "reference_added_p50_ms": median(r.get("reference_added_p50_ms")
                                             for r in runs),
            "added_p50_ms": median(r["added_p50_ms"] for r in runs),
            "added_p99_ms": median(r["added_p99_ms"] for r in runs),
            "added_p50_ms_range": spread(r["added_p50_ms"] for r in runs),
            "added_p99_ms_range": spread(r["added_p99_ms"] for r in runs),
            "direct_p50_ms": median(r["direct"]["p50_ms"] for r in runs),
            "gateway_p50_ms": median(r["gateway"]["p50_ms"] for r in runs),
            "direct_p99_ms": median(r["direct"]["p99_ms"] for r in runs),
            "gateway_p99_ms": median(r["gateway"]["p99_ms"] for r in runs),
            "errors": sum(r["gateway"]["errors"] for r in runs)}}

    def throughput(self):
        out = {}
        for conns in (16, 64):
            log("scenario 2: %d clients", conns)
            self.load.run(self.gwPort, self.body1k, conns, 1)
            runs = self.both(lambda port: self.load.run(
                port, self.body1k, conns, self.duration), reference=True)
            for r in runs:
                r["ratio"] = r["gateway"]["rps"] / r["direct"]["rps"]
                if "reference" in r:
                    g, f = r["gateway"], r["reference"]
                    r["reference_rps"] = f["rps"]
                    # CPU seconds per request, gateway over reference.
                    r["cpu_per_request_ratio"] = (
                        (g["gateway_cpu"] / g["rps"]) / (f["gateway_cpu"] / f["rps"])
                        if g["rps"] and f["rps"] and f["gateway_cpu"] else None)
            out["c%d" % (conns,)] = {"runs": runs, "summary": {
                "reference_rps": median(r.get("reference_rps") for r in runs),
                "cpu_per_request_ratio": median(r.get("cpu_per_request_ratio")
                                                for r in runs),
                "gateway_rps": median(r["gateway"]["rps"] for r in runs),
                "gateway_rps_range": spread(r["gateway"]["rps"] for r in runs),
                "direct_rps": median(r["direct"]["rps"] for r in runs),
                "ratio": median(r["ratio"] for r in runs),
                "gateway_p99_ms": median(r["gateway"]["p99_ms"] for r in runs),
                "gateway_p99_ms_range": spread(r["gateway"]["p99_ms"] for r in runs),
                "direct_p99_ms": median(r["direct"]["p99_ms"] for r in runs),
                "gateway_cpu": median(r["gateway"].get("gateway_cpu") for r in runs),
                "errors": sum(r["gateway"]["errors"] for r in runs)}}
        return out

    def streams(self):
        log("scenario 3: 10-chunk streams, %g ms between chunks",
            self.options.gap_ms)
        body = chatBody(256, stream=True)
        headers = [("x-bench-chunks", "10"),
                   ("x-bench-gap-ms", "%g" % (self.options.gap_ms,))]
        count = self.options.streams

        def measure(port):
            sock = loadgen.connect(port)
            reader = loadgen.Reader(sock)
            try:
                for _ in range(3):
                    loadgen.timedStream(sock, reader, body, headers)
                results = [loadgen.timedStream(sock, reader, body, headers)
                           for _ in range(count)]
            finally:
                sock.close()
            gaps, delays = [], []
            for r in results:
                content = r["times"][:10]
                gaps.extend(b - a for a, b in zip(content, content[1:]))
                delays.extend(r["delivery"][1:10])
            texts = {_streamText(r["text"]) for r in results}
            # Whole stream, without the provider's own (timer) schedule:
            # the request's way in, plus the last event's way out.
            whole = [r["path"] + r["delivery"][-1] for r in results
                     if r["path"] is not None and r["delivery"]]
            return {"ttfb_ms": median(r["ttfb"] for r in results) * 1e3,
                    "total_ms": median(r["total"] for r in results) * 1e3,
                    "whole_ms": median(whole) * 1e3 if whole else None,
                    "gap_ms": median(gaps) * 1e3,
                    "chunk_delay_ms": median(delays) * 1e3 if delays else None,
                    "events": sorted({r["events"] for r in results}),
                    "statuses": sorted({r["status"] for r in results}),
                    "texts": sorted(texts)}

        runs = self.both(measure)
        for r in runs:
            d, g = r["direct"], r["gateway"]
            r["added_ttfb_ms"] = g["ttfb_ms"] - d["ttfb_ms"]
            r["added_whole_ms"] = (g["whole_ms"] - d["whole_ms"]
                                   if g["whole_ms"] is not None
                                   and d["whole_ms"] is not None else None)
            r["added_total_ms"] = g["total_ms"] - d["total_ms"]
            r["added_gap_ms"] = g["gap_ms"] - d["gap_ms"]
            r["added_chunk_delay_ms"] = (
                g["chunk_delay_ms"] - d["chunk_delay_ms"]
                if g["chunk_delay_ms"] is not None
                and d["chunk_delay_ms"] is not None else None)
            r["chunks_equal"] = (d["events"] == g["events"]
                                 and d["texts"] == g["texts"]
                                 and g["statuses"] == [200])
        return {"runs": runs, "summary": {
            "added_ttfb_ms": median(r["added_ttfb_ms"] for r in runs),
            "added_ttfb_ms_range": spread(r["added_ttfb_ms"] for r in runs),
            "added_whole_ms": median(r["added_whole_ms"] for r in runs),
            "added_whole_ms_range": spread(r["added_whole_ms"] for r in runs),
            "added_total_ms": median(r["added_total_ms"] for r in runs),
            "added_gap_ms": median(r["added_gap_ms"] for r in runs),
            "added_chunk_delay_ms": median(r["added_chunk_delay_ms"] for r in runs),
            "added_chunk_delay_ms_range": spread(r["added_chunk_delay_ms"]
                                                 for r in runs),
            "direct_ttfb_ms": median(r["direct"]["ttfb_ms"] for r in runs),
            "gateway_ttfb_ms": median(r["gateway"]["ttfb_ms"] for r in runs),
            "direct_whole_ms": median(r["direct"]["whole_ms"] for r in runs),
            "gateway_whole_ms": median(r["gateway"]["whole_ms"] for r in runs),
            "direct_gap_ms": median(r["direct"]["gap_ms"] for r in runs),
            "gateway_gap_ms": median(r["gateway"]["gap_ms"] for r in runs),
            "events_direct": runs[0]["direct"]["events"],
            "events_gateway": runs[0]["gateway"]["events"],
            "chunks_equal": all(r["chunks_equal"] for r in runs)}}

    def idle(self):
        count = self.options.idle_streams
        log("scenario 4: %d idle open streams", count)
        body = chatBody(256, stream=True)
        runs = []
        for i in range(max(1, min(self.runs, 3))):
            run = {}
            # Direct: the provider holds the streams itself.
            before = loadgen.rss(self.provider.pid)
            socks, seconds, ready = loadgen.openIdleStreams(
                self.ports["http"], count, body, hold=300)
            run["direct"] = {"ready": ready, "open_s": seconds,
                             "provider_rss_mb": loadgen.rss(self.provider.pid) / 2**20,
                             "provider_rss_before_mb": before / 2**20}
            loadgen.closeAll(socks)
            self._waitStreams(0)
            before = loadgen.rss(self.gateway.pid)
            socks, seconds, ready = loadgen.openIdleStreams(
                self.gwPort, count, body, hold=300)
            time.sleep(0.5)
            at = loadgen.rss(self.gateway.pid)
            held = providerStats(self.ports["http"])["open_streams"]
            loadgen.closeAll(socks)
            released = self._waitStreams(0)
            run["gateway"] = {"ready": ready, "open_s": seconds,
                              "rss_before_mb": before / 2**20,
                              "rss_mb": at / 2**20,
                              "per_stream_kb": (at - before) / 1024 / max(1, ready),
                              "upstream_open": held,
                              "upstream_released_s": released}
            runs.append(run)
        return {"runs": runs, "summary": {
            "streams": count,
            "ready": min(r["gateway"]["ready"] for r in runs),
            "gateway_rss_mb": median(r["gateway"]["rss_mb"] for r in runs),
            "gateway_rss_mb_range": spread(r["gateway"]["rss_mb"] for r in runs),
            "gateway_rss_before_mb": median(r["gateway"]["rss_before_mb"] for r in runs),
            "per_stream_kb": median(r["gateway"]["per_stream_kb"] for r in runs),
            "open_s_gateway": median(r["gateway"]["open_s"] for r in runs),
            "open_s_direct": median(r["direct"]["open_s"] for r in runs),
            "direct_ready": min(r["direct"]["ready"] for r in runs),
            "provider_rss_mb": median(r["direct"]["provider_rss_mb"] for r in runs),
            "upstream_released_s": max((r["gateway"]["upstream_released_s"]
                                        for r in runs), key=lambda v: v or 1e9)}}

    def _waitStreams(self, target, timeout=30.0):
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if providerStats(self.ports["http"])["open_streams"] <= target:
                return time.monotonic() - started
            time.sleep(0.1)
        return None

    def large(self):
        out = {}
        for size, label in ((100 * 1024, "100KB"), (1024 * 1024, "1MB")):
            log("scenario 5: %s prompt", label)
            body = chatBody(size)
            self.load.run(self.gwPort, body, 1, 1)
            runs = self.both(lambda port: self.load.run(port, body, 1,
                                                        self.duration))
            for r in runs:
                r["added_p50_ms"] = r["gateway"]["p50_ms"] - r["direct"]["p50_ms"]
            added = median(r["added_p50_ms"] for r in runs)
            out[label] = {"runs": runs, "summary": {
                "bytes": len(body),
                "added_p50_ms": added,
                "added_p50_ms_range": spread(r["added_p50_ms"] for r in runs),
                "direct_p50_ms": median(r["direct"]["p50_ms"] for r in runs),
                "gateway_p50_ms": median(r["gateway"]["p50_ms"] for r in runs),
                "mb_per_s": (len(body) / 2**20) / (added / 1e3)
                if added and added > 0 else None,
                "errors": sum(r["gateway"]["errors"] for r in runs)}}
        return out

    def connect(self):
        log("scenario 6: CONNECT tunnel and TLS interception")
        try:
            sock, status, _ = loadgen.connectTunnel(self.gwPort, "127.0.0.1",
                                                    self.ports["bulk"])
            sock.close()
        except OSError as e:
            status = 0
            log("CONNECT failed: %s", e)
        if status in (0, 400, 404, 405, 501):
            return {"available": False, "reason":
                    "not available yet: the gateway answered CONNECT with %s"
                    % (status or "nothing/closed",)}
        if status != 200:
            return {"available": False, "reason":
                    "CONNECT 127.0.0.1:%d refused with %d: the proxy is there "
                    "but refused the bench's loopback destination (see "
                    "gateway.proxy in the generated config)"
                    % (self.ports["bulk"], status)}
        out = {"available": True}
        size = self.options.tunnel_mb * 2**20
        runs = []
        for _ in range(self.runs):
            sock = loadgen.connect(self.ports["bulk"])
            direct = loadgen.bulkDownload(sock, size)
            sock.close()
            sock, status, rest = loadgen.connectTunnel(
                self.gwPort, "127.0.0.1", self.ports["bulk"])
            via = loadgen.bulkDownload(sock, size, rest) if status == 200 else None
            sock.close()
            runs.append({"direct_s": direct, "tunnel_s": via,
                         "ratio": direct / via if direct and via else None})
        out["tunnel"] = {"runs": runs, "summary": {
            "bytes": size,
            "direct_mb_s": median(size / 2**20 / r["direct_s"]
                                  for r in runs if r["direct_s"]),
            "tunnel_mb_s": median(size / 2**20 / r["tunnel_s"]
                                  for r in runs if r["tunnel_s"]),
            "ratio": median(r["ratio"] for r in runs),
            "ratio_range": spread(r["ratio"] for r in runs)}}
        if self.ports.get("tls"):
            try:
                out["intercept"] = self._intercept()
            except Exception as e:  # report it, do not lose the rest
                out["intercept"] = {"available": False,
                                    "reason": "failed: %s: %s" % (
                                        type(e).__name__, e)}
        else:
            out["intercept"] = {"available": False,
                                "reason": "no TLS port (cryptography missing)"}
        return out

    def _intercept(self):
        context = loadgen.tlsClientContext()
        body = chatBody(1024)
        tlsPort = self.ports["tls"]

        def intercepted():
            sock, status, rest = loadgen.connectTunnel(self.gwPort, "localhost",
                                                       tlsPort)
            if status != 200:
                sock.close()
                raise RuntimeError("CONNECT localhost:%d answered %s"
                                   % (tlsPort, status))
            if rest:
                raise RuntimeError("bytes after the CONNECT answer")
            return context.wrap_socket(sock, server_hostname="localhost")

        def direct():
            sock = loadgen.connect(tlsPort)
            return context.wrap_socket(sock, server_hostname="localhost")

        probe = intercepted()
        status, _, _ = loadgen.call(probe, loadgen.Reader(probe), "POST",
                                    "/v1/chat/completions", body)
        probe.close()
        if status != 200:
            return {"available": False,
                    "reason": "an intercepted request answered %d" % (status,)}

        def handshakes(open_, seconds):
            count = 0
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()
            while time.perf_counter() < deadline and count < 100000:
                sock = open_()
                loadgen.call(sock, loadgen.Reader(sock), "POST",
                             "/v1/chat/completions", body)
                sock.close()
                count += 1
            return count / (time.perf_counter() - started)

        def keepAlive(open_, n):
            sock = open_()
            reader = loadgen.Reader(sock)
            for _ in range(20):
                loadgen.call(sock, reader, "POST", "/v1/chat/completions", body)
            times = sorted(loadgen.call(sock, reader, "POST",
                                        "/v1/chat/completions", body)[2]
                           for _ in range(n))
            sock.close()
            return loadgen.percentile(times, 50) * 1e3

        runs = []
        for _ in range(self.runs):
            runs.append({
                "direct_hs": handshakes(direct, self.duration / 2),
                "intercept_hs": handshakes(intercepted, self.duration / 2),
                "direct_p50_ms": keepAlive(direct, self.options.requests),
                "intercept_p50_ms": keepAlive(intercepted, self.options.requests)})
        for r in runs:
            r["added_p50_ms"] = r["intercept_p50_ms"] - r["direct_p50_ms"]
        return {"available": True, "runs": runs, "summary": {
            "handshakes_per_s": median(r["intercept_hs"] for r in runs),
            "direct_handshakes_per_s": median(r["direct_hs"] for r in runs),
            "added_p50_ms": median(r["added_p50_ms"] for r in runs),
            "added_p50_ms_range": spread(r["added_p50_ms"] for r in runs)}}


def _streamText(events):
    parts = []
    for data in events:
        if data == b"[DONE]":
            parts.append("[DONE]")
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            parts.append("<invalid>")
            continue
        for choice in chunk.get("choices") or ():
            parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


# -- ceilings


def ceilings(load, ports, options, clientCpus):
    """
    The fake provider's own ceiling (the load generator straight at it, 64
    connections) and the Python generator's ceiling (several processes).
    """
    body = chatBody(1024)
    out = {}
    log("ceilings: the fake provider and the load generators")
    out["provider_rps"] = median(load.run(ports["http"], body, 64,
                                          options.duration)["rps"]
                                 for _ in range(2))
    out["provider_load_generator"] = load.name
    saved = os.sched_getaffinity(0)
    if clientCpus:
        os.sched_setaffinity(0, clientCpus)
    try:
        processes = max(2, len(clientCpus or saved))
        r = loadgen.closedLoop(ports["http"], "/v1/chat/completions", body, 64,
                               options.duration, processes)
        out["python_loadgen_rps"] = r["rps"]
        out["python_loadgen_processes"] = processes
        sock = loadgen.connect(ports["http"])
        reader = loadgen.Reader(sock)
        stream = chatBody(256, stream=True)
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < min(2.0, options.duration):
            loadgen.timedStream(sock, reader, stream, [("x-bench-chunks", "10")])
            n += 1
        out["python_stream_client_streams_per_s"] = n / (time.perf_counter() - started)
        sock.close()
    finally:
        os.sched_setaffinity(0, saved)
    return out


# -- TLS material for interception


def makeTLS(workdir):
    """
    A throwaway CA and a C{localhost} leaf for the fake provider's TLS
    port; the CA is given to the gateway as C{upstream_ca_file}.

    @return: C{(cert path, key path, CA path)} or L{None}.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        return None
    import ipaddress
    now = datetime.datetime.now(datetime.timezone.utc)
    caKey = ec.generate_private_key(ec.SECP256R1())
    caName = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keeptrusts bench CA")])
    ca = (x509.CertificateBuilder().subject_name(caName).issuer_name(caName)
          .public_key(caKey.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                       True, False, False), True)
          .sign(caKey, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(caName).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(caKey, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = [os.path.join(workdir, name) for name in ("leaf.pem", "leaf.key", "ca.pem")]
    with open(paths[0], "wb") as f:
        f.write(leaf.public_bytes(pem))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(paths[2], "wb") as f:
        f.write(ca.public_bytes(pem))
    return tuple(paths)


# -- profile


def profileRun(options, python, workdir, config, cpus, load, spy):
    """
    A second gateway process under a profiler, loaded as in scenarios 1
    and 2; the top functions by cumulative and by own time.
    """
    body = chatBody(1024)
    seconds = options.profile_seconds
    text = []
    if options.profile == "cprofile":
        out = os.path.join(workdir, "gateway.prof")
        proc, port = startGateway(python, workdir, config, cpus, profile=out,
                                  tag="profiled")
        try:
            load.run(port, body, 1, seconds / 3)
            r = load.run(port, body, 16, 2 * seconds / 3)
            text.append("load under cProfile (16 clients): %.0f requests/s "
                        "(cProfile slows the gateway)" % (r["rps"],))
        finally:
            proc.stop()
        import io
        import pstats
        for order in ("cumulative", "tottime"):
            s = io.StringIO()
            stats = pstats.Stats(out, stream=s)
            stats.strip_dirs().sort_stats(order).print_stats(options.profile_top)
            text.append("== sorted by %s ==\n%s" % (order, s.getvalue()))
        return "\n".join(text)
    # py-spy: sample the ordinary gateway process, no instrumentation.
    proc, port = startGateway(python, workdir, config, cpus, tag="profiled")
    raw = os.path.join(workdir, "pyspy.txt")
    try:
        spyProc = subprocess.Popen(
            [spy, "record", "--pid", str(proc.pid), "--duration",
             str(int(seconds)), "--rate", "1000", "--format", "raw",
             "--function", "--nonblocking", "--output", raw],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        load.run(port, body, 1, seconds / 3)
        r = load.run(port, body, 16, 2 * seconds / 3 - 1)
        spyProc.wait(seconds + 30)
        text.append("load under py-spy (16 clients): %.0f requests/s" % (r["rps"],))
    finally:
        proc.stop()
    return "\n".join(text + [collapsedSummary(raw, options.profile_top)])


def collapsedSummary(path, top):
    """
    Self and inclusive sample shares per function from py-spy's collapsed
    stacks (C{frame;frame;... count}); the keeptrusts functions alone; and
    self time grouped by source file.
    """
    selfCounts, inclusive, byFile, total = {}, {}, {}, 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue  # a frame name with a line break in it
            n = int(count)
            frames = stack.split(";")
            total += n
            leaf = frames[-1]
            selfCounts[leaf] = selfCounts.get(leaf, 0) + n
            where = leaf.rpartition("(")[2].partition(":")[0] or leaf
            byFile[where] = byFile.get(where, 0) + n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
    ours = {frame: n for frame, n in inclusive.items()
            if "keeptrusts/" in frame}
    lines = ["py-spy: %d samples while busy (a sample counts as busy when "
             "the thread is not idle in a system call)" % (total,)]
    for title, table in (("inclusive (cumulative)", inclusive),
                         ("self", selfCounts),
                         ("inclusive, keeptrusts functions only", ours),
                         ("self, grouped by source file", byFile)):
        lines.append("== top %d by %s share ==" % (top, title))
        for frame, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            lines.append("%6.1f%%  %s" % (100.0 * n / max(1, total), frame))
    return "\n".join(lines)


# -- report


TARGETS = [
    # key, scenario, figure, target text, test(value) or None, unit
    ("s1_p50", "1", "added latency p50, 1 client, 1 KB, non-streaming",
     "<= 0.6 ms", lambda v: v <= 0.6, "ms"),
    ("s1_p99", "1", "added latency p99, 1 client", "<= 2 ms",
     lambda v: v <= 2.0, "ms"),
    ("s1_ref", "1", "yardstick: minimal Twisted proxy, added p50", "(floor)",
     None, "ms"),
    ("s2_16_rps", "2", "throughput, 16 clients", ">= 2,500 req/s",
     lambda v: v >= 2500, "req/s"),
    ("s2_16_p99", "2", "p99, 16 clients", "<= 15 ms", lambda v: v <= 15, "ms"),
    ("s2_16_ref", "2", "yardstick: minimal proxy, 16 clients", "(floor)",
     None, "req/s"),
    ("s2_16_cpu", "2", "gateway CPU per request / minimal proxy's", "(none)",
     None, "x"),
    ("s2_64_rps", "2", "throughput, 64 clients", "(none)", None, "req/s"),
    ("s2_64_p99", "2", "p99, 64 clients", "(none)", None, "ms"),
    ("s3_ttfb", "3", "added time to first streamed byte", "<= 0.5 ms",
     lambda v: v <= 0.5, "ms"),
    ("s3_total", "3", "added time, whole 10-chunk stream", "<= 1 ms",
     lambda v: v <= 1.0, "ms"),
    ("s3_delay", "3", "added delay per chunk (chunks 2-10)", "(none)", None, "ms"),
    ("s3_gap", "3", "added gap between chunks", "(none)", None, "ms"),
    ("s3_chunks", "3", "chunks in = chunks out", "equal", lambda v: v, ""),
    ("s4_rss", "4", "RSS with 1,000 idle open streams", "<= 200 MB",
     lambda v: v <= 200, "MB"),
    ("s5_100k", "5", "added latency p50, 100 KB prompt", "(none)", None, "ms"),
    ("s5_1m", "5", "added latency p50, 1 MB prompt", "(none)", None, "ms"),
    ("s5_scan", "5", "prompt text handled (1 MB / added p50)", ">= 50 MB/s",
     lambda v: v >= 50, "MB/s"),
    ("s6_tunnel", "6", "CONNECT tunnel bulk transfer vs direct", ">= 0.6",
     lambda v: v >= 0.6, "x"),
    ("s6_hs", "6", "TLS interception handshakes/s", "(none)", None, "/s"),
    ("s6_icpt", "6", "intercepted request, keep-alive, added p50",
     "<= 0.8 ms", lambda v: v <= 0.8, "ms"),
]


def figures(results):
    """
    key -> (value, direct, gateway, range, note).
    """
    f = {}
    s = results.get("scenarios", {})
    if "latency" in s:
        m = s["latency"]["summary"]
        f["s1_p50"] = (m["added_p50_ms"], m["direct_p50_ms"], m["gateway_p50_ms"],
                       m["added_p50_ms_range"], "")
        f["s1_p99"] = (m["added_p99_ms"], m["direct_p99_ms"], m["gateway_p99_ms"],
                       m["added_p99_ms_range"], "")
        if m.get("reference_added_p50_ms") is not None:
            f["s1_ref"] = (m["reference_added_p50_ms"], None, None, None,
                           "bench/minimalproxy.py, same run, same core")
    if "throughput" in s:
        for c in (16, 64):
            m = s["throughput"]["c%d" % (c,)]["summary"]
            note = "ratio %.2f of direct; gateway CPU %.0f%%" % (
                m["ratio"], 100 * (m["gateway_cpu"] or 0))
            if m["errors"]:
                note += "; %d errors" % (m["errors"],)
            f["s2_%d_rps" % (c,)] = (m["gateway_rps"], m["direct_rps"],
                                     m["gateway_rps"], m["gateway_rps_range"], note)
            f["s2_%d_p99" % (c,)] = (m["gateway_p99_ms"], m["direct_p99_ms"],
                                     m["gateway_p99_ms"], m["gateway_p99_ms_range"], "")
            if c == 16 and m.get("reference_rps") is not None:
                f["s2_16_ref"] = (m["reference_rps"], None, None, None,
                                  "bench/minimalproxy.py, same run, same core")
                f["s2_16_cpu"] = (m["cpu_per_request_ratio"], None, None, None,
                                  "a noise-resistant ratio")
    if "streams" in s:
        m = s["streams"]["summary"]
        f["s3_ttfb"] = (m["added_ttfb_ms"], m["direct_ttfb_ms"], m["gateway_ttfb_ms"],
                        m["added_ttfb_ms_range"], "")
        f["s3_total"] = (m["added_whole_ms"], m["direct_whole_ms"],
                         m["gateway_whole_ms"], m["added_whole_ms_range"],
                         "request in + last event out, from the provider's "
                         "stamps (its timer schedule left out)")
        f["s3_delay"] = (m["added_chunk_delay_ms"], None, None,
                         m["added_chunk_delay_ms_range"],
                         "provider write to client arrival, per chunk")
        f["s3_gap"] = (m["added_gap_ms"], m["direct_gap_ms"], m["gateway_gap_ms"],
                       None, "%g ms apart at the provider" % (results.get(
                           "gap_ms") or 0,))
        f["s3_chunks"] = (m["chunks_equal"], m["events_direct"], m["events_gateway"],
                          None, "data events per stream, [DONE] included")
    if "idle" in s:
        m = s["idle"]["summary"]
        f["s4_rss"] = (m["gateway_rss_mb"], m["provider_rss_mb"], m["gateway_rss_mb"],
                       m["gateway_rss_mb_range"],
                       "%d/%d open; idle %.0f MB, %.1f KB/stream; upstream "
                       "released in %s s" % (
                           m["ready"], m["streams"], m["gateway_rss_before_mb"],
                           m["per_stream_kb"],
                           "%.1f" % m["upstream_released_s"]
                           if m["upstream_released_s"] is not None else "NOT"))
    if "large" in s:
        for label, key in (("100KB", "s5_100k"), ("1MB", "s5_1m")):
            m = s["large"][label]["summary"]
            f[key] = (m["added_p50_ms"], m["direct_p50_ms"], m["gateway_p50_ms"],
                      m["added_p50_ms_range"],
                      "%.0f MB/s" % m["mb_per_s"] if m["mb_per_s"] else "")
        m = s["large"]["1MB"]["summary"]
        f["s5_scan"] = (m["mb_per_s"], None, None, None,
                        "includes JSON parsing and forwarding")
    if "connect" in s:
        m = s["connect"]
        if not m.get("available"):
            for key in ("s6_tunnel", "s6_hs", "s6_icpt"):
                f[key] = ("skip", None, None, None, m["reason"])
        else:
            t = m["tunnel"]["summary"]
            f["s6_tunnel"] = (t["ratio"], t["direct_mb_s"], t["tunnel_mb_s"],
                              t["ratio_range"], "MB/s direct vs tunnel")
            i = m.get("intercept", {})
            if i.get("available"):
                j = i["summary"]
                f["s6_hs"] = (j["handshakes_per_s"], j["direct_handshakes_per_s"],
                              j["handshakes_per_s"], None, "")
                f["s6_icpt"] = (j["added_p50_ms"], None, None,
                                j["added_p50_ms_range"], "")
            else:
                for key in ("s6_hs", "s6_icpt"):
                    f[key] = ("skip", None, None, None, i.get("reason", ""))
    return f


# DESIGN.md section 9 gives the floor (the minimal Twisted proxy) on its own
# 2-core machine: the targets keep the gateway within reach of that floor,
# so on another machine they scale as its floor does.
DESIGN_FLOOR_ADDED_MS = 0.38
DESIGN_FLOOR_RPS = 3500.0
# key -> (target, how it scales: "latency" with the floor's added latency,
# "speed" with its throughput, "queue" inversely with its throughput).
SCALED = [("s1_p50", 0.6, "latency"), ("s1_p99", 2.0, "latency"),
          ("s2_16_rps", 2500.0, "speed"), ("s2_16_p99", 15.0, "queue"),
          ("s3_ttfb", 0.5, "latency"), ("s3_total", 1.0, "latency"),
          ("s5_scan", 50.0, "speed"), ("s6_icpt", 0.8, "latency")]


def scaledToFloor(f):
    """
    The targets as this machine's floor scales them, when the run measured
    the floor (scenarios 1 and 2 with the yardstick): lines of Markdown.
    """
    if "s1_ref" not in f or "s2_16_ref" not in f:
        return []
    floorMs, floorRps = f["s1_ref"][0], f["s2_16_ref"][0]
    if not floorMs or floorMs <= 0 or not floorRps:
        return []
    factors = {"latency": floorMs / DESIGN_FLOOR_ADDED_MS,
               "speed": floorRps / DESIGN_FLOOR_RPS,
               "queue": DESIGN_FLOOR_RPS / floorRps}
    out = ["", "Scaled to this machine's floor: the minimal proxy measured "
           "+%s ms and %s req/s here, DESIGN.md's +%s ms and %s req/s, so "
           "latency targets x%.2f and speed targets x%.2f:" % (
               _num(floorMs), _num(floorRps), DESIGN_FLOOR_ADDED_MS,
               _num(DESIGN_FLOOR_RPS), factors["latency"], factors["speed"]),
           ""]
    names = {key: (name, unit) for key, _, name, _, _, unit in TARGETS}
    for key, target, kind in SCALED:
        value = f.get(key, (None,))[0]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        scaled = target * factors[kind]
        ok = value >= scaled if kind == "speed" else value <= scaled
        name, unit = names[key]
        out.append("- %s: %s %s %s, measured %s: %s" % (
            name, ">=" if kind == "speed" else "<=", _num(scaled), unit,
            _num(value), "PASS" if ok else "FAIL"))
    return out


def _fmt(value, unit=""):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) for v in value) and len(value) == 2 \
                and unit:
            return "%s – %s" % (_num(value[0]), _num(value[1]))
        return "/".join(str(v) for v in value)
    return _num(value)


def _num(v):
    if isinstance(v, int) or abs(v) >= 100:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def markdown(results):
    f = figures(results)
    m = results["machine"]
    out = ["# keeptrusts benchmark: %s" % (results["finished"],), "",
           "Command: `%s`" % (results["command"],), "",
           "Machine: %s, %s cores (%s usable), Linux %s; gateway on Python %s, "
           "Twisted %s, %s; load %s (%s); load average %s at start, %s at "
           "end." % (
               m["cpu_model"], m["cores"], m["cores_usable"], m["kernel"],
               m["python"], m["twisted"],
               "Hyperscan" if m.get("hyperscan") else "no Hyperscan",
               results["load_generator"],
               results["pinning"],
               " ".join("%.2f" % x for x in m["loadavg_start"]),
               " ".join("%.2f" % x for x in m["loadavg_end"])), "",
           "Each figure is the median of %d runs (the range is min – max over "
           "runs); every run measures the gateway and a direct call to the "
           "fake provider in the same run." % (results["runs"],), ""]
    c = results.get("ceilings")
    if c:
        out += ["Ceilings: fake provider %s req/s (%s, 64 connections); Python "
                "load generator %s req/s (%d processes); stream client %s "
                "streams/s." % (_num(c["provider_rps"]),
                                c["provider_load_generator"],
                                _num(c["python_loadgen_rps"]),
                                c["python_loadgen_processes"],
                                _num(c["python_stream_client_streams_per_s"])), ""]
    out += ["| # | figure | target | measured | direct | gateway | range over runs | pass | notes |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, scenario, name, target, test, unit in TARGETS:
        if key not in f:
            continue
        value, direct, via, rng, note = f[key]
        if value == "skip":
            mark = "skip"
        elif value is None:
            mark = "?"
        elif test is None:
            mark = "—"
        else:
            mark = "PASS" if test(value) else "FAIL"
        shown = _fmt(value) if not isinstance(value, bool) else _fmt(value)
        if unit and not isinstance(value, (bool, str)) and value is not None:
            shown += " " + unit
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            scenario, name, target, shown, _fmt(direct), _fmt(via),
            _fmt(rng, unit), mark, note))
    out += scaledToFloor(f)
    if results.get("profile"):
        out += ["", "Profile: bench/results/profile.txt"]
    return "\n".join(out) + "\n"


# -- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 runs, shorter durations")
    parser.add_argument("--scenarios", default="1,2,3,4,5,6",
                        help="comma-separated numbers or names "
                             "(latency, throughput, streams, idle, large, connect)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--duration", type=float,
                        help="seconds per measured load run")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the gateway and the fake provider")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the gateway to its own core")
    parser.add_argument("--no-install", action="store_true",
                        help="never apt-get install wrk")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"),
                        default="auto")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not measure bench/minimalproxy.py beside "
                             "the gateway in scenarios 1 and 2")
    parser.add_argument("--profile", choices=("cprofile", "py-spy"))
    parser.add_argument("--py-spy", dest="pyspy", help="path to py-spy")
    parser.add_argument("--profile-seconds", type=float, default=15.0)
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument("--idle-streams", type=int, default=1000)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (logs, journal)")
    options = parser.parse_args(argv)
    options.runs = options.runs or (3 if options.quick else 5)
    options.duration = options.duration or (2.0 if options.quick else 4.0)
    options.streams = 20 if options.quick else 40
    options.requests = 300 if options.quick else 1000
    options.tunnel_mb = 64 if options.quick else 256
    wanted = []
    for item in options.scenarios.split(","):
        item = item.strip()
        name = SCENARIOS.get(item, item)
        if name not in SCENARIOS.values():
            parser.error("unknown scenario %r" % (item,))
        wanted.append(name)

    cpus = sorted(os.sched_getaffinity(0))
    if options.no_pin or len(cpus) < 2:
        gwCpus = providerCpus = clientCpus = None
        pinning = "no pinning"
    else:
        gwCpus = {cpus[0]}
        providerCpus = {cpus[1]}
        clientCpus = set(cpus[2:]) or {cpus[1]}
        pinning = "gateway pinned to CPU %d, provider to %s, clients to %s" % (
            cpus[0], sorted(providerCpus), sorted(clientCpus))

    wrk = None if options.loadgen == "python" else findWrk(not options.no_install)
    if options.loadgen == "wrk" and not wrk:
        raise SystemExit("wrk not found; install it (apt-get install -y wrk)")
    workdir = tempfile.mkdtemp(prefix="keeptrusts-bench-")
    load = Load(wrk, workdir, clientCpus, max(2, len(clientCpus or cpus)))
    results = {"command": " ".join(["python bench/run.py"] + (argv or sys.argv[1:])),
               "started": datetime.datetime.now().isoformat(timespec="seconds"),
               "machine": machine(options.python), "runs": options.runs,
               "duration_s": options.duration, "load_generator": load.name,
               "pinning": pinning, "scenarios": {}, "workdir": workdir,
               "gap_ms": options.gap_ms}
    log("work dir %s; load generator %s; %s", workdir, load.name, pinning)
    if clientCpus:
        # This process is a client too (streams, large prompts, CONNECT):
        # on the gateway's core it would take turns with the gateway.
        os.sched_setaffinity(0, clientCpus)

    tls = makeTLS(workdir) if "connect" in wanted else None
    provider, ports = startProvider(options.python, workdir, providerCpus,
                                    tls[:2] if tls else None)
    procs = [provider]
    try:
        proxy = PROXY % {"ports": ", ".join(str(p) for p in (
            ports["bulk"], ports["tls"]) if p),
            "ca": ", upstream_ca_file: %s" % (tls[2],) if tls else ""}
        config = writeConfig(workdir, ports["http"], proxy)
        ok, why = configLoads(options.python, config)
        if not ok:
            log("the config with proxy/intercept settings does not load (%s); "
                "going on without them", why.splitlines()[-1] if why else "")
            config = writeConfig(workdir, ports["http"], "")
            ok, why = configLoads(options.python, config)
            if not ok:
                raise SystemExit("the bench config does not load:\n" + why)
        gateway, gwPort = startGateway(options.python, workdir, config, gwCpus)
        procs.append(gateway)
        results["ceilings"] = ceilings(load, ports, options, clientCpus)
        bench = Bench(options, gateway, gwPort, provider, ports, load)
        if not options.no_reference and {"latency", "throughput"} & set(wanted):
            reference = startReference(options.python, workdir, ports["http"],
                                       gwCpus)
            procs.append(reference[0])
            bench.reference = reference
        for name in ("latency", "throughput", "streams", "large", "idle",
                     "connect"):
            if name in wanted:
                results["scenarios"][name] = getattr(bench, name)()
                if not gateway.alive():
                    raise SystemExit("the gateway died during %s" % (name,))
        results["gateway_rss_end_mb"] = loadgen.rss(gateway.pid) / 2**20
        gateway.stop()
        if options.profile:
            spy = findPySpy(options.pyspy) if options.profile == "py-spy" else None
            if options.profile == "py-spy" and not spy:
                log("py-spy not found: pip install py-spy (into any venv) "
                    "or use --profile cprofile")
            else:
                log("profiling the gateway (%s, %g s)", options.profile,
                    options.profile_seconds)
                text = profileRun(options, options.python, workdir, config,
                                  gwCpus, load, spy)
                os.makedirs(options.out, exist_ok=True)
                with open(os.path.join(options.out, "profile.txt"), "w") as f:
                    f.write(text)
                results["profile"] = os.path.join(options.out, "profile.txt")
    finally:
        for proc in reversed(procs):
            proc.stop()
        results["machine"]["loadavg_end"] = list(os.getloadavg())
        results["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
        os.makedirs(options.out, exist_ok=True)
        if results["scenarios"]:
            with open(os.path.join(options.out, "latest.json"), "w") as f:
                json.dump(results, f, indent=1, default=str)
            with open(os.path.join(options.out, "latest.md"), "w") as f:
                f.write(markdown(results))
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
