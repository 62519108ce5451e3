"""
Tests for C{kt ca path} and C{kt ca export} (L{keeptrusts.cli.ca}, through
L{keeptrusts.cli.main.main}).
"""

import datetime
import io
import os

from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.cli.main import Runtime, main
from keeptrusts.tls import notValidBefore

# 2026-11-17T03:33:20Z
NOW = 1795000000

CONFIG = """\
pack: {name: p, version: 1.0.0, enabled: true}
gateway: {state_dir: %s}
policies: {chain: [dlp-filter]}
"""


class CATests(SynchronousTestCase):

    def setUp(self):
        self.stateDir = self.mktemp()
        self.caDir = os.path.join(self.stateDir, "ca")
        self.certPath = os.path.join(self.caDir, "keeptrusts-ca.pem")
        self.keyPath = os.path.join(self.caDir, "keeptrusts-ca.key")

    def kt(self, *argv):
        """
        Run C{kt} with captured streams.

        @return: C{(exit code, stdout, stderr)}
        """
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), Runtime(out, err, now=lambda: NOW))
        return code, out.getvalue(), err.getvalue()

    def test_pathBeforeTheCA(self):
        """
        With no CA yet, C{kt ca path} prints where it will be, says so on
        stderr, exits 1 and creates nothing.
        """
        code, out, err = self.kt("ca", "path", "--state-dir", self.stateDir)
        self.assertEqual((code, out), (1, self.certPath + "\n"))
        self.assertIn("first start", err)
        self.assertFalse(os.path.exists(self.stateDir))

    def test_exportCreates(self):
        """
        C{kt ca export} creates the CA when there is none, with the
        gateway's files and modes, and prints its certificate.
        """
        code, out, err = self.kt("ca", "export", "--state-dir", self.stateDir)
        self.assertEqual((code, err),
                         (0, "kt: created the local CA in %s\n" % (self.caDir,)))
        certificate = x509.load_pem_x509_certificate(out.encode("ascii"))
        self.assertTrue(certificate.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca)
        self.assertEqual(notValidBefore(certificate),
                         datetime.datetime.fromtimestamp(
                             NOW - 86400, datetime.timezone.utc))
        with open(self.certPath) as f:
            self.assertEqual(f.read(), out)
        self.assertEqual(os.stat(self.keyPath).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(self.caDir).st_mode & 0o777, 0o700)

        self.assertEqual(self.kt("ca", "path", "--state-dir", self.stateDir),
                         (0, self.certPath + "\n", ""))
        self.assertEqual(self.kt("--state-dir", self.stateDir, "ca", "export"),
                         (0, out, ""))

    def test_exportWithoutTheKey(self):
        """
        An existing CA's certificate is exported without reading its key,
        which may belong to the gateway's own user.
        """
        code, out, err = self.kt("ca", "export", "--state-dir", self.stateDir)
        os.remove(self.keyPath)
        self.assertEqual(self.kt("ca", "export", "--state-dir", self.stateDir),
                         (0, out, ""))

    def test_config(self):
        """
        C{-c FILE} finds the state directory through its
        C{gateway.state_dir}, before or after the subcommand.
        """
        config = self.mktemp()
        with open(config, "w") as f:
            f.write(CONFIG % (self.stateDir,))
        self.assertEqual(self.kt("-c", config, "ca", "path")[:2],
                         (1, self.certPath + "\n"))
        code, out, err = self.kt("ca", "export", "-c", config)
        self.assertEqual(code, 0)
        x509.load_pem_x509_certificate(out.encode("ascii"))
        self.assertEqual(self.kt("ca", "path", "-c", config),
                         (0, self.certPath + "\n", ""))

    def test_badConfig(self):
        missing = self.mktemp()
        code, out, err = self.kt("ca", "export", "-c", missing)
        self.assertEqual((code, out), (1, ""))
        self.assertTrue(err.startswith("kt: %s: " % (missing,)), err)

    def test_cannotCreate(self):
        """
        A state directory that cannot be made: exit 1 and why, on stderr.
        """
        with open(self.stateDir, "w"):
            pass
        stateDir = os.path.join(self.stateDir, "state")
        code, out, err = self.kt("ca", "export", "--state-dir", stateDir)
        self.assertEqual((code, out), (1, ""))
        self.assertIn("kt: cannot use the local CA in %s" % (stateDir,), err)

    def test_notACertificate(self):
        os.makedirs(self.caDir)
        with open(self.certPath, "w") as f:
            f.write("garbage\n")
        code, out, err = self.kt("ca", "export", "--state-dir", self.stateDir)
        self.assertEqual((code, out, err), (
            1, "", "kt: %s: not a PEM certificate\n" % (self.certPath,)))

    def test_usage(self):
        code, out, err = self.kt("ca")
        self.assertEqual(code, 2)
        self.assertIn("required: ACTION", err)
        code, out, err = self.kt("ca", "--help")
        self.assertEqual(code, 0)
        self.assertIn("print the CA certificate (PEM)", out)
        self.assertIn("print the CA certificate's file name", out)
