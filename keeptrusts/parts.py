# -*- test-case-name: tests.test_service -*-
"""
What serves requests, built from one configuration: the policy chains and
routes, the router, the limits, the identities; and the site made of them.
"""

import ipaddress
import re
from urllib.parse import urlsplit

import attr
from twisted.logger import Logger
from twisted.web.resource import Resource

from keeptrusts.api.gateway import Gateway
from keeptrusts.api.http1 import KeptAgent
from keeptrusts.api.resource import V1Resource
from keeptrusts.api.routes import RouteTable, Rule
from keeptrusts.api.routing import CircuitBreaker, Router
from keeptrusts.api.site import GatewaySite
from keeptrusts.api.upstream import KeptEndpoints, Upstream, usableTargets
from keeptrusts.identity import Identify
from keeptrusts.limits import Limits, MemoryCounters
from keeptrusts.policy.chain import PolicyChain
from keeptrusts.front import FrontFactory
from keeptrusts.proxy.connect import ConnectHandler, accessRecord
from keeptrusts.proxy.forward import ForwardProxy
from keeptrusts.proxy.intercept import Interceptor
from keeptrusts.proxy.proxypolicy import ProxyPolicy, guardedDestinations
from keeptrusts.proxy.splice import Splicer, descriptorLimit
from keeptrusts.tls.trust import upstreamPolicy


def buildChain(config, policyFactories, clock, names=None):
    policies = [policyFactories[kind].build(config.policy[kind], clock)
                for kind in (config.chain if names is None else names)]
    return PolicyChain(policies, config.gateway.fail_mode, clock)


log = Logger()

def isLoopback(description):
    """
    Whether a server endpoint description listens on loopback only (or a
    UNIX socket).  A socket-activated listener (C{systemd:}) may be on any
    address: it counts as open, and needs access keys.  The interface is
    read as Twisted reads it (the last C{interface=} wins) and must be a
    loopback address, or C{localhost} itself: any other name may resolve
    anywhere.
    """
    kind, _, rest = description.partition(":")
    if kind == "unix":
        return True
    if kind not in ("tcp", "tcp6", "ssl"):
        return False
    interface = ""
    for part in re.split(r"(?<!\\):", rest):
        if part.startswith("interface="):
            interface = part[len("interface="):].replace("\\:", ":")
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Parts:
    """
    What the listener's resources share, built once per configuration.
    """

    config: object
    gateway: object
    targets: tuple
    targetsByHost: dict
    identify: object
    proxy: object = None


class Current:
    """
    The L{Parts} in force.  A reload swaps them; a request keeps the parts
    it started with.
    """

    def __init__(self, parts):
        self.parts = parts


def buildParts(config, reactor, journal, pool, policyFactories, environ,
               counters=None):
    """
    The L{Parts} that C{config} builds.

    @param counters: the L{ICounters} of rate limits and budgets; the
        service keeps one across reloads (a reload must not reset them).
    """
    limits = config.gateway.limits
    # Upstream TLS is verified: the platform's roots plus upstream_ca_file.
    agent = KeptAgent(KeptEndpoints(
        reactor, upstreamPolicy(config.gateway.intercept.upstream_ca_file),
        limits.upstream_connect_timeout_s, guarded=guardedDestinations(
            config, isLoopback(config.gateway.listen))),
        pool)
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
        limits=Limits(config, MemoryCounters() if counters is None
                      else counters, reactor))
    identify = Identify(config.gateway.access_keys, environ,
                        config.gateway.default_user)
    proxy = ProxyPolicy.fromConfig(config, identify,
                                   isLoopback(config.gateway.listen))
    return Parts(config, gateway, targets, targetsByHost(targets), identify,
                 proxy)


def requireAccessKeys(gateway):
    """
    Refuse to serve C{gateway.listen}, an address off loopback, without
    access keys: that would be an open relay spending the providers' keys.

    @raise SystemExit: with the reason.
    """
    if not isLoopback(gateway.listen) and not gateway.access_keys:
        raise SystemExit(
            "keeptrusts: %s is not a loopback address: set gateway.access_keys "
            "so the gateway is not open to the network" % (gateway.listen,))


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


def buildSite(config, reactor, journal, pool, policyFactories, environ,
              current=None, admin=None, active=None, accessLines=None):
    """
    @param current: the L{Current} to serve from; made from C{config} when
        not given.
    @param admin: the resource of C{/keeptrusts}, C{/healthz} and
        friends, or L{None}.
    @param active: the L{keeptrusts.api.draining.ActiveRequests} to count
        requests in.
    @param accessLines: the L{IAccessLog} of the access log, or L{None}
        for twisted.logger.
    @return: the L{GatewaySite} of the shared listener: C{/v1}, the
        operations endpoints, and the plain HTTP forward proxy.
    """
    if current is None:
        current = Current(buildParts(config, reactor, journal, pool,
                                     policyFactories, environ))
    root = Resource() if admin is None else admin
    root.putChild(b"v1", V1Resource(current))
    limits = config.gateway.limits
    required = not isLoopback(config.gateway.listen)
    forward = ForwardProxy(
        # Proxy requests present their key in Proxy-Authorization.
        current, lambda request: current.parts.identify.forProxy(required)(
            request))
    return GatewaySite(root, limits.max_body_bytes,
                       forwardProxy=forward, active=active,
                       accessLog=config.gateway.access_log,
                       accessLines=accessLines,
                       timeout=limits.client_idle_timeout_s)


def buildFront(config, reactor, site, current, certificates, journal,
               active=None, tunnels=None, accessLines=None):
    """
    @return: the factory of the shared listener: CONNECT (tunnels and
        interception) in front of C{site}.
    @param certificates: the L{ICertificateStore} of the local CA.
    @param tunnels: a Prometheus gauge of open CONNECTs, or L{None}.
    @param accessLines: as for L{buildSite}, for intercepted requests.
    """
    limits = config.gateway.limits
    interceptor = Interceptor(current, certificates, limits.max_body_bytes,
                              limits.client_idle_timeout_s, reactor, active,
                              accessLines)

    def record(event):
        if tunnels is not None:
            tunnels.dec()
        parts = current.parts
        if parts.gateway.logAllAccess or event.status != 200:
            journal.append(accessRecord(event, parts.config.name)).addErrback(
                lambda reason: log.error("journaling a CONNECT failed: "
                                         "{error}",
                                         error=reason.type.__name__))

    # Each CONNECT follows the proxy policy in force: a reload may change
    # the allowed ports, the hosts intercepted and the access keys.
    handler = ConnectHandler(reactor, lambda: current.parts.proxy, record,
                             intercept=interceptor,
                             splice=Splicer(reactor, descriptorLimit()))
    if tunnels is not None:
        handler = _GaugedConnects(handler, tunnels)
    return FrontFactory(site, handler, reactor,
                        headTimeout=limits.client_idle_timeout_s)


class _GaugedConnects:
    """
    A connect handler that counts the CONNECTs it opens in a gauge (the
    C{record} callback counts them out).
    """

    def __init__(self, handler, gauge):
        self._handler = handler
        self._gauge = gauge

    def handleConnect(self, request, transport, leftover):
        self._gauge.inc()
        return self._handler.handleConnect(request, transport, leftover)
