# -*- test-case-name: tests.test_tls -*-
"""
Verified client TLS towards the providers: the platform's trust store, plus
the extra CA bundle of C{gateway.intercept.upstream_ca_file} when one is
configured (a corporate CA, or a test CA in front of a fake provider).  The
server's name is checked as a browser would (service_identity).
"""

from collections import OrderedDict

import attr
# The interface optionsForClientTLS's trustRoot takes; Twisted documents it
# but keeps it in this module (unchanged from 14.0 to 26.10).
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.ssl import optionsForClientTLS
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from keeptrusts.tls import TLSSetupError, loadPEMCertificates

# Client options are reusable across connections; keep those of the hosts
# in use rather than parse the trust store for every new connection.
MAX_CACHED_HOSTS = 256


def checkCAFile(path):
    """
    Check that C{path} is a readable PEM bundle of at least one certificate.

    @return: the number of certificates in it.
    @raise TLSSetupError: it is not.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TLSSetupError("upstream CA file %s: %s" % (path, e.strerror))
    try:
        certificates = loadPEMCertificates(data)
    except ValueError as e:
        raise TLSSetupError("upstream CA file %s: a certificate in it is not "
                            "valid (%s)" % (path, e))
    if not certificates:
        raise TLSSetupError("upstream CA file %s: no PEM certificate in it"
                            % (path,))
    return len(certificates)


@implementer(IOpenSSLTrustRoot)
@attr.s(frozen=True, slots=True, auto_attribs=True)
class PlatformTrustPlus:
    """
    The platform's trust store, plus the certificates of C{extraCAFile}.
    """

    extraCAFile: object = None

    def _addCACertsToContext(self, context):
        context.set_default_verify_paths()
        if self.extraCAFile is not None:
            context.load_verify_locations(self.extraCAFile)


def trustRoot(extraCAFile=None):
    """
    An L{IOpenSSLTrustRoot}: the platform's store plus C{extraCAFile}.

    @raise TLSSetupError: C{extraCAFile} is missing, unreadable or holds no
        certificate.
    """
    if extraCAFile is not None:
        checkCAFile(extraCAFile)
    return PlatformTrustPlus(extraCAFile)


def clientCreator(host, extraCAFile=None):
    """
    Client TLS options for C{host} (a DNS name or an IP address) that verify
    the server's chain and name, for code that opens TLS itself.

    @rtype: L{twisted.internet.interfaces.IOpenSSLClientConnectionCreator}
    @raise TLSSetupError: as L{trustRoot}.
    """
    return optionsForClientTLS(host, trustRoot=trustRoot(extraCAFile))


@implementer(IPolicyForHTTPS)
class UpstreamPolicy:
    """
    Like L{twisted.web.client.BrowserLikePolicyForHTTPS}, with its own trust
    root, and keeping the options of recent hosts.
    """

    def __init__(self, root, maxCached=MAX_CACHED_HOSTS):
        self._root = root
        self._maxCached = maxCached
        self._creators = OrderedDict()

    def creatorForNetloc(self, hostname, port):
        """
        @param hostname: the host, IDNA-encoded C{bytes}, as the agent gives
            it.
        """
        creator = self._creators.get(hostname)
        if creator is None:
            creator = optionsForClientTLS(hostname.decode("ascii"),
                                          trustRoot=self._root)
            self._creators[hostname] = creator
            while len(self._creators) > self._maxCached:
                self._creators.popitem(last=False)
        else:
            self._creators.move_to_end(hostname)
        return creator


def upstreamPolicy(extraCAFile=None):
    """
    The L{IPolicyForHTTPS} of the upstream agent's endpoints:
    chain and host name verified against the platform's trust store plus
    C{extraCAFile} (PEM, one or more certificates).

    @raise TLSSetupError: as L{trustRoot}, at once rather than at the first
        request.
    """
    return UpstreamPolicy(trustRoot(extraCAFile))
