# -*- test-case-name: tests.test_policy_cli -*-
"""
C{kt policy lint} and C{kt policy test}: check a configuration, and run
its policy test cases (golden files, inline C{testing.suites}) in process.

Exit codes: 0 fine; 1 a test case failed; 2 the configuration or a case
file is invalid.
"""

import glob
import json
import os
import re

from keeptrusts.cli.main import CommandError
from keeptrusts.policy.scrub import scrubbed

DEFAULT_GOLDEN_DIR = os.path.join("tests", "policy")
INVALID = 2
_HINT = re.compile(r" \(did you mean '(.*)'\?\)$")
_CHOICES = re.compile(r"^expected one of \[(.*)\], got ")


def register(subparsers, common):
    policy = subparsers.add_parser(
        "policy", parents=[common], help="check a configuration and test its policies")
    actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)

    lint = actions.add_parser("lint", parents=[common],
                              help="check a configuration file")
    lint.add_argument("--file", metavar="FILE",
                      help="the configuration (default: -c FILE)")
    lint.add_argument("--json", action="store_true", help="print one JSON object")
    lint.set_defaults(run=runLint)

    test = actions.add_parser(
        "test", parents=[common],
        help="run golden files and the config's testing.suites through its chain")
    test.add_argument("--dir", metavar="DIR",
                      help="golden files DIR/*.json (default: %s beside the "
                      "configuration, if present)" % (DEFAULT_GOLDEN_DIR,))
    test.add_argument("--json", action="store_true", help="print one JSON object")
    test.set_defaults(run=runTest)


def _load(path):
    """
    @return: C{(config or None, errors, factories)}.
    """
    from keeptrusts.config import ConfigError, loadConfig
    from keeptrusts.policy.registry import policyFactories
    factories = policyFactories()
    try:
        return loadConfig(path, factories), [], factories
    except ConfigError as e:
        return None, list(e.problems), factories


def suggestion(message):
    """
    What to do about a problem, read from its message.
    """
    hint = _HINT.search(message)
    if hint:
        return "did you mean %r?" % (hint.group(1),)
    choices = _CHOICES.match(message)
    if choices:
        return "use one of: %s" % (choices.group(1),)
    if message == "required key missing":
        return "add this key"
    return None


def warnings(config):
    """
    What is valid but probably not meant.
    """
    used = set(config.chain)
    for route in config.routes:
        used.update(route.chain or ())
    for kind in config.policy:
        if kind not in used:
            yield ("policy.%s" % (kind,),
                   "configured but not in policies.chain nor a route's chain: "
                   "it never runs")
    if "audit-logger" in config.chain and config.chain[-1] != "audit-logger":
        yield ("policies.chain", "audit-logger is not last: it records the "
               "decision of the policies before it only")


def _testingProblems(config):
    from keeptrusts.config import ConfigError
    from keeptrusts.policy.cases import readSuites
    try:
        readSuites(config.testing)
    except ConfigError as e:
        return list(e.problems)
    return []


def runLint(options, runtime):
    """
    C{kt policy lint}: OK and the chain, or each error with its path and a
    suggestion; exit 2 on errors.
    """
    path = options.file or getattr(options, "config", None)
    if path is None:
        raise CommandError("give --file FILE (or -c FILE)")
    config, errors, factories = _load(path)
    if config is not None:
        errors = _testingProblems(config)
    # A key where a name goes (a policy kind, an alias, a duplicate key)
    # is shown as its marker, as the gateway logs it.
    found = [{"path": scrubbed(p), "message": scrubbed(m),
              "suggestion": scrubbed(suggestion(m))} for p, m in errors]
    warned = ([] if config is None or errors else
              [{"path": scrubbed(p), "message": scrubbed(m)}
               for p, m in warnings(config)])
    out = runtime.out
    if options.json:
        report = {"ok": not found, "file": path, "errors": found, "warnings": warned}
        if config is not None and not found:
            report.update(pack={"name": scrubbed(config.pack.name),
                                "version": config.pack.version},
                          chain=list(config.chain))
        out.write(json.dumps(report, indent=2) + "\n")
    elif found:
        out.write("X %s has %d error%s\n" % (path, len(found), "" if len(found) == 1 else "s"))
        for error in found:
            out.write("error: %s\n  --> %s\n" % (error["message"], error["path"]))
            if error["suggestion"]:
                out.write("  help: %s\n" % (error["suggestion"],))
    else:
        out.write("OK %s is valid\nPack: %s (v%s)\nChain: %s\nPolicies validated: %d\n"
                  % (path, scrubbed(config.pack.name), config.pack.version,
                     " -> ".join(config.chain), len(config.policy)))
        for warning in warned:
            out.write("warning: %s: %s\n" % (warning["path"], warning["message"]))
    return INVALID if found else 0


