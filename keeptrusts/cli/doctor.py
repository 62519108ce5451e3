# -*- test-case-name: tests.test_cli_doctor -*-
"""
C{kt doctor}: check a gateway's setup, one line per check, OK, WARN or
FAIL; exit 1 when any check fails.  It only looks: nothing is created, and
no key is ever printed.

A WARN is something the gateway copes with (a key not set marks that
target unavailable; a host that does not resolve may mean this machine is
offline; a gateway not running); a FAIL stops it from starting or from
keeping its journal.
"""

import http.client
import json
import os
import stat
from datetime import datetime, timezone
from typing import Tuple
from urllib.parse import urlsplit

import attr
from cryptography import x509

from keeptrusts.cli.probes import Probes
from keeptrusts.journalread import verifyJournal
from keeptrusts.tls import notValidAfter
from keeptrusts.tls.ca import KEY_NAME, certificatePath

OK, WARN, FAIL = "OK", "WARN", "FAIL"
_RANK = {OK: 0, WARN: 1, FAIL: 2}
DEFAULT_CONFIGS = ("policy-config.yaml", "/etc/keeptrusts/policy-config.yaml")
DEFAULT_LISTEN = "tcp:41002:interface=127.0.0.1"
DNS_TIMEOUT = 2.0
HTTP_TIMEOUT = 3.0
CA_RENEW_DAYS = 30


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Check:
    """
    The outcome of one check; C{details} are shown under its line.
    """

    name: str
    status: str
    message: str
    details: Tuple[str, ...] = ()


def register(subparsers, common):
    doctor = subparsers.add_parser(
        "doctor", parents=[common],
        help="check the config, keys, hosts, CA, journal and gateway")
    doctor.add_argument("--json", action="store_true",
                        help="print the checks as one JSON object")
    doctor.set_defaults(run=runDoctor)


def runDoctor(options, runtime, probes=None):
    checks = diagnose(getattr(options, "config", None),
                      getattr(options, "state_dir", None),
                      probes or Probes(), runtime.now())
    failed = any(check.status == FAIL for check in checks)
    if options.json:
        runtime.out.write(json.dumps({"ok": not failed, "checks": [
            {"name": c.name, "status": c.status.lower(),
             "message": c.message, "details": list(c.details)}
            for c in checks]}, indent=1) + "\n")
    else:
        runtime.out.write("Keeptrusts Gateway Diagnostics\n")
        for check in checks:
            runtime.out.write("%-4s %s: %s\n" % (check.status, check.name,
                                                 check.message))
            for detail in check.details:
                runtime.out.write("       %s\n" % (detail,))
        counts = [sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)]
        runtime.out.write("%d OK, %d WARN, %d FAIL\n" % tuple(counts))
    return 1 if failed else 0


def diagnose(configPath, stateDir, probes, now):
    """
    Every check, in order.  C{stateDir}, when given, overrides the
    config's C{gateway.state_dir}, as C{twistd --state-dir} does.
    """
    check, config = checkConfig(configPath)
    checks = [check]
    if config is not None:
        checks.extend(checkTargets(config.providers.targets, probes))
    if stateDir is None:
        from keeptrusts.config import defaultStateDir
        stateDir = (config.gateway.state_dir if config is not None
                    else defaultStateDir())
    stateDir = os.path.expanduser(stateDir)
    checks.append(checkCA(stateDir, now))
    checks.append(checkJournal(os.path.join(stateDir, "journal")))
    checks.append(checkGateway(config.gateway.listen if config is not None
                               else DEFAULT_LISTEN, probes.httpGet))
    return checks


def checkConfig(path):
    """
    @return: C{(Check, the loaded config or None)}.
    """
    from keeptrusts.config import ConfigError, loadConfig
    from keeptrusts.policy.registry import policyFactories
    if path is None:
        path = next((p for p in DEFAULT_CONFIGS if os.path.exists(p)), None)
        if path is None:
            return Check("config", FAIL, "no %s here nor in /etc/keeptrusts;"
                         " give -c FILE" % (DEFAULT_CONFIGS[0],)), None
    try:
        config = loadConfig(path, policyFactories())
    except ConfigError as e:
        return Check("config", FAIL, "%s: %d problem%s"
                     % (path, len(e.problems), "s"[:len(e.problems) > 1]),
                     tuple(str(e).splitlines())), None
    return Check("config", OK, "%s loads (%s; chain %s)" % (
        path, config.name, " -> ".join(config.chain))), config


def checkTargets(targets, probes):
    """
    Per target, its key (never shown) and whether its hosts resolve.
    """
    hostsOf = {t.id: list(dict.fromkeys(
        [urlsplit(t.base_url).hostname, *t.hosts])) for t in targets}
    resolved = probes.resolveHosts(
        list(dict.fromkeys(h for hosts in hostsOf.values() for h in hosts)),
        DNS_TIMEOUT)
    checks = []
    for target in targets:
        checks.append(_keyCheck(target, probes.environ))
        failures = ["%s: %s" % (host, _reason(resolved[host]))
                    for host in hostsOf[target.id]
                    if resolved.get(host) is not None]
        checks.append(Check(
            "target %s hosts" % (target.id,), WARN if failures else OK,
            "cannot resolve (offline?): " + "; ".join(failures) if failures
            else "%s resolve" % (", ".join(hostsOf[target.id]),)))
    return checks


def _keyCheck(target, environ):
    name, ref = "target %s key" % (target.id,), target.secret_key_ref
    if ref is None:
        return Check(name, OK, "none configured: the client's own key "
                     "passes through")
    if ref.env is None:
        return Check(name, WARN, "from store %r: not checked" % (ref.store,))
    if not environ.get(ref.env):
        return Check(name, WARN, "%s is not set in this environment: the "
                     "gateway marks %s unavailable" % (ref.env, target.id))
    return Check(name, OK, "%s is set" % (ref.env,))


