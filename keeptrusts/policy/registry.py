# -*- test-case-name: tests.test_policy_chain -*-
"""
Policy kinds, found through Twisted's plugin system so that a third party
adds one by shipping an L{IPolicyFactory} in its own C{twisted/plugins/}.
"""

from twisted.plugin import getPlugins

from keeptrusts.interfaces import IPolicyFactory


def policyFactories():
    """
    @return: a mapping of kind name to L{IPolicyFactory}.
    """
    import twisted.plugins
    return {factory.kind: factory
            for factory in getPlugins(IPolicyFactory, twisted.plugins)}
