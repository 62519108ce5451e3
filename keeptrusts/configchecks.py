# -*- test-case-name: tests.test_config -*-
"""
The checks that the sections of C{policy-config.yaml} share: of single
values (a non-empty string, a SemVer version, an ASCII name, the name of an
environment variable, a SHA-256, a host or header name, an http(s) URL),
each L{None} for a good value or what was expected, as
L{keeptrusts.schema}'s own; and of records and lists (exactly one of two
keys, an id given twice).  L{keeptrusts.configvalues} declares its fields
with them.
"""

import re
from urllib.parse import urlsplit

from keeptrusts.policy.scrub import credentialTypes
from keeptrusts.schema import Field, invalid, matching, showValue


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


def storedSecretName(value):
    # A key pasted where its stored name goes would be shown by `kt doctor`
    # and the admin config endpoint: refused, never echoed.
    if credentialTypes(value):
        return "expected the name of a stored secret, not the secret itself"
    return asciiName(value)


sha256 = matching(r"[0-9a-fA-F]{64}", "64 hexadecimal digits (a SHA-256)")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
hostName = matching(rf"{_LABEL}(\.{_LABEL})*", "a host name like api.openai.com")
headerName = matching(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", "an HTTP header name")
HOST = Field(str, check=hostName)
# Interception may name every host below a domain: *.openai.com.
HOST_PATTERN = Field(str, check=matching(rf"(\*\.)?{_LABEL}(\.{_LABEL})*",
                                         "a host name like api.openai.com or *.openai.com"))


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
