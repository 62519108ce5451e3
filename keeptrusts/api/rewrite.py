# -*- test-case-name: tests.test_api_stream -*-
"""
Event streams rewritten by the policies' incremental scanners, one scanner
per streamed text: the text deltas change, every other event and field is
kept.  What every surface's rewriter shares; each surface's own is beside
its format (L{keeptrusts.api.chatstream}, L{keeptrusts.api.anthropic},
L{keeptrusts.api.responsestream}, L{keeptrusts.api.sourcegraph}).
"""

import json

from keeptrusts.api.texts import everyText, namesOf
from keeptrusts.api.errors import upstreamError
from keeptrusts.api.escapes import Unescaping, plainJSONText
from keeptrusts.api.sse import EventSplitter, readEvent
from keeptrusts.api.strictjson import DuplicateKey, loadsStrict
from keeptrusts.policy.chain import mergeOutcomes
from keeptrusts.policy.values import Blocked

# Made once: json.dumps with options makes an encoder per call.
_compact = json.JSONEncoder(separators=(",", ":")).encode

INVALID_EVENT = "invalid event in the provider's stream"
# The fields whose text is a JSON text (a tool call's arguments): their
# \uXXXX escapes are written plainly before they are read, for what a client
# decodes is what the policies must read.
JSON_TEXTS = frozenset(["arguments", "partial_json"])


def invalidEvent():
    """
    The error that ends a stream whose provider sent an event the gateway
    cannot read as its clients would.
    """
    return upstreamError(INVALID_EVENT)


class EventRewriter:
    """
    What every surface's rewriter does: split events, parse their JSON,
    keep one scanner per streamed text, report the policies' outcomes.

    Subclasses implement C{_rewritePayload(name, payload, event)} (bytes of
    the rewritten event, or L{None} to keep it as it came) and C{_flush()}.

    @param endpoint: the L{Endpoint}, which knows where texts are and how
        the surface reports an error.
    """

    # names -> a blocking ChainResult or None (the pipeline's
    # carried.namedCredentials), or None: names are not checked.
    checkNames = None

    def __init__(self, outcome, endpoint, newScanner):
        self.outcome = outcome
        self._endpoint = endpoint
        self._newScanner = newScanner
        self._scanners = {}
        self._ended = set()
        self._cleanNames = set()
        self._allScanners = []
        self._wholeOutcomes = ()
        self._wholeReleased = 0
        self._splitter = EventSplitter()

    def feed(self, data):
        return b"".join(self._rewrite(e) for e in self._splitter.feed(data))

    def end(self):
        # A stream that ends without its terminator or a last blank line:
        # its last event is scanned too, and the held text follows it.
        rest = self._splitter.rest()
        return (self._rewrite(rest) if rest.strip() else b"") + self._flush()

    def fail(self, error):
        return self._endpoint.errorEvent(error)

    def outcomes(self):
        """
        @return: a L{PolicyOutcome} per scanning policy, over every text.
        """
        return mergeOutcomes([self._wholeOutcomes] + [
            s.outcomes() for s in self._allScanners])

    def releasedChars(self):
        """
        How much answer text went out, for a token estimate.
        """
        return self._wholeReleased + sum(
            s.released for s in self._allScanners)

    def _scanWhole(self, text, escaped=False, counted=True):
        """
        A text that came whole, through a scanner of its own; only its
        outcome is kept (a stream may carry thousands of such texts).

        @param escaped: C{text} is a JSON text (a call's arguments): its
            escapes are written plainly first (L{plainJSONText}).
        @param counted: whether it counts as answer text (an echo of the
            request does not).
        """
        if escaped:
            text = plainJSONText(text)
        scanner = _Counting(self._newScanner())
        released = scanner.feed(text) + scanner.end()
        self._wholeOutcomes = mergeOutcomes([self._wholeOutcomes,
                                             scanner.outcomes()])
        if counted:
            self._wholeReleased += scanner.released
        return released

    def _scanOther(self, name, payload):
        """
        An event the surface's rewriter does not know (a tool's output, a
        citation, a refusal, an item that comes whole): each of its texts
        scanned whole, so none goes on unread.

        @return: the event's bytes, or L{None} when no text changed.
        """
        box = [payload]  # a text on its own (no object) is read too
        if not self._scanTexts(box):
            return None
        return eventBytes(name, box[0]) + b"\n\n"

    def _scanTexts(self, value, streamed=frozenset(), memo=None):
        """
        Scan whole, in place, each text of C{value} (parsed JSON) but the
        C{streamed} slots (C{(id(container), key)} pairs).

        @param memo: a dict of the texts already read (an echo of the
            request, repeated by several events) to what was released for
            them: each read once, not counted as answer text.
        @return: whether a text changed.
        """
        changed = False
        for container, key in everyText(value):
            if (id(container), key) in streamed:
                continue
            text = container[key]
            escaped = key in JSON_TEXTS
            if memo is None:
                released = self._scanWhole(text, escaped)
            else:
                released = memo.get((text, escaped))
                if released is None:
                    released = memo[text, escaped] = self._scanWhole(
                        text, escaped, counted=False)
            if released != text:
                container[key] = released
                changed = True
        return changed

    def _scanRaw(self, event):
        # What is no event may be JSON (an answer sent whole): its escapes
        # are written plainly, as a client reading it decodes them.
        text = event.decode("utf-8", "surrogateescape")
        released = self._scanWhole(text, escaped=True)
        if released == text:
            return event
        return released.encode("utf-8", "surrogateescape")

    def _scanner(self, index, escaped=False):
        """
        The scanner of the streamed text C{index}, made at its first piece.

        @param escaped: the text is a JSON text (a call's arguments): its
            escapes are written plainly before the scanner reads them, and
            the client is sent them plainly (L{Unescaping}).
        """
        scanner = self._scanners.get(index)
        if scanner is None:
            if index in self._ended or (
                    isinstance(index, tuple) and index[0] in self._ended):
                return _ENDED
            chain = self._newScanner()
            if escaped and chain is not None:
                chain = Unescaping(chain)
            scanner = self._scanners[index] = _Counting(chain)
            self._allScanners.append(scanner)
        return scanner

    def _checkNames(self, payload):
        """
        A credential among the event's names (a tool's name, an id, an
        object key) cannot be redacted without breaking the answer: the
        stream stops, as a whole answer is blocked (found by review: they
        passed in streams).
        """
        fresh = [name for name in namesOf(payload)
                 if name not in self._cleanNames]
        if not fresh:
            return
        blocked = self.checkNames(fresh)
        if blocked is not None:
            raise Blocked(blocked.policy, blocked.outcomes[0].findings,
                          blocked.message)
        self._cleanNames.update(fresh)

    def _endScanner(self, index):
        """
        The streamed text C{index} ended (its choice finished, its block or
        part is done): its scanner, to release what it holds, or L{None}.
        More of that text is refused (L{_ENDED}); and, when C{index} is
        what the keys C{(index, ...)} belong to (a choice, a block, an
        output item), more of any of its texts.
        """
        self._ended.add(index)
        return self._scanners.pop(index, None)

    def _rewrite(self, event):
        name, data, plain = readEvent(event)
        if data is None:
            # No data line: a comment, or an answer that is no stream at all
            # (JSON sent as one): read whole all the same.
            return self._scanRaw(event) + b"\n\n"
        if data.strip() == b"[DONE]":
            return self._flush() + (event if plain else b"data: [DONE]") + (
                b"\n\n")
        try:
            payload, asRead = loadsStrict(data), True
        except DuplicateKey:
            payload, asRead = json.loads(data), False
        except (ValueError, RecursionError):
            raise invalidEvent()
        if not (asRead and plain):
            # What goes on, wherever the event is passed as it came, is
            # what the policies read, written anew: not a key given twice
            # (readers differ on which value counts), a comment, an id.
            event = eventBytes(name, payload)
        if self.checkNames is not None:
            self._checkNames(payload)
        if not isinstance(payload, dict):
            # No surface's event (a text, a list): read whole.
            return self._scanOther(name, payload) or event + b"\n\n"
        rewritten = self._rewritePayload(name, payload, event)
        return event + b"\n\n" if rewritten is None else rewritten