def _reason(error):
    return getattr(error, "strerror", None) or str(error) or type(
        error).__name__


def checkCA(stateDir, now):
    """
    The local CA: directory 0700, key 0600, certificate valid.  A CA not
    made yet is a WARN: the gateway makes it at its first start.
    """
    certPath = certificatePath(stateDir)
    directory = os.path.dirname(certPath)
    keyPath = os.path.join(directory, KEY_NAME)
    try:
        mode = stat.S_IMODE(os.stat(directory).st_mode)
        present = [os.path.lexists(p) for p in (certPath, keyPath)]
        keyMode = stat.S_IMODE(os.stat(keyPath).st_mode) if present[1] \
            else None
        pem = _read(certPath) if present[0] else None
    except FileNotFoundError:
        return Check("ca", WARN, "no CA yet in %s: the gateway makes it at "
                     "its first start (or run kt ca export)" % (directory,))
    except OSError as e:
        return Check("ca", WARN, "cannot look into %s: %s (run kt doctor as "
                     "the gateway's user)" % (directory, _reason(e)))
    problems = []
    if mode != 0o700:
        problems.append((WARN, "%s has mode %04o, not 0700; run: chmod 700 %s"
                         % (directory, mode, directory)))
    for path, there in zip((certPath, keyPath), present):
        if not there:
            problems.append((FAIL, "%s is missing: the CA is incomplete"
                             % (path,)))
    if keyMode is not None and keyMode & ~0o600:
        problems.append((FAIL, "%s has mode %04o: the gateway refuses a key "
                         "others can read; run: chmod 600 %s"
                         % (keyPath, keyMode, keyPath)))
    if pem is not None:
        problems.extend(_certificateProblems(certPath, pem, now))
    if problems:
        return Check("ca", max((s for s, _ in problems), key=_RANK.get),
                     "; ".join(m for _, m in problems))
    return Check("ca", OK, "%s (key 0600, directory 0700)" % (certPath,))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _certificateProblems(path, pem, now):
    try:
        end = notValidAfter(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return [(FAIL, "%s is not a PEM certificate" % (path,))]
    left = end - datetime.fromtimestamp(now, timezone.utc)
    if left.total_seconds() <= 0:
        return [(FAIL, "%s expired on %s" % (path, end.date()))]
    if left.days < CA_RENEW_DAYS:
        return [(WARN, "%s expires on %s" % (path, end.date()))]
    return []


def checkJournal(directory):
    """
    The journal directory: there, writable, and its chain intact.
    """
    if not os.path.lexists(directory):
        return Check("journal", WARN, "no journal yet at %s: the gateway "
                     "makes it at its first start" % (directory,))
    if not os.path.isdir(directory):
        return Check("journal", FAIL, "%s is not a directory" % (directory,))
    if not os.access(directory, os.W_OK | os.X_OK):
        return Check("journal", FAIL, "%s is not writable by this user (run "
                     "kt doctor as the gateway's user)" % (directory,))
    try:
        result = verifyJournal(directory)
    except OSError as e:
        return Check("journal", FAIL, "cannot read %s: %s"
                     % (directory, _reason(e)))
    if not result.ok:
        seq = "-" if result.seq is None else result.seq
        return Check("journal", FAIL, "%s line %d (seq %s): %s; see kt events "
                     "verify" % (result.segment, result.line, seq,
                                 result.reason))
    return Check("journal", OK, "%s: %d records in %d segments, chain intact"
                 % (directory, result.records, result.segments))


def listenURL(description):
    """
    The C{http://host:port} a server endpoint description answers at, or
    L{None} when it is not a TCP one (socket activation, UNIX sockets).
    """
    parts = description.replace("\\:", "\0").split(":")
    parts = [p.replace("\0", ":") for p in parts]
    if parts[0] not in ("tcp", "tcp6"):
        return None
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    positional = [p for p in parts[1:] if "=" not in p]
    port = named.get("port") or (positional[0] if positional else None)
    if port is None or not port.isdigit():
        return None
    host = named.get("interface", "")
    if host in ("", "0.0.0.0", "::"):
        host = "::1" if parts[0] == "tcp6" or host == "::" else "127.0.0.1"
    if ":" in host:
        host = "[%s]" % (host,)
    return "http://%s:%s" % (host, port)


def checkGateway(listen, get):
    """
    Whether the gateway answers at its listen address: C{GET /healthz},
    else (an older gateway) C{GET /v1/models}.
    """
    url = listenURL(listen)
    if url is None:
        return Check("gateway", WARN, "cannot check a %s listener from here"
                     % (listen.partition(":")[0],))
    try:
        status = get(url + "/healthz", HTTP_TIMEOUT)
        path = "/healthz"
        if status == 404:
            status, path = get(url + "/v1/models", HTTP_TIMEOUT), "/v1/models"
    except ConnectionRefusedError:
        return Check("gateway", WARN, "not running (connection refused at %s)"
                     % (url,))
    except TimeoutError:
        return Check("gateway", FAIL, "no answer from %s in %gs"
                     % (url, HTTP_TIMEOUT))
    except OSError as e:
        return Check("gateway", WARN, "cannot reach %s: %s"
                     % (url, _reason(e)))
    except http.client.HTTPException as e:
        return Check("gateway", FAIL, "%s answers, but not HTTP (%s)"
                     % (url, type(e).__name__))
    if path == "/healthz" and status != 200:
        return Check("gateway", WARN, "%s/healthz answers %d" % (url, status))
    return Check("gateway", OK, "answers at %s (GET %s: %d)"
                 % (url, path, status))
