"""
Tests for L{keeptrusts.config}.
"""

import operator
import os
from types import MappingProxyType

import attr
from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.config import (
    AccessKey,
    Config,
    Gateway,
    Intercept,
    JournalSettings,
    Limits,
    Pack,
    ProxySettings,
    RateLimit,
    SecretKeyRef,
    defaultStateDir,
    loadConfig,
    parseConfig,
)
from keeptrusts.schema import REQUIRED, ConfigError, Field, readSection

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, os.pardir, "etc", "policy-config.yaml")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class FakeOptions:
    kind: str
    values: tuple  # (name, value) pairs


@attr.s(frozen=True, slots=True, auto_attribs=True)
class FakeFactory:
    """
    A stand-in for a policy plugin: it checks its block with L{readSection},
    as the real ones do.
    """

    kind: str
    fields: dict

    def parseOptions(self, raw, path):
        return FakeOptions(self.kind, tuple(readSection(raw, path, self.fields).items()))


FACTORIES = {
    "dlp-filter": FakeFactory("dlp-filter", {
        "action": Field(str, "redact", choices=("redact", "block")),
        "detect_patterns": Field(list, (), item=str),
        "blocked_terms": Field(list, (), item=str),
        "builtin": Field(bool, True),
    }),
    "pii-detector": FakeFactory("pii-detector", {
        "action": Field(str, "redact", choices=("redact", "block")),
    }),
    "audit-logger": FakeFactory("audit-logger", {
        "immutable": Field(bool, True),
        "retention_days": Field(int, 365),
        "log_all_access": Field(bool, False),
        "log_bodies": Field(bool, False),
    }),
}

# The example of DESIGN.md section 3, whole.
DESIGN_EXAMPLE = """\
pack: {name: vscode-cody-providers-1, version: 1.0.0, enabled: true}   # all three required

gateway:                                   # optional, every key has a default
  listen: tcp:41002:interface=127.0.0.1
  state_dir: ~/.local/state/keeptrusts
  fail_mode: block                         # block | allow
  default_user: anonymous                  # user when no key and no X-User-ID
  access_keys:                             # optional; when set, every caller must present one
    - {id: dev1, user: dev1, key_env: KT_KEY_DEV1}      # or key_sha256: <hex>
  intercept:
    hosts: [sourcegraph.com, api.openai.com, api.anthropic.com]
    upstream_ca_file: null                 # extra CA bundle trusted for upstream TLS
  proxy:
    allowed_ports: [443]                   # CONNECT targets allowed
  journal:
    sync: batch                            # batch | always | never
    segment_max_bytes: 67108864            # rotation; also one segment per day
  limits: {max_body_bytes: 33554432, upstream_connect_timeout_s: 10,
           upstream_idle_timeout_s: 300, client_idle_timeout_s: 300}

providers:
  targets:
    - id: openai
      provider: openai                     # openai | anthropic | sourcegraph | openai-compatible
      base_url: https://api.openai.com/v1
      secret_key_ref: {env: OPENAI_API_KEY}
      models: [gpt-4o, gpt-4o-mini]        # optional: routing and /v1/models
    - id: anthropic
      provider: anthropic
      base_url: https://api.anthropic.com
      secret_key_ref: {env: ANTHROPIC_API_KEY}
    - id: sourcegraph
      provider: sourcegraph
      type: passthrough                    # keep the client's own destination and auth headers
      hosts: [sourcegraph.com]
  routing: {strategy: ordered}
  fallback: {triggers: [rate_limit, server_error, timeout], max_fallback_attempts: 2}

policies:
  chain: [dlp-filter, pii-detector, audit-logger]

policy:
  dlp-filter: {action: redact}             # built-in credential catalogue + detect_patterns + blocked_terms
  pii-detector: {action: redact}
  audit-logger: {immutable: true, retention_days: 365, log_all_access: true}

agents:                                    # optional budgets, keyed by x-keeptrusts-agent-id, else by user
  - {id: ci-bot, max_cost_usd_per_day: 5.0, max_tokens_per_day: 2000000, max_requests_per_minute: 60}
user_rate_limit: {max_requests: 50, window_seconds: 60}   # also global_rate_limit, token_rate_limit

routes:                                    # optional, first match wins; lighter chains for hot paths
  - match: {path_prefix: /.api/completions/code}
    chain: [dlp-filter, audit-logger]
"""

# The config of the product's Cody guide (reference/vscode-cody-gateway.txt),
# with its provider ids filled in: its targets have no base_url.
CODY_GUIDE = """\
pack:
  name: vscode-cody-providers-1
  version: 1.0.0
  enabled: true
providers:
  targets:
  - id: sourcegraph
    provider: sourcegraph
  - id: openai
    provider: openai
  - id: anthropic
    provider: anthropic
policies:
  chain:
  - audit-logger
policy:
  audit-logger:
    immutable: true
    retention_days: 365
    log_all_access: true
"""

