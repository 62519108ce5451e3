# -*- test-case-name: tests.test_api_openai,tests.test_api_escapes -*-
"""
Where a body's texts and names are: a walk over a parsed JSON request or
answer finds every string anyone wrote, as slots (L{keeptrusts.api.endpoint}),
and every name, leaving out identifiers, enumerations and encoded data.
"""

import re
from collections import deque

import attr

from keeptrusts.api.documents import Budget
from keeptrusts.api.encodedtext import DATA_URL, decodedFile
from keeptrusts.api.media import textMedia
from keeptrusts.api.escapes import plainJSONText


# Strings of a body that are not text anyone wrote: identifiers, names of
# formats and enumerations.  Only these keys' own string values are left
# out of the texts (a request's are among its names): what is nested below
# them is read.
_NOT_TEXT = frozenset([
    "model", "role", "type", "id", "name", "object", "speaker", "status",
    "tool_call_id", "tool_use_id", "call_id", "item_id", "file_id",
    "previous_response_id", "finish_reason", "stop_reason", "stopReason",
    "media_type",
    "mime_type", "detail", "format", "encoding_format", "service_tier",
    "reasoning_effort", "effort", "voice", "tool_choice", "truncation"])
# The keys whose strings may be encoded data, each at its own places only
# (L{_encoded}): base64 media, and what a provider sealed; and where base64
# of a text file may be (L{_decodedText}).
_MAYBE_ENCODED = frozenset([
    "url", "image_url", "file_data", "data", "signature", "encrypted_content",
    "embedding", "b64_json", "thinking"])
# Base64 and nothing else.
_BASE64 = re.compile(r"[A-Za-z0-9+/=\r\n]*")
# Base64 of either alphabet (OpenAI's sealed items are URL-safe Fernet).
_SEALED_DATA = re.compile(r"[A-Za-z0-9+/=_\-\r\n]*")
# An OpenAI input_audio's formats.
_AUDIO_FORMATS = frozenset(["wav", "mp3", "flac", "opus", "aac", "pcm16",
                            "ogg", "webm", "m4a"])
# Where a provider's signature or sealed content is: Claude's thinking (and
# its streamed signature), OpenAI's reasoning and compaction items, Claude's
# web search results.  The provider refuses them changed.
_SIGNED = frozenset(["thinking", "redacted_thinking", "signature_delta"])
_SEALED = frozenset(["reasoning", "compaction", "web_search_result"])
# The parts whose image_url is a string (OpenAI's is an object: its url).
_IMAGE_PARTS = frozenset(["input_image", "image_url", "computer_screenshot"])


def _encodedDataURL(value):
    """
    Whether C{value} is a data URL of a type that is not text, base64 and
    nothing else.
    """
    head = DATA_URL.match(value)
    return (head is not None and not textMedia(head.group(1))
            and _BASE64.fullmatch(value, head.end()) is not None)


def _encoded(node, key, value, media, answer):
    """
    Whether C{node[key]} (a string) is encoded data that a policy could
    only misread, at a place where such data is: base64 of a type that is
    not text where a surface carries files (read only if its bytes are
    text: L{_decodedText}), and what a provider signed or
    sealed (refused changed) where it does.  The same string anywhere else,
    or shaped otherwise, is text.

    @param media: the ids of the objects that are an OpenAI image part's
        C{image_url}.
    @param answer: whether C{node} is in an answer.
    """
    kind = node.get("type")
    if key == "url":
        return id(node) in media and _encodedDataURL(value)
    if key == "image_url":
        return kind in _IMAGE_PARTS and _encodedDataURL(value)
    if key == "file_data":
        return _encodedDataURL(value)
    if key == "data":
        if kind == "base64":  # Anthropic's image and document sources
            return (not textMedia(node.get("media_type"))
                    and _BASE64.fullmatch(value) is not None)
        if kind == "redacted_thinking":
            return _BASE64.fullmatch(value) is not None
        # OpenAI's input_audio: {"data": ..., "format": "wav"}.
        return (len(node) == 2 and node.get("format") in _AUDIO_FORMATS
                and _BASE64.fullmatch(value) is not None)
    if key == "signature":
        return kind in _SIGNED and _BASE64.fullmatch(value) is not None
    if key == "encrypted_content":
        return kind in _SEALED and _SEALED_DATA.fullmatch(value) is not None
    if key == "embedding":  # an embedding asked for in base64
        return (answer and node.get("object") == "embedding"
                and _BASE64.fullmatch(value) is not None)
    if key == "b64_json":  # an image the images API made
        return answer and _BASE64.fullmatch(value) is not None
    # Claude's streamed thinking is left to its stream's rewriter; a
    # thinking block's text is read, signed or not, in requests and
    # answers (a changed one is refused, a secret in it must not pass).
    return answer and key == "thinking" and kind == "thinking_delta"


