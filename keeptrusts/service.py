# -*- test-case-name: tests.test_service -*-
"""
The gateway as a Twisted service, composed from small parts: the journal,
the policy chain, the pooled agent, the site and its listener.
"""

import os
import re
from urllib.parse import urlsplit

import attr

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource

from keeptrusts.api.pipeline import Gateway
from keeptrusts.api.resource import V1Resource
from keeptrusts.api.routes import RouteTable, Rule
from keeptrusts.api.routing import CircuitBreaker, Router
from keeptrusts.api.site import GatewaySite
from keeptrusts.api.upstream import Upstream, usableTargets
from keeptrusts.identity import Identify
from keeptrusts.journal import Journal
from keeptrusts.limits import Limits, MemoryCounters
from keeptrusts.policy.chain import PolicyChain
from keeptrusts.proxy.forward import ForwardProxy
from keeptrusts.tls.trust import upstreamPolicy

log = Logger()

_LOOPBACK = ("127.", "::1", "localhost")


def isLoopback(description):
    """
    Whether a server endpoint description listens on loopback only.
    Socket activation (C{systemd:}) is the unit's business.
    """
    kind, _, rest = description.partition(":")
    if kind in ("systemd", "unix"):
        return True
    for part in re.split(r"(?<!\\):", rest):
        if part.startswith("interface="):
            address = part[len("interface="):].replace("\\:", ":")
            return address.strip("[]").startswith(_LOOPBACK)
    return False


def buildChain(config, policyFactories, clock, names=None):
    policies = [policyFactories[kind].build(config.policy[kind], clock)
                for kind in (config.chain if names is None else names)]
    return PolicyChain(policies, config.gateway.fail_mode, clock)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Parts:
    """
    What the listener's resources share, built once per configuration.
    """

    gateway: object
    targets: tuple
    targetsByHost: dict
    identify: object


def buildParts(config, reactor, journal, pool, policyFactories, environ):
    limits = config.gateway.limits
    # Upstream TLS is verified: the platform's roots plus upstream_ca_file.
    agent = Agent(reactor, contextFactory=upstreamPolicy(
                      config.gateway.intercept.upstream_ca_file),
                  connectTimeout=limits.upstream_connect_timeout_s, pool=pool)
    audit = config.policy.get("audit-logger")
    targets = usableTargets(config.providers.targets, environ)
    router = Router(targets, config.providers.routing,
                    config.providers.fallback, CircuitBreaker(reactor),
                    config.policy.get("data-routing-policy")
                    if "data-routing-policy" in config.chain else None)
    chain = buildChain(config, policyFactories, reactor)
    routes = RouteTable(tuple(
        Rule(route.match, buildChain(config, policyFactories, reactor,
                                     route.chain) if route.chain is not None
             else chain, route.target)
        for route in config.routes), chain)
    gateway = Gateway(
        routes=routes,
        upstream=Upstream(agent, reactor, limits.upstream_idle_timeout_s),
        journal=journal, clock=reactor, configName=config.name,
        maxBodyBytes=limits.max_body_bytes,
        idleTimeout=limits.upstream_idle_timeout_s,
        waitForJournal=config.gateway.journal.sync == "always",
        logAllAccess=bool(audit is not None and
                          "audit-logger" in config.chain and
                          audit.log_all_access),
        router=router,
        limits=Limits(config, MemoryCounters(), reactor))
    identify = Identify(config.gateway.access_keys, environ,
                        config.gateway.default_user)
    return Parts(gateway, targets, targetsByHost(targets), identify)


def targetsByHost(targets):
    """
    Host name -> the first usable target that serves it (its C{hosts}
    and the host of its C{base_url}).
    """
    byHost = {}
    for usable in targets:
        hosts = list(usable.target.hosts)
        hosts.append(urlsplit(usable.target.base_url).hostname)
        for host in hosts:
            byHost.setdefault(host, usable)
    return byHost


def buildRoot(parts):
    """
    @return: the root resource serving C{/v1}.
    """
    root = Resource()
    root.putChild(b"v1", V1Resource(lambda: parts.gateway, parts.targets,
                                    parts.identify))
    return root


def buildSite(config, reactor, journal, pool, policyFactories, environ):
    """
    @return: the L{GatewaySite} of the shared listener: C{/v1} and the
        plain HTTP forward proxy.
    """
    parts = buildParts(config, reactor, journal, pool, policyFactories,
                       environ)
    forward = ForwardProxy(lambda: parts.gateway, parts.targetsByHost,
                           parts.identify)
    limits = config.gateway.limits
    return GatewaySite(buildRoot(parts), limits.max_body_bytes,
                       forwardProxy=forward,
                       timeout=limits.client_idle_timeout_s)


class GatewayService(service.Service):
    """
    @ivar port: the listening port, once started.
    """

    def __init__(self, config, reactor, policyFactories, environ=os.environ):
        self.config = config
        self._reactor = reactor
        self._factories = policyFactories
        self._environ = environ
        self.port = None
        self.journal = None
        self._pool = None

    def privilegedStartService(self):
        # Listen here, synchronously, so a port in use stops twistd at once.
        gateway = self.config.gateway
        self.journal = Journal.open(
            os.path.join(gateway.state_dir, "journal"), self._reactor,
            sync=gateway.journal.sync,
            segmentMaxBytes=gateway.journal.segment_max_bytes)
        self._pool = HTTPConnectionPool(self._reactor, persistent=True)
        self._pool.maxPersistentPerHost = 64
        site = buildSite(self.config, self._reactor, self.journal, self._pool,
                         self._factories, self._environ)
        listening = serverFromString(self._reactor, gateway.listen).listen(site)
        result = []
        listening.addBoth(result.append)
        if not result or isinstance(result[0], Exception) or hasattr(
                result[0], "getErrorMessage"):
            reason = result[0].getErrorMessage() if result else "pending"
            raise SystemExit("cannot listen on %s: %s"
                             % (gateway.listen, reason))
        self.port = result[0]
        log.info("keeptrusts listening on {address} ({config})",
                 address=self.port.getHost(), config=self.config.name)
        service.Service.privilegedStartService(self)

    def stopService(self):
        service.Service.stopService(self)
        d = defer.maybeDeferred(self.port.stopListening)
        d.addBoth(lambda _: self._pool.closeCachedConnections())
        d.addBoth(lambda _: self.journal.close())
        return d