PACK = "pack: {name: p, version: 1.0.0, enabled: true}\n"
HEAD = PACK + "policies: {chain: [dlp-filter, audit-logger]}\n"
TARGET = "providers:\n  targets:\n    - {id: openai, provider: openai}\n"

# (name, document, the exact lines of str(ConfigError))
BAD_CONFIGS = [
    ("missing_pack_version",
     "pack: {name: p, enabled: true}\npolicies: {chain: [dlp-filter]}\n",
     ["pack.version: required key missing"]),
    ("missing_pack",
     "policies: {chain: [dlp-filter]}\n",
     ["pack: required key missing"]),
    ("pack_enabled_not_bool",
     "pack: {name: p, version: 1.0.0, enabled: 1}\npolicies: {chain: [dlp-filter]}\n",
     ["pack.enabled: expected true or false, got 1"]),
    ("pack_bad_semver",
     "pack: {name: p, version: '1.0', enabled: true}\npolicies: {chain: [dlp-filter]}\n",
     ["pack.version: expected a SemVer version like 1.0.0, got '1.0'"]),
    ("pack_version_a_number",
     "pack: {name: p, version: 1.0, enabled: true}\npolicies: {chain: [dlp-filter]}\n",
     ["pack.version: expected a string, got 1.0"]),
    ("unknown_top_level_key",
     PACK + "polices: {chain: [dlp-filter]}\n",
     ["polices: unknown key (did you mean 'policies'?)",
      "policies: required key missing"]),
    ("unknown_key_without_suggestion",
     HEAD + "frobnicate: 1\n",
     ["frobnicate: unknown key"]),
    ("misspelt_policy_option",
     HEAD + "policy:\n  dlp-filter: {acton: redact}\n",
     ["policy.dlp-filter.acton: unknown key (did you mean 'action'?)"]),
    ("bad_policy_enum",
     HEAD + "policy:\n  dlp-filter: {action: rdact}\n",
     ["policy.dlp-filter.action: expected one of [redact, block], got 'rdact'"]),
    ("policy_option_bool_for_int",
     HEAD + "policy:\n  audit-logger: {retention_days: true}\n",
     ["policy.audit-logger.retention_days: expected an integer, got True"]),
    ("policy_block_not_a_mapping",
     HEAD + "policy:\n  dlp-filter: redact\n",
     ["policy.dlp-filter: expected a mapping, got 'redact'"]),
    ("unknown_policy_block",
     HEAD + "policy:\n  pii-detectr: {action: redact}\n",
     ["policy.pii-detectr: unknown policy kind 'pii-detectr' (did you mean 'pii-detector'?)"]),
    ("unknown_chain_kind",
     PACK + "policies: {chain: [audit-logger, dlp-fliter]}\n",
     ["policies.chain[1]: unknown policy kind 'dlp-fliter' (did you mean 'dlp-filter'?)"]),
    ("empty_chain",
     PACK + "policies: {chain: []}\n",
     ["policies.chain: expected at least one policy kind"]),
    ("chain_not_a_list",
     PACK + "policies: {chain: dlp-filter}\n",
     ["policies.chain: expected a list, got 'dlp-filter'"]),
    ("duplicate_chain_kind",
     PACK + "policies: {chain: [dlp-filter, audit-logger, dlp-filter]}\n",
     ["policies.chain[2]: duplicate policy kind 'dlp-filter' (first at policies.chain[0])"]),
    ("policies_extra_key",
     PACK + "policies: {chain: [dlp-filter], order: strict}\n",
     ["policies.order: unknown key"]),
    ("duplicate_target_id",
     HEAD + "providers:\n  targets:\n    - {id: a, provider: openai}\n"
            "    - {id: b, provider: anthropic}\n    - {id: a, provider: anthropic}\n",
     ["providers.targets[2].id: duplicate target id 'a' (first at providers.targets[0])"]),
    ("target_not_a_mapping",
     HEAD + "providers: {targets: [openai]}\n",
     ["providers.targets[0]: expected a mapping, got 'openai'"]),
    ("target_missing_id",
     HEAD + "providers: {targets: [{provider: openai}]}\n",
     ["providers.targets[0].id: required key missing"]),
    ("unknown_provider",
     HEAD + "providers: {targets: [{id: a, provider: azure}]}\n",
     ["providers.targets[0].provider: expected one of "
      "[openai, anthropic, sourcegraph, openai-compatible], got 'azure'"]),
    ("misspelt_target_key",
     HEAD + "providers: {targets: [{id: a, provider: openai, base-url: 'https://x'}]}\n",
     ["providers.targets[0].base-url: unknown key (did you mean 'base_url'?)"]),
    ("secret_key_ref_a_string",
     HEAD + "providers: {targets: [{id: a, provider: openai, secret_key_ref: sk-123}]}\n",
     ["providers.targets[0].secret_key_ref: expected a mapping like {env: NAME}, got a string"]),
    ("secret_key_ref_both",
     HEAD + "providers: {targets: [{id: a, provider: openai, secret_key_ref: {env: A, store: b}}]}\n",
     ["providers.targets[0].secret_key_ref: expected exactly one of env or store, got both"]),
    ("secret_key_ref_bad_name",
     HEAD + "providers: {targets: [{id: a, provider: openai, secret_key_ref: {env: 'MY KEY'}}]}\n",
     ["providers.targets[0].secret_key_ref.env: expected the name of an environment "
      "variable (letters, digits and '_'), not the key itself"]),
    # The key itself where its variable's name goes: refused, never echoed
    # (nor, later, logged as "$sk-proj-... is not set").
    ("secret_key_ref_the_key_itself",
     HEAD + "providers: {targets: [{id: a, provider: openai, secret_key_ref: "
     "{env: sk-proj-Abc123Def456Ghi789Jkl012}}]}\n",
     ["providers.targets[0].secret_key_ref.env: expected the name of an environment "
      "variable (letters, digits and '_'), not the key itself"]),
    ("secret_key_ref_store_the_key_itself",
     HEAD + "providers: {targets: [{id: a, provider: openai, secret_key_ref: "
     "{store: ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8}}]}\n",
     ["providers.targets[0].secret_key_ref.store: expected the name of a stored "
      "secret, not the secret itself"]),
    ("openai_compatible_without_base_url",
     HEAD + "providers: {targets: [{id: local, provider: openai-compatible}]}\n",
     ["providers.targets[0].base_url: required key missing "
      "(provider 'openai-compatible' has no default)"]),
    ("bad_base_url_scheme",
     HEAD + "providers: {targets: [{id: a, provider: openai, base_url: 'ftp://api.openai.com'}]}\n",
     ["providers.targets[0].base_url: expected an http(s) URL like https://host[:port][/path], "
      "got 'ftp://api.openai.com'"]),
    ("base_url_with_query",
     HEAD + "providers: {targets: [{id: a, provider: openai, base_url: 'https://h/v1?x=1'}]}\n",
     ["providers.targets[0].base_url: expected an http(s) URL like https://host[:port][/path], "
      "got 'https://h/v1?x=1'"]),
    ("bad_target_type",
     HEAD + "providers: {targets: [{id: a, provider: openai, type: tunnel}]}\n",
     ["providers.targets[0].type: expected one of [direct, passthrough], got 'tunnel'"]),
    ("bad_fallback_trigger",
     HEAD + "providers: {fallback: {triggers: [rate_limit, overload]}}\n",
     ["providers.fallback.triggers[1]: expected one of [rate_limit, server_error, timeout], "
      "got 'overload'"]),
    ("bad_routing_strategy",
     HEAD + "providers: {routing: {strategy: random}}\n",
     ["providers.routing.strategy: expected one of [ordered, round_robin], got 'random'"]),
    ("bad_fail_mode",
     HEAD + "gateway: {fail_mode: open}\n",
     ["gateway.fail_mode: expected one of [block, allow], got 'open'"]),
    ("bad_journal_sync",
     HEAD + "gateway: {journal: {sync: sometimes}}\n",
     ["gateway.journal.sync: expected one of [batch, always, never], got 'sometimes'"]),
    ("small_journal_segment",
     HEAD + "gateway: {journal: {segment_max_bytes: 100}}\n",
     ["gateway.journal.segment_max_bytes: expected a value of at least 4096, got 100"]),
    ("max_body_bytes_not_an_integer",
     HEAD + "gateway: {limits: {max_body_bytes: abc}}\n",
     ["gateway.limits.max_body_bytes: expected an integer, got 'abc'"]),
    ("negative_timeout",
     HEAD + "gateway: {limits: {upstream_connect_timeout_s: -1}}\n",
     ["gateway.limits.upstream_connect_timeout_s: expected a value greater than 0, got -1.0"]),
    ("infinite_timeout",
     HEAD + "gateway: {limits: {client_idle_timeout_s: .inf}}\n",
     ["gateway.limits.client_idle_timeout_s: expected a number, got inf"]),
    ("port_out_of_range",
     HEAD + "gateway: {proxy: {allowed_ports: [443, 0, 70000]}}\n",
     ["gateway.proxy.allowed_ports[1]: expected a port from 1 to 65535, got 0",
      "gateway.proxy.allowed_ports[2]: expected a port from 1 to 65535, got 70000"]),
    ("access_key_with_both",
     HEAD + "gateway:\n  access_keys:\n    - {id: k, user: u, key_env: K, key_sha256: " + "a" * 64 + "}\n",
     ["gateway.access_keys[0]: expected exactly one of key_env or key_sha256, got both"]),
    ("access_key_with_neither",
     HEAD + "gateway: {access_keys: [{id: k, user: u}]}\n",
     ["gateway.access_keys[0]: expected exactly one of key_env or key_sha256, got neither"]),
    ("access_key_pasted_into_key_env",
     HEAD + "gateway: {access_keys: [{id: k, user: u, key_env: sk-proj-abcdefghijklmnopqrstuvwxyz0123456789}]}\n",
     ["gateway.access_keys[0].key_env: expected the name of an environment "
      "variable (letters, digits and '_'), not the key itself"]),
    ("access_key_bad_sha256",
     HEAD + "gateway: {access_keys: [{id: k, user: u, key_sha256: abc}]}\n",
     ["gateway.access_keys[0].key_sha256: expected 64 hexadecimal digits (a SHA-256), got 'abc'"]),
    ("duplicate_access_key_id",
     HEAD + "gateway: {access_keys: [{id: k, user: u, key_env: A}, {id: k, user: v, key_env: B}]}\n",
     ["gateway.access_keys[1].id: duplicate access key id 'k' (first at gateway.access_keys[0])"]),
    ("intercept_host_a_url",
     HEAD + "gateway: {intercept: {hosts: ['https://api.openai.com']}}\n",
     ["gateway.intercept.hosts[0]: expected a host name like api.openai.com or *.openai.com, "
      "got 'https://api.openai.com'"]),
    ("route_unknown_target",
     HEAD + TARGET + "routes:\n  - {match: {path_prefix: /v1}, target: opnai}\n",
     ["routes[0].target: unknown target 'opnai' (did you mean 'openai'?)"]),
    ("route_unknown_chain_kind",
     HEAD + "routes:\n  - {match: {path_prefix: /v1}, chain: [audit-loger]}\n",
     ["routes[0].chain[0]: unknown policy kind 'audit-loger' (did you mean 'audit-logger'?)"]),
    ("route_without_chain_or_target",
     HEAD + "routes:\n  - {match: {path_prefix: /v1}}\n",
     ["routes[0]: expected chain, target or both"]),
    ("route_misspelt_match",
     HEAD + "routes:\n  - {match: {path: /v1}, chain: []}\n",
     ["routes[0].match.path: unknown key"]),
    ("route_path_prefix_without_slash",
     HEAD + "routes:\n  - {match: {path_prefix: v1}, chain: []}\n",
     ["routes[0].match.path_prefix: expected a path starting with /, got 'v1'"]),
    ("route_bad_method",
     HEAD + "routes:\n  - {match: {method: 'PO ST'}, chain: []}\n",
     ["routes[0].match.method: expected an HTTP method, got 'PO ST'"]),
    ("route_bad_header_name",
     HEAD + "routes:\n  - {match: {header: {'X Bad': v}}, chain: []}\n",
     ["routes[0].match.header.X Bad: expected an HTTP header name"]),
    ("policy_key_not_a_string",
     HEAD + "policy: {1: {}}\n",
     ["policy.1: unknown policy kind 1"]),
    ("required_key_null",
     "pack: {name: p, version: 1.0.0, enabled: null}\npolicies: {chain: [dlp-filter]}\n",
     ["pack.enabled: expected true or false, got None"]),
    ("duplicate_fallback_trigger",
     HEAD + "providers: {fallback: {triggers: [timeout, timeout]}}\n",
     ["providers.fallback.triggers: duplicate entry 'timeout'"]),
    ("duplicate_agent_id",
     HEAD + "agents: [{id: bot}, {id: bot}]\n",
     ["agents[1].id: duplicate agent id 'bot' (first at agents[0])"]),
    ("rate_limit_missing_window",
     HEAD + "user_rate_limit: {max_requests: 5}\n",
     ["user_rate_limit.window_seconds: required key missing"]),
    ("testing_not_a_mapping",
     HEAD + "testing: [a]\n",
     ["testing: expected a mapping, got ['a']"]),
    ("duplicate_yaml_key",
     "pack:\n  name: p\n  version: 1.0.0\n  enabled: true\n  name: q\n"
     "policies: {chain: [dlp-filter]}\n",
     ["pack.name: duplicate key (line 5; first at line 2)"]),
    ("duplicate_yaml_key_in_list",
     HEAD + "providers:\n  targets:\n    - {id: a, provider: openai, id: b}\n",
     ["providers.targets[0].id: duplicate key (line 5; first at line 5)"]),
    ("yaml_syntax_error",
     "pack: {name: p, version: 1.0.0, enabled: true\npolicies: {chain: [dlp-filter]}\n",
     ["line 2, column 9: expected ',' or '}', but got ':' "
      "(while parsing a flow mapping)"]),
    ("unsafe_yaml_tag",
     HEAD + "testing: !!python/object/apply:os.system ['true']\n",
     ["line 3, column 10: could not determine a constructor for the tag "
      "'tag:yaml.org,2002:python/object/apply:os.system'"]),
    ("top_level_a_list",
     "- pack\n- policies\n",
     ["<document>: expected a mapping with pack and policies, got ['pack', 'policies']"]),
    ("empty_document",
     "# nothing here\n",
     ["<document>: expected a mapping with pack and policies, got an empty document"]),
]


