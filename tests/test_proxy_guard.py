"""
Tests for L{keeptrusts.proxy.guard}: off loopback, the proxy does not reach
the gateway's own machine or its link.
"""

from unittest import SkipTest

from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI

from keeptrusts.api.errors import GatewayError
from keeptrusts.api.upstream import KeptEndpoints
from keeptrusts.config import parseConfig
from keeptrusts.parts import guardedOrigins
from keeptrusts.policy.registry import policyFactories
from keeptrusts.proxy.guard import GuardedEndpoint, isInternal
from keeptrusts.proxy.resolve import FixedResolver
from keeptrusts.tls.trust import upstreamPolicy

from tests.test_proxy_tunnel import primaryAddress

INTERNAL = ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1",
            "169.254.169.254", "fe80::1", "fe80::1%eth0", "0.0.0.0",
            "0.1.2.3", "::", "224.0.0.1", "ff02::1"]
EXTERNAL = ["192.0.2.7", "93.184.216.34", "10.0.0.1", "192.168.1.1",
            "172.16.0.1", "fd00::1", "2001:db8::1", "api.openai.com",
            "localhost.example", "not an address"]


class IsInternalTests(SynchronousTestCase):
    def test_internal(self):
        for host in INTERNAL:
            self.assertTrue(isInternal(host), host)

    def test_external(self):
        """
        Private networks are reachable (an internal package mirror is what
        a forward proxy is for); names are checked once resolved.
        """
        for host in EXTERNAL:
            self.assertFalse(isInternal(host), host)

    def test_ownAddress(self):
        local = primaryAddress()
        if local is None:
            raise SkipTest("this machine has no address besides loopback")
        self.assertTrue(isInternal(local))


class GuardedEndpointTests(SynchronousTestCase):
    def connect(self, addresses, host="somewhere.example"):
        reactor = MemoryReactorClock()
        endpoint = GuardedEndpoint(reactor, host, 80, 7,
                                   FixedResolver(addresses))
        d = endpoint.connect(Factory.forProtocol(Protocol))
        return reactor, d

    def test_internalRefused(self):
        """
        A name resolving to an internal address (among others) is refused
        with a 403 naming the name, before any connection is tried.
        """
        for addresses in (["169.254.169.254"], ["192.0.2.7", "127.0.0.1"],
                          ["::1"]):
            reactor, d = self.connect(addresses)
            error = self.failureResultOf(d, GatewayError).value
            self.assertEqual((error.status, error.code),
                             (403, "internal_address"))
            self.assertIn("somewhere.example", error.message)
            self.assertNotIn(addresses[-1], error.message)
            self.assertEqual(reactor.tcpClients, [])

    def test_vettedAddressesOnly(self):
        """
        Otherwise it connects to the addresses it vetted, not to another
        lookup's.
        """
        reactor, d = self.connect(["192.0.2.7"])
        self.assertNoResult(d)
        [(host, port, _, timeout, _)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("192.0.2.7", 80, 7))


def config(listen, intercept=""):
    return parseConfig("""
pack: {name: t, version: 1.0.0, enabled: true}
gateway:
  listen: "%s"
  access_keys: [{id: a, user: alice, key_env: KT_KEY}]
%s
providers:
  targets:
    - id: local
      provider: openai
      base_url: http://127.0.0.1:11434/v1
      models: [llama]
    - id: sg
      provider: openai
      type: passthrough
      base_url: https://sourcegraph.example.com
      hosts: [sourcegraph.example.com]
      models: [sg]
policies: {chain: [audit-logger]}
""" % (listen, intercept), policyFactories())


class GuardedOriginsTests(SynchronousTestCase):
    def test_loopback(self):
        """
        On loopback nothing is guarded: the caller is on the machine.
        """
        self.assertIsNone(guardedOrigins(config(
            "tcp:41002:interface=127.0.0.1")))

    def test_offLoopback(self):
        """
        Off loopback every origin but the configured hosts is guarded.
        """
        guarded = guardedOrigins(config(
            "tcp:41002:interface=0.0.0.0",
            "  intercept: {hosts: ['*.corp.example']}"))
        for origin in [(b"http", b"127.0.0.1", 11434),
                       (b"https", b"sourcegraph.example.com", 443),
                       (b"https", b"llm.corp.example", 443)]:
            self.assertFalse(guarded(origin), origin)
        for origin in [(b"http", b"169.254.169.254", 80),
                       (b"http", b"localhost", 6379),
                       (b"https", b"corp.example", 443),
                       (b"http", b"example.com", 80)]:
            self.assertTrue(guarded(origin), origin)

    def test_endpoints(self):
        """
        The pool reaches a guarded origin through a L{GuardedEndpoint}
        (under TLS for https), any other as before.
        """
        reactor = MemoryReactorClock()
        endpoints = KeptEndpoints(
            reactor, upstreamPolicy(None), 7,
            guarded=lambda origin: origin[1] != b"api.openai.com")
        plain = endpoints.endpointForURI(URI.fromBytes(
            b"http://Metadata.Example/latest"))
        self.assertIsInstance(plain, GuardedEndpoint)
        tls = endpoints.endpointForURI(URI.fromBytes(
            b"https://other.example/v1"))
        self.assertIsInstance(tls._wrappedEndpoint, GuardedEndpoint)
        trusted = endpoints.endpointForURI(URI.fromBytes(
            b"https://api.openai.com/v1"))
        self.assertIsInstance(trusted._wrappedEndpoint, HostnameEndpoint)
        unguarded = KeptEndpoints(reactor, upstreamPolicy(None), 7)
        self.assertIsInstance(unguarded.endpointForURI(URI.fromBytes(
            b"http://169.254.169.254/")), HostnameEndpoint)
