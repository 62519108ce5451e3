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
from keeptrusts.policy.registry import policyFactories
from keeptrusts.proxy.guard import GuardedEndpoint, isInternal
from keeptrusts.proxy.proxypolicy import guardedDestinations
from keeptrusts.proxy.resolve import FixedResolver
from keeptrusts.tls.trust import upstreamPolicy

from tests.test_proxy_tunnel import primaryAddress

INTERNAL = ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1",
            "169.254.169.254", "fe80::1", "fe80::1%eth0", "0.0.0.0",
            "0.1.2.3", "::", "224.0.0.1", "ff02::1",
            # other metadata services: AWS over IPv6, Alibaba, Azure
            "fd00:ec2::254", "100.100.100.200", "168.63.129.16",
            # IPv4 inside IPv6: NAT64, 6to4, IPv4-compatible
            "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:a9fe:a9fe::",
            "2002:7f00:1::", "::127.0.0.1", "::169.254.169.254"]
EXTERNAL = ["192.0.2.7", "93.184.216.34", "10.0.0.1", "192.168.1.1",
            "172.16.0.1", "fd00::1", "2001:db8::1", "api.openai.com",
            "localhost.example", "not an address", "64:ff9b::808:808",
            "2002:808:808::", "100.100.100.201"]


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
        self.assertIsNone(guardedDestinations(config(
            "tcp:41002:interface=127.0.0.1"), loopback=True))

    def test_offLoopback(self):
        """
        Off loopback every origin but those the configuration names is
        guarded: a target's base_url on its own scheme and port (not every
        service of its host), the targets' and intercepted hosts over https
        on an allowed CONNECT port.
        """
        guarded = guardedDestinations(config(
            "tcp:41002:interface=0.0.0.0",
            "  intercept: {hosts: ['*.corp.example']}"), loopback=False)
        for origin in [("http", "127.0.0.1", 11434),
                       ("https", "sourcegraph.example.com", 443),
                       ("https", "Sourcegraph.Example.com.", 443),
                       ("https", "llm.corp.example", 443)]:
            self.assertFalse(guarded(*origin), origin)
        for origin in [("http", "169.254.169.254", 80),
                       ("http", "localhost", 6379),
                       ("http", "127.0.0.1", 6379),
                       ("https", "127.0.0.1", 11434),
                       ("http", "sourcegraph.example.com", 80),
                       ("https", "sourcegraph.example.com", 8443),
                       ("https", "corp.example", 443),
                       ("http", "llm.corp.example", 80),
                       ("http", "example.com", 80)]:
            self.assertTrue(guarded(*origin), origin)

    def test_endpoints(self):
        """
        The pool reaches a guarded origin through a L{GuardedEndpoint}
        (under TLS for https), any other as before.
        """
        reactor = MemoryReactorClock()
        endpoints = KeptEndpoints(
            reactor, upstreamPolicy(None), 7,
            guarded=lambda scheme, host, port: host != "api.openai.com")
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


class RecordAccessTests(SynchronousTestCase):
    """
    Relayed traffic is journaled when the audit asks for it; an error the
    gateway answered itself (a refused destination) always, as a refused
    CONNECT is (found by review: it was journaled only with
    C{log_all_access}, and as C{allow}).
    """

    def record(self, outcome, logAllAccess=False):
        from keeptrusts.api.gateway import Gateway, recordAccess
        from keeptrusts.policy.values import Exchange
        from keeptrusts.testing import MemoryJournal
        journal = MemoryJournal()
        gateway = Gateway(routes=None, upstream=None, journal=journal,
                          clock=None, configName="t@1.0.0", maxBodyBytes=1,
                          idleTimeout=1, logAllAccess=logAllAccess)
        recordAccess(gateway, Exchange(request_id="r", mode="proxy",
                                       method="GET", host="localhost"),
                     outcome)
        return [(r["verdict"], r["status"]) for r in journal.records]

    def test_refusals(self):
        refused = GatewayError(403, "forbidden", "no", code="internal_address")
        self.assertEqual(self.record(refused), [("block", 403)])
        self.assertEqual(self.record(GatewayError(502, "upstream_error", "x")),
                         [("error", 502)])

    def test_relayed(self):
        self.assertEqual(self.record(200), [])
        self.assertEqual(self.record(200, logAllAccess=True), [("allow", 200)])
        self.assertEqual(self.record(None, logAllAccess=True),
                         [("allow", None)])