class BadConfigTests(SynchronousTestCase):
    """
    Each bad document of L{BAD_CONFIGS} is refused with exactly its message.
    A test method per case is added below.
    """

    def assertRefused(self, document, expected):
        error = self.assertRaises(ConfigError, parseConfig, document, FACTORIES)
        self.assertEqual(str(error).splitlines(), expected, f"for the document:\n{document}")
        self.assertEqual([f"{path}: {message}" for path, message in error.problems], expected)


def _badConfigTest(document, expected):
    def test(self):
        self.assertRefused(document, expected)
    return test


for _name, _document, _expected in BAD_CONFIGS:
    _test = _badConfigTest(_document, _expected)
    _test.__name__ = "test_" + _name
    _test.__doc__ = f"{_expected[0]}"
    assert not hasattr(BadConfigTests, _test.__name__), _name
    setattr(BadConfigTests, _test.__name__, _test)


class GoodConfigTests(SynchronousTestCase):
    """
    Valid documents load into the values they describe.
    """

    def setUp(self):
        self.patch(os, "environ", {"HOME": "/home/tester"})

    def test_designExample(self):
        """
        The whole example of DESIGN.md section 3 loads.
        """
        config = parseConfig(DESIGN_EXAMPLE, FACTORIES)
        self.assertEqual(config.name, "vscode-cody-providers-1@1.0.0")
        self.assertEqual(config.pack, Pack("vscode-cody-providers-1", "1.0.0", True))
        self.assertEqual(config.chain, ("dlp-filter", "pii-detector", "audit-logger"))
        self.assertEqual(list(config.policy), ["dlp-filter", "pii-detector", "audit-logger"])
        self.assertEqual(config.policy["audit-logger"], FakeOptions("audit-logger", (
            ("immutable", True), ("retention_days", 365),
            ("log_all_access", True), ("log_bodies", False))))
        self.assertEqual(config.gateway, Gateway(
            state_dir="/home/tester/.local/state/keeptrusts",
            access_keys=(AccessKey("dev1", "dev1", key_env="KT_KEY_DEV1"),),
            intercept=Intercept(hosts=("sourcegraph.com", "api.openai.com", "api.anthropic.com"))))
        self.assertIsInstance(config.gateway.limits.upstream_connect_timeout_s, float)
        openai, anthropic, sourcegraph = config.providers.targets
        self.assertEqual((openai.id, openai.base_url, openai.secret_key_ref, openai.models),
                         ("openai", "https://api.openai.com/v1", SecretKeyRef(env="OPENAI_API_KEY"),
                          ("gpt-4o", "gpt-4o-mini")))
        self.assertEqual((openai.api_key_header, openai.api_key_prefix), ("Authorization", "Bearer "))
        self.assertEqual((anthropic.api_key_header, anthropic.api_key_prefix), ("x-api-key", ""))
        self.assertEqual((sourcegraph.type, sourcegraph.hosts, sourcegraph.base_url, sourcegraph.secret_key_ref),
                         ("passthrough", ("sourcegraph.com",), "https://sourcegraph.com", None))
        self.assertEqual(config.providers.fallback.max_fallback_attempts, 2)
        [agent] = config.agents
        self.assertEqual((agent.id, agent.max_cost_usd_per_day, agent.max_tokens_per_day,
                          agent.max_requests_per_minute), ("ci-bot", 5.0, 2000000, 60))
        self.assertEqual(config.user_rate_limit, RateLimit(50, 60.0))
        self.assertIsNone(config.global_rate_limit)
        [route] = config.routes
        self.assertEqual((route.match.path_prefix, route.chain, route.target),
                         ("/.api/completions/code", ("dlp-filter", "audit-logger"), None))

    def test_defaults(self):
        """
        Everything but pack and policies has a default.
        """
        config = parseConfig(HEAD, FACTORIES)
        self.assertEqual(config.gateway, Gateway())
        self.assertEqual(config.gateway.listen, "tcp:41002:interface=127.0.0.1")
        self.assertEqual(config.gateway.state_dir, "/home/tester/.local/state/keeptrusts")
        self.assertEqual((config.gateway.fail_mode, config.gateway.default_user), ("block", "anonymous"))
        self.assertEqual(config.gateway.intercept, Intercept(None, None))
        self.assertEqual(config.gateway.proxy, ProxySettings((443,)))
        self.assertEqual(config.gateway.journal, JournalSettings("batch", 67108864))
        self.assertEqual(config.gateway.limits, Limits(33554432, 10.0, 300.0, 300.0))
        self.assertEqual(config.providers.targets, ())
        self.assertEqual(config.providers.routing.strategy, "ordered")
        self.assertEqual(config.providers.fallback.triggers, ("rate_limit", "server_error", "timeout"))
        self.assertEqual((config.agents, config.routes, config.testing), ((), (), None))
        self.assertEqual(config.policy["dlp-filter"], FakeOptions("dlp-filter", (
            ("action", "redact"), ("detect_patterns", ()), ("blocked_terms", ()), ("builtin", True))))
        self.assertEqual(config.pack, Pack("p", "1.0.0", True, None, "", ""))

    def test_nullMeansDefault(self):
        """
        An explicit null for an optional key is its default.
        """
        config = parseConfig(HEAD + "gateway:\nproviders: {routing: null}\npolicy: {dlp-filter: null}\n",
                             FACTORIES)
        self.assertEqual(config.gateway, Gateway())
        self.assertEqual(config.providers.routing.strategy, "ordered")
        self.assertEqual(dict(config.policy["dlp-filter"].values)["action"], "redact")

    def test_codyGuide(self):
        """
        The Cody guide's config loads once its provider ids are filled in;
        its targets get their providers' base URLs and key headers.
        """
        config = parseConfig(CODY_GUIDE, FACTORIES)
        self.assertEqual(config.chain, ("audit-logger",))
        self.assertEqual(
            [(t.id, t.base_url, t.api_key_header, t.api_key_prefix, t.type) for t in config.providers.targets],
            [("sourcegraph", "https://sourcegraph.com", "Authorization", "token ", "direct"),
             ("openai", "https://api.openai.com/v1", "Authorization", "Bearer ", "direct"),
             ("anthropic", "https://api.anthropic.com", "x-api-key", "", "direct")])

    def test_exampleFile(self):
        """
        etc/policy-config.yaml loads.
        """
        from keeptrusts.policy.registry import policyFactories
        config = loadConfig(EXAMPLE, policyFactories())
        self.assertEqual(config.name, "keeptrusts-example@1.0.0")
        self.assertEqual(config.chain,
                         ("dlp-filter", "pii-detector", "audit-logger"))
        dlp = config.policy["dlp-filter"]
        self.assertEqual(dlp.detect_patterns, ("ACME-[0-9]{8}",))
        self.assertEqual(dlp.blocked_terms, ("project-bluebird",))
        self.assertEqual(config.routes[0].chain, ("dlp-filter", "audit-logger"))
        [target] = config.providers.targets
        self.assertEqual(target.secret_key_ref, SecretKeyRef(env="OPENAI_API_KEY"))

    def test_targetDetails(self):
        """
        A base URL loses its trailing slash; an openai-compatible target with a
        base URL is fine; a custom key header does not inherit the provider's
        prefix; data_policy is kept.
        """
        config = parseConfig(HEAD + """\
providers:
  targets:
    - id: local
      provider: openai-compatible
      base_url: http://127.0.0.1:8080/v1/
      api_key_header: x-api-key
      secret_key_ref: {store: local-key}
      data_policy: {zero_data_retention: true, retention_days: 0}
""", FACTORIES)
        [target] = config.providers.targets
        self.assertEqual(target.base_url, "http://127.0.0.1:8080/v1")
        self.assertEqual((target.api_key_header, target.api_key_prefix), ("x-api-key", ""))
        self.assertEqual(target.secret_key_ref, SecretKeyRef(store="local-key"))
        self.assertEqual((target.data_policy.zero_data_retention, target.data_policy.training_opt_out,
                          target.data_policy.retention_days), (True, False, 0))

    def test_routeMatch(self):
        """
        Route matches keep headers as pairs and methods in upper case; a route
        may name a target and an empty chain; route kinds get options too.
        """
        config = parseConfig(PACK + TARGET + """\
policies: {chain: [audit-logger]}
routes:
  - match: {method: post, host: sourcegraph.com, header: {X-Requested-With: cody}}
    chain: [dlp-filter]
    target: openai
  - match: {path_prefix: /health}
    chain: []
""", FACTORIES)
        first, second = config.routes
        self.assertEqual((first.match.method, first.match.host, first.match.header, first.target),
                         ("POST", "sourcegraph.com", (("X-Requested-With", "cody"),), "openai"))
        self.assertEqual(second.chain, ())
        self.assertEqual(list(config.policy), ["audit-logger", "dlp-filter"])
        hash(config.routes)

    def test_rateLimitsAndTesting(self):
        """
        The three rate limits are read; testing is kept as raw data.
        """
        config = parseConfig(HEAD + """\
global_rate_limit: {max_requests: 1000, window_seconds: 1, header_names: [X-User-ID]}
token_rate_limit: {max_tokens: 100000, window_seconds: 60}
testing: {suites: [{name: s, input: hi, expect: allow}]}
""", FACTORIES)
        self.assertEqual(config.global_rate_limit, RateLimit(1000, 1.0, ("X-User-ID",)))
        self.assertEqual((config.token_rate_limit.max_tokens, config.token_rate_limit.window_seconds),
                         (100000, 60.0))
        self.assertEqual(config.testing, {"suites": [{"name": "s", "input": "hi", "expect": "allow"}]})

    def test_policyIsReadOnly(self):
        """
        Config.policy is a read-only mapping, also when a Config is made by hand.
        """
        config = parseConfig(HEAD, FACTORIES)
        self.assertIsInstance(config.policy, MappingProxyType)
        self.assertRaises(TypeError, operator.setitem, config.policy, "x", 1)
        byHand = Config(Pack("p", "1.0.0", True), ["a"], {"a": 1})
        self.assertEqual((byHand.chain, dict(byHand.policy), byHand.name), (("a",), {"a": 1}, "p@1.0.0"))

    def test_aliasesAndMergeKeys(self):
        """
        YAML anchors, aliases and merge keys work, recursive ones included,
        and a key overriding a merged one is not a duplicate.
        """
        config = parseConfig(HEAD + """\
providers:
  targets:
    - &openai {id: a, provider: openai, models: [gpt-4o]}
    - {<<: *openai, id: b}
testing: &t {again: *t}
""", FACTORIES)
        self.assertEqual([(t.id, t.models) for t in config.providers.targets],
                         [("a", ("gpt-4o",)), ("b", ("gpt-4o",))])
        self.assertIs(config.testing["again"], config.testing)

    def test_sha256AccessKey(self):
        config = parseConfig(HEAD + "gateway: {access_keys: [{id: k, user: u, key_sha256: " + "Ab" * 32 + "}]}\n",
                             FACTORIES)
        self.assertEqual(config.gateway.access_keys, (AccessKey("k", "u", key_sha256="Ab" * 32),))

    def test_stateDirExpanded(self):
        config = parseConfig(HEAD + "gateway: {state_dir: ~/kt}\n", FACTORIES)
        self.assertEqual(config.gateway.state_dir, "/home/tester/kt")