def _decodedText(node, key, media, budget):
    """
    What C{node[key]} holds as a file, where a surface carries files as
    base64 (L{decodedFile}): a data URL as an image part's URL or a file's
    data, a file's bare base64 data, Claude's base64 source, Gemini's
    C{inline_data}.  What the files of one body decode to is bounded by
    one C{budget} (L{keeptrusts.api.documents.Budget}).

    @return: C{(slot, views)}: the slot of its text (or L{None}), the
        readings that cannot be written back; C{(None, ())} elsewhere.
    """
    if key in ("url", "image_url"):
        place = (id(node) in media if key == "url"
                 else node.get("type") in _IMAGE_PARTS)
        if place and node[key].lstrip()[:5].lower() == "data:":
            return decodedFile(node, key, None, budget)
    elif key == "file_data":
        return decodedFile(node, key, None, budget)
    elif key == "data":
        if node.get("type") == "base64":
            return decodedFile(node, key, node.get("media_type"), budget)
        for typeKey in ("mime_type", "mimeType"):  # Gemini's inline data
            if isinstance(node.get(typeKey), str):
                return decodedFile(node, key, node[typeKey], budget)
    return None, ()


def requestTextSlots(endpoint, body):
    """
    The slots of every text a request carries (L{readRequest}).
    """
    return readRequest(endpoint, body).slots


def answerTextSlots(endpoint, answer):
    """
    The slots of every text an answer carries (L{readAnswer}).
    """
    return readAnswer(endpoint, answer).slots


def everyText(value):
    """
    The slots of every text in C{value} (parsed JSON, an answer's or an
    event's) but identifiers, enumerations, encoded data and logprobs; the
    escapes of its C{arguments} written plainly, in place (L{readAnswer}).
    """
    return _walk(value, [], False, False)[0]


def namesOf(value):
    """
    The names in C{value} (parsed JSON, a stream's event): its object keys
    and its identifiers and enumerations, as L{readAnswer} gathers them,
    without walking for its texts.
    """
    names = []
    stack = [value]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            stack.extend(c for c in node if isinstance(c, (dict, list)))
            continue
        for key, child in node.items():
            names.append(key)
            if isinstance(child, (dict, list)):
                if key not in _SKIPPED:
                    stack.append(child)
            elif key in _NOT_TEXT and isinstance(child, str) and child:
                names.append(child)
    return names


