# -*- test-case-name: tests.test_policy_pii -*-
"""
C{pii-detector}: e-mail addresses, phone numbers, US social security
numbers, payment cards (Luhn), IBANs (mod-97) and IP addresses, redacted or
blocked in prompts and answers.

C{pci_mode} (on by default) keeps payment card numbers out whole: they are
always replaced by C{[REDACTED:PAYMENT_CARD]}, whatever C{marker_format}
says, so not even their last four digits pass.
"""

import attr
import regex
from twisted.plugin import IPlugin
from zope.interface import provider

from keeptrusts.interfaces import IPolicyFactory
from keeptrusts.policy.detector import Detector, patternList
from keeptrusts.policy.matcher import Matcher, Pattern, marker
from keeptrusts.policy.validators import (
    emailAddress, iban, ipAddress, paymentCard, phoneNumber)
from keeptrusts.policy.values import BLOCK, REDACT
from keeptrusts.schema import Field, readSection

KIND = "pii-detector"
LABEL = "label"
ASTERISKS = "asterisks"
PARTIAL = "partial"
PAYMENT_CARD = "payment_card"


def _ipv6(match):
    # A real address has a group of three or more digits (fe80::1,
    # 2a00:1450::200e); a slice such as a[1::2] has none.
    return ipAddress(match) and any(
        len(group) >= 3 for group in match.group(0).split(":"))


# Patterns led by a character class are tried at every place that class
# matches; what looks behind them is checked last, once a candidate is whole.
PII = (
    Pattern("email", r"(?<![\w.%+-])[\w.%+-]{1,64}+@(?:[A-Za-z0-9-]{1,63}\.){1,8}"
                     r"[A-Za-z]{2,24}(?![\w-])", emailAddress),
    Pattern("phone_number", r"\+[1-9](?:\d{7,14}|\d{0,2}(?:[ .-]\(?\d{1,4}\)?){2,5})"
                            r"(?![\w])", phoneNumber),
    Pattern("phone_number", r"\(\d{3}\)[ ]?\d{3}[ .-]\d{4}(?![\w])", phoneNumber),
    Pattern("phone_number", r"\d\d\d([.-])\d\d\d\1\d\d\d\d(?![\w.-])"
                            r"(?<![\w+.-]\d{3}[.-]\d{3}[.-]\d{4})", phoneNumber),
    # Never issued: area 000, 666 or 9xx, group 00, serial 0000.
    Pattern("us_ssn", r"\d\d\d-\d\d-\d\d\d\d(?![\w-])(?<![\w-]\d{3}-\d{2}-\d{4})"
                      r"(?<!(?:000|666|9\d\d)-\d\d-\d{4})(?<!-00-\d{4})(?<!-0000)"),
    # Thirteen to nineteen digits, or groups (4-4-4-4, 4-6-5, 4-4-4-4-3)
    # joined by one kind of separator.
    Pattern(PAYMENT_CARD, r"\d{4}(?<![\d-]\d{4})(?:\d{9,15}|([ -])\d{4,6}\1\d{4,5}"
                          r"(?:\1\d{1,4}){0,2})(?![\d-])", paymentCard),
    Pattern("iban", r"[A-Z]{2}\d\d(?<!\w[A-Z]{2}\d\d)(?:[ ]?[A-Z0-9]){11,30}\b", iban),
    Pattern("ip_address", r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\w)",
            ipAddress),
    Pattern("ip_address", r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
                          r"(?![\w:.])", _ipv6),
)

TYPES = tuple(dict.fromkeys(p.type for p in PII))

_ALNUM = regex.compile(r"[\p{L}\p{N}]")


def _partial(kind, value):
    """
    All but the last four letters and digits masked, separators kept; the
    first letter and the domain of an e-mail address.
    """
    if kind == "email":
        local, _, domain = value.rpartition("@")
        return "%s***@%s" % (local[:1], domain)
    keep = len(_ALNUM.findall(value)) - 4
    out = []
    for c in value:
        if keep > 0 and _ALNUM.match(c):
            out.append("*")
            keep -= 1
        else:
            out.append(c)
    return "".join(out)


_MARKS = {
    LABEL: marker,
    ASTERISKS: lambda kind, value: "****",
    PARTIAL: _partial,
}


def markerFor(markerFormat, pciMode):
    """
    The replacement function of a C{marker_format}; in PCI mode, payment
    cards always get the label.
    """
    mark = _MARKS[markerFormat]
    if not pciMode or markerFormat == LABEL:
        return mark

    def markOrLabel(kind, value):
        return marker(kind) if kind == PAYMENT_CARD else mark(kind, value)
    return markOrLabel


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PiiOptions:
    action: str = REDACT
    marker_format: str = LABEL
    pci_mode: bool = True
    detect_patterns: tuple = ()


class PiiDetector(Detector):
    """
    The C{pii-detector} policy for C{options}.
    """

    def __init__(self, options):
        patterns = PII + tuple(Pattern("custom_pattern", p)
                               for p in options.detect_patterns)
        Detector.__init__(self, KIND, Matcher(patterns), options.action == BLOCK,
                          markerFor(options.marker_format, options.pci_mode))


@provider(IPlugin, IPolicyFactory)
class PiiDetectorFactory:
    kind = KIND

    @staticmethod
    def parseOptions(raw, path):
        return PiiOptions(**readSection(raw, path, {
            "action": Field(str, default=REDACT, choices=(REDACT, BLOCK)),
            "marker_format": Field(str, default=LABEL, choices=tuple(_MARKS)),
            "pci_mode": Field(bool, default=True),
            "detect_patterns": patternList(),
        }))

    @staticmethod
    def build(options, clock):
        return PiiDetector(options)
