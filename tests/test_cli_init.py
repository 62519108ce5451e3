"""
Tests for C{kt init} (L{keeptrusts.cli.init}).
"""

import io
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.cli.init import template
from keeptrusts.cli.main import Runtime, main
from keeptrusts.config import loadConfig, parseConfig
from keeptrusts.policy.registry import policyFactories


def kt(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Runtime(out, err))
    return code, out.getvalue(), err.getvalue()


def uncommented(text):
    """
    The template with its optional policies switched on.
    """
    for before, after in [
            ("    # - pii-detector", "    - pii-detector"),
            ("    # - prompt-injection", "    - prompt-injection"),
            ("  # pii-detector:\n  #   action", "  pii-detector:\n    action"),
            ("  # prompt-injection:\n  #   response",
             "  prompt-injection:\n    response")]:
        assert before in text, before
        text = text.replace(before, after)
    return text


class InitTests(SynchronousTestCase):

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.path = os.path.join(self.directory, "policy-config.yaml")

    def test_writesLoadableConfig(self):
        """
        The file loads with the installed policy kinds: the Cody guide's
        pack, the three targets, the chain, the lighter route for
        autocomplete and the intercepted hosts.
        """
        code, out, err = kt("init", "--output", self.path)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("Wrote %s." % (self.path,), out)
        config = loadConfig(self.path, policyFactories())
        self.assertEqual(config.name, "vscode-cody-providers-1@1.0.0")
        self.assertEqual(config.chain, ("dlp-filter", "audit-logger"))
        targets = {t.id: t for t in config.providers.targets}
        self.assertEqual(
            (targets["sourcegraph"].type, targets["sourcegraph"].hosts,
             targets["sourcegraph"].secret_key_ref),
            ("passthrough", ("sourcegraph.com",), None))
        self.assertEqual(targets["openai"].secret_key_ref.env,
                         "OPENAI_API_KEY")
        self.assertEqual(targets["anthropic"].secret_key_ref.env,
                         "ANTHROPIC_API_KEY")
        [route] = config.routes
        self.assertEqual((route.match.path_prefix, route.chain),
                         ("/.api/completions/code",
                          ("dlp-filter", "audit-logger")))
        self.assertEqual(config.gateway.intercept.hosts,
                         ("sourcegraph.com", "api.openai.com",
                          "api.anthropic.com"))
        audit = config.policy["audit-logger"]
        self.assertEqual((audit.immutable, audit.retention_days,
                          audit.log_all_access, audit.log_bodies),
                         (True, 365, True, False))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode) & 0o644,
                         0o644)

    def test_optionalPolicies(self):
        """
        Switched on, the commented pii-detector and prompt-injection lines
        load too, where those kinds are installed.
        """
        factories = policyFactories()
        missing = {"pii-detector", "prompt-injection"} - set(factories)
        if missing:
            raise self.skipTest("not installed: %s" % (sorted(missing),))
        config = parseConfig(uncommented(template()), factories)
        self.assertEqual(config.chain, ("dlp-filter", "pii-detector",
                                        "prompt-injection", "audit-logger"))

    def test_namesItself(self):
        kt("init", "--output", self.path)
        with open(self.path) as f:
            self.assertIn("kt doctor -c policy-config.yaml", f.read())

    def test_refusesToOverwrite(self):
        with open(self.path, "w") as f:
            f.write("mine")
        code, out, err = kt("init", "--output", self.path)
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "kt: %s exists; give --force to replace it\n"
                         % (self.path,))
        with open(self.path) as f:
            self.assertEqual(f.read(), "mine")

    def test_force(self):
        """
        C{--force} replaces the file in one rename, keeping its mode.
        """
        with open(self.path, "w") as f:
            f.write("mine")
        os.chmod(self.path, 0o640)
        code, out, err = kt("init", "--output", self.path, "--force")
        self.assertEqual((code, err), (0, ""))
        with open(self.path) as f:
            self.assertEqual(f.read(), template())
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertEqual(os.listdir(self.directory), ["policy-config.yaml"])

    def test_stdout(self):
        code, out, err = kt("init", "--output", "-")
        self.assertEqual((code, out, err), (0, template(), ""))

    def test_noDirectory(self):
        path = os.path.join(self.directory, "missing", "p.yaml")
        code, out, err = kt("init", "--output", path)
        self.assertEqual(code, 1)
        self.assertEqual(err, "kt: cannot write %s: No such file or "
                              "directory\n" % (path,))