# Not read in answers: an answer's logprobs spell its text out token by
# token (a text that is redacted loses them), and reading each token would
# cost dear.  A request's are read: what it carries goes to the provider.
_SKIPPED = frozenset(["logprobs", "top_logprobs"])


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RequestReading:
    """
    What one walk over a request found.

    @ivar slots: the slots of every text it carries: the surface's own, in
        its order, then every other string of the body but identifiers,
        enumerations and encoded data (L{_encoded}).  A field no surface
        names (a new one, a rare one) is read all the same: what the
        policies do not see must not reach the provider.  Base64 of text
        where files go is read as it is and as the text it decodes to
        (L{_decodedText}), which is written back encoded.
    @ivar names: the names it carries, one per line: its object keys and
        the identifiers and enumerations left out of its texts (C{model},
        C{name}, C{id}, ...).  A name cannot be rewritten without changing
        the call: a credential there blocks the request.
    @ivar rewritten: whether the walk wrote the C{\\uXXXX} and C{\\/}
        escapes of tool-call arguments (a JSON text inside a string) plainly:
        the policies read the string, but a translation, a provider or a
        model reads what it decodes to, and a key written C{AKIA\\u0049...}
        would pass unread; or put a file's base64 that decoders read
        differently in canonical shape (L{decodedFile}).  Only those
        change: the rest of the JSON text, numbers and key order included,
        stays as it came.
    """

    slots: list
    names: str
    rewritten: bool


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AnswerReading:
    """
    What one walk over an answer found.

    @ivar slots: the slots of every text it carries, as a request's
        (L{RequestReading.slots}) but its logprobs: a field the surface does
        not name (a refusal, a reasoning summary, a tool's output) does not
        reach the client unread.
    @ivar names: the names it carries, as a request's
        (L{RequestReading.names}), each on its own (most repeat from answer
        to answer): a model's id in a model list, a tool call's name.
    @ivar rewritten: whether the escapes of its C{arguments} were written
        plainly (L{RequestReading.rewritten}): a client decodes them, so
        the policies read, and the client is sent, the plain text.
    """

    slots: list
    names: tuple
    rewritten: bool


def readRequest(endpoint, body):
    """
    Walk C{body} once: its texts, its names, its arguments written plainly
    (in place).

    @rtype: L{RequestReading}
    """
    slots, names, rewritten = _walk(body, list(endpoint.requestSlots(body)),
                                    True, True)
    return RequestReading(slots, "\n".join(names), rewritten)


def readAnswer(endpoint, answer, own=True):
    """
    Walk C{answer} (parsed JSON) once: its texts, the surface's own first
    (unless not C{own}: an error's), its names, its arguments written
    plainly (in place).

    @rtype: L{AnswerReading}
    """
    slots = (list(endpoint.answerSlots(answer))
             if own and endpoint.answerSlots is not None else [])
    slots, names, rewritten = _walk(answer, slots, False, True)
    return AnswerReading(slots, tuple(names), rewritten)


def _walk(body, slots, request, naming):
    """
    Every text of C{body} after C{slots} (each once), appended to them; its
    names; the escapes of its C{arguments} written plainly.

    @param request: whether C{body} is a request (its logprobs are read).
    @param naming: whether to gather its names.
    @return: C{(slots, names, rewritten)}; C{names} (a L{dict}, its keys
        in the order met) is L{None} unless C{naming}.
    """
    known = {(id(container), key) for container, key in slots}
    names = {} if naming else None
    media = set()
    budget = None  # made at the first file: most bodies (events) hold none
    rewritten = False
    queue = deque([body])
    while queue:
        node = queue.popleft()
        if not isinstance(node, dict):
            for key, value in enumerate(node):
                if isinstance(value, (dict, list)):
                    queue.append(value)
                elif (isinstance(value, str) and value
                      and (id(node), key) not in known):
                    slots.append((node, key))
            continue
        for key, value in node.items():
            if naming:
                names[key] = None
            if isinstance(value, (dict, list)):
                if key == "image_url":
                    media.add(id(value))
                elif key in _SKIPPED and not request:
                    continue
                queue.append(value)
                continue
            if not isinstance(value, str) or not value:
                continue
            if key == "arguments":
                plain = plainJSONText(value)
                if plain != value:
                    node[key] = value = plain
                    rewritten = True
            if (id(node), key) in known:
                continue
            if key in _NOT_TEXT:
                if naming:
                    names[value] = None
            elif key not in _MAYBE_ENCODED:
                slots.append((node, key))
            else:
                # A file is read as it is written and as the text it
                # decodes to, unless its bytes say it is no text (then its
                # credentials are its views): the policies read a file's
                # text, not only its base64, whatever its label claims.
                if budget is None:
                    budget = Budget()
                decoded, views = _decodedText(node, key, media, budget)
                if node[key] is not value:
                    rewritten = True  # base64 put in canonical shape
                if decoded is not None or not _encoded(
                        node, key, value, media, not request):
                    slots.append((node, key))
                if decoded is not None:
                    slots.append(decoded)
                if naming and views:
                    # Readings that cannot be written back: a name's.
                    names.update(dict.fromkeys(views))
    return slots, names, rewritten
