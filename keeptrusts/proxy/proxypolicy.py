# -*- test-case-name: tests.test_proxy_tunnel,tests.test_proxy_guard -*-
"""
What the configuration lets the proxy do, read once per configuration
(L{ProxyPolicy}): who may use it, the ports a C{CONNECT} may reach, the
hosts it intercepts, and the destinations it reaches only outside the
gateway's machine and link.
"""

import functools
from typing import Callable, FrozenSet, Optional
from urllib.parse import urlsplit

import attr


def hostMatcher(patterns):
    """
    A predicate on host names: C{api.openai.com} matches that name,
    C{*.openai.com} every name below C{openai.com} (at any depth) but not
    C{openai.com} itself.  Case and a trailing dot do not matter.
    """
    exact, suffixes = set(), []
    for pattern in patterns:
        name = pattern.lower().rstrip(".")
        if name.startswith("*.") and "*" not in name[1:]:
            suffixes.append(name[1:])
        elif "*" in name or not name:
            raise ValueError("%r: expected a host name or *.domain" % (pattern,))
        else:
            exact.add(name)
    suffixes = tuple(suffixes)

    def matches(host):
        host = host.lower().rstrip(".")
        return host in exact or host.endswith(suffixes)
    return matches


def configuredOrigins(config):
    """
    A predicate C{(scheme, host, port) -> bool} on the origins the
    configuration names, which the operator chose to reach: each target's
    C{base_url} (its scheme, host and port only), and C{https} on an allowed
    CONNECT port of the targets' C{hosts} and of C{gateway.intercept.hosts}.
    A scheme of L{None} (a tunnel's) stands for either.
    """
    exact = set()
    for target in config.providers.targets:
        url = urlsplit(target.base_url)
        exact.add((url.scheme, (url.hostname or "").rstrip("."),
                   url.port or _DEFAULT_PORTS.get(url.scheme)))
    named = hostMatcher(tuple(h for t in config.providers.targets
                              for h in t.hosts)
                        + tuple(config.gateway.intercept.hosts or ()))
    ports = frozenset(config.gateway.proxy.allowed_ports)

    def configured(scheme, host, port):
        host = host.lower().rstrip(".")
        schemes = ("http", "https") if scheme is None else (scheme,)
        return (any((s, host, port) in exact for s in schemes)
                or ("https" in schemes and port in ports and named(host)))
    return configured


_DEFAULT_PORTS = {"http": 80, "https": 443}


def guardedDestinations(config, loopback):
    """
    Off loopback, a predicate C{(scheme, host, port) -> bool}: whether the
    proxy reaches that destination only outside the gateway's machine and
    link (L{keeptrusts.proxy.guard}), as it does every destination but the
    configured origins (a scheme of L{None}: a tunnel's).  On loopback,
    L{None}: nothing is guarded.
    """
    if loopback:
        return None
    configured = configuredOrigins(config)
    return lambda scheme, host, port: not configured(scheme, host, port)


def targetHosts(targets):
    """
    The hosts of the provider targets: the default of
    C{gateway.intercept.hosts}.
    """
    hosts = []
    for target in targets:
        hosts.append(urlsplit(target.base_url).hostname)
        hosts.extend(target.hosts)
    return tuple(dict.fromkeys(hosts))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ProxyPolicy:
    """
    @ivar authenticate: C{Proxy-Authorization value or None -> user},
        raising a 407 L{GatewayError}.
    @ivar interceptHost: C{host -> bool}, whether to intercept.
    @ivar guarded: the L{guardedDestinations} predicate, or L{None}.
    """

    authenticate: Callable[[Optional[bytes]], str]
    allowedPorts: FrozenSet[int] = attr.ib(default=frozenset([443]),
                                           converter=frozenset)
    interceptHost: Callable[[str], bool] = hostMatcher(())
    connectTimeout: float = 10.0
    idleTimeout: float = 300.0
    guarded: Optional[Callable[[Optional[str], str, int], bool]] = None

    @classmethod
    def fromConfig(cls, config, identify, loopback):
        """
        @param identify: the gateway's L{keeptrusts.identity.Identify}.
        @param loopback: whether the listener is on loopback only, where
            the proxy is open to local callers.
        """
        gateway = config.gateway
        hosts = gateway.intercept.hosts
        return cls(
            authenticate=functools.partial(identify.fromProxyAuthorization,
                                           required=not loopback),
            allowedPorts=gateway.proxy.allowed_ports,
            interceptHost=hostMatcher(targetHosts(config.providers.targets)
                                      if hosts is None else hosts),
            connectTimeout=gateway.limits.upstream_connect_timeout_s,
            idleTimeout=gateway.limits.client_idle_timeout_s,
            guarded=guardedDestinations(config, loopback))
