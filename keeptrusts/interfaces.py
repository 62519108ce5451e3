"""
The seams of the gateway.  Everything that can be swapped (a policy, the
journal, a provider format) is described here first.
"""

from zope.interface import Attribute, Interface


class IPolicy(Interface):
    """
    One link of the policy chain.  A policy sees L{keeptrusts.policy.values.Exchange}
    values and text, never transports, requests or the reactor.
    """

    name = Attribute("The policy's kind name, e.g. C{dlp-filter}.")

    def checkInput(exchange):
        """
        Look at the texts of a request (C{exchange.texts}).

        @return: a L{Deferred} firing with a L{Decision}; a C{redact}
            decision carries the replacement C{texts}, one per input text.
        """

    def checkOutput(exchange, texts):
        """
        Look at the texts of a whole (non-streamed) answer.

        @param texts: a tuple of answer texts, one per choice.
        @return: a L{Deferred} firing with a L{Decision}.
        """

    def scanOutput(exchange):
        """
        Give an incremental scanner for a streamed answer, or L{None} when
        the policy has nothing to look for in answers.

        @rtype: L{IOutputScanner} or L{None}
        """


class IImmediatePolicy(IPolicy):
    """
    A policy that decides at once, without I/O or waiting (a search of the
    texts): the chain asks it these, sparing a L{Deferred} and its
    callbacks per call; C{checkInput} and C{checkOutput} give the same
    decisions, fired.
    """

    def decideInput(exchange):
        """
        @return: the L{Decision} C{checkInput} fires with.
        """

    def decideOutput(exchange, texts):
        """
        @return: the L{Decision} C{checkOutput} fires with.
        """


class IOutputScanner(Interface):
    """
    A synchronous scanner over the text of one streamed answer.  It holds
    back at most a bounded tail that could still become a match.
    """

    findings = Attribute("A tuple of L{Finding} seen so far.")

    def feed(text):
        """
        Take the next piece of text; return the text safe to release now.

        @raise keeptrusts.policy.values.Blocked: the answer must stop.
        """

    def end():
        """
        The answer is complete; return whatever was held back, redacted.
        """


class IPolicyFactory(Interface):
    """
    A Twisted plugin that makes policies of one kind from their
    C{policy.<kind>} configuration block.
    """

    kind = Attribute("The kind name used in C{policies.chain}.")

    def parseOptions(raw, path):
        """
        Validate a raw configuration block strictly.

        @param raw: the mapping found under C{policy.<kind>} (maybe empty).
        @param path: the dotted path of that block, for error messages.
        @return: a frozen value of this kind's options.
        @raise keeptrusts.config.ConfigError: naming the bad key's path.
        """

    def build(options, clock):
        """
        @return: an L{IPolicy} configured with C{options}.
        """


class IJournal(Interface):
    """
    An append-only, hash-chained log of decisions.
    """

    def append(record):
        """
        Add one event.  The journal sets C{seq}, C{prev_hash} and C{hash}.

        @param record: a JSON-serialisable mapping.
        @return: a L{Deferred} that fires when the record is as durable as
            the journal's sync mode promises.
        """

    def close():
        """
        Flush and close.  @return: a L{Deferred}.
        """


class IAccessLog(Interface):
    """
    Where the access log's lines go.
    """

    def write(line, fields):
        """
        Write one request's line (C{str}, without a newline); C{fields} are
        the values it shows, by name, for sinks that keep them apart.
        """


class ICertificateStore(Interface):
    """
    Server-side TLS for intercepted hosts: certificates minted on demand by
    the local CA, one configured context per host.
    """

    def contextFor(host):
        """
        The server context for C{host}: its leaf certificate, the shared leaf
        key and the CA chain; TLS 1.2 or newer; ALPN C{http/1.1} only.
        Contexts are shared between connections: never change one.

        @param host: a DNS name or an IP address literal (C{str}).
        @rtype: L{OpenSSL.SSL.Context}
        @raise ValueError: C{host} is neither.
        """

    def serverConnectionCreator(defaultHost):
        """
        A creator for one intercepted connection, for
        C{TLSMemoryBIOFactory(creator, False, wrappedFactory)}: it serves the
        certificate for the name the client sends (SNI), or for
        C{defaultHost} (the CONNECT host) when the client sends none.

        @rtype: L{twisted.internet.interfaces.IOpenSSLServerConnectionCreator}
        @raise ValueError: C{defaultHost} is neither a DNS name nor an IP
            address.
        """


class ICounters(Interface):
    """
    Fixed-window counters behind rate limits and budgets; in memory by
    default, so that a shared store can take their place.
    """

    def count(key, window, now):
        """
        @return: the amount counted for C{key} in the window of C{window}
            seconds that holds C{now}.
        """

    def add(key, window, now, amount):
        """
        Count C{amount} more for C{key} in that window.
        """

