# -*- test-case-name: tests.test_policy_validators -*-
"""
Checks that a pattern's match must also pass to be a finding: what a
regular expression cannot say (entropy, checksums, what a placeholder looks
like).  Each check is a function of the C{regex} match and returns a bool;
L{secretOf} gives the part of the match it judges.
"""

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter

import regex

# Shannon entropy, in bits per character, above which a value assigned to
# password=, api_key: ... looks generated rather than written by hand;
# shorter values are allowed a little less (see entropyFloor).
ENTROPY_FLOOR = 3.0


def secretOf(match):
    """
    The judged part of a match: its C{secret} group when the pattern has
    one (the last capture, for a repeated group), else the whole match.
    """
    if "secret" in match.re.groupindex:
        value = match.group("secret")
        if value is not None:
            return value
    return match.group(0)


def entropy(text):
    """
    The Shannon entropy of C{text}'s characters, in bits per character.
    """
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def entropyFloor(length):
    """
    L{ENTROPY_FLOOR}, lowered for short values: eight characters can carry
    three bits each only if all differ.
    """
    return min(ENTROPY_FLOOR, math.log2(max(length, 2)) - 0.5)


def randomLooking(minimum):
    """
    A check: the secret's entropy is at least C{minimum} bits per character
    (placeholders such as C{ghp_xxxx...} or C{AKIA0000...} have little).
    """
    def check(match):
        return entropy(secretOf(match)) >= minimum
    return check


# What stands in for a secret in documentation and templates.
_PLACEHOLDER = regex.compile(
    r"""(?ix)
      ^<.*>$ | ^\[.*\]$ | ^\{.*\}$ | ^%.*%$
    | \$\{ | \{\{ | %\( | %s\b | \$\( | ^\$[a-z_] | ^\*+$
    | x{4,} | \*{3,} | \.{3} | …
    | your[_-]? | _here\b | placeholder | changeme | change[_-]me | replace[_-]?me
    | redacted | dummy | sample | example | insert[_-]
    | process\.env | os\.environ | getenv | environ\[ | secrets\.
    """)
_PLACEHOLDER_WORDS = frozenset("""
    password passwd pass pwd secret token apikey api_key api-key key
    none null nil undefined true false required optional empty default
    test testing foo bar baz qwerty letmein admin root user username
""".split())


def isPlaceholder(value):
    """
    Whether C{value} stands for a secret rather than being one:
    C{<YOUR_API_KEY>}, C{${OPENAI_API_KEY}}, C{os.environ[...]},
    C{sk-...}, C{xxxx}, C{changeme}, ...
    """
    return (value.lower() in _PLACEHOLDER_WORDS
            or _PLACEHOLDER.search(value) is not None)


# A reference in code rather than a literal: settings.DB_PASSWORD,
# self.token, config.api_key; or a name such as db_password or DB_PASSWORD.
_NAME = regex.compile(r"(?:[A-Za-z_$][A-Za-z_$]*[0-9]*)(?:\.[A-Za-z_$][A-Za-z_$]*[0-9]*)+"
                      r"|[a-z_]+|[A-Z_]+")
# A path or a URL is where a secret is kept, not the secret.
_LOCATION = regex.compile(r"(?i)^(?:[./~]|[a-z]:\\|[a-z][a-z0-9+.-]*://)"
                          r"|\.(?:pem|key|json|ya?ml|txt|env|p12|pfx|crt)$")


def assignedSecret(match):
    """
    The check of C{password=...}, C{api_key: ...} assignments: a literal
    that is not a placeholder, a name, a path or a URL, with an entropy of
    at least L{entropyFloor} for its length.
    """
    value = secretOf(match)
    if isPlaceholder(value) or _LOCATION.search(value):
        return False
    if _NAME.fullmatch(value):
        return False
    return entropy(value) >= entropyFloor(len(value))


def notPlaceholder(match):
    """
    A check for credentials that may be short (a URL's password): anything
    but a placeholder.
    """
    return not isPlaceholder(secretOf(match))


def _b64decode(text):
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def decodesToUserPassword(match):
    """
    A check for C{auth} values (Docker's config.json, HTTP Basic): base64
    of C{user:password}.
    """
    raw = _b64decode(secretOf(match))
    try:
        text = raw.decode("utf-8") if raw else ""
    except UnicodeDecodeError:
        return False
    user, colon, password = text.partition(":")
    return bool(colon and user and password and text.isprintable()
                and not isPlaceholder(password))


