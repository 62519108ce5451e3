# -*- test-case-name: tests.test_tap -*-
"""
C{twistd keeptrusts}: options and the service.  With L{keeptrusts.cli},
the only place that imports the global reactor.
"""

import os
import sys

import attr
from twisted.application.service import MultiService
from twisted.python import usage

from keeptrusts.api.accesslog import accessLinesFor
from keeptrusts.collector import CollectorTuning
from keeptrusts.config import ConfigError, loadConfig
from keeptrusts.policy.registry import policyFactories
from keeptrusts.policy.scrub import scrubbed
from keeptrusts.parts import requireAccessKeys
from keeptrusts.service import GatewayService


class Options(usage.Options):
    synopsis = "-c policy-config.yaml [options]"
    optParameters = [
        ["config", "c", None, "The policy configuration (YAML)."],
        ["listen", None, None, "A server endpoint, overriding gateway.listen."],
        ["state-dir", None, None, "Overrides gateway.state_dir."],
        ["fail-mode", None, None, "block or allow: overrides gateway.fail_mode."],
    ]


def configure(options, environ=os.environ):
    """
    Load the configuration and apply the command line's overrides.

    @raise SystemExit: with the path-precise message, on any problem.
    """
    if not options["config"]:
        raise SystemExit("keeptrusts: --config (-c) policy-config.yaml is required")
    factories = policyFactories()
    try:
        config = loadConfig(options["config"], factories)
    except ConfigError as e:
        # Scrubbed: the message is logged (twistd's standard error is the
        # service's log), and a key pasted into the file may be named in it.
        raise SystemExit(scrubbed("keeptrusts: %s: invalid configuration\n%s"
                                  % (options["config"], e)))
    gateway = config.gateway
    if options["fail-mode"] is not None:
        if options["fail-mode"] not in ("block", "allow"):
            raise SystemExit("keeptrusts: --fail-mode must be block or allow")
        gateway = attr.evolve(gateway, fail_mode=options["fail-mode"])
    if options["listen"] is not None:
        gateway = attr.evolve(gateway, listen=options["listen"])
    if options["state-dir"] is not None:
        gateway = attr.evolve(gateway, state_dir=os.path.abspath(
            os.path.expanduser(options["state-dir"])))
    requireAccessKeys(gateway)
    return attr.evolve(config, gateway=gateway), factories


def makeService(options):
    # twistd exits 0 on a UsageError from Options; SystemExit here exits 1.
    config, factories = configure(options)
    from twisted.internet import reactor
    top = MultiService()
    GatewayService(config, reactor, factories,
                   loadConfig=lambda: configure(options)[0],
                   accessLines=accessLinesFor(getattr(options, "parent", None),
                                              sys.stdout)
                   ).setServiceParent(top)
    # Started last: once the gateway has built what lives as long as it.
    CollectorTuning().setServiceParent(top)
    return top
