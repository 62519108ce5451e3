# -*- test-case-name: tests.test_testing -*-
"""
Fakes shared by the tests: an LLM provider that speaks the providers' wire
formats (JSON and SSE streams) and a journal kept in memory.

L{FakeProvider} is a L{Resource} mounted as the root of a L{Site}; the
gateway under test points a target at C{http://127.0.0.1:<port>/v1} (see
L{listenFake}).  What it answers, and how it misbehaves, is a frozen
L{Script} set per test::

    provider = FakeProvider(reactor)
    port, baseURL = listenFake(reactor, provider, self.addCleanup)
    provider.script = Script(chunks=["Hel", "lo"], hold=True)
    ...
    provider.requests[-1].headers["authorization"]

Every timed call goes through the injected clock and is cancelled when the
client goes away or when L{FakeProvider.stop} runs, so trial never sees a
dirty reactor.

The modules: L{script} (what to answer), L{provider} (the resource and
its routes), L{replies} (one answer over time), L{answers} with
L{openai}, L{anthropic} and L{sourcegraph} (the formats), L{journal} and
L{wait}.
"""

from keeptrusts.testing.journal import GENESIS_HASH, MemoryJournal, recordHash
from keeptrusts.testing.provider import DEFAULT_MODELS, FakeProvider, listenFake
from keeptrusts.testing.script import (
    DEFAULT_ANSWER, Received, Script, echoPrompt, errorBody, promptTexts)
from keeptrusts.testing.wait import waitUntil

__all__ = [
    "DEFAULT_ANSWER", "DEFAULT_MODELS", "GENESIS_HASH", "FakeProvider",
    "MemoryJournal", "Received", "Script", "echoPrompt", "errorBody",
    "listenFake", "promptTexts", "recordHash", "waitUntil"]