class ProblemsTests(SynchronousTestCase):
    """
    All the problems of a document are reported at once.
    """

    def test_allProblems(self):
        document = """\
pack: {name: p, version: 1, enabled: yes please}
gateway: {fail_mode: open, limits: {max_body_bytes: abc}}
providers:
  targets:
    - {id: a, provider: openai, secret_key_ref: KEY}
    - {id: a, provider: openai-compatible}
policies: {chain: [dlp-fliter, audit-logger]}
policy:
  audit-logger: {immutable: maybe}
routes: [{match: {path_prefix: /x}, target: nowhere}]
colour: blue
"""
        error = self.assertRaises(ConfigError, parseConfig, document, FACTORIES)
        self.assertEqual(str(error).splitlines(), [
            "colour: unknown key",
            "pack.version: expected a string, got 1",
            "pack.enabled: expected true or false, got 'yes please'",
            "gateway.fail_mode: expected one of [block, allow], got 'open'",
            "gateway.limits.max_body_bytes: expected an integer, got 'abc'",
            "providers.targets[0].secret_key_ref: expected a mapping like {env: NAME}, got a string",
            "providers.targets[1].base_url: required key missing (provider 'openai-compatible' has no default)",
            "policies.chain[0]: unknown policy kind 'dlp-fliter' (did you mean 'dlp-filter'?)",
            "policy.audit-logger.immutable: expected true or false, got 'maybe'",
        ])

    def test_duplicateKeyWithOtherProblems(self):
        """
        A duplicate key does not hide the other problems.
        """
        error = self.assertRaises(ConfigError, parseConfig, HEAD + "gateway: {}\ngateway: {fail_mode: x}\n",
                                  FACTORIES)
        self.assertEqual(str(error).splitlines(), [
            "gateway: duplicate key (line 4; first at line 3)",
            "gateway.fail_mode: expected one of [block, allow], got 'x'"])

    def test_str(self):
        error = ConfigError([("a.b", "one"), ("c", "two")])
        self.assertEqual(str(error), "a.b: one\nc: two")
        self.assertEqual(error.problems, (("a.b", "one"), ("c", "two")))


