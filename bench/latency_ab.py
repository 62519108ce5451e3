#!/usr/bin/env python3
"""
The added latency of several builds at one client, measured apart from the
machine's changing speed: each build's gateway runs at once, all pinned to
the same core, and calls go to them in turn, in a new random order each
round, one at a time: a streamed call (10 chunks, 2 ms apart at the fake
provider) and a plain one.

    python bench/latency_ab.py [--calls 200] TREE [TREE ...]

A TREE is a checkout of the repository (`git worktree add /tmp/old REV`);
the fake provider and the client come from this one.  Prints, per build,
the medians (and 90th percentiles) of the time to the first streamed
event, of each chunk's delivery (the provider's write to the client's
arrival, the median over a stream's chunks 2-10) and of a plain call.
"""

import argparse
import json
import os
import random
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cpu_ab  # noqa: E402
import loadgen  # noqa: E402
from prompts import chatBody  # noqa: E402

_STREAM = [("x-bench-chunks", "10"), ("x-bench-gap-ms", "2")]


def quantile(values, q):
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--calls", type=int, default=200)
    options = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})  # the client beside the provider
    plain = chatBody(1024)
    streamed = json.dumps(dict(json.loads(plain), stream=True)).encode()
    with cpu_ab.buildsSideBySide(options.trees, "keeptrusts-latency-ab-") as (
            _, gateways):
        clients = {}
        for tree, _, port in gateways:
            sock = loadgen.connect(port)
            clients[tree] = (sock, loadgen.Reader(sock))
        figures = {tree: ([], [], []) for tree in options.trees}
        order = list(options.trees)
        for _ in range(options.calls):
            random.shuffle(order)
            for tree in order:
                sock, reader = clients[tree]
                first, chunks, calls = figures[tree]
                timed = loadgen.timedStream(sock, reader, streamed, _STREAM)
                first.append(timed["ttfb"] * 1e3)
                chunks.append(statistics.median(timed["delivery"][1:]) * 1e3)
                calls.append(loadgen.call(sock, reader, "POST",
                                          "/v1/chat/completions", plain)[2]
                             * 1e3)
        for tree in options.trees:
            first, chunks, calls = figures[tree]
            print("%-30s first event %.3f (p90 %.3f) ms, chunk delivery "
                  "%.3f ms, plain call %.3f (p90 %.3f) ms" % (
                      tree, statistics.median(first), quantile(first, 0.9),
                      statistics.median(chunks), statistics.median(calls),
                      quantile(calls, 0.9)))


if __name__ == "__main__":
    main()
