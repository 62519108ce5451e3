# -*- test-case-name: tests.test_policy_chain -*-
"""
A link of the chain that allows everything: for policies whose work is done
elsewhere (the journal's, the router's).
"""

from twisted.internet import defer
from zope.interface import implementer

from keeptrusts.interfaces import IPolicy
from keeptrusts.policy.values import Decision


@implementer(IPolicy)
class PassivePolicy:
    """
    @ivar options: the policy's configuration value.
    """

    name = None

    def __init__(self, options):
        self.options = options

    def checkInput(self, exchange):
        return defer.succeed(Decision())

    def checkOutput(self, exchange, texts):
        return defer.succeed(Decision())

    def scanOutput(self, exchange):
        return None
