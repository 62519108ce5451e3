# -*- test-case-name: tests.test_api_responses -*-
"""
A stream of the OpenAI Responses surface (L{keeptrusts.api.responses})
rewritten by the policies' scanners: one scanner per streamed text.

A stream repeats the whole text in its closing events (C{...text.done},
C{...content_part.done}, C{...output_item.done}, C{response.completed});
each is rewritten to the redacted text the client was sent, so the
unredacted text never follows the deltas.
"""

from keeptrusts.api.responseevents import (
    DONE_FIELDS, ECHOES, ITEM_FAMILIES, JSON_FAMILIES, NOT_TEXT_DELTAS, PARTS,
    PLAIN_DELTA, RESPONSE_ENDS, SUMMARY, TEXT, streamSlots, subIndex, usageOf)
from keeptrusts.api.rewrite import (
    EventRewriter, indexOf, invalidEvent, namedEvent)


class ResponsesRewriter(EventRewriter):
    """
    One scanner per streamed text, keyed C{(output_index, family, content
    or summary index)}; a text's opening (an item or a part added with its
    text) goes through the scanner its deltas use, and the released text
    of each is kept to rewrite the closing events.
    """

    def __init__(self, outcome, endpoint, newScanner):
        EventRewriter.__init__(self, outcome, endpoint, newScanner)
        self._released = {}
        # The identifying fields of each text's deltas, for held text.
        self._ids = {}
        # The texts of the echoes of the response, read once.
        self._echoed = {}

    def _rewritePayload(self, name, payload, event):
        kind = payload.get("type")
        if not isinstance(kind, str):
            # No type: its texts read whole.
            return self._scanOther(name, payload)
        if "\n" in kind or "\r" in kind:
            raise invalidEvent()  # no name could say it
        named = kind.encode("utf-8", "surrogatepass")
        if kind.endswith(".delta") and kind not in NOT_TEXT_DELTAS \
                and isinstance(payload.get("delta"), str):
            # Most events: a text's piece.
            rewritten = self._delta(kind[:-6], named, payload)
        else:
            rewritten = self._rewriteTyped(kind, named, payload)
        if rewritten is None and name is not None and name != named:
            # The SDKs go by the data's type: it goes on under that name,
            # so that a client going by the event's name reads it alike.
            return namedEvent(named, payload)
        return rewritten

    def _rewriteTyped(self, kind, name, payload):
        output = indexOf(payload, "output_index")
        if kind.endswith(".done") and kind[:-5] not in (
                "response.output_item", "response.content_part",
                "response.reasoning_summary_part"):
            return self._done(kind[:-5], name, payload, output)
        if kind in ("response.content_part.added",
                    "response.reasoning_summary_part.added",
                    "response.content_part.done",
                    "response.reasoning_summary_part.done"):
            return self._part(kind, name, payload, output)
        if kind == "response.output_item.added" and isinstance(
                payload.get("item"), dict):
            read = set()
            changed = self._items([(output, payload["item"])], True, read)
            return self._written(name, payload, read, changed)
        if kind == "response.output_item.done" and isinstance(
                payload.get("item"), dict):
            held = self._flushAll(payload, output)
            self._ended.add(output)  # no more of the item's texts
            read = self._closeItem(payload["item"], output)
            return held + self._written(name, payload, read, True)
        if kind in RESPONSE_ENDS and isinstance(
                payload.get("response"), dict):
            tokens = usageOf(payload)
            if tokens is not None:
                self.outcome.tokens = tokens
            held = self._flushAll(payload)
            read = set()
            items = payload["response"].get("output")
            for index, item in enumerate(items if isinstance(items, list)
                                         else ()):
                if isinstance(item, dict):
                    read |= self._closeItem(item, index)
            return held + self._written(name, payload, read, True,
                                        self._echoed)
        if kind in ECHOES and isinstance(payload.get("response"), dict):
            items = payload["response"].get("output")
            read = set()
            changed = self._items(
                [(index, item) for index, item in enumerate(
                    items if isinstance(items, list) else ())
                 if isinstance(item, dict)],
                kind == "response.created", read)
            return self._written(name, payload, read, changed, self._echoed)
        return self._scanOther(name, payload)

    def _delta(self, family, name, payload):
        key = (indexOf(payload, "output_index"), family,
               subIndex(family, payload))
        if key not in self._ids:
            self._ids[key] = {k: payload[k] for k in (
                "item_id", "content_index", "summary_index") if k in payload}
        text = payload["delta"]
        released = self._release(key, self._scanner(
            key, family in JSON_FAMILIES).feed(text))
        payload["delta"] = released
        other = not PLAIN_DELTA.issuperset(payload) and self._scanTexts(
            payload, {(id(payload), "delta")})
        if released == text and not other:
            return None  # the event as it came: no re-encoding
        _logprobsIfChanged(payload, text, released)
        return namedEvent(name, payload)

    def _done(self, family, name, payload, output):
        """
        A text's done event: what its scanner holds goes out before it, and
        its copy of the text is the one the client was sent.
        """
        key = (output, family, subIndex(family, payload))
        held = self._heldDelta(payload, key)
        read = set()
        for field in DONE_FIELDS:
            if isinstance(payload.get(field), str):
                self._replace(payload, field, key)
                read.add((id(payload), field))
                break
        return held + self._written(name, payload, read, bool(read or held))

    def _part(self, kind, name, payload, output):
        """
        A content part (or a summary's), added or done: its text is its
        family's, at its index.
        """
        part = payload.get("part")
        summary = kind.startswith("response.reasoning_summary_part")
        position = indexOf(payload, "summary_index" if summary
                           else "content_index")
        spec = None
        if isinstance(part, dict) and isinstance(part.get("type"), str):
            spec = PARTS.get(part["type"])
        if spec is None or not isinstance(part.get(spec[1]), str):
            return self._scanOther(name, payload)
        family, field = spec
        key = (output, family, position)
        read = {(id(part), field)}
        if kind.endswith(".added"):
            changed = self._open(part, field, key, payload)
            return self._written(name, payload, read, changed)
        held = self._heldDelta(payload, key)
        self._replace(part, field, key)
        return held + self._written(name, payload, read, True)

    def _written(self, name, payload, read, changed, memo=None):
        """
        The event once its texts but the C{read} slots are read whole:
        L{None} (as it came) when none changed, nor C{changed} says one did.
        """
        if self._scanTexts(payload, read, memo) or changed:
            return namedEvent(name, payload)
        return None

    def _items(self, items, opening, read):
        """
        Output items that come whole before their deltas (added, or in the
        response an echo repeats): a text of one goes through its scanner
        when it opens (C{opening}: the client adds the deltas to it); one
        already streamed is the text sent so far for it; the others are
        left to be read whole.

        @param read: the slots it read, added to.
        @return: whether a text changed.
        """
        changed = False
        for output, item in items:
            template = {"item_id": item["id"]} if isinstance(
                item.get("id"), str) else {}
            for holder, field, key in streamSlots(item, output):
                if key in self._released or key in self._scanners:
                    original = holder[field]
                    holder[field] = self._released.get(key, "")
                    if holder[field] != original:
                        _logprobsIfChanged(holder, original, holder[field])
                        changed = True
                elif opening:
                    changed = self._open(holder, field, key, template) or (
                        changed)
                else:
                    continue
                read.add((id(holder), field))
        return changed

    def _open(self, holder, field, key, template):
        """
        A text's opening: through the scanner its deltas will use.

        @return: whether the text changed.
        """
        if key not in self._ids:
            ids = {k: template[k] for k in ("item_id",) if k in template}
            if key[1] == SUMMARY:
                ids["summary_index"] = key[2]
            elif key[1] not in ITEM_FAMILIES or key[2]:
                ids["content_index"] = key[2]
            self._ids[key] = ids
        text = holder[field]
        if not text:
            return False
        released = self._release(key, self._scanner(
            key, key[1] in JSON_FAMILIES).feed(text))
        if released == text:
            return False
        holder[field] = released
        _logprobsIfChanged(holder, text, released)
        return True

    def _closeItem(self, item, output):
        """
        Put in a closing copy of an item the texts the client was sent.

        @return: the slots replaced.
        """
        replaced = set()
        for holder, field, key in streamSlots(item, output):
            self._replace(holder, field, key)
            replaced.add((id(holder), field))
        return replaced

    def _release(self, key, text):
        self._released[key] = self._released.get(key, "") + text
        return text

    def _heldDelta(self, template, key):
        scanner = self._endScanner(key)
        held = scanner.end() if scanner is not None else ""
        if not held:
            return b""
        kind = key[1] + ".delta"
        payload = {"type": kind}
        payload.update(self._ids.get(key, ()))
        if "item_id" not in payload and "item_id" in template:
            payload["item_id"] = template["item_id"]
        payload["output_index"] = key[0]
        payload["delta"] = self._release(key, held)
        return namedEvent(kind.encode("utf-8", "surrogatepass"), payload)

    def _flushAll(self, template, output=None):
        """
        What the scanners (of one output item, or all) still hold.
        """
        keys = sorted((k for k in self._scanners
                       if output is None or k[0] == output), key=_order)
        return b"".join(self._heldDelta(template, key) for key in keys)

    def _replace(self, holder, field, key):
        """
        Put the text the client was sent for C{key} in C{holder[field]}
        (a closing event's copy); a changed text loses its logprobs.
        """
        original = holder.get(field)
        if isinstance(original, str) or key in self._released:
            holder[field] = self._textFor(key, original)
            _logprobsIfChanged(holder, original, holder[field])

    def _textFor(self, key, original):
        """
        The text the client was sent for C{key}; a text that came only in
        a closing event is scanned whole.
        """
        if key not in self._released and isinstance(original, str):
            self._released[key] = self._scanWhole(
                original, key[1] in JSON_FAMILIES)
        return self._released.get(key, "")

    def _flush(self):
        return self._flushAll({})


def _logprobsIfChanged(holder, original, sent):
    # Their tokens would spell out what was taken.
    if sent != original and holder.get("logprobs"):
        holder["logprobs"] = []


def _order(key):
    # A message's texts first, then its other texts, by index.
    return (key[0], key[1] != TEXT, key[1], key[2])
