# -*- test-case-name: tests.test_api_stream -*-
"""
Event streams rewritten by the policies' incremental scanners, one scanner
per streamed text (a choice): the text deltas change, every other event and
field is kept.  A surface (OpenAI, Sourcegraph) says where its texts are.
"""

import json

from keeptrusts.api.endpoint import everyText
from keeptrusts.api.errors import upstreamError
from keeptrusts.api.sse import EventSplitter, readEvent
from keeptrusts.api.strictjson import DuplicateKey, loadsStrict
from keeptrusts.policy.chain import mergeOutcomes

# Made once: json.dumps with options makes an encoder per call.
_compact = json.JSONEncoder(separators=(",", ":")).encode


class EventRewriter:
    """
    What every surface's rewriter does: split events, parse their JSON,
    keep one scanner per streamed text, report the policies' outcomes.

    Subclasses implement C{_rewritePayload(name, payload, event)} (bytes of
    the rewritten event, or L{None} to keep it as it came) and C{_flush()}.

    @param endpoint: the L{Endpoint}, which knows where texts are and how
        the surface reports an error.
    """

    def __init__(self, outcome, endpoint, newScanner):
        self.outcome = outcome
        self._endpoint = endpoint
        self._newScanner = newScanner
        self._scanners = {}
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

    def _scanWhole(self, text):
        """
        A text that came whole, through a scanner of its own; only its
        outcome is kept (a stream may carry thousands of such texts).
        """
        scanner = _Counting(self._newScanner())
        released = scanner.feed(text) + scanner.end()
        self._wholeOutcomes = mergeOutcomes([self._wholeOutcomes,
                                             scanner.outcomes()])
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
        return _eventBytes(name, box[0]) + b"\n\n"

    def _scanTexts(self, value, streamed=frozenset()):
        """
        Scan whole, in place, each text of C{value} (parsed JSON) but the
        C{streamed} slots (C{(id(container), key)} pairs).

        @return: whether a text changed.
        """
        changed = False
        for container, key in everyText(value):
            if (id(container), key) in streamed:
                continue
            text = container[key]
            released = self._scanWhole(text)
            if released != text:
                container[key] = released
                changed = True
        return changed

    def _scanRaw(self, event):
        text = event.decode("utf-8", "surrogateescape")
        released = self._scanWhole(text)
        if released == text:
            return event
        return released.encode("utf-8", "surrogateescape")

    def _scanner(self, index):
        scanner = self._scanners.get(index)
        if scanner is None:
            scanner = self._scanners[index] = _Counting(self._newScanner())
            self._allScanners.append(scanner)
        return scanner

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
            raise upstreamError("invalid event in the provider's stream")
        if not (asRead and plain):
            # What goes on, wherever the event is passed as it came, is
            # what the policies read, written anew: not a key given twice
            # (readers differ on which value counts), a comment, an id.
            event = _eventBytes(name, payload)
        if not isinstance(payload, dict):
            # No surface's event (a text, a list): read whole.
            return self._scanOther(name, payload) or event + b"\n\n"
        rewritten = self._rewritePayload(name, payload, event)
        return event + b"\n\n" if rewritten is None else rewritten


def _eventBytes(name, payload):
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
    return _eventBytes(name, payload) + b"\n\n"


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


