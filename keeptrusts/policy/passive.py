# -*- test-case-name: tests.test_policy_chain -*-
"""
A link of the chain that allows everything: for policies whose work is done
elsewhere (the journal's, the router's).
"""

from twisted.internet import defer
from zope.interface import implementer

from keeptrusts.interfaces import IImmediatePolicy
from keeptrusts.policy.values import ALLOWED


@implementer(IImmediatePolicy)
class PassivePolicy:
    """
    @ivar options: the policy's configuration value.
    """

    name = None

    def __init__(self, options):
        self.options = options

    def decideInput(self, exchange):
        return ALLOWED

    def decideOutput(self, exchange, texts):
        return ALLOWED

    def checkInput(self, exchange):
        return defer.succeed(ALLOWED)

    def checkOutput(self, exchange, texts):
        return defer.succeed(ALLOWED)

    def scanOutput(self, exchange):
        return None