def requestTexts(body):
    """
    The endpoint and texts of a request body, as the gateway's OpenAI
    request adapter reads them.
    """
    from keeptrusts.api.endpoint import readSlots
    from keeptrusts.api.openai import ENDPOINTS
    from keeptrusts.api.texts import requestTextSlots
    name = ("chat/completions" if "messages" in body else
            "completions" if "prompt" in body else "embeddings")
    endpoint = ENDPOINTS[name]
    endpoint.validate(body)
    return name, readSlots(requestTextSlots(endpoint, body))


def _cases(options, path, config, factories):
    """
    @return: C{(cases, problems)}.
    """
    from keeptrusts.config import ConfigError
    from keeptrusts.policy.cases import readGoldenFile, readSuites
    directory = options.dir
    if directory is not None and not os.path.isdir(directory):
        return [], [(directory, "no such directory")]
    directory = directory or os.path.join(os.path.dirname(path), DEFAULT_GOLDEN_DIR)
    cases, problems = [], []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        try:
            cases.extend(readGoldenFile(path))
        except ConfigError as e:
            problems.extend(e.problems)
    try:
        cases.extend(readSuites(config.testing))
    except ConfigError as e:
        problems.extend(e.problems)
    for case in cases:
        if case.target is not None and case.target not in factories:
            problems.append((case.source, "case %r: unknown policy kind %r"
                             % (case.name, case.target)))
    return cases, problems


def _run(case, config, factories):
    from keeptrusts.policy.cases import runCase
    if case.target is not None and case.target not in config.policy:
        # A kind the configuration does not mention runs with its defaults.
        policy = dict(config.policy)
        policy[case.target] = factories[case.target].parseOptions({}, "policy." + case.target)
        config = _withPolicy(config, policy)
    return runCase(case, config, factories, requestTexts)


def _withPolicy(config, policy):
    import attr
    return attr.evolve(config, policy=policy)


def runTest(options, runtime):
    """
    C{kt policy test}: each case through the configured chain; exit 1 when
    one fails.
    """
    path = getattr(options, "config", None)
    if path is None:
        raise CommandError("give -c FILE: the configuration whose policies "
                           "the cases run through")
    config, errors, factories = _load(path)
    cases = []
    if config is not None:
        cases, errors = _cases(options, path, config, factories)
    if errors:
        return _invalid(runtime, options, path, errors)
    results, problems = [], []
    for case in cases:
        try:
            results.append(_run(case, config, factories))
        except Exception as e:  # an input the request adapter refuses
            problems.append((case.source, "case %r: %s" % (case.name, e)))
    if problems:
        return _invalid(runtime, options, path, problems)
    failed = [r for r in results if not r.passed]
    if options.json:
        runtime.out.write(json.dumps({
            "ok": not failed, "results": [r.asJSON() for r in results],
            "summary": {"total": len(results), "passed": len(results) - len(failed),
                        "failed": len(failed)}}, indent=2) + "\n")
    else:
        for result in results:
            runtime.out.write("%s  %s  (%s)\n" % ("PASS" if result.passed else "FAIL",
                                                 result.case.name, result.case.source))
            for failure in result.failures:
                runtime.out.write("      %s\n" % (failure,))
        runtime.out.write("%d case%s: %d passed, %d failed\n" % (
            len(results), "" if len(results) == 1 else "s",
            len(results) - len(failed), len(failed)))
    return 1 if failed else 0


def _invalid(runtime, options, path, problems):
    if options.json:
        runtime.out.write(json.dumps({
            "ok": False, "results": [],
            "errors": [{"path": p, "message": m} for p, m in problems]}, indent=2) + "\n")
    else:
        runtime.err.write("kt: %s: invalid\n" % (path,))
        for p, m in problems:
            runtime.err.write("%s: %s\n" % (p, m))
    return INVALID
