# -*- test-case-name: tests.test_policy_chain -*-
"""
C{audit-logger}: what the journal records.  As a link of the chain it
allows everything; its options are read by the pipeline and the journal.
"""

import attr
from twisted.plugin import IPlugin
from zope.interface import provider

from keeptrusts.schema import Field, readSection
from keeptrusts.interfaces import IPolicyFactory
from keeptrusts.policy.passive import PassivePolicy

KIND = "audit-logger"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AuditOptions:
    immutable: bool = True
    retention_days: int = 365
    log_all_access: bool = False
    log_bodies: bool = False


class AuditLogger(PassivePolicy):
    name = KIND


@provider(IPlugin, IPolicyFactory)
class AuditLoggerFactory:
    kind = KIND

    @staticmethod
    def parseOptions(raw, path):
        return AuditOptions(**readSection(raw, path, {
            "immutable": Field(bool, default=True),
            "retention_days": Field(int, default=365),
            "log_all_access": Field(bool, default=False),
            "log_bodies": Field(bool, default=False),
        }))

    @staticmethod
    def build(options, clock):
        return AuditLogger(options)
