"""
Request bodies for the benchmarks: prompts of a given size made of
code-like and log-like text, with nothing a credential pattern matches
(so every size measures the scan, not a rewrite).
"""

import json
import random

_WORDS = (
    "request response handler timeout retry buffer socket reactor deferred "
    "callback errback factory protocol transport producer consumer header "
    "journal policy chain upstream gateway stream chunk token model user "
    "message content redact allow block verdict finding config limit value "
    "the a of to in is it for on with as at by from this that be are was "
    "def return class import self if else elif while try except finally "
    "yield lambda None True False print len range dict list tuple set"
).split()


def promptText(size, seed=1):
    """
    About C{size} characters of deterministic code/log-like text.
    """
    rng = random.Random(seed)
    lines = []
    total = 0
    n = 0
    while total < size:
        n += 1
        kind = n % 3
        if kind == 0:
            line = "    %s = %s(%s, %d)  # %s" % (
                rng.choice(_WORDS), rng.choice(_WORDS), rng.choice(_WORDS),
                rng.randrange(10000), " ".join(rng.sample(_WORDS, 5)))
        elif kind == 1:
            line = "2026-11-27T01:%02d:%02d.%03dZ INFO %s: %s took %d ms" % (
                rng.randrange(60), rng.randrange(60), rng.randrange(1000),
                rng.choice(_WORDS), " ".join(rng.sample(_WORDS, 6)),
                rng.randrange(500))
        else:
            line = " ".join(rng.choice(_WORDS) for _ in range(12)) + "."
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)[:size]


def chatBody(promptSize, stream=False):
    body = {"model": "gpt-fake",
            "messages": [{"role": "system", "content": "You are helpful."},
                         {"role": "user", "content": promptText(promptSize)}]}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode("utf-8")
