# -*- test-case-name: tests.test_api_routing -*-
"""
C{data-routing-policy}: only targets whose declared C{data_policy}
complies may serve a request; the router drops the others before it
picks, and a request with none left is blocked (409).  As a link of the
chain it allows everything: its work is done at routing.
"""

import attr
from twisted.plugin import IPlugin
from zope.interface import provider

from keeptrusts.interfaces import IPolicyFactory
from keeptrusts.policy.passive import PassivePolicy
from keeptrusts.schema import Field, readSection

KIND = "data-routing-policy"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DataRoutingOptions:
    require_zero_data_retention: bool = False
    require_no_training: bool = False
    max_retention_days: object = None
    on_no_compliant_provider: str = "block"
    log_provider_selection: bool = False

    def complies(self, target):
        """
        Whether a configured L{Target}'s C{data_policy} meets these
        requirements (a target that declares none meets none of them).
        """
        policy = target.data_policy
        if policy is None:
            return not (self.require_zero_data_retention
                        or self.require_no_training
                        or self.max_retention_days is not None)
        if self.require_zero_data_retention and not policy.zero_data_retention:
            return False
        if self.require_no_training and not policy.training_opt_out:
            return False
        if self.max_retention_days is not None and (
                policy.retention_days is None
                or policy.retention_days > self.max_retention_days):
            return False
        return True


class DataRouting(PassivePolicy):
    name = KIND


@provider(IPlugin, IPolicyFactory)
class DataRoutingFactory:
    kind = KIND

    @staticmethod
    def parseOptions(raw, path):
        return DataRoutingOptions(**readSection(raw, path, {
            "require_zero_data_retention": Field(bool, default=False),
            "require_no_training": Field(bool, default=False),
            "max_retention_days": Field(int, default=None),
            "on_no_compliant_provider": Field(str, default="block",
                                              choices=("block", "allow")),
            "log_provider_selection": Field(bool, default=False),
        }))

    @staticmethod
    def build(options, clock):
        return DataRouting(options)