class ReadSectionTests(SynchronousTestCase):
    """
    L{readSection} and L{Field}, as policy plugins use them.
    """

    def read(self, raw, fields):
        return readSection(raw, "policy.x", fields)

    def refused(self, raw, fields):
        return str(self.assertRaises(ConfigError, self.read, raw, fields)).splitlines()

    def test_types(self):
        fields = {"s": Field(str), "i": Field(int), "f": Field(float), "b": Field(bool),
                  "l": Field(list), "d": Field(dict)}
        values = self.read({"s": "x", "i": 3, "f": 2, "b": False, "l": [1, "a"], "d": {"k": [1]}}, fields)
        self.assertEqual(values, {"s": "x", "i": 3, "f": 2.0, "b": False, "l": (1, "a"), "d": {"k": [1]}})
        self.assertIsInstance(values["f"], float)
        self.assertEqual(self.refused({"s": 1, "i": 1.5, "f": "1", "b": 0, "l": "a", "d": []}, fields), [
            "policy.x.s: expected a string, got 1",
            "policy.x.i: expected an integer, got 1.5",
            "policy.x.f: expected a number, got '1'",
            "policy.x.b: expected true or false, got 0",
            "policy.x.l: expected a list, got 'a'",
            "policy.x.d: expected a mapping, got []",
        ])

    def test_defaults(self):
        """
        Absent or null keys get their default (a Factory is called); REQUIRED
        ones are reported; null is empty.
        """
        fields = {"a": Field(int, 1), "b": Field(list, attr.Factory(list)), "c": Field(str, REQUIRED)}
        self.assertEqual(self.read({"a": None, "c": "x"}, fields), {"a": 1, "b": [], "c": "x"})
        self.assertEqual(self.read(None, {"a": Field(int, 1)}), {"a": 1})
        self.assertEqual(self.refused({}, fields), ["policy.x.c: required key missing"])
        self.assertEqual(self.refused({"c": None}, fields), ["policy.x.c: expected a string, got None"])
        self.assertEqual(self.refused([], fields), ["policy.x: expected a mapping, got []"])

    def test_listItems(self):
        """
        List elements are read by their item spec and addressed by index.
        """
        fields = {"rules": Field(list, item={"name": Field(str), "level": Field(int, 0, check=_nonNegative)}),
                  "modes": Field(list, item=Field(str, choices=["a", "b"]))}
        self.assertEqual(self.read({"rules": [{"name": "r"}], "modes": ["b"]}, fields),
                         {"rules": ({"name": "r", "level": 0},), "modes": ("b",)})
        self.assertEqual(self.refused({"rules": [{"name": "r"}, {"nam": "s", "level": -1}, "t"],
                                       "modes": ["c"]}, fields), [
            "policy.x.rules[1].nam: unknown key (did you mean 'name'?)",
            "policy.x.rules[1].name: required key missing",
            "policy.x.rules[1].level: must not be negative",
            "policy.x.rules[2]: expected a mapping, got 't'",
            "policy.x.modes[0]: expected one of [a, b], got 'c'",
        ])

    def test_nested(self):
        """
        A dict field takes a nested schema or a parse function.
        """
        def parsePair(raw, path):
            if set(raw) != {"l", "r"}:
                raise ConfigError([(path, "expected l and r")])
            return (raw["l"], raw["r"])

        fields = {"inner": Field(dict, {}, item={"n": Field(int)}), "pair": Field(dict, None, item=parsePair)}
        self.assertEqual(self.read({"inner": {"n": 1}, "pair": {"l": 1, "r": 2}}, fields),
                         {"inner": {"n": 1}, "pair": (1, 2)})
        self.assertEqual(self.refused({"inner": {"n": "1"}, "pair": {"l": 1}}, fields), [
            "policy.x.inner.n: expected an integer, got '1'",
            "policy.x.pair: expected l and r"])

    def test_parseFunctionType(self):
        """
        A field's type may be a parse function.
        """
        fields = {"v": Field(lambda raw, path: ("parsed", raw, path))}
        self.assertEqual(self.read({"v": 1}, fields), {"v": ("parsed", 1, "policy.x.v")})

    def test_longValuesShortened(self):
        [line] = self.refused({"s": "x" * 100}, {"s": Field(int)})
        self.assertEqual(line, "policy.x.s: expected an integer, got '" + "x" * 56 + "...")


