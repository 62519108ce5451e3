# -*- test-case-name: tests.test_config -*-
"""
Strict configuration: C{policy-config.yaml} read into frozen attrs values.

Every problem names the path of the key at fault (C{policy.dlp-filter.acton:
unknown key (did you mean 'action'?)}), and all the problems of a document are
gathered into one L{ConfigError}, so C{kt policy lint} can list them at once.
How a section is read is L{keeptrusts.schema}'s business; policy plugins
check their own C{policy.<kind>} blocks with it.

This module reads a document (L{parseConfig}, L{loadConfig}); the values it
is read into are defined in L{keeptrusts.configvalues}, and callers import
them from here; the checks their fields share are in
L{keeptrusts.configchecks}.
"""

import os

import attr
import yaml

from keeptrusts.configchecks import duplicateIds
from keeptrusts.configvalues import (
    AccessKey, Agent, Config, DataPolicy, Fallback, Gateway, Intercept,
    JournalSettings, Limits, Pack, Pricing, Providers, ProxySettings,
    RateLimit, Route, RouteMatch, Routing, SecretKeyRef, Target,
    TokenRateLimit, defaultStateDir)
from keeptrusts.schema import (
    ConfigError, Field, hint, invalid, joinPath, raiseAny, readFields,
    showValue)

__all__ = [
    "AccessKey", "Agent", "Config", "ConfigError", "DataPolicy", "Fallback",
    "Gateway", "Intercept", "JournalSettings", "Limits", "Pack", "Pricing",
    "Providers", "ProxySettings", "RateLimit", "Route", "RouteMatch",
    "Routing", "SecretKeyRef", "Target", "TokenRateLimit", "defaultStateDir",
    "loadConfig", "parseConfig"]


# The top-level keys: Config's own, but policies and policy in place of chain
# and policy, which need the policy factories to be read.
_TOP = {a.name: a.metadata["field"] for a in attr.fields(Config) if "field" in a.metadata}
_TOP.update(
    policies=Field(dict, item={"chain": Field(
        list, item=str, check=lambda v: None if v else "expected at least one policy kind")}),
    policy=Field(dict, {}))


def _kindProblems(kinds, path, factories):
    problems, first = [], {}
    for index, kind in enumerate(kinds):
        where = f"{path}[{index}]"
        if kind not in factories:
            problems.append((where, f"unknown policy kind {kind!r}" + hint(kind, factories)))
        elif kind in first:
            problems.append((where, f"duplicate policy kind {kind!r}"
                                    f" (first at {path}[{first[kind]}])"))
        first.setdefault(kind, index)
    return problems


def _readPolicyOptions(blocks, usedKinds, factories):
    problems = [(joinPath("policy", kind), f"unknown policy kind {kind!r}" + hint(kind, factories))
                for kind in blocks if kind not in factories]
    options = {}
    for kind in dict.fromkeys([*usedKinds, *blocks]):
        block, path = blocks.get(kind), joinPath("policy", kind)
        if kind not in factories:
            continue
        if block is not None and not isinstance(block, dict):
            problems.append((path, f"expected a mapping, got {showValue(block)}"))
            continue
        try:
            options[kind] = factories[kind].parseOptions(block or {}, path)
        except ConfigError as e:
            problems.extend(e.problems)
    return options, problems


def _loadYAML(text):
    """
    C{yaml.safe_load}, but also return the duplicate keys (which PyYAML lets
    silently override each other) as problems.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        duplicates = list(_duplicateKeys(node, "", set()))  # first: merge keys get flattened
        return loader.construct_document(node), duplicates
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<yaml>"
        context = f" ({e.context})" if e.context else ""
        raise invalid(where, f"{e.problem or 'invalid YAML'}{context}")
    except yaml.YAMLError as e:
        raise invalid("<yaml>", str(e))
    finally:
        loader.dispose()


def _duplicateKeys(node, path, seen):
    if id(node) in seen:  # an alias: walked already (and recursive ones end here)
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicateKeys(item, f"{path}[{index}]", seen)
    elif isinstance(node, yaml.MappingNode):
        firstLines = {}
        for keyNode, valueNode in node.value:
            scalar = isinstance(keyNode, yaml.ScalarNode)
            where = joinPath(path, keyNode.value if scalar else "?")
            line = keyNode.start_mark.line + 1
            if scalar and (keyNode.tag, keyNode.value) in firstLines:
                first = firstLines[keyNode.tag, keyNode.value]
                yield where, f"duplicate key (line {line}; first at line {first})"
            elif scalar:
                firstLines[keyNode.tag, keyNode.value] = line
            yield from _duplicateKeys(valueNode, where, seen)


def parseConfig(text, policyFactories):
    """
    Read a configuration document.

    @param policyFactories: kind name -> object with C{parseOptions(raw, path)}.
    @raise ConfigError: listing every problem found in the document.
    """
    data, problems = _loadYAML(text)
    if not isinstance(data, dict):
        got = "an empty document" if data is None else showValue(data)
        raise ConfigError(problems + [
            ("<document>", f"expected a mapping with pack and policies, got {got}")])
    values, more = readFields(data, "", _TOP)
    problems += more
    chain = values["policies"]["chain"] if "policies" in values else ()
    routes = values.get("routes", ())
    problems += _kindProblems(chain, "policies.chain", policyFactories)
    targetIds = [t.id for t in values["providers"].targets] if "providers" in values else None
    for index, route in enumerate(routes):
        problems += _kindProblems(route.chain or (), f"routes[{index}].chain", policyFactories)
        if targetIds is not None and route.target is not None and route.target not in targetIds:
            problems.append((f"routes[{index}].target",
                             f"unknown target {route.target!r}" + hint(route.target, targetIds)))
    problems += duplicateIds(values.get("agents", ()), "agents", "agent")
    usedKinds = [*chain, *(kind for route in routes for kind in route.chain or ())]
    policy, more = _readPolicyOptions(values.get("policy", {}), usedKinds, policyFactories)
    raiseAny(problems + more)
    values.pop("policies")
    values.pop("policy")
    return Config(chain=chain, policy=policy, **values)


def loadConfig(path, policyFactories):
    """
    Read the configuration file at C{path}; see L{parseConfig}.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise invalid("<file>", f"cannot read {os.fspath(path)!r}: {reason}")
    return parseConfig(text, policyFactories)
