#!/usr/bin/env python3
"""
The gateway's CPU per request for several builds, measured apart from the
machine's changing speed: each build's gateway runs at once, all pinned to
the same core, and short wrk loads go to them in turn, many rounds; each
gateway's CPU time is read from /proc.

    python bench/cpu_ab.py [--rounds 12] TREE [TREE ...]

A TREE is a checkout of the repository (`git worktree add /tmp/old REV`);
the fake provider and the load come from this one.  Needs wrk and Linux.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402
from prompts import chatBody  # noqa: E402


def cpuSeconds(pid):
    fields = open("/proc/%d/stat" % (pid,)).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def buildsSideBySide(trees, prefix):
    """
    The fake provider (on CPU 1) and one gateway per tree in front of it,
    all pinned to CPU 0; stopped on leaving.

    @return: a context giving C{(work directory, [(tree, Popen, port)])},
        once the gateways have had time to start.
    """
    python = sys.executable
    workdir = tempfile.mkdtemp(prefix=prefix)
    provider, ports = run.startProvider(python, workdir, {1})
    gateways = []
    try:
        _startGateways(python, workdir, ports["http"], trees, gateways)
        yield workdir, gateways
    finally:
        for _, proc, _ in gateways:
            proc.terminate()
        provider.stop()


def _startGateways(python, workdir, providerPort, trees, gateways):
    for i, tree in enumerate(trees):
        home = os.path.join(workdir, "g%d" % (i,))
        os.makedirs(home)
        config = run.writeConfig(home, providerPort, "")
        port = run.freePort()
        env = dict(os.environ, PYTHONPATH=os.path.abspath(tree),
                   BENCH_FAKE_KEY="sk-bench-provider-key")
        # Logging to standard output, as the systemd unit does.
        proc = subprocess.Popen(
            [python, "-c", run.TWISTD, "-n", "--pidfile=", "keeptrusts",
             "-c", config,
             "--listen", "tcp:%d:interface=127.0.0.1" % (port,)],
            cwd=home, env=env,
            stdout=open(os.path.join(home, "gateway.log"), "wb"),
            stderr=subprocess.STDOUT, preexec_fn=run._pinned({0}))
        gateways.append((tree, proc, port))
    time.sleep(6)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=2.0)
    options = parser.parse_args(argv)
    wrk = run.findWrk(install=False)
    if not wrk:
        raise SystemExit("wrk not found (apt-get install -y wrk)")
    with buildsSideBySide(options.trees, "keeptrusts-cpu-ab-") as (
            workdir, gateways):
        body = os.path.join(workdir, "body.json")
        with open(body, "wb") as f:
            f.write(chatBody(1024))
        lua = os.path.join(workdir, "post.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    'local f = io.open("%s", "rb"); wrk.body = f:read("*a"); '
                    'f:close()\n' % (body,))
        totals = {tree: [0.0, 0] for tree, _, _ in gateways}
        for n in range(options.rounds):
            order = gateways if n % 2 == 0 else gateways[::-1]
            for tree, proc, port in order:
                before = cpuSeconds(proc.pid)
                out = subprocess.run(
                    ["taskset", "-c", "1", wrk, "-t1", "-c16",
                     "-d%gs" % (options.seconds,), "-s", lua,
                     "http://127.0.0.1:%d/v1/chat/completions" % (port,)],
                    capture_output=True, text=True).stdout
                done = int(re.search(r"(\d+) requests in", out).group(1))
                totals[tree][0] += cpuSeconds(proc.pid) - before
                totals[tree][1] += done
        for tree, (seconds, done) in totals.items():
            print("%-30s %7d requests, %7.1f µs CPU per request"
                  % (tree, done, seconds / max(done, 1) * 1e6))


if __name__ == "__main__":
    main()
