# -*- test-case-name: tests.test_cli_init -*-
"""
C{kt init}: write a commented C{policy-config.yaml} for VS Code with
Sourcegraph Cody (the product's Cody guide, filled in).
"""

import os
import tempfile

from keeptrusts.cli.main import CommandError

DEFAULT_OUTPUT = "policy-config.yaml"

TEMPLATE = """\
# keeptrusts policy configuration: VS Code with Sourcegraph Cody.
# Written by `kt init`.  Check it with `kt policy lint --file {name}`,
# then run the gateway with `twistd -n keeptrusts -c {name}`
# and `kt doctor -c {name}`.
#
# Strict: an unknown key, a wrong type or a bad value is an error naming its
# path, and the gateway refuses to start rather than ignore it.
#
# VS Code (settings.json): send Cody's traffic through the gateway and trust
# its local CA (`kt ca export > keeptrusts-ca.pem`, then add it to the
# system's trust store) rather than turn TLS checks off:
#   "http.proxy": "http://localhost:41002",
#   "http.proxySupport": "on",
#   "cody.serverEndpoint": "https://sourcegraph.com"
# Or start VS Code with HTTPS_PROXY=http://localhost:41002.
# Watch the traffic with `kt events tail -f`.

# Which policy pack this is; "name@version" is recorded in every event.
pack:
  name: vscode-cody-providers-1
  version: 1.0.0            # SemVer: MAJOR.MINOR.PATCH
  enabled: true

gateway:
  listen: tcp:41002:interface=127.0.0.1   # loopback only (a Twisted endpoint)
  # state_dir: ~/.local/state/keeptrusts  # the CA and the journal
  fail_mode: block          # a failing policy blocks the request (or: allow)
  # default_user: anonymous # user when there is no access key nor X-User-ID
  # access_keys:            # when set, every caller must present one
  #   - {{id: dev1, user: dev1, key_env: KT_KEY_DEV1}}
  intercept:
    # CONNECT tunnels to these hosts are opened with the local CA, so their
    # requests go through the policies; any other host is tunnelled blind.
    hosts: [sourcegraph.com, api.openai.com, api.anthropic.com]
  # journal: {{sync: batch, segment_max_bytes: 67108864}}

# Where requests go.  Keys come from the environment, never from this file;
# a target whose key is not set is unavailable (`kt doctor` says so).
providers:
  targets:
    # Cody talks to Sourcegraph: keep the client's own destination and
    # its own Sourcegraph token, and apply the policies on the way.
    - id: sourcegraph
      provider: sourcegraph
      type: passthrough
      hosts: [sourcegraph.com]
    - id: openai
      provider: openai
      base_url: https://api.openai.com/v1
      secret_key_ref: {{env: OPENAI_API_KEY}}
      models: [gpt-4o, gpt-4o-mini]
    - id: anthropic
      provider: anthropic
      base_url: https://api.anthropic.com
      secret_key_ref: {{env: ANTHROPIC_API_KEY}}
  routing: {{strategy: ordered}}
  fallback:
    triggers: [rate_limit, server_error, timeout]
    max_fallback_attempts: 2

# The policies every prompt and answer goes through, in order; put
# audit-logger last.
policies:
  chain:
    - dlp-filter            # credentials and secrets, redacted before they go
    # - pii-detector        # emails, phone numbers, cards (see policy: below)
    # - prompt-injection    # "ignore previous instructions" and the like
    - audit-logger

# Cody's autocomplete sends many small requests: give it a lighter chain
# (it keeps this one when you add policies to the main chain above).
routes:
  - match: {{path_prefix: /.api/completions/code}}
    chain: [dlp-filter, audit-logger]

# Options of each policy kind; a kind left out gets its defaults.
policy:
  dlp-filter:
    action: redact          # redact | block
    # detect_patterns: ['ACME-[0-9]{{8}}']  # extra regular expressions
    # blocked_terms: [project-bluebird]  # never sent to a provider
  # pii-detector:
  #   action: redact        # redact | block
  # prompt-injection:
  #   response: {{action: block}}   # block | redact | allow
  audit-logger:
    immutable: true         # the journal is append-only and hash-chained
    retention_days: 365     # journal segments older than this are removed
    log_all_access: true    # also journal requests no policy acted on
    log_bodies: false       # never journal bodies (only redacted ones if true)
"""


def register(subparsers, common):
    init = subparsers.add_parser(
        "init", help="write a commented policy-config.yaml for VS Code "
        "with Cody")
    init.add_argument("--output", metavar="FILE", default=DEFAULT_OUTPUT,
                      help="where to write it (default %s; - for stdout)"
                      % (DEFAULT_OUTPUT,))
    init.add_argument("--force", action="store_true",
                      help="replace FILE if it exists")
    init.set_defaults(run=runInit)


def template(name=DEFAULT_OUTPUT):
    """
    The configuration C{kt init} writes, C{name} being the file's name.
    """
    return TEMPLATE.format(name=name)


def runInit(options, runtime):
    """
    C{kt init}: write the file; refuse to replace one without C{--force}.
    """
    if options.output == "-":
        runtime.out.write(template())
        return 0
    path = os.path.expanduser(options.output)
    text = template(os.path.basename(path)).encode("utf-8")
    try:
        if options.force:
            _replace(path, text)
        else:
            _create(path, text)
    except FileExistsError:
        raise CommandError("%s exists; give --force to replace it"
                           % (options.output,))
    except OSError as e:
        raise CommandError("cannot write %s: %s"
                           % (options.output, e.strerror or e))
    runtime.out.write(
        "Wrote %s.  Next: set OPENAI_API_KEY and ANTHROPIC_API_KEY, "
        "then run: kt doctor -c %s\n" % (options.output, options.output))
    return 0


def _create(path, text):
    # O_EXCL: an existing file is never touched, even one made just now.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(fd, "wb") as f:
            f.write(text)
    except BaseException:
        os.unlink(path)
        raise


def _replace(path, text):
    # Readers (a gateway reloading) see the old file or the new one, which
    # keeps the old one's mode (a conffile may be 0640).
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, temporary = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".",
        dir=os.path.dirname(os.path.abspath(path)))
    try:
        with open(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
