# -*- test-case-name: tests.test_tls -*-
"""
The local certificate authority that signs the certificates the gateway
shows for intercepted hosts.

It lives in C{<state_dir>/ca/} (mode 0700): C{keeptrusts-ca.pem}, the
certificate users trust, and C{keeptrusts-ca.key}, its private key (mode
0600).  Leaf certificates are minted on demand for ONE shared EC P-256 key,
made when the CA is loaded, so that minting stays cheap enough (a
signature, no key generation) to run inside the synchronous SNI callback.
"""

import datetime
import errno
import os
import shutil
import socket
import stat
import tempfile

import attr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keeptrusts.tls import TLSSetupError, notValidAfter, parseHost

CA_DIRECTORY = "ca"
CERT_NAME = "keeptrusts-ca.pem"
KEY_NAME = "keeptrusts-ca.key"

DAY = datetime.timedelta(days=1)
CA_LIFETIME = 3650 * DAY
LEAF_LIFETIME = 90 * DAY
# Clocks of clients and of this host disagree: certificates start a day back.
BACKDATE = DAY

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def certificatePath(stateDir):
    """
    Where the CA certificate of the state directory C{stateDir} is (or will
    be, once the gateway has started).
    """
    return os.path.join(stateDir, CA_DIRECTORY, CERT_NAME)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class CertificateAuthority:
    """
    A loaded CA.

    @ivar certificate: the CA certificate (L{x509.Certificate}).
    @ivar key: the CA private key.
    @ivar leafKey: the EC P-256 key shared by every minted leaf.
    @ivar clock: an L{IReactorTime}; certificate validity starts from its
        C{seconds()}.
    @ivar certPath: the CA certificate file.
    @ivar keyPath: the CA key file.
    """

    certificate: x509.Certificate
    key: object
    leafKey: ec.EllipticCurvePrivateKey
    clock: object
    certPath: str
    keyPath: str

    @classmethod
    def loadOrCreate(cls, stateDir, clock):
        """
        Load the CA of C{stateDir}, creating it first when there is none.

        @raise TLSSetupError: the CA cannot be created or used; the message
            says what to do.
        """
        directory = os.path.join(stateDir, CA_DIRECTORY)
        certPath = os.path.join(directory, CERT_NAME)
        keyPath = os.path.join(directory, KEY_NAME)
        try:
            if not (os.path.lexists(certPath) or os.path.lexists(keyPath)):
                _create(directory, clock)
            return cls._load(certPath, keyPath, clock)
        except OSError as e:
            raise TLSSetupError("cannot use the local CA in %s: %s: %s" % (
                directory, e.filename or directory, e.strerror or e))

    @classmethod
    def _load(cls, certPath, keyPath, clock):
        for path in (certPath, keyPath):
            if not os.path.lexists(path):
                raise TLSSetupError(
                    "the local CA is incomplete: %s is missing; move %s away "
                    "to create a new CA (clients must then trust the new "
                    "certificate)" % (path, os.path.dirname(path)))
        try:
            key = serialization.load_pem_private_key(_readPrivate(keyPath),
                                                     password=None)
        except (ValueError, TypeError) as e:
            raise TLSSetupError("%s: not an unencrypted PEM private key (%s)"
                                % (keyPath, e))
        with open(certPath, "rb") as f:
            data = f.read()
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError as e:
            raise TLSSetupError("%s: not a PEM certificate (%s)"
                                % (certPath, e))
        _checkAuthority(certificate, key, certPath, keyPath, clock)
        return cls(certificate, key, ec.generate_private_key(ec.SECP256R1()),
                   clock, certPath, keyPath)

    def certificatePEM(self):
        """
        @return: the CA certificate, PEM (C{bytes}).
        """
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def mintLeaf(self, host):
        """
        A server certificate for C{host}, for the shared L{leafKey}.

        @param host: a DNS name or an IP address (see L{parseHost}).
        @rtype: L{x509.Certificate}
        @raise ValueError: C{host} is neither.
        """
        return self._issue([host], self.leafKey.public_key())

    def issueServerCertificate(self, hosts):
        """
        A server certificate with a key of its own, e.g. for a fake provider
        served over TLS in tests.

        @param hosts: DNS names or IP addresses, the first one in the
            subject too.
        @return: C{(certificatePEM, privateKeyPEM)}, C{bytes} each.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._issue(list(hosts), key.public_key())
        return (certificate.public_bytes(serialization.Encoding.PEM),
                _privatePEM(key))

    def _issue(self, hosts, publicKey):
        names = [parseHost(host) for host in hosts]
        if not names:
            raise ValueError("a certificate needs at least one host")
        now = _now(self.clock)
        first = str(names[0])
        # CN is limited to 64 characters; without it, SAN must be critical.
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]
                            if len(first) <= 64 else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(publicKey)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + LEAF_LIFETIME,
                                 notValidAfter(self.certificate)))
            .add_extension(x509.SubjectAlternativeName(
                [_generalName(name) for name in names]),
                critical=not len(subject))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .add_extension(_keyUsage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                publicKey), critical=False)
            .add_extension(self._authorityKeyIdentifier(), critical=False))
        return builder.sign(self.key, hashes.SHA256())

    def _authorityKeyIdentifier(self):
        try:
            ski = self.certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.certificate.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ski)


def _now(clock):
    return datetime.datetime.fromtimestamp(int(clock.seconds()),
                                           datetime.timezone.utc)


def _generalName(name):
    if isinstance(name, str):
        return x509.DNSName(name)
    return x509.IPAddress(name)


def _keyUsage(digital_signature=False, key_cert_sign=False, crl_sign=False):
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False,
        key_encipherment=False, data_encipherment=False, key_agreement=False,
        key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
        decipher_only=False)


def _privatePEM(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _caName():
    prefix, suffix = "keeptrusts local CA (", ")"
    host = socket.gethostname()[:64 - len(prefix) - len(suffix)]
    return prefix + host + suffix


def _selfSigned(key, clock):
    now = _now(clock)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, _caName()),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "keeptrusts")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        # path_length 0: the CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                       critical=True)
        .add_extension(_keyUsage(key_cert_sign=True, crl_sign=True),
                       critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256()))


def _create(directory, clock):
    """
    Make the CA in a private staging directory and rename it into place, so
    that the key is never readable by others, not even briefly, and two
    processes starting at once end up with one CA (the loser's rename fails).
    """
    parent = os.path.dirname(directory)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".ca-", dir=parent)
    try:
        os.chmod(staging, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _selfSigned(key, clock)
        _writeNew(os.path.join(staging, KEY_NAME), _privatePEM(key), 0o600)
        _writeNew(os.path.join(staging, CERT_NAME),
                  certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        _syncDirectory(staging)
        try:
            os.rename(staging, directory)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            return  # another process made it first; load theirs
        staging = None
        _syncDirectory(parent)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _writeNew(path, data, mode):
    # Created with its final mode: the umask can only narrow it, and the
    # fchmod undoes a umask that took away the owner's own bits.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, mode)
    with open(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _syncDirectory(path):
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _readPrivate(path):
    """
    Read the CA key, refusing it when its mode is wider than 0600 (checked
    on the open file, not the name, so the check is about what is read).
    """
    with open(os.open(path, os.O_RDONLY | _CLOEXEC), "rb") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & ~0o600:
            raise TLSSetupError(
                "%s has mode %04o: the CA key must be readable by its owner "
                "only (0600); run: chmod 600 %s" % (path, mode, path))
        return f.read()


def _checkAuthority(certificate, key, certPath, keyPath, clock):
    spki = (serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
    if (certificate.public_key().public_bytes(*spki)
            != key.public_key().public_bytes(*spki)):
        raise TLSSetupError("%s does not belong to %s" % (keyPath, certPath))
    try:
        isCA = certificate.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        isCA = False
    if not isCA:
        raise TLSSetupError("%s is not a CA certificate" % (certPath,))
    end = notValidAfter(certificate)
    if _now(clock) >= end:
        raise TLSSetupError(
            "%s expired on %s; move %s away to create a new CA (clients must "
            "then trust the new certificate)"
            % (certPath, end.date(), os.path.dirname(certPath)))
