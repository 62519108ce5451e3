# -*- test-case-name: tests.test_proxy_tunnel -*-
"""
Connecting a tunnel to addresses checked beforehand: every address of a
name, and an endpoint that connects to the vetted addresses only, so that a
second lookup cannot answer differently (DNS rebinding).
"""

import attr
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IHostnameResolver, IHostResolution, IReactorPluggableNameResolver,
    IResolutionReceiver)
from zope.interface import implementer


@implementer(IResolutionReceiver)
class _Addresses:
    """
    Gathers a name's addresses, then fires a L{Deferred} with them.
    """

    def __init__(self, deferred):
        self._deferred = deferred
        self._addresses = []

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self._addresses.append(address)

    def resolutionComplete(self):
        if not self._deferred.called:  # not cancelled
            self._deferred.callback(self._addresses)


@implementer(IHostResolution)
@attr.s(frozen=True, slots=True, auto_attribs=True)
class _Resolution:
    name: str

    def cancel(self):
        pass


@implementer(IHostnameResolver)
class FixedResolver:
    """
    Resolves every name to the same addresses (text, IPv4 or IPv6).
    """

    def __init__(self, hosts):
        self._hosts = tuple(hosts)

    def resolveHostName(self, resolutionReceiver, hostName, portNumber=0,
                        addressTypes=None, transportSemantics="TCP"):
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for host in self._hosts:
            kind = IPv6Address if isIPv6Address(host) else IPv4Address
            if addressTypes is None or kind in addressTypes:
                resolutionReceiver.addressResolved(kind("TCP", host,
                                                        portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


def resolve(resolver, host, port):
    """
    Every address of C{host}, IPv4 and IPv6, for a TCP connection.

    @param resolver: an L{IHostnameResolver}.
    @return: a L{Deferred} firing with a list of L{IPv4Address} and
        L{IPv6Address}, maybe empty.
    """
    if isIPAddress(host):
        return succeed([IPv4Address("TCP", host, port)])
    if isIPv6Address(host):
        return succeed([IPv6Address("TCP", host, port)])
    d = Deferred()
    resolver.resolveHostName(_Addresses(d), host, port,
                             (IPv4Address, IPv6Address), "TCP")
    return d


def pinnedEndpoint(reactor, addresses, host, port, timeout):
    """
    A L{HostnameEndpoint} for C{host} that connects to C{addresses} only.
    """
    return HostnameEndpoint(_Pinned(reactor, addresses), host, port,
                            timeout=timeout)


@implementer(IReactorPluggableNameResolver)
class _Pinned:
    """
    The reactor, except that names resolve to the addresses already vetted:
    L{HostnameEndpoint} races them (RFC 8305) without looking the name up a
    second time, which could answer differently.
    """

    def __init__(self, reactor, addresses):
        self._reactor = reactor
        self.nameResolver = FixedResolver([a.host for a in addresses])

    def installNameResolver(self, resolver):
        previous, self.nameResolver = self.nameResolver, resolver
        return previous

    def __getattr__(self, name):
        return getattr(self._reactor, name)
