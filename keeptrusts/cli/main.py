# -*- test-case-name: tests.test_cli_events -*-
"""
The C{kt} console script.

Each command group is a module under C{keeptrusts.cli} that provides
C{register(subparsers, common)}, which adds its parsers and sets C{run} on
each leaf: C{run(options, runtime) -> exit code}.  Modules are found by
looking, so a new command group touches no shared list.
C{common} is a parent parser holding C{-c FILE} and C{--state-dir DIR}, so
that they are accepted before or after the subcommand.
"""

import argparse
import importlib
import os
import pkgutil
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from typing import Callable, TextIO

import attr

def commandModules():
    """
    The modules of C{keeptrusts.cli} that register a command group.
    """
    import keeptrusts.cli
    for info in sorted(pkgutil.iter_modules(keeptrusts.cli.__path__),
                       key=lambda info: info.name):
        module = importlib.import_module("keeptrusts.cli." + info.name)
        if hasattr(module, "register"):
            yield module


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Runtime:
    """
    What a command touches outside its options, injected so that tests can
    capture output and drive time.
    """

    out: TextIO
    err: TextIO
    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


class CommandError(Exception):
    """
    A command cannot go on: its message goes to stderr, exit code 1.
    """


def commonOptions():
    """
    A parent parser with the options that find the config and state.
    SUPPRESS keeps a subparser from overwriting a value given earlier.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE",
                        default=argparse.SUPPRESS,
                        help="policy-config.yaml (its gateway.state_dir)")
    common.add_argument("--state-dir", metavar="DIR",
                        default=argparse.SUPPRESS,
                        help="the gateway's state directory")
    return common


def buildParser():
    common = commonOptions()
    parser = argparse.ArgumentParser(
        prog="kt", parents=[common],
        description="Inspect and manage a keeptrusts gateway.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       required=True)
    for module in commandModules():
        module.register(subparsers, common)
    return parser


def stateDirectory(options):
    """
    The state directory: C{-c FILE}'s C{gateway.state_dir}, else
    C{--state-dir}, else the gateway's default.

    @raise CommandError: the config cannot be loaded.
    """
    config = getattr(options, "config", None)
    if config is not None:
        return os.path.expanduser(_configStateDir(config))
    stateDir = getattr(options, "state_dir", None)
    if stateDir is not None:
        return os.path.expanduser(stateDir)
    # Imported late: the config module pulls in YAML and the policy plugins.
    from keeptrusts.config import defaultStateDir
    return defaultStateDir()


def _configStateDir(path):
    from keeptrusts.config import ConfigError, loadConfig
    from keeptrusts.policy.registry import policyFactories
    try:
        config = loadConfig(path, policyFactories())
    except (ConfigError, OSError) as e:
        raise CommandError("%s: %s" % (path, e))
    return config.gateway.state_dir


def main(argv=None, runtime=None):
    """
    Run C{kt}.

    @param argv: the arguments, without the program name (default
        C{sys.argv[1:]}).
    @param runtime: a L{Runtime}; default the real streams and clock.
    @return: the exit code.
    """
    if runtime is None:
        runtime = Runtime(sys.stdout, sys.stderr)
    try:
        # argparse prints usage and errors to sys.stdout/sys.stderr.
        with redirect_stdout(runtime.out), redirect_stderr(runtime.err):
            options = buildParser().parse_args(argv)
    except SystemExit as e:
        return e.code or 0
    try:
        return options.run(options, runtime)
    except CommandError as e:
        runtime.err.write("kt: %s\n" % (e,))
        return 1
    except BrokenPipeError:
        # `kt events tail | head`: the reader left; not an error.
        _silenceStdout(runtime)
        return 0


def _silenceStdout(runtime):
    if runtime.out is sys.stdout:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    # Run the importable copy: the command modules import that one, and
    # its CommandError must be the one caught.
    from keeptrusts.cli.main import main as _main
    sys.exit(_main())
