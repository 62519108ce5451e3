# -*- test-case-name: tests.test_config -*-
"""
Strict configuration: C{policy-config.yaml} read into frozen attrs values.

Every problem names the path of the key at fault (C{policy.dlp-filter.acton:
unknown key (did you mean 'action'?)}), and all the problems of a document are
gathered into one L{ConfigError}, so C{kt policy lint} can list them at once.
L{Field} and L{readSection} are public: policy plugins check their own
C{policy.<kind>} blocks with them.
"""

import difflib
import math
import os
import re
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import attr
import yaml


class ConfigError(Exception):
    """
    A configuration is invalid.

    @ivar problems: a tuple of C{(path, message)} pairs.
    """

    def __init__(self, problems):
        self.problems = tuple(problems)
        Exception.__init__(self, self.problems)

    def __str__(self):
        return "\n".join(f"{path}: {message}" for path, message in self.problems)


def _error(path, message):
    return ConfigError([(path, message)])


def _raiseAny(problems):
    if problems:
        raise ConfigError(problems)


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


def _hint(word, candidates):
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()

# The plain types a Field may have, with how an error names them.
_EXPECTED = {str: "a string", int: "an integer", float: "a number",
             bool: "true or false", list: "a list", dict: "a mapping"}


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Field:
    """
    How to read one key of a mapping.

    @ivar type: C{str}, C{int}, C{float} (integers accepted), C{bool} (only
        true or false, never 0 or 1), C{list} (read into a tuple), C{dict}, or
        any function C{parse(raw, path)} that returns a value or raises
        L{ConfigError}.
    @ivar default: the value when the key is absent or null; L{REQUIRED} when
        it must be given.  An C{attr.Factory} is called each time.
    @ivar choices: the values allowed, when they are few.
    @ivar item: for a list, how to read each element; for a dict, how to read
        the mapping.  Either a C{{name: Field}} schema, a L{Field}, a plain
        type or a parse function.  L{None} keeps the raw data.
    @ivar check: a function of the value read, returning L{None} when the value
        is fine or else the message to report.
    """

    type: Any
    default: Any = REQUIRED
    choices: Optional[tuple] = attr.ib(default=None, converter=attr.converters.optional(tuple))
    item: Any = None
    check: Optional[Callable[[Any], Optional[str]]] = None


def _isType(value, kind):
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # YAML's true is an int to Python, never to us
        return False
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def _readValue(raw, path, field):
    kind = field.type
    if kind not in _EXPECTED:
        value = kind(raw, path)  # a parse function checks everything itself
    elif not _isType(raw, kind):
        raise _error(path, f"expected {_EXPECTED[kind]}, got {_show(raw)}")
    elif field.choices is not None and raw not in field.choices:
        allowed = ", ".join(map(str, field.choices))
        raise _error(path, f"expected one of [{allowed}], got {_show(raw)}")
    elif kind is list:
        value = _readList(raw, path, field.item)
    else:
        value = float(raw) if kind is float else _readItem(raw, path, field.item)
    message = field.check(value) if field.check else None
    if message:
        raise _error(path, message)
    return value


def _readItem(raw, path, item):
    if item is None:
        return raw
    if isinstance(item, Field):
        return _readValue(raw, path, item)
    if isinstance(item, dict):
        if not isinstance(raw, dict):
            raise _error(path, f"expected a mapping, got {_show(raw)}")
        return readSection(raw, path, item)
    if item in _EXPECTED:
        return _readValue(raw, path, Field(item))
    return item(raw, path)


def _readList(raw, path, item):
    values, problems = [], []
    for index, element in enumerate(raw):
        try:
            values.append(_readItem(element, f"{path}[{index}]", item))
        except ConfigError as e:
            problems.extend(e.problems)
    _raiseAny(problems)
    return tuple(values)


