# -*- test-case-name: tests.test_config -*-
"""
Strict configuration: C{policy-config.yaml} read into frozen attrs values.

Every problem names the path of the key at fault (C{policy.dlp-filter.acton:
unknown key (did you mean 'action'?)}), and all the problems of a document are
gathered into one L{ConfigError}, so C{kt policy lint} can list them at once.
How a section is read is L{keeptrusts.schema}'s business; policy plugins
check their own C{policy.<kind>} blocks with it.
"""

import os
import re
from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import attr
import yaml

from keeptrusts.schema import (
    ConfigError, Field, atLeast, hint, invalid, joinPath, matching, positive,
    raiseAny, readFields, readSection, readValue, recordParser, setting,
    showValue, unique, validPort)


def httpURL(url):
    parts = urlsplit(url)
    try:
        parts.port  # raises on a bad port
        ok = (parts.scheme in ("http", "https") and bool(parts.hostname)
              and not (parts.query or parts.fragment or "@" in parts.netloc)
              and not any(c.isspace() for c in url))
    except ValueError:
        ok = False
    return None if ok else (
        f"expected an http(s) URL like https://host[:port][/path], got {showValue(url)}")


nonEmpty = matching(r"(?s).+", "a non-empty string")
semver = matching(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"  # MAJOR.MINOR.PATCH
                   r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?",  # -prerelease +build
                   "a SemVer version like 1.0.0")
asciiName = matching(r"[A-Za-z0-9_.-]+", "a name of ASCII letters, digits, '_', '-' and '.'")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def envName(value):
    # Never echoed: a key pasted where its variable's name goes is still a
    # key, and would be logged as "$<key> is not set" if it were taken.
    if _ENV_NAME.fullmatch(value):
        return None
    return ("expected the name of an environment variable (letters, digits "
            "and '_'), not the key itself")


