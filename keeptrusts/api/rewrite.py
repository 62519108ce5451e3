# -*- test-case-name: tests.test_api_stream -*-
"""
Event streams rewritten by the policies' incremental scanners, one scanner
per streamed text (a choice): the text deltas change, every other event and
field is kept.  A surface (OpenAI, Sourcegraph) says where its texts are.
"""

import json
import re

from keeptrusts.api.endpoint import _ESCAPES, _plainEscape, everyText
from keeptrusts.api.errors import upstreamError
from keeptrusts.api.sse import EventSplitter, readEvent
from keeptrusts.api.strictjson import DuplicateKey, loadsStrict
from keeptrusts.policy.chain import mergeOutcomes

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

    def _scanWhole(self, text, escaped=False, counted=True):
        """
        A text that came whole, through a scanner of its own; only its
        outcome is kept (a stream may carry thousands of such texts).

        @param escaped: C{text} is a JSON text (a call's arguments): its
            escapes are written plainly first (L{plainEscapes}).
        @param counted: whether it counts as answer text (an echo of the
            request does not).
        """
        if escaped:
            text = plainEscapes(text)
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
        return _eventBytes(name, box[0]) + b"\n\n"

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
            the client is sent them plainly (L{_Unescaping}).
        """
        scanner = self._scanners.get(index)
        if scanner is None:
            chain = self._newScanner()
            if escaped and chain is not None:
                chain = _Unescaping(chain)
            scanner = self._scanners[index] = _Counting(chain)
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
            raise invalidEvent()
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


def plainEscapes(text):
    """
    A JSON text with its C{\\uXXXX} escapes (surrogate pairs too) and C{\\/}
    written plainly, as the request side writes a call's arguments
    (L{keeptrusts.api.endpoint.readRequest}): it decodes to the same value,
    and a key written C{\\u0041KIA...} is read as the key it is.  What a
    JSON string must escape, and a lone surrogate, stay escaped.
    """
    if "\\u" in text or "\\/" in text:
        return _ESCAPES.sub(_plainEscape, text)
    return text


# The beginning of an escape a piece may end with: a backslash, and "u" with
# up to three hex digits; and a whole high surrogate's escape, which a low
# one may follow.
_UNFINISHED = re.compile(r"\\(?:u[0-9a-fA-F]{0,3})?")
_MAYBE_UNFINISHED = re.compile(r"(?:\\(?:u[0-9a-fA-F]{0,3})?)?")


def _finishedLength(text):
    """
    How much of C{text} (a piece of a JSON text, from an escape's boundary)
    no later piece can change: all but an unfinished escape at its end, or
    a high surrogate's escape that a low one may complete (at most 11
    characters held).
    """
    last = None
    for last in _ESCAPES.finditer(text):
        pass
    start = 0 if last is None else last.end()
    rest = text[start:]
    if (last is not None and last.group(2) is None
            and last.group(1) is not None
            and 0xD800 <= int(last.group(1), 16) < 0xDC00
            and _MAYBE_UNFINISHED.fullmatch(rest)):
        return last.start()
    # The text after the last whole escape holds no escaped backslash: a
    # backslash there begins an escape of its own.
    slash = rest.rfind("\\")
    if slash >= 0 and _UNFINISHED.fullmatch(rest, slash):
        return start + slash
    return len(text)


class _Unescaping:
    """
    A scanner in front of another, for a JSON text streamed in pieces (a
    tool call's arguments): it writes the escapes plainly (L{plainEscapes})
    and holds back an escape a piece ends in the middle of, until the next
    piece finishes it.  What it releases is the plain text, which decodes
    to what the provider's did.
    """

    def __init__(self, scanner):
        self._scanner = scanner
        self._held = ""

    def feed(self, text):
        if self._held:
            text = self._held + text
            self._held = ""
        if "\\u" not in text and "\\/" not in text and text[-1:] != "\\":
            # Nothing to write plainly, nothing unfinished (the usual
            # piece, with its \" and \n escapes).
            return self._scanner.feed(text)
        cut = _finishedLength(text)
        self._held = text[cut:]
        return self._scanner.feed(_ESCAPES.sub(_plainEscape, text[:cut]))

    def end(self):
        held, self._held = self._held, ""
        released = self._scanner.feed(plainEscapes(held)) if held else ""
        return released + self._scanner.end()

    def outcomes(self):
        return self._scanner.outcomes()


class SseRewriter(EventRewriter):
    """
    An OpenAI event stream (chat or legacy completions): one scanner per
    choice.  What a scanner still holds when its choice finishes goes out
    before (or with) the finishing chunk.

    Besides the texts the endpoint names (L{Endpoint.deltaSlots}), a
    choice's other streamed texts have scanners of their own: a content
    given as a list of parts (Mistral's; its text parts go through the
    choice's scanner, its thinking through C{(index, "thinking")}), each
    of OpenRouter's C{reasoning_details} (C{(index, "details", n, field)},
    C{n} its own index, 0 when it gives none, as clients take it), a C{text}
    beside a chat choice's delta (C{(index, "text")}).

    @ivar dropUsageChunk: the gateway asked for the usage chunk, not the
        client: take the tokens and do not pass it on.
    """

    _template = None
    dropUsageChunk = False

    def __init__(self, *args):
        EventRewriter.__init__(self, *args)
        # The choice that carries held text, for the texts the endpoint
        # does not name: key -> (text -> choice).
        self._shapes = {}

    def _rewritePayload(self, name, chunk, event):
        tokens = self._endpoint.usage(chunk)
        if tokens is not None:
            self.outcome.tokens = tokens
            if self.dropUsageChunk and not chunk.get("choices"):
                return b""
        choices = chunk.get("choices")
        if choices is not None and type(choices) is not list:
            # A client may read it (an object's values, by its keys) where
            # the endpoint's slots see nothing.
            raise invalidEvent()
        slots = {}
        altered = set()
        for index, container, key in self._endpoint.deltaSlots(chunk):
            text = container[key]
            container[key] = released = self._scanner(
                index, key in JSON_TEXTS).feed(text)
            if released != text:
                altered.add(_choiceOf(index))
            slots[index] = (container, key)
        altered.update(self._scanRest(chunk, slots, altered))
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

    def _feed(self, index, container, key, slots, streamed, altered):
        """
        Stream C{container[key]} through the scanner C{index}.
        """
        text = container[key]
        container[key] = released = self._scanner(
            index, key in JSON_TEXTS).feed(text)
        if released != text:
            altered.add(_choiceOf(index))
        slots[index] = (container, key)
        streamed.add((id(container), key))

    def _scanRest(self, chunk, slots, altered):
        """
        Stream a choice's texts the endpoint does not name, and scan whole
        each other text of the chunk: of its choices (a field no surface
        streams yet, a final chunk carrying a whole message), and beside
        them (an error in mid-stream, citations).

        @return: the indexes of the choices it changed, L{None} among them
            when it changed a field beside them.
        """
        changed = set()
        streamed = None
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
        for choice in chunk.get("choices") or ():
            if type(choice) is not dict:
                raise invalidEvent()
            delta = choice.get("delta")
            if (type(delta) is dict and _PLAIN_CHOICE.issuperset(choice)
                    and _PLAIN_DELTA.issuperset(delta)
                    and type(delta.get("content")) in _PLAIN_TYPES):
                continue  # most chunks: content alone, streamed already
            if streamed is None:
                streamed = {(id(container), key)
                            for container, key in slots.values()}
            if "text" in choice or type(delta) is dict and (
                    "reasoning_details" in delta
                    or type(delta.get("content")) is list):
                self._streamOthers(indexOf(choice), choice, slots, streamed,
                                   altered)
            if self._scanChoice(choice, streamed):
                changed.add(indexOf(choice))
        return changed

    def _scanChoice(self, choice, streamed):
        """
        Scan whole each text of C{choice} but the C{streamed} ones (a
        delta of a role and a content that is a string has none).

        @return: whether a text changed.
        """
        changed = False
        for key, value in choice.items():
            if value is None or key in _UNREAD_CHOICE:
                continue
            kind = type(value)
            if kind is str:
                if value and (id(choice), key) not in streamed:
                    released = self._scanWhole(value, key in JSON_TEXTS)
                    if released != value:
                        choice[key] = released
                        changed = True
            elif kind in _CONTAINERS and not (
                    key == "delta" and kind is dict
                    and _PLAIN_DELTA.issuperset(value)
                    and type(value.get("content")) in _PLAIN_TYPES) and (
                        self._scanTexts(value, streamed)):
                changed = True
        return changed

    def _streamOthers(self, index, choice, slots, streamed, altered):
        """
        Stream the texts of C{choice} the endpoint does not name (see the
        class's docstring).
        """
        delta = choice.get("delta")
        if type(delta) is dict:
            content = delta.get("content")
            for part in content if type(content) is list else ():
                if type(part) is not dict:
                    continue
                kind = part.get("type")
                if kind == "text" and type(part.get("text")) is str:
                    self._feed(index, part, "text", slots, streamed, altered)
                elif kind == "thinking":
                    self._streamThinking(index, part, slots, streamed,
                                         altered)
            details = delta.get("reasoning_details")
            for detail in details if type(details) is list else ():
                if type(detail) is not dict:
                    continue
                number = indexOf(detail)
                for field in ("text", "summary"):
                    if type(detail.get(field)) is str:
                        key = (index, "details", number, field)
                        if key not in self._shapes:
                            self._shapes[key] = _detailShape(
                                index, detail, number, field)
                        self._feed(key, detail, field, slots, streamed,
                                   altered)
        if type(choice.get("text")) is str and (
                id(choice), "text") not in streamed:
            key = (index, "text")
            if key not in self._shapes:
                self._shapes[key] = lambda text: {
                    "index": index, "text": text, "delta": {},
                    "finish_reason": None}
            self._feed(key, choice, "text", slots, streamed, altered)

    def _streamThinking(self, index, part, slots, streamed, altered):
        # Mistral's thinking part: a text, or a list of text parts.
        key = (index, "thinking")
        thinking = part.get("thinking")
        if type(thinking) is str:
            pieces = [(part, "thinking")]
        elif type(thinking) is list:
            pieces = [(sub, "text") for sub in thinking
                      if type(sub) is dict and sub.get("type") == "text"
                      and type(sub.get("text")) is str]
        else:
            return
        if pieces and key not in self._shapes:
            self._shapes[key] = _thinkingShape(index, type(thinking) is str)
        for container, field in pieces:
            self._feed(key, container, field, slots, streamed, altered)

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
        shape = self._shapes.get(index)
        chunk["choices"] = [shape(text) if shape is not None
                            else self._endpoint.deltaChoice(index, text)]
        return _chunkEvent(chunk)


def _detailShape(index, detail, number, field):
    """
    The choice that carries held text of one of OpenRouter's
    C{reasoning_details}: of its type and format.
    """
    fields = {k: detail[k] for k in ("type", "format")
              if type(detail.get(k)) is str}

    def shape(text):
        return {"index": index, "delta": {"reasoning_details": [
            dict(fields, index=number, **{field: text})]},
            "finish_reason": None}
    return shape


def _thinkingShape(index, plain):
    def shape(text):
        thinking = text if plain else [{"type": "text", "text": text}]
        return {"index": index, "delta": {"content": [
            {"type": "thinking", "thinking": thinking}]},
            "finish_reason": None}
    return shape


# The keys of a delta that has no text but those streamed, and of a choice.
_PLAIN_DELTA = frozenset(["role", "content"])
_PLAIN_CHOICE = frozenset(["index", "delta", "finish_reason", "logprobs"])
_PLAIN_TYPES = frozenset([str, type(None)])
_CONTAINERS = frozenset([dict, list])
# A choice's fields that carry no text (the logprobs of a text are not read:
# a text that changed loses them).
_UNREAD_CHOICE = frozenset(["index", "finish_reason", "logprobs"])
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


def _chunkEvent(chunk):
    return _eventBytes(None, chunk) + b"\n\n"
