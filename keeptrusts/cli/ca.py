# -*- test-case-name: tests.test_cli_ca -*-
"""
C{kt ca path} and C{kt ca export}: the local CA certificate that clients
must trust for TLS interception.

C{path} only looks: with no CA yet it prints where the gateway will make it
and exits 1.  C{export} makes the CA when there is none (as the gateway does
on its first start, same files and modes), so that users can trust it before
the gateway ever runs; an existing CA's certificate is read without its key,
which may belong to the gateway's own user.
"""

import os
from typing import Callable

import attr
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keeptrusts.cli.main import CommandError, stateDirectory
from keeptrusts.tls import TLSSetupError
from keeptrusts.tls.ca import CertificateAuthority, certificatePath


def register(subparsers, common):
    ca = subparsers.add_parser(
        "ca", parents=[common],
        help="the local CA that signs the certificates of intercepted hosts")
    actions = ca.add_subparsers(dest="action", metavar="ACTION",
                                required=True)
    path = actions.add_parser("path", parents=[common],
                              help="print the CA certificate's file name")
    path.set_defaults(run=runPath)
    export = actions.add_parser(
        "export", parents=[common],
        help="print the CA certificate (PEM), creating the CA if needed")
    export.set_defaults(run=runExport)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class _RuntimeClock:
    """
    The runtime's C{now} as the C{seconds()} the CA's clock provides.
    """

    seconds: Callable[[], float]


def runPath(options, runtime):
    """
    C{kt ca path}: the certificate's file name; exit 1 when it is not there
    yet.
    """
    path = certificatePath(stateDirectory(options))
    runtime.out.write(path + "\n")
    if not _present(path):
        runtime.err.write(
            "kt: no CA there yet: the gateway creates it on its first start, "
            "or run `kt ca export` to create it now\n")
        return 1
    return 0


def runExport(options, runtime):
    """
    C{kt ca export}: the certificate, PEM, on stdout.
    """
    stateDir = stateDirectory(options)
    path = certificatePath(stateDir)
    if _present(path):
        pem = _readCertificate(path)
    else:
        try:
            ca = CertificateAuthority.loadOrCreate(
                stateDir, _RuntimeClock(runtime.now))
        except TLSSetupError as e:
            raise CommandError(str(e))
        runtime.err.write("kt: created the local CA in %s\n"
                          % (os.path.dirname(ca.certPath),))
        pem = ca.certificatePEM()
    runtime.out.write(pem.decode("ascii"))
    runtime.out.flush()
    return 0


def _present(path):
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError as e:
        # The CA directory (0700) may belong to the gateway's own user.
        raise CommandError("%s: %s (run kt as the gateway's user)"
                           % (path, e.strerror))
    except OSError as e:
        raise CommandError("%s: %s" % (path, e.strerror))
    return True


def _readCertificate(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CommandError("%s: %s" % (path, e.strerror))
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CommandError("%s: not a PEM certificate" % (path,))
    return certificate.public_bytes(serialization.Encoding.PEM)