class SseRewriter(EventRewriter):
    """
    An OpenAI event stream (chat or legacy completions): one scanner per
    choice.  What a scanner still holds when its choice finishes goes out
    before (or with) the finishing chunk.

    @ivar dropUsageChunk: the gateway asked for the usage chunk, not the
        client: take the tokens and do not pass it on.
    """

    _template = None
    dropUsageChunk = False

    def _rewritePayload(self, name, chunk, event):
        tokens = self._endpoint.usage(chunk)
        if tokens is not None:
            self.outcome.tokens = tokens
            if self.dropUsageChunk and not chunk.get("choices"):
                return b""
        slots = {}
        altered = set()
        for index, container, key in self._endpoint.deltaSlots(chunk):
            text = container[key]
            container[key] = released = self._scanner(index).feed(text)
            if released != text:
                altered.add(_choiceOf(index))
            slots[index] = (container, key)
        altered.update(self._scanRest(chunk, slots))
        if slots:
            self._template = chunk
        before = []
        finished = _finishedChoices(chunk)
        ending = sorted((k for k in self._scanners
                         if _choiceOf(k) in finished),
                        key=_order) if finished else ()
        for index in ending:
            held = self._scanners.pop(index).end()
            if not held:
                continue
            altered.add(_choiceOf(index))
            if index in slots:
                container, key = slots[index]
                container[key] += held
            else:
                before.append(self._heldEvent(chunk, index, held))
        if not altered and not before:
            return None  # the event as it came: no re-encoding
        forgetLogprobs(chunk, altered)
        return b"".join(before) + _chunkEvent(chunk)

    def _scanRest(self, chunk, slots):
        """
        Scan whole each other text of the chunk: of its choices (a field no
        surface streams yet, a final chunk carrying a whole message), and
        beside them (an error in mid-stream, citations).

        @return: the indexes of the choices it changed, L{None} among them
            when it changed a field beside them.
        """
        streamed = {(id(container), key) for container, key in slots.values()}
        changed = set()
        if not isinstance(chunk, dict):
            return changed
        for key in set(chunk) - _PLAIN_CHUNK:
            # A field beside the choices (an error in mid-stream, citations).
            value = chunk[key]
            if isinstance(value, str) and value:
                released = self._scanWhole(value)
                if released != value:
                    chunk[key] = released
                    changed.add(None)
            elif isinstance(value, (dict, list)) and self._scanTexts(value):
                changed.add(None)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or (
                    "message" not in choice
                    and _PLAIN_DELTA.issuperset(choice.get("delta") or ())):
                continue  # most chunks: content alone, streamed already
            for part in ("delta", "message"):
                value = choice.get(part)
                if isinstance(value, (dict, list)) and self._scanTexts(
                        value, streamed):
                    changed.add(indexOf(choice))
        return changed

    def _flush(self):
        """
        Release what the scanners still hold, as one more chunk per text.
        """
        out = [self._heldEvent(self._template, index, text)
               for index, text in sorted(
                   ((index, scanner.end())
                    for index, scanner in self._scanners.items()),
                   key=lambda pair: _order(pair[0]))
               if text]
        self._scanners.clear()
        return b"".join(out)

    def _heldEvent(self, template, index, text):
        chunk = {key: value for key, value in (template or {}).items()
                 if key not in ("choices", "usage")}
        chunk["choices"] = [self._endpoint.deltaChoice(index, text)]
        return _chunkEvent(chunk)


# The keys of a delta that has no text but those streamed.
_PLAIN_DELTA = frozenset(["role", "content"])
# The fields of a chunk that carry no text besides its choices.  OpenAI
# pads every chunk with random characters ("obfuscation", on by default):
# read whole, they cost a scanner per chunk (35 µs) and are no model's text.
_PLAIN_CHUNK = frozenset(["id", "object", "created", "model", "choices",
                          "usage", "system_fingerprint", "service_tier",
                          "obfuscation"])


def _finishedChoices(chunk):
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list):
        return frozenset()
    return frozenset(indexOf(c) for c in choices
                     if isinstance(c, dict) and c.get("finish_reason") is not None)


def _choiceOf(index):
    # A scanner's key: a choice's index, or (index, ...) for its other texts.
    return index[0] if isinstance(index, tuple) else index


def _order(index):
    return index if isinstance(index, tuple) else (index,)


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
    none that is a number.
    """
    index = value.get(key, default)
    return index if isinstance(index, int) else default


def _chunkEvent(chunk):
    return _eventBytes(None, chunk) + b"\n\n"
