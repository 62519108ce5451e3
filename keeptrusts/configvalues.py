# -*- test-case-name: tests.test_config -*-
"""
The frozen attrs values that C{policy-config.yaml} is read into: one class
per section (the pack, the gateway, the providers and their targets, routes,
agents, rate limits) and L{Config} for the whole document, each field
declared with how it is read and checked (L{keeptrusts.schema.setting}).
L{keeptrusts.config} reads a document into them, and its callers import
them from there.
"""

import os
from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple

import attr

from keeptrusts.configchecks import (
    HOST, HOST_PATTERN, duplicateIds, envName, exactlyOne, headerName,
    hostName, httpURL, nonEmpty, semver, sha256, storedSecretName)
from keeptrusts.policy.scrub import scrubbed
from keeptrusts.schema import (
    Field, atLeast, invalid, joinPath, matching, positive, raiseAny,
    readSection, readValue, recordParser, setting, showValue, unique,
    validPort)

_TRIGGERS = ("rate_limit", "server_error", "timeout")


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
    key_env: Optional[str] = setting(str, None, check=envName)
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
    store: Optional[str] = setting(str, None, check=storedSecretName)


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
        """
        C{name@version} of the pack, as the journal's C{config} field and
        the log show it: a key in the name as its marker.
        """
        return scrubbed(f"{self.pack.name}@{self.pack.version}")
