# -*- test-case-name: tests.test_api, tests.test_limits -*-
"""
A call's journal records: the input record held until the provider has the
request, the output record with its latency, cost and attempts, the limits
charged, and the drain told once the last is written.
"""

from keeptrusts.api.cost import costOf
from keeptrusts.api.gateway import journalFailed
from keeptrusts.events import eventRecord, policyEntries
from keeptrusts.policy.values import RANK


class CallRecords:
    """
    The journal records of a L{keeptrusts.api.pipeline.Call}, which it is a
    base of: these methods work on the call's state.
    """

    def _journal(self, phase, verdict, outcomes, status=None, tokens=None,
                 client_gone=False):
        self._append(self._record(phase, verdict, outcomes, status, tokens,
                                  client_gone))

    def _append(self, record):
        """
        Journal the held input record, if any, then C{record}, if any.
        """
        held, self._heldRecord = self._heldRecord, None
        if held is not None:
            exchange, result, decided = held
            held = self._record("input", result.verdict, result.outcomes,
                                exchange=exchange, now=decided)
        for r in (held, record):
            if r is not None:
                self.lastWrite = self.gateway.journal.append(r)
                self.lastWrite.addErrback(journalFailed)
        if record is not None and record["phase"] == "output":
            self._recorded()

    def _recorded(self):
        """
        The request's last record is written.
        """
        release, self._release = self._release, None
        if release is not None:
            release()

    def _record(self, phase, verdict, outcomes, status=None, tokens=None,
                client_gone=False, exchange=None, now=None):
        # The access log line shows the request's strongest verdict.
        shown = getattr(self.request, "ktVerdict", None)
        if shown is None or RANK.get(verdict, 0) > RANK.get(shown, 0):
            self.request.ktVerdict = verdict
        if now is None:
            now = self.gateway.timer()
        upstream = (None if phase == "input" or self.upstreamStarted is None
                    else round((now - self.upstreamStarted) * 1000.0, 3))
        record = eventRecord(
            phase, verdict, exchange or self.exchange,
            self.gateway.configName,
            policyEntries(outcomes),
            status=status, tokens=tokens, degraded=self.degraded,
            latency={"policy": round(self.policyMs, 3), "upstream": upstream,
                     "total": round((now - self.started) * 1000.0, 3)})
        if phase == "output":
            target, _ = self.attempts[max(len(self.tried) - 1, 0)]
            record["cost_usd"] = costOf(tokens, self.exchange.model,
                                        target.pricing)
            if self.gateway.limits is not None:
                self.gateway.limits.account(
                    self.exchange.user, self.exchange.agent, tokens,
                    record["cost_usd"])
        if client_gone:
            record["client_gone"] = True
        if phase == "output" and len(self.tried) > 1:
            record["attempts"] = list(self.tried)
        return record