sha256 = matching(r"[0-9a-fA-F]{64}", "64 hexadecimal digits (a SHA-256)")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
hostName = matching(rf"{_LABEL}(\.{_LABEL})*", "a host name like api.openai.com")
headerName = matching(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", "an HTTP header name")
HOST = Field(str, check=hostName)
# Interception may name every host below a domain: *.openai.com.
HOST_PATTERN = Field(str, check=matching(rf"(\*\.)?{_LABEL}(\.{_LABEL})*",
                                         "a host name like api.openai.com or *.openai.com"))
_TRIGGERS = ("rate_limit", "server_error", "timeout")


def duplicateIds(items, path, what):
    problems, first = [], {}
    for index, item in enumerate(items):
        if item.id in first:
            firstPath = f"{path}[{first[item.id]}]"
            problems.append((f"{path}[{index}].id",
                             f"duplicate {what} id {item.id!r} (first at {firstPath})"))
        first.setdefault(item.id, index)
    return problems


def exactlyOne(a, b):
    def finish(values, path):
        given = [key for key in (a, b) if values[key] is not None]
        if len(given) != 1:
            got = "both" if given else "neither"
            raise invalid(path, f"expected exactly one of {a} or {b}, got {got}")
    return finish


def defaultStateDir():
    """
    C{$XDG_STATE_HOME/keeptrusts} when that is set, else
    C{~/.local/state/keeptrusts}; C{~} expanded.
    """
    base = os.environ.get("XDG_STATE_HOME") or os.path.join("~", ".local", "state")
    return os.path.join(os.path.expanduser(base), "keeptrusts")


# -- pack and gateway

@attr.s(frozen=True, slots=True, auto_attribs=True)
class Pack:
    name: str = setting(str, check=nonEmpty)
    version: str = setting(str, check=semver)
    enabled: bool = setting(bool)
    id: Optional[str] = setting(str, None)
    author: str = setting(str, "")
    description: str = setting(str, "")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AccessKey:
    id: str = setting(str, check=nonEmpty)
    user: str = setting(str, check=nonEmpty)
    key_env: Optional[str] = setting(str, None, check=asciiName)
    key_sha256: Optional[str] = setting(str, None, check=sha256)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Intercept:
    hosts: Optional[Tuple[str, ...]] = setting(list, None, item=HOST_PATTERN)  # None: the targets' hosts
    upstream_ca_file: Optional[str] = setting(str, None, check=nonEmpty)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ProxySettings:
    allowed_ports: Tuple[int, ...] = setting(list, (443,), item=Field(int, check=validPort))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class JournalSettings:
    sync: str = setting(str, "batch", choices=("batch", "always", "never"))
    segment_max_bytes: int = setting(int, 67108864, check=atLeast(4096))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Limits:
    max_body_bytes: int = setting(int, 33554432, check=positive)
    upstream_connect_timeout_s: float = setting(float, 10.0, check=positive)
    upstream_idle_timeout_s: float = setting(float, 300.0, check=positive)
    client_idle_timeout_s: float = setting(float, 300.0, check=positive)


def _finishGateway(values, path):
    values["state_dir"] = os.path.expanduser(values["state_dir"])
    raiseAny(duplicateIds(values["access_keys"], joinPath(path, "access_keys"), "access key"))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Gateway:
    listen: str = setting(str, "tcp:41002:interface=127.0.0.1", check=nonEmpty)
    # A factory: $XDG_STATE_HOME is read each time a Gateway is made.
    state_dir: str = setting(str, attr.Factory(defaultStateDir), check=nonEmpty)
    fail_mode: str = setting(str, "block", choices=("block", "allow"))
    default_user: str = setting(str, "anonymous", check=nonEmpty)
    access_keys: Tuple[AccessKey, ...] = setting(
        list, (), item=recordParser(AccessKey, exactlyOne("key_env", "key_sha256")))
    intercept: Intercept = setting(recordParser(Intercept), Intercept())
    proxy: ProxySettings = setting(recordParser(ProxySettings), ProxySettings())
    journal: JournalSettings = setting(recordParser(JournalSettings), JournalSettings())
    limits: Limits = setting(recordParser(Limits), Limits())
    # One line per request (method, path, status, ms, verdict): text, json
    # or off; never a header value or a body.
    access_log: str = setting(str, "text", choices=("text", "json", "off"))


# -- providers

@attr.s(frozen=True, slots=True, auto_attribs=True)
class SecretKeyRef:
    env: Optional[str] = setting(str, None, check=envName)
    store: Optional[str] = setting(str, None, check=asciiName)


_readSecretKeyRefMapping = recordParser(SecretKeyRef, exactlyOne("env", "store"))


def _readSecretKeyRef(raw, path):
    if not isinstance(raw, dict):
        # Never echo a string here: it may well be the key itself.
        got = "a string" if isinstance(raw, str) else showValue(raw)
        raise invalid(path, f"expected a mapping like {{env: NAME}}, got {got}")
    return _readSecretKeyRefMapping(raw, path)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DataPolicy:
    zero_data_retention: bool = setting(bool, False)
    training_opt_out: bool = setting(bool, False)
    retention_days: Optional[int] = setting(int, None, check=atLeast(0))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Pricing:
    """
    US dollars per million tokens; over the built-in table of models.
    """

    input_per_million: float = setting(float, check=atLeast(0))
    output_per_million: float = setting(float, 0.0, check=atLeast(0))


# provider -> (default base_url, api_key_header, api_key_prefix)
_PROVIDERS = {
    "openai": ("https://api.openai.com/v1", "Authorization", "Bearer "),
    "anthropic": ("https://api.anthropic.com", "x-api-key", ""),
    "sourcegraph": ("https://sourcegraph.com", "Authorization", "token "),
    "openai-compatible": (None, "Authorization", "Bearer "),
}


def _finishTarget(values, path):
    provider = values["provider"]
    baseURL, header, prefix = _PROVIDERS[provider]
    if values["base_url"] is None and baseURL is None:
        raise invalid(joinPath(path, "base_url"),
                     f"required key missing (provider {provider!r} has no default)")
    values["base_url"] = (values["base_url"] or baseURL).rstrip("/")
    if values["api_key_header"] is None:
        values["api_key_header"] = header
    if values["api_key_prefix"] is None:  # the provider's prefix goes with its own header only
        sameHeader = values["api_key_header"].lower() == header.lower()
        values["api_key_prefix"] = prefix if sameHeader else ""


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Target:
    """
    One upstream.  C{base_url} (without a trailing slash), C{api_key_header}
    and C{api_key_prefix} default to the provider's when read from YAML.
    """

    id: str = setting(str, check=nonEmpty)
    provider: str = setting(str, choices=tuple(_PROVIDERS))
    base_url: str = setting(str, None, check=httpURL)
    secret_key_ref: Optional[SecretKeyRef] = setting(_readSecretKeyRef, None)  # None: the client's key
    api_key_header: str = setting(str, None, check=headerName)
    api_key_prefix: str = setting(str, None)
    models: Tuple[str, ...] = setting(list, (), item=Field(str, check=nonEmpty))
    type: str = setting(str, "direct", choices=("direct", "passthrough"))
    hosts: Tuple[str, ...] = setting(list, (), item=HOST)
    data_policy: Optional[DataPolicy] = setting(recordParser(DataPolicy), None)
    pricing: Optional[Pricing] = setting(recordParser(Pricing), None)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Routing:
    strategy: str = setting(str, "ordered", choices=("ordered", "round_robin"))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Fallback:
    triggers: Tuple[str, ...] = setting(list, _TRIGGERS, item=Field(str, choices=_TRIGGERS),
                                     check=unique)
    max_fallback_attempts: int = setting(int, 2, check=atLeast(0))


def _finishProviders(values, path):
    raiseAny(duplicateIds(values["targets"], joinPath(path, "targets"), "target"))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Providers:
    targets: Tuple[Target, ...] = setting(list, (), item=recordParser(Target, _finishTarget))
    routing: Routing = setting(recordParser(Routing), Routing())
    fallback: Fallback = setting(recordParser(Fallback), Fallback())


# -- routes, agents, rate limits

def _readHeaderMatch(raw, path):
    """{name: value} -> a tuple of (name, value) pairs, which can be hashed."""
    schema = {name: Field(str) for name in raw
              if isinstance(name, str) and headerName(name) is None}
    raiseAny([(joinPath(path, name), "expected an HTTP header name")
               for name in raw if name not in schema])
    return tuple(readSection(raw, path, schema).items())


def _readMethod(raw, path):
    return readValue(raw, path, Field(str, check=matching("[A-Za-z]+", "an HTTP method"))).upper()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RouteMatch:
    path_prefix: Optional[str] = setting(str, None, check=matching(r"/.*", "a path starting with /"))
    method: Optional[str] = setting(_readMethod, None)  # upper case
    header: Optional[Tuple[Tuple[str, str], ...]] = setting(dict, None, item=_readHeaderMatch)
    host: Optional[str] = setting(str, None, check=hostName)


def _finishRoute(values, path):
    if values["chain"] is None and values["target"] is None:
        raise invalid(path, "expected chain, target or both")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Route:
    match: RouteMatch = setting(recordParser(RouteMatch))
    chain: Optional[Tuple[str, ...]] = setting(list, None, item=str)  # None: the main chain
    target: Optional[str] = setting(str, None)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Agent:
    id: str = setting(str, check=nonEmpty)
    max_cost_usd_per_day: Optional[float] = setting(float, None, check=atLeast(0))
    max_tokens_per_day: Optional[int] = setting(int, None, check=atLeast(0))
    max_requests_per_minute: Optional[int] = setting(int, None, check=atLeast(0))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RateLimit:
    max_requests: int = setting(int, check=positive)
    window_seconds: float = setting(float, check=positive)
    header_names: Tuple[str, ...] = setting(list, (), item=Field(str, check=headerName))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TokenRateLimit:
    max_tokens: int = setting(int, check=positive)
    window_seconds: float = setting(float, check=positive)


# -- the whole document

@attr.s(frozen=True, slots=True, auto_attribs=True)
class Config:
    """
    @ivar chain: the policy kinds of the main chain, in order.
    @ivar policy: a read-only mapping (L{MappingProxyType}), kind -> options
        value, for every kind in the main chain, in a route's chain or under
        C{policy:}; the main chain's kinds come first, in chain order.
    @ivar testing: the raw C{testing:} mapping (inline suites), if any.
    """

    pack: Pack = setting(recordParser(Pack))
    chain: Tuple[str, ...] = attr.ib(converter=tuple)
    policy: Mapping[str, Any] = attr.ib(converter=lambda m: MappingProxyType(dict(m)))
    gateway: Gateway = setting(recordParser(Gateway, _finishGateway), attr.Factory(Gateway))
    providers: Providers = setting(recordParser(Providers, _finishProviders), Providers())
    agents: Tuple[Agent, ...] = setting(list, (), item=recordParser(Agent))
    routes: Tuple[Route, ...] = setting(list, (), item=recordParser(Route, _finishRoute))
    global_rate_limit: Optional[RateLimit] = setting(recordParser(RateLimit), None)
    user_rate_limit: Optional[RateLimit] = setting(recordParser(RateLimit), None)
    token_rate_limit: Optional[TokenRateLimit] = setting(recordParser(TokenRateLimit), None)
    testing: Optional[Mapping[str, Any]] = setting(dict, None)

    @property
    def name(self):
        """C{name@version} of the pack, as the journal's C{config} field."""
        return f"{self.pack.name}@{self.pack.version}"


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