# The longest JWT header read, in base64 characters: one carrying its
# certificate chain (x5c) takes a few thousand.  A longer one is not read
# (what is decoded and parsed is the sender's choice) and is taken for a
# token: the shape is there, and a check that cannot judge fails closed.
MAX_JWT_HEADER = 16384


def jwtHeader(match):
    """
    A check for JSON Web Tokens: the first part decodes to a JSON object
    naming an algorithm or a type.  A header longer than L{MAX_JWT_HEADER},
    or nested deeper than the JSON parser goes, passes: no signer writes
    one, and such a part is made to defeat the check (found by review: a
    header nested 5,000 deep raised and stopped C{dlp-filter}).
    """
    head = match.group(0).split(".", 1)[0]
    if len(head) > MAX_JWT_HEADER:
        return True
    raw = _b64decode(head)
    try:
        header = json.loads(raw) if raw else None
    except RecursionError:
        return True
    except ValueError:
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


_LAST_PART = regex.compile(r"[A-Za-z0-9_-]+$")


def discordToken(match):
    """
    A check for Discord bot tokens, whose match begins at the first dot:
    the part before it is a base64 user id.
    """
    before = _LAST_PART.search(match.string, max(0, match.start() - 32),
                               match.start())
    raw = _b64decode(before.group(0)) if before else None
    return bool(raw) and raw.isdigit() and entropy(match.group(0)) >= 3.5


_PEM_ARMOUR = regex.compile(r"-----(?:BEGIN|END) [A-Z0-9 ]+-----")
_PEM_HEADER = regex.compile(r"(?m)^[\w-]+: .*$")
_NOT_BASE64 = regex.compile(r"\\[nr]|[^A-Za-z0-9+/=]")


def pemBody(match):
    """
    A check for PEM private keys: between the armour lines, at least 64
    base64 characters with the entropy of key material (C{...} or
    C{<your key here>} is not a key).
    """
    body = _PEM_ARMOUR.sub("", secretOf(match))
    body = _NOT_BASE64.sub("", _PEM_HEADER.sub("", body.replace("\\n", "\n")))
    return len(body) >= 64 and entropy(body) >= 4.0


def luhn(digits):
    """
    Whether a string of digits passes the Luhn checksum of payment cards.
    """
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Issuer prefixes of the card brands, and the lengths of their numbers.
_CARD_BRANDS = re.compile(
    r"4\d{12}(?:\d{3}){0,2}"                      # Visa
    r"|(?:5[1-5]\d\d|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)\d{12}"  # Mastercard
    r"|3[47]\d{13}"                               # American Express
    r"|6(?:011|5\d\d|4[4-9]\d)\d{12,15}"          # Discover
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"              # JCB
    r"|3(?:0[0-5]|[68]\d)\d{11,16}"               # Diners Club
    r"|62\d{14,17}")                              # UnionPay


def paymentCard(match):
    """
    A check for payment card numbers: a known issuer prefix and length, and
    the Luhn checksum.
    """
    digits = re.sub(r"[ -]", "", match.group(0))
    return bool(_CARD_BRANDS.fullmatch(digits)) and luhn(digits)


# IBAN lengths by country (ISO 13616 registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
    "BG": 22, "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban(match):
    """
    A check for IBANs: the country's length and the ISO 7064 mod-97
    checksum.
    """
    value = match.group(0).replace(" ", "").upper()
    if _IBAN_LENGTHS.get(value[:2]) != len(value):
        return False
    rearranged = value[4:] + value[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# Addresses that identify nobody: loopback, unspecified, and the ranges
# reserved for documentation (RFC 5737, RFC 3849).
_DOCUMENTATION = [ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def ipAddress(match):
    """
    A check for IP addresses: a valid address that could identify a host
    or a person (not loopback, unspecified or a documentation range).
    """
    try:
        address = ipaddress.ip_address(match.group(0))
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified
                or any(address in n for n in _DOCUMENTATION
                       if n.version == address.version))


# Domains reserved for examples (RFC 2606, RFC 6761).
_EXAMPLE_DOMAIN = regex.compile(
    r"(?i)(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost)$")


def emailAddress(match):
    """
    A check for e-mail addresses: not at a domain reserved for examples,
    and not an SSH remote such as C{git@github.com}.
    """
    local, _, domain = match.group(0).rpartition("@")
    return local.lower() != "git" and not _EXAMPLE_DOMAIN.search(domain)


def phoneNumber(match):
    """
    A check for phone numbers: 10 to 15 digits.
    """
    return 10 <= sum(c.isdigit() for c in match.group(0)) <= 15


def allOf(*checks):
    """
    A check passing when every one of C{checks} passes.
    """
    def check(match):
        return all(c(match) for c in checks)
    return check
