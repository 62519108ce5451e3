# -*- test-case-name: tests.test_proxy_guard -*-
"""
What a proxy open to the network does not reach: the gateway's own
machine (loopback, any of its addresses) and its link (link-local
addresses; the cloud's instance metadata at C{169.254.169.254} hands out
the machine's own credentials).  Off loopback, a caller with an access key
could otherwise reach, through the gateway, what only the gateway's machine
can (server-side request forgery); on loopback, the caller is on that
machine already.  Squid refuses the same by default (C{to_localhost},
C{to_linklocal}).

Configured targets are not guarded: a target on C{http://127.0.0.1:11434}
(a local model server) is the operator's choice, not the caller's.
"""

import ipaddress
import socket

from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer

from keeptrusts.api.errors import GatewayError
from keeptrusts.proxy.resolve import pinnedEndpoint, resolve

# Besides loopback, link-local and multicast: "this network" (RFC 791:
# Linux connects 0.x.y.z to the machine itself), and the instance metadata
# services outside link-local (AWS over IPv6, Alibaba, Azure's WireServer).
_INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "fd00:ec2::/32", "100.100.100.200/32", "168.63.129.16/32"))
# IPv6 forms that carry an IPv4 address a gateway on the way turns back
# into one: NAT64 (RFC 6052) and IPv4-compatible addresses.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def isInternal(host):
    """
    Whether C{host}, an address literal (text; an IPv6 one may carry a
    C{%zone}), is of this machine or its link.  A name is not: L{False}.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    embedded = _embedded(address)
    if embedded is not None and _isInternal(embedded):
        return True
    return _isInternal(address)


def _isInternal(address):
    return (address.is_loopback or address.is_unspecified
            or address.is_link_local or address.is_multicast
            or any(address in network for network in _INTERNAL_NETWORKS
                   if network.version == address.version)
            or isLocalAddress(address))


def _embedded(address):
    """
    The IPv4 address an IPv6 one carries (mapped, NAT64, compatible,
    6to4), or L{None}.
    """
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _COMPATIBLE
                              and int(address) > 0xffff):
        return ipaddress.IPv4Address(int(address) & 0xffffffff)
    return address.sixtofour


def isLocalAddress(address):
    """
    Whether C{address} (an L{ipaddress} address) is one of this machine's
    own: only those can be bound, which the kernel tells at once.
    """
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.bind((str(address), 0))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def refuseInternal(host, shown=None):
    """
    @param host: an address literal or a name (names pass: they are checked
        once resolved).
    @param shown: the destination as the message names it; C{host} by
        default.
    @raise GatewayError: a 403 when C{host} is internal.
    """
    if isInternal(host):
        raise GatewayError(
            403, "forbidden", "the gateway does not proxy to %s: an address "
            "of its own machine or link" % (shown or host,),
            code="internal_address")


@implementer(IStreamClientEndpoint)
class GuardedEndpoint:
    """
    Connects to C{host} at the addresses it resolves to, once none of them
    is internal, and to those only: a second lookup (DNS rebinding) cannot
    slip another in.

    @param resolver: an L{IHostnameResolver}; the reactor's by default.
    """

    def __init__(self, reactor, host, port, timeout, resolver=None):
        self._reactor = reactor
        self._host = host
        self._port = port
        self._timeout = timeout
        self._resolver = resolver

    def connect(self, factory):
        d = resolve(self._resolver or self._reactor.nameResolver, self._host,
                    self._port)
        d.addCallback(self._vetted)
        d.addCallback(lambda addresses: pinnedEndpoint(
            self._reactor, addresses, self._host, self._port,
            self._timeout).connect(factory))
        return d

    def _vetted(self, addresses):
        for address in addresses:
            refuseInternal(address.host, shown=self._host)
        return addresses