class _Ended:
    """
    The scanner of a text that ended: more of it is no event a provider
    sends, and a scan begun afresh would let a key split across the end
    pass (found by review).  The stream ends as an invalid event.
    """

    released = 0

    def feed(self, text):
        if text:
            raise invalidEvent()
        return text


_ENDED = _Ended()


def eventBytes(name, payload):
    """
    An SSE event, without its blank line: named or not.
    """
    data = b"data: " + _compact(payload).encode("utf-8")
    return b"event: " + name + b"\n" + data if name else data


def namedEvent(name, payload):
    """
    The bytes of an SSE event with a name (Anthropic's and the Responses
    API's streams name every event).
    """
    return eventBytes(name, payload) + b"\n\n"


class _Counting:
    """
    A chain scanner (or none: the text as it is) whose released characters
    are counted.
    """

    def __init__(self, scanner):
        self._scanner = scanner
        self.released = 0

    def feed(self, text):
        if self._scanner is not None:
            text = self._scanner.feed(text)
        self.released += len(text)
        return text

    def end(self):
        text = self._scanner.end() if self._scanner is not None else ""
        self.released += len(text)
        return text

    def outcomes(self):
        return self._scanner.outcomes() if self._scanner is not None else ()


def forgetLogprobs(answer, choices=None):
    """
    A text that changed (redacted, or held back) loses its logprobs: their
    tokens spell out what was taken.

    @param choices: the indexes of the chat choices that changed; L{None}:
        every logprobs of the answer, wherever it is (chat choices,
        Responses content parts).
    """
    if choices is None:
        _dropEveryLogprobs(answer)
        return
    listed = answer.get("choices")
    for choice in listed if isinstance(listed, list) else ():
        if (isinstance(choice, dict) and choice.get("logprobs") is not None
                and indexOf(choice) in choices):
            choice["logprobs"] = None


def _dropEveryLogprobs(value):
    stack = [value]
    while stack:
        node = stack.pop()
        for key, child in (node.items() if isinstance(node, dict)
                           else enumerate(node)):
            if key == "logprobs" and isinstance(node, dict) and child:
                node[key] = [] if isinstance(child, list) else None
            elif isinstance(child, (dict, list)):
                stack.append(child)


def indexOf(value, key="index", default=0):
    """
    An index a provider gives in C{value[key]}, or C{default} when it gives
    none (or null).

    @raise GatewayError: the index is not an integer (a string, a float, a
        boolean): clients coerce it (C{"1"} is 1 to JavaScript), and texts
        the gateway would keep apart would be joined.
    """
    index = value.get(key)
    if index is None:
        return default
    if type(index) is not int:
        raise invalidEvent()
    return index
