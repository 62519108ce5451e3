# -*- test-case-name: tests.test_tls -*-
"""
TLS for the gateway: the local CA (L{keeptrusts.tls.ca}), per-host server
contexts chosen by SNI for intercepted connections (L{keeptrusts.tls.sni}),
and verified client TLS towards the providers (L{keeptrusts.tls.trust}).

This module holds what they share: the error, host names as certificates
name them, PEM bundles and certificate times across cryptography releases.
"""

import datetime
import ipaddress
import re

from cryptography import x509

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----",
    re.DOTALL)


class TLSSetupError(Exception):
    """
    The local CA or a trust bundle cannot be used.  The message says what is
    wrong and what to do; the gateway refuses to start with it.
    """


def parseHost(host):
    """
    A host as a certificate names it.

    @param host: a DNS name (ASCII, any case, maybe a trailing dot) or an
        IP address literal (IPv6 maybe in brackets), C{str} or C{bytes}; or
        what this function returned.
    @return: an L{ipaddress.IPv4Address} / L{ipaddress.IPv6Address}, or the
        lowercase DNS name without its trailing dot.
    @raise ValueError: C{host} is neither.
    """
    if isinstance(host, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return host
    text = host.decode("ascii") if isinstance(host, bytes) else host
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    if len(name) > 253 or not all(_LABEL.match(label)
                                  for label in name.split(".")):
        raise ValueError("not a DNS name or IP address: %r" % (host,))
    return name


def loadPEMCertificates(data):
    """
    Every certificate of a PEM bundle, in order (cryptography 39 has
    C{load_pem_x509_certificates}; Debian 12's 38 does not).

    @raise ValueError: a block is not a valid certificate.
    """
    return [x509.load_pem_x509_certificate(block)
            for block in _PEM_CERTIFICATE.findall(data)]


def notValidBefore(certificate):
    """
    C{certificate}'s start as an aware UTC datetime (cryptography 42 added
    the C{_utc} properties and deprecated the naive ones).
    """
    when = getattr(certificate, "not_valid_before_utc", None)
    if when is None:
        when = certificate.not_valid_before.replace(
            tzinfo=datetime.timezone.utc)
    return when


def notValidAfter(certificate):
    """
    C{certificate}'s end as an aware UTC datetime.
    """
    when = getattr(certificate, "not_valid_after_utc", None)
    if when is None:
        when = certificate.not_valid_after.replace(
            tzinfo=datetime.timezone.utc)
    return when