def _nonNegative(value):
    return "must not be negative" if value < 0 else None


class FileTests(SynchronousTestCase):
    def test_missingFile(self):
        path = self.mktemp()
        error = self.assertRaises(ConfigError, loadConfig, path, FACTORIES)
        self.assertEqual(error.problems, (("<file>", f"cannot read {path!r}: No such file or directory"),))

    def test_loadsFile(self):
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(HEAD)
        self.assertEqual(loadConfig(path, FACTORIES).name, "p@1.0.0")

    def test_notUTF8(self):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"pack: \xff\n")
        [(where, message)] = self.assertRaises(ConfigError, loadConfig, path, FACTORIES).problems
        self.assertEqual(where, "<file>")
        self.assertIn("cannot read", message)


class ConfigNameTests(SynchronousTestCase):
    def test_keyInPackNameShownAsMarker(self):
        """
        The name the journal's C{config} field and the log show: a key in
        the pack's name as its marker (found by review: written whole into
        every record, where it can never be removed).
        """
        config = parseConfig(HEAD.replace("name: p,", "name: AKIAQYLPMN5HFIQZ7XYZ p,"),
                             FACTORIES)
        self.assertEqual(config.name,
                         "[REDACTED:AWS_ACCESS_KEY_ID] p@1.0.0")


class DefaultStateDirTests(SynchronousTestCase):
    def test_xdgStateHome(self):
        self.patch(os, "environ", {"HOME": "/home/tester", "XDG_STATE_HOME": "/srv/state"})
        self.assertEqual(defaultStateDir(), "/srv/state/keeptrusts")

    def test_home(self):
        self.patch(os, "environ", {"HOME": "/home/tester"})
        self.assertEqual(defaultStateDir(), "/home/tester/.local/state/keeptrusts")

    def test_emptyXDGStateHome(self):
        self.patch(os, "environ", {"HOME": "/home/tester", "XDG_STATE_HOME": ""})
        self.assertEqual(defaultStateDir(), "/home/tester/.local/state/keeptrusts")

    def test_gatewayDefaultReadsEnvironmentEachTime(self):
        self.patch(os, "environ", {"XDG_STATE_HOME": "/a"})
        self.assertEqual(Gateway().state_dir, "/a/keeptrusts")
        self.patch(os, "environ", {"XDG_STATE_HOME": "/b"})
        self.assertEqual(parseConfig(HEAD, FACTORIES).gateway.state_dir, "/b/keeptrusts")