def _readFields(raw, path, fields):
    """
    Like L{readSection}, but return C{(values, problems)}: the values that
    could be read, so later checks can still run on the rest.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, [(path or "<document>", f"expected a mapping, got {_show(raw)}")]
    problems = [(_join(path, key), "unknown key" + _hint(key, fields))
                for key in raw if key not in fields]
    values = {}
    for name, field in fields.items():
        where, value = _join(path, name), raw.get(name)
        if value is None and field.default is not REQUIRED:  # absent or null
            default = field.default
            values[name] = default.factory() if isinstance(default, attr.Factory) else default
        elif name not in raw:
            problems.append((where, "required key missing"))
        else:
            try:
                values[name] = _readValue(value, where, field)
            except ConfigError as e:
                problems.extend(e.problems)
    return values, problems


def readSection(raw, path, fields):
    """
    Read the mapping C{raw} found at C{path} (null counts as empty).

    @param fields: C{{name: Field}}.
    @return: C{{name: value}} for every field, defaults filled in.
    @raise ConfigError: listing every problem of the section.
    """
    values, problems = _readFields(raw, path, fields)
    _raiseAny(problems)
    return values


def _key(type, default=REQUIRED, **spec):
    """
    An attribute of a config value, with the L{Field} that reads it: each
    default and rule is written once, next to the attribute.
    """
    return attr.ib(default=attr.NOTHING if default is REQUIRED else default,
                   metadata={"field": Field(type, default, **spec)})


def _record(cls, finish=None):
    """
    A parse function reading a mapping into C{cls}, whose attributes are
    made by L{_key}.  C{finish(values, path)} may check keys against each
    other and fill in derived values.
    """
    schema = {a.name: a.metadata["field"] for a in attr.fields(cls)}

    def parse(raw, path):
        if not isinstance(raw, dict):
            raise _error(path, f"expected a mapping, got {_show(raw)}")
        values = readSection(raw, path, schema)
        if finish is not None:
            finish(values, path)
        return cls(**values)

    return parse


# Checks: each returns None when the value is fine, else a message.

def _matching(pattern, what):
    regex = re.compile(pattern)
    return lambda v: None if regex.fullmatch(v) else f"expected {what}, got {_show(v)}"


def _atLeast(low):
    return lambda v: None if v >= low else f"expected a value of at least {low}, got {_show(v)}"


def _positive(v):
    return None if v > 0 else f"expected a value greater than 0, got {_show(v)}"


def _port(v):
    return None if 1 <= v <= 65535 else f"expected a port from 1 to 65535, got {v!r}"


def _unique(values):
    dup = next((v for i, v in enumerate(values) if v in values[:i]), None)
    return None if dup is None else f"duplicate entry {dup!r}"


def _httpURL(url):
    parts = urlsplit(url)
    try:
        parts.port  # raises on a bad port
        ok = (parts.scheme in ("http", "https") and bool(parts.hostname)
              and not (parts.query or parts.fragment or "@" in parts.netloc)
              and not any(c.isspace() for c in url))
    except ValueError:
        ok = False
    return None if ok else (
        f"expected an http(s) URL like https://host[:port][/path], got {_show(url)}")


_nonEmpty = _matching(r"(?s).+", "a non-empty string")
_semver = _matching(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"  # MAJOR.MINOR.PATCH
                    r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?",  # -prerelease +build
                    "a SemVer version like 1.0.0")
_name = _matching(r"[A-Za-z0-9_.-]+", "a name of ASCII letters, digits, '_', '-' and '.'")
_sha256 = _matching(r"[0-9a-fA-F]{64}", "64 hexadecimal digits (a SHA-256)")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_hostName = _matching(rf"{_LABEL}(\.{_LABEL})*", "a host name like api.openai.com")
_headerName = _matching(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", "an HTTP header name")
_HOST = Field(str, check=_hostName)
_TRIGGERS = ("rate_limit", "server_error", "timeout")


def _duplicateIds(items, path, what):
    problems, first = [], {}
    for index, item in enumerate(items):
        if item.id in first:
            firstPath = f"{path}[{first[item.id]}]"
            problems.append((f"{path}[{index}].id",
                             f"duplicate {what} id {item.id!r} (first at {firstPath})"))
        first.setdefault(item.id, index)
    return problems


def _exactlyOne(a, b):
    def finish(values, path):
        given = [key for key in (a, b) if values[key] is not None]
        if len(given) != 1:
            got = "both" if given else "neither"
            raise _error(path, f"expected exactly one of {a} or {b}, got {got}")
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
    name: str = _key(str, check=_nonEmpty)
    version: str = _key(str, check=_semver)
    enabled: bool = _key(bool)
    id: Optional[str] = _key(str, None)
    author: str = _key(str, "")
    description: str = _key(str, "")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AccessKey:
    id: str = _key(str, check=_nonEmpty)
    user: str = _key(str, check=_nonEmpty)
    key_env: Optional[str] = _key(str, None, check=_name)
    key_sha256: Optional[str] = _key(str, None, check=_sha256)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Intercept:
    hosts: Optional[Tuple[str, ...]] = _key(list, None, item=_HOST)  # None: the targets' hosts
    upstream_ca_file: Optional[str] = _key(str, None, check=_nonEmpty)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ProxySettings:
    allowed_ports: Tuple[int, ...] = _key(list, (443,), item=Field(int, check=_port))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class JournalSettings:
    sync: str = _key(str, "batch", choices=("batch", "always", "never"))
    segment_max_bytes: int = _key(int, 67108864, check=_atLeast(4096))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Limits:
    max_body_bytes: int = _key(int, 33554432, check=_positive)
    upstream_connect_timeout_s: float = _key(float, 10.0, check=_positive)
    upstream_idle_timeout_s: float = _key(float, 300.0, check=_positive)
    client_idle_timeout_s: float = _key(float, 300.0, check=_positive)


def _finishGateway(values, path):
    values["state_dir"] = os.path.expanduser(values["state_dir"])
    _raiseAny(_duplicateIds(values["access_keys"], _join(path, "access_keys"), "access key"))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Gateway:
    listen: str = _key(str, "tcp:41002:interface=127.0.0.1", check=_nonEmpty)
    # A factory: $XDG_STATE_HOME is read each time a Gateway is made.
    state_dir: str = _key(str, attr.Factory(defaultStateDir), check=_nonEmpty)
    fail_mode: str = _key(str, "block", choices=("block", "allow"))
    default_user: str = _key(str, "anonymous", check=_nonEmpty)
    access_keys: Tuple[AccessKey, ...] = _key(
        list, (), item=_record(AccessKey, _exactlyOne("key_env", "key_sha256")))
    intercept: Intercept = _key(_record(Intercept), Intercept())
    proxy: ProxySettings = _key(_record(ProxySettings), ProxySettings())
    journal: JournalSettings = _key(_record(JournalSettings), JournalSettings())
    limits: Limits = _key(_record(Limits), Limits())


# -- providers

@attr.s(frozen=True, slots=True, auto_attribs=True)
class SecretKeyRef:
    env: Optional[str] = _key(str, None, check=_name)
    store: Optional[str] = _key(str, None, check=_name)


_readSecretKeyRefMapping = _record(SecretKeyRef, _exactlyOne("env", "store"))


def _readSecretKeyRef(raw, path):
    if not isinstance(raw, dict):
        # Never echo a string here: it may well be the key itself.
        got = "a string" if isinstance(raw, str) else _show(raw)
        raise _error(path, f"expected a mapping like {{env: NAME}}, got {got}")
    return _readSecretKeyRefMapping(raw, path)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DataPolicy:
    zero_data_retention: bool = _key(bool, False)
    training_opt_out: bool = _key(bool, False)
    retention_days: Optional[int] = _key(int, None, check=_atLeast(0))


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
        raise _error(_join(path, "base_url"),
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

    id: str = _key(str, check=_nonEmpty)
    provider: str = _key(str, choices=tuple(_PROVIDERS))
    base_url: str = _key(str, None, check=_httpURL)
    secret_key_ref: Optional[SecretKeyRef] = _key(_readSecretKeyRef, None)  # None: the client's key
    api_key_header: str = _key(str, None, check=_headerName)
    api_key_prefix: str = _key(str, None)
    models: Tuple[str, ...] = _key(list, (), item=Field(str, check=_nonEmpty))
    type: str = _key(str, "direct", choices=("direct", "passthrough"))
    hosts: Tuple[str, ...] = _key(list, (), item=_HOST)
    data_policy: Optional[DataPolicy] = _key(_record(DataPolicy), None)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Routing:
    strategy: str = _key(str, "ordered", choices=("ordered", "round_robin"))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Fallback:
    triggers: Tuple[str, ...] = _key(list, _TRIGGERS, item=Field(str, choices=_TRIGGERS),
                                     check=_unique)
    max_fallback_attempts: int = _key(int, 2, check=_atLeast(0))


def _finishProviders(values, path):
    _raiseAny(_duplicateIds(values["targets"], _join(path, "targets"), "target"))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Providers:
    targets: Tuple[Target, ...] = _key(list, (), item=_record(Target, _finishTarget))
    routing: Routing = _key(_record(Routing), Routing())
    fallback: Fallback = _key(_record(Fallback), Fallback())


# -- routes, agents, rate limits

def _readHeaderMatch(raw, path):
    """{name: value} -> a tuple of (name, value) pairs, which can be hashed."""
    schema = {name: Field(str) for name in raw
              if isinstance(name, str) and _headerName(name) is None}
    _raiseAny([(_join(path, name), "expected an HTTP header name")
               for name in raw if name not in schema])
    return tuple(readSection(raw, path, schema).items())


def _readMethod(raw, path):
    return _readValue(raw, path, Field(str, check=_matching("[A-Za-z]+", "an HTTP method"))).upper()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RouteMatch:
    path_prefix: Optional[str] = _key(str, None, check=_matching(r"/.*", "a path starting with /"))
    method: Optional[str] = _key(_readMethod, None)  # upper case
    header: Optional[Tuple[Tuple[str, str], ...]] = _key(dict, None, item=_readHeaderMatch)
    host: Optional[str] = _key(str, None, check=_hostName)


def _finishRoute(values, path):
    if values["chain"] is None and values["target"] is None:
        raise _error(path, "expected chain, target or both")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Route:
    match: RouteMatch = _key(_record(RouteMatch))
    chain: Optional[Tuple[str, ...]] = _key(list, None, item=str)  # None: the main chain
    target: Optional[str] = _key(str, None)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Agent:
    id: str = _key(str, check=_nonEmpty)
    max_cost_usd_per_day: Optional[float] = _key(float, None, check=_atLeast(0))
    max_tokens_per_day: Optional[int] = _key(int, None, check=_atLeast(0))
    max_requests_per_minute: Optional[int] = _key(int, None, check=_atLeast(0))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RateLimit:
    max_requests: int = _key(int, check=_positive)
    window_seconds: float = _key(float, check=_positive)
    header_names: Tuple[str, ...] = _key(list, (), item=Field(str, check=_headerName))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TokenRateLimit:
    max_tokens: int = _key(int, check=_positive)
    window_seconds: float = _key(float, check=_positive)


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

    pack: Pack = _key(_record(Pack))
    chain: Tuple[str, ...] = attr.ib(converter=tuple)
    policy: Mapping[str, Any] = attr.ib(converter=lambda m: MappingProxyType(dict(m)))
    gateway: Gateway = _key(_record(Gateway, _finishGateway), attr.Factory(Gateway))
    providers: Providers = _key(_record(Providers, _finishProviders), Providers())
    agents: Tuple[Agent, ...] = _key(list, (), item=_record(Agent))
    routes: Tuple[Route, ...] = _key(list, (), item=_record(Route, _finishRoute))
    global_rate_limit: Optional[RateLimit] = _key(_record(RateLimit), None)
    user_rate_limit: Optional[RateLimit] = _key(_record(RateLimit), None)
    token_rate_limit: Optional[TokenRateLimit] = _key(_record(TokenRateLimit), None)
    testing: Optional[Mapping[str, Any]] = _key(dict, None)

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
            problems.append((where, f"unknown policy kind {kind!r}" + _hint(kind, factories)))
        elif kind in first:
            problems.append((where, f"duplicate policy kind {kind!r}"
                                    f" (first at {path}[{first[kind]}])"))
        first.setdefault(kind, index)
    return problems


def _readPolicyOptions(blocks, usedKinds, factories):
    problems = [(_join("policy", kind), f"unknown policy kind {kind!r}" + _hint(kind, factories))
                for kind in blocks if kind not in factories]
    options = {}
    for kind in dict.fromkeys([*usedKinds, *blocks]):
        block, path = blocks.get(kind), _join("policy", kind)
        if kind not in factories:
            continue
        if block is not None and not isinstance(block, dict):
            problems.append((path, f"expected a mapping, got {_show(block)}"))
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
        raise _error(where, f"{e.problem or 'invalid YAML'}{context}")
    except yaml.YAMLError as e:
        raise _error("<yaml>", str(e))
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
            where = _join(path, keyNode.value if scalar else "?")
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
        got = "an empty document" if data is None else _show(data)
        raise ConfigError(problems + [
            ("<document>", f"expected a mapping with pack and policies, got {got}")])
    values, more = _readFields(data, "", _TOP)
    problems += more
    chain = values["policies"]["chain"] if "policies" in values else ()
    routes = values.get("routes", ())
    problems += _kindProblems(chain, "policies.chain", policyFactories)
    targetIds = [t.id for t in values["providers"].targets] if "providers" in values else None
    for index, route in enumerate(routes):
        problems += _kindProblems(route.chain or (), f"routes[{index}].chain", policyFactories)
        if targetIds is not None and route.target is not None and route.target not in targetIds:
            problems.append((f"routes[{index}].target",
                             f"unknown target {route.target!r}" + _hint(route.target, targetIds)))
    problems += _duplicateIds(values.get("agents", ()), "agents", "agent")
    usedKinds = [*chain, *(kind for route in routes for kind in route.chain or ())]
    policy, more = _readPolicyOptions(values.get("policy", {}), usedKinds, policyFactories)
    _raiseAny(problems + more)
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
        raise _error("<file>", f"cannot read {os.fspath(path)!r}: {reason}")
    return parseConfig(text, policyFactories)
