# -*- test-case-name: tests.test_api_routes -*-
"""
C{routes:}: the first rule whose match fits a request sets its policy
chain and, optionally, its target (lighter chains for hot paths such as
autocomplete).
"""

import functools

import attr

from keeptrusts.api.paths import normalizedPath


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Rule:
    """
    @ivar match: the configuration's L{RouteMatch}.
    @ivar chain: the L{PolicyChain} of the rule.
    @ivar target: a target id, or L{None} for the usual routing.
    """

    match: object
    chain: object
    target: object = None

    def fits(self, method, path, host, headers):
        match = self.match
        if match.path_prefix is not None and not path.startswith(
                _prefix(match.path_prefix)):
            return False
        if match.method is not None and method != match.method:
            return False
        if match.host is not None and host.lower() != match.host.lower():
            return False
        for name, value in match.header or ():
            given = headers.getRawHeaders(name.encode("ascii"))
            if not given or given[-1].decode("latin-1") != value:
                return False
        return True


@functools.lru_cache(maxsize=256)
def _prefix(prefix):
    """
    A path prefix read as paths are (L{normalizedPath}: decoded, dot
    segments and doubled slashes resolved, lower case), a trailing C{/}
    kept.
    """
    read = normalizedPath(prefix.encode("utf-8")).decode("utf-8", "replace")
    return read + "/" if prefix.endswith("/") and read != "/" else read


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RouteTable:
    """
    @ivar rules: L{Rule}s, first match wins.
    @ivar chain: the main chain, when no rule fits.
    """

    rules: tuple
    chain: object

    def select(self, request, path, host):
        """
        @param path: the request's path (text), without its query, as the
            gateway reads it (L{keeptrusts.api.paths.normalizedPath}).
        @param host: the destination host (text), without a port.
        @return: C{(chain, target id or None)}.
        """
        method = request.method.decode("ascii", "replace")
        for rule in self.rules:
            if rule.fits(method, path, host, request.requestHeaders):
                return rule.chain, rule.target
        return self.chain, None
