# -*- test-case-name: tests.test_api_stream -*-
"""
An OpenAI event stream (chat completions, legacy completions) rewritten by
the policies' scanners: one scanner per choice's streamed text.
"""

from keeptrusts.api.rewrite import (
    JSON_TEXTS, EventRewriter, eventBytes, forgetLogprobs, indexOf,
    invalidEvent)


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
        streamed = set()
        for index, container, key in self._endpoint.deltaSlots(chunk):
            self._feed(index, container, key, slots, streamed, altered)
        altered.update(self._scanRest(chunk, slots, streamed, altered))
        if slots:
            self._template = chunk
        before = []
        finished = _finishedChoices(chunk)
        ending = sorted((k for k in self._scanners
                         if _choiceOf(k) in finished),
                        key=_order) if finished else ()
        # No more text of a finished choice (L{EventRewriter._endScanner}).
        self._ended.update(finished)
        for index in ending:
            held = self._endScanner(index).end()
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

    def _scanRest(self, chunk, slots, streamed, altered):
        """
        Stream a choice's texts the endpoint does not name, and scan whole
        each other text of the chunk: of its choices (a field no surface
        streams yet, a final chunk carrying a whole message), and beside
        them (an error in mid-stream, citations).

        @param streamed: the C{(id(container), key)} of the texts streamed
            already (L{_feed} adds those it streams).
        @return: the indexes of the choices it changed, L{None} among them
            when it changed a field beside them.
        """
        changed = set()
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
    # An empty reason is none (a server that sent "" with every chunk would
    # end its choice's scan at each one).
    return frozenset(indexOf(c) for c in choices
                     if isinstance(c, dict) and c.get("finish_reason"))


def _choiceOf(index):
    # A scanner's key: a choice's index, or (index, ...) for its other texts.
    return index[0] if isinstance(index, tuple) else index


def _order(index):
    return index if isinstance(index, tuple) else (index,)


def _chunkEvent(chunk):
    return eventBytes(None, chunk) + b"\n\n"
