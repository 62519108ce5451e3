# -*- test-case-name: tests.test_api -*-
"""
Journal records of what the gateway decided (DESIGN.md section 5).  They
carry finding types and counts, never a matched text.
"""

import os

from keeptrusts.policy.scrub import scrubbed, scrubbedName


def policyEntries(outcomes):
    return [{"name": o.name, "verdict": o.verdict, "ms": o.ms,
             "findings": [{"type": f.type, "count": f.count}
                          for f in o.findings]}
            for o in outcomes]


def eventRecord(phase, verdict, exchange, configName, policies=(),
                status=None, tokens=None, latency=None, degraded=False,
                cost=None):
    """
    @param exchange: the L{Exchange} the event is about.
    @param policies: the list of C{policyEntries}.
    @param latency: C{{"policy": ms, "upstream": ms, "total": ms}}.
    """
    # What the client chose (ids, names, the method, the path, the
    # destination) is scrubbed of keys; a host (the target of proxied
    # traffic too) in any of its casings, DNS names having none, and the
    # method so (client libraries upper-case it: a key's most of it).
    return {
        "event_id": os.urandom(16).hex(),
        "request_id": scrubbed(exchange.request_id),
        "phase": phase,
        "verdict": verdict,
        "mode": exchange.mode,
        "provider": exchange.provider,
        "target": scrubbedName(exchange.target),
        "endpoint": scrubbed(exchange.endpoint),
        "method": scrubbedName(exchange.method),
        "host": scrubbedName(exchange.host),
        "user": scrubbed(exchange.user),
        "agent": scrubbed(exchange.agent),
        "model": scrubbed(exchange.model),
        "stream": exchange.stream,
        "status": status,
        "policies": list(policies),
        "tokens": tokens or {"input": None, "output": None},
        "cost_usd": cost,
        "latency_ms": latency or {"policy": None, "upstream": None,
                                  "total": None},
        "config": configName,
        "degraded": degraded,
    }
