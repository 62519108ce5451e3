# -*- test-case-name: tests.test_cli_doctor -*-
"""
What C{kt doctor} asks of the world outside the files: whether hosts
resolve, and what status a URL answers with.
"""

import http.client
import os
import socket
import threading
import time
from typing import Callable, Mapping
from urllib.parse import urlsplit

import attr


def resolveHosts(hosts, timeout):
    """
    Resolve C{hosts} at once, each in a daemon thread, waiting C{timeout}
    seconds in all (C{getaddrinfo} itself has no timeout).

    @return: host -> L{None} (resolves) or the L{OSError}.
    """
    results = {}

    def resolve(host):
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
            results[host] = None
        except OSError as e:
            results[host] = e
    threads = [threading.Thread(target=resolve, args=(host,), daemon=True)
               for host in hosts]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {host: results.get(host, TimeoutError("no answer in %gs"
                                                 % (timeout,)))
            for host in hosts}


def httpGet(url, timeout):
    """
    @return: the status of C{GET url}.
    @raise OSError: no connection (L{ConnectionRefusedError}: nothing
        listens), or no answer in C{timeout} seconds (L{TimeoutError}).
    @raise http.client.HTTPException: the answer is not HTTP.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                            timeout=timeout)
    try:
        connection.request("GET", parts.path)
        return connection.getresponse().status
    finally:
        connection.close()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Probes:
    """
    What C{kt doctor} asks of the world outside the files; tests give
    their own.
    """

    environ: Mapping[str, str] = attr.Factory(lambda: os.environ)
    resolveHosts: Callable = resolveHosts
    httpGet: Callable = httpGet
