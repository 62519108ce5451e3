"""
Values that policies exchange with the pipeline.
"""

from typing import Optional, Tuple

import attr

ALLOW = "allow"
REDACT = "redact"
BLOCK = "block"
ERROR = "error"
# The order verdicts overrule each other in, for a request and its answer.
RANK = {ALLOW: 0, REDACT: 1, BLOCK: 2, ERROR: 3}


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Finding:
    """
    What a policy found: a type and a count, never the matched text.
    """

    type: str
    count: int = 1


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Exchange:
    """
    What the policies know of one request.

    @ivar texts: every text the request carries, in the order the request
        adapter extracted them (messages, system prompts, prompt, input).
    """

    request_id: str
    mode: str = "api"
    provider: str = ""
    target: str = ""
    endpoint: str = ""
    method: str = "POST"
    host: str = ""
    user: str = "anonymous"
    agent: Optional[str] = None
    model: Optional[str] = None
    stream: bool = False
    texts: Tuple[str, ...] = ()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Decision:
    """
    A policy's answer.

    @ivar texts: for C{redact}, the replacement texts (one per text given).
    @ivar message: for C{block}, what the caller is told (never a secret).
    """

    verdict: str = ALLOW
    findings: Tuple[Finding, ...] = ()
    texts: Optional[Tuple[str, ...]] = None
    message: Optional[str] = None


# Nothing found: one value, shared (a Decision is frozen).
ALLOWED = Decision()


class Blocked(Exception):
    """
    Raised by an L{IOutputScanner} when a streamed answer must stop.
    """

    def __init__(self, policy, findings, message):
        Exception.__init__(self, message)
        self.policy = policy
        self.findings = tuple(findings)
        self.message = message


def countFindings(types):
    """
    Fold an iterable of finding types into sorted L{Finding} counts.
    """
    counts = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    return tuple(Finding(t, n) for t, n in sorted(counts.items()))
