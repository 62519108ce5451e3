# -*- test-case-name: tests.test_service -*-
"""
The gateway as a Twisted service: the journal, the pooled agent, the parts
built from the configuration, the listener; reload on SIGHUP, drain on
stop.
"""

import os
import signal

import attr
from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from keeptrusts.admin import adminRoot, healthReport
from keeptrusts.api.draining import ActiveRequests
from keeptrusts.api.http1 import KeptConnections
from keeptrusts.events import eventRecord
from keeptrusts.journal import Journal
from keeptrusts.limits import MemoryCounters
from keeptrusts.metrics import MeteredJournal, Metrics
from keeptrusts.parts import (
    Current, buildFront, buildParts, buildSite, requireAccessKeys)
from keeptrusts.tls import TLSSetupError
from keeptrusts.tls.ca import CertificateAuthority
from keeptrusts.tls.sni import LeafContexts
from keeptrusts.policy.scrub import scrubbed
from keeptrusts.policy.values import Exchange
from keeptrusts.retentionloop import Retention, retentionDays, threadRunner

log = Logger()

# How long a stop waits for answers in flight (streams) before cutting them.
DRAIN_SECONDS = 30.0

def _configRecord(verdict, configName, message=None):
    exchange = Exchange(request_id="config", mode="api", method="RELOAD",
                        user="")
    record = eventRecord("config", verdict, exchange, configName)
    if message is not None:
        record["message"] = message
    return record


class GatewayService(service.Service):
    """
    @param loadConfig: called on reload; returns a new L{Config} or raises
        L{SystemExit} with the path-precise message.
    @param accessLines: the L{IAccessLog} of the access log, or L{None}
        for twisted.logger.
    @ivar port: the listening port, once started.
    @ivar current: the L{Current} parts in force.
    """

    drainSeconds = DRAIN_SECONDS

    def __init__(self, config, reactor, policyFactories, environ=os.environ,
                 loadConfig=None, accessLines=None):
        self.config = config
        self._accessLines = accessLines
        self._reactor = reactor
        self._factories = policyFactories
        self._environ = environ
        self._loadConfig = loadConfig
        self.metrics = Metrics()
        self.active = ActiveRequests()
        self.metrics.openRequests.set_function(lambda: self.active.count)
        self.port = None
        self.journal = None
        self.current = None
        self.ready = False
        self.startedAt = None
        self._pool = None
        self._counters = MemoryCounters()
        self.retention = None
        self._reloading = False

    def privilegedStartService(self):
        # Listen here, synchronously, so a port in use stops twistd at once.
        gateway = self.config.gateway
        runInThread = threadRunner(self._reactor)
        journal = Journal.open(
            os.path.join(gateway.state_dir, "journal"), self._reactor,
            sync=gateway.journal.sync,
            segmentMaxBytes=gateway.journal.segment_max_bytes,
            runInThread=runInThread)
        self.journal = MeteredJournal(journal, self.metrics, self._reactor)
        try:
            self.retention = Retention.fromConfig(self.config, journal,
                                                  self._reactor,
                                                  runInThread=runInThread)
        except ValueError as e:
            raise SystemExit("keeptrusts: %s" % (e,))
        self._pool = KeptConnections(self._reactor)
        try:
            self.current = Current(self._build(self.config))
            certificates = LeafContexts(CertificateAuthority.loadOrCreate(
                gateway.state_dir, self._reactor))
        except TLSSetupError as e:
            raise SystemExit("keeptrusts: %s" % (e,))
        site = buildSite(self.config, self._reactor, self.journal, self._pool,
                         self._factories, self._environ, self.current,
                         adminRoot(self), self.active, self._accessLines)
        front = buildFront(self.config, self._reactor, site, self.current,
                           certificates, self.journal, self.active,
                           self.metrics.openTunnels, self._accessLines)
        listening = serverFromString(self._reactor, gateway.listen).listen(
            front)
        result = []
        listening.addBoth(result.append)
        if not result or hasattr(result[0], "getErrorMessage"):
            reason = result[0].getErrorMessage() if result else "pending"
            raise SystemExit("cannot listen on %s: %s"
                             % (gateway.listen, reason))
        self.port = result[0]
        self.startedAt = self._reactor.seconds()
        self.ready = True
        log.info("keeptrusts listening on {address} ({config})",
                 address=self.port.getHost(), config=self.config.name)
        service.Service.privilegedStartService(self)

    def _build(self, config):
        return buildParts(config, self._reactor, self.journal, self._pool,
                          self._factories, self._environ, self._counters)

    def startService(self):
        service.Service.startService(self)
        self.retention.start()
        if hasattr(signal, "SIGHUP"):
            # Without a handler SIGHUP ends twistd; this one only schedules.
            signal.signal(signal.SIGHUP, lambda *_: self._reactor.callFromThread(
                self.reload))

    def health(self):
        return healthReport(self, self._reactor.seconds())

    def reload(self):
        """
        Read the configuration again and swap it in atomically; requests in
        flight finish with the parts they started with.  A configuration
        that fails leaves the running one in force.

        @return: L{None} when reloaded, else the problems (text).
        """
        if self._reloading or self._loadConfig is None:
            return "a reload is in progress" if self._reloading else \
                "this gateway cannot reload its configuration"
        self._reloading = True
        try:
            config = self._asBound(self._loadConfig())
            parts = self._build(config)
        except SystemExit as e:
            # Scrubbed: a key pasted into the configuration is named in its
            # problems (an unknown key, a value), and the journal keeps
            # what it is given for good.
            problems = scrubbed(str(e))
            log.error("configuration reload refused; keeping {config}:\n"
                      "{problems}", config=self.current.parts.config.name,
                      problems=problems)
            self.journal.append(_configRecord(
                "error", self.current.parts.config.name, problems))
            return problems
        finally:
            self._reloading = False
        self.current.parts = parts
        self.retention.days = retentionDays(config)
        self.journal.append(_configRecord("allow", config.name))
        log.info("configuration reloaded: {config}", config=config.name)
        return None

    def _asBound(self, config):
        """
        C{config} as the running listener serves it: a new C{gateway.listen}
        takes effect at the next start, so until then the configuration is
        judged (access keys off loopback) and served as bound here.

        @raise SystemExit: it would leave this listener open without keys.
        """
        listen = self.config.gateway.listen
        if config.gateway.listen == listen:
            return config
        log.warn("gateway.listen changed: restart to listen there")
        config = attr.evolve(config, gateway=attr.evolve(
            config.gateway, listen=listen))
        requireAccessKeys(config.gateway)
        return config

    def stopService(self):
        """
        Drain: stop accepting, let answers in flight finish (up to
        L{drainSeconds}), close the pool, flush the journal.
        """
        service.Service.stopService(self)
        self.ready = False
        sweeping = self.retention.stop()
        d = defer.maybeDeferred(self.port.stopListening)
        d.addBoth(lambda _: self._drain())
        d.addBoth(lambda _: self._pool.closeCachedConnections())
        d.addBoth(lambda _: sweeping)
        d.addBoth(lambda _: self.journal.close())
        return d

    def _drain(self):
        idle = self.active.whenIdle()
        if idle.called:
            return idle
        log.info("draining {count} requests", count=self.active.count)
        timeout = self._reactor.callLater(self.drainSeconds, idle.cancel)
        idle.addErrback(lambda f: f.trap(defer.CancelledError))
        idle.addBoth(lambda _: timeout.cancel() if timeout.active() else None)
        return idle
