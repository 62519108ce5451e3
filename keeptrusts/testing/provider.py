# -*- test-case-name: tests.test_testing -*-
"""
The fake provider: a L{Resource} that routes each request to its endpoint
and answers it as its L{Script} says.
"""

import json

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from keeptrusts.testing import anthropic, openai, sourcegraph
from keeptrusts.testing.answers import Refusal, Stream
from keeptrusts.testing.replies import EventSender, Reply
from keeptrusts.testing.script import Received, Script, errorBody

DEFAULT_MODELS = ("gpt-fake", "gpt-fake-mini", "text-embedding-fake")
# Not JSON: the opening of an answer, cut short.
_MALFORMED_JSON = b'{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{'


class FakeProvider(Resource):
    """
    An LLM provider speaking the OpenAI formats, for loopback tests.

    Serves OpenAI's C{POST /v1/chat/completions}, C{POST /v1/completions}
    (both streamable), C{POST /v1/embeddings}, C{POST /v1/responses},
    C{GET /v1/models} and C{GET /v1/models/<id>}; Anthropic's
    C{POST /v1/messages} and C{/v1/messages/count_tokens}; Sourcegraph's
    C{/.api/completions/stream} and C{/code}.  Anything else is a 404 with
    an OpenAI error.

    @ivar script: the L{Script} used by every request, unless one was
        queued with L{enqueue}.
    @ivar models: the model ids C{/v1/models} lists.
    @ivar requests: a L{Received} per request, in arrival order.
    @ivar disconnects: how many clients left before their answer was
        complete.
    @ivar bytesProduced: body bytes written, all requests together.
    """

    isLeaf = True

    def __init__(self, clock, script=None, models=DEFAULT_MODELS):
        """
        @param clock: an L{IReactorTime} for pauses, delays and timestamps.
        """
        Resource.__init__(self)
        self.clock = clock
        self.script = script if script is not None else Script()
        self.models = list(models)
        self.requests = []
        self.disconnects = 0
        self.bytesProduced = 0
        self._queue = []
        self._replies = []
        self._heldWaiters = []
        self._routes = {
            (b"POST", b"/v1/chat/completions"): openai.chat,
            (b"POST", b"/v1/completions"): openai.completions,
            (b"POST", b"/v1/embeddings"): openai.embeddings,
            (b"GET", b"/v1/models"): openai.listModels,
            (b"POST", b"/v1/messages"): anthropic.messages,
            (b"POST", b"/v1/messages/count_tokens"): anthropic.tokenCount,
            (b"POST", b"/v1/responses"): openai.responses,
            (b"POST", b"/.api/completions/stream"): sourcegraph.stream,
            (b"POST", b"/.api/completions/code"): sourcegraph.code,
        }

    # Controls.

    def enqueue(self, *scripts):
        """
        Use these scripts once each, in order, for the next requests (e.g. a
        500 then a good answer); L{script} again afterwards.
        """
        self._queue.extend(scripts)

    def whenHeld(self):
        """
        @return: a L{Deferred} firing once a reply is held (at once if one
            already is).
        """
        if self.holding:
            return defer.succeed(None)
        d = defer.Deferred()
        self._heldWaiters.append(d)
        return d

    @property
    def holding(self):
        """
        How many replies wait for L{release}.
        """
        return sum(1 for reply in self._replies if reply.held is not None)

    def release(self):
        """
        Let every reply held now carry on.
        """
        for reply in list(self._replies):
            reply.release()

    @property
    def paused(self):
        """
        Whether a bigStream is paused by its transport right now.
        """
        return any(
            reply.producer is not None and reply.producer.paused
            for reply in self._replies
        )

    @property
    def pending(self):
        """
        How many requests are not answered completely yet.
        """
        return len(self._replies)

    def stop(self):
        """
        Cancel every pending call and abort every unfinished reply (held,
        hanging, paused or delayed).

        @return: a L{Deferred} that fires when their connections are gone.
        """
        replies = list(self._replies)
        waiting = [reply.whenDone() for reply in replies]
        for reply in replies:
            reply.reset()
        return defer.gatherResults(waiting)

    # Resource.

    def render(self, request):
        received = _receive(request)
        self.requests.append(received)
        handler = self._route(request)
        if handler is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"application/json")
            message = "Invalid URL (%s %s)" % (received.method, received.path)
            return json.dumps(errorBody(404, message)).encode("utf-8")
        script = self._queue.pop(0) if self._queue else self.script
        reply = Reply(self, request, script)
        self._replies.append(reply)
        if script.delay > 0:
            reply.later(script.delay, self._answer, reply, handler, received)
        else:
            self._answer(reply, handler, received)
        return NOT_DONE_YET

    def _route(self, request):
        handler = self._routes.get((request.method, request.path))
        if handler is None and request.method == b"GET":
            if request.path.startswith(b"/v1/models/"):
                return openai.oneModel
        return handler

    def _answer(self, reply, handler, received):
        script = reply.script
        if script.reset:
            reply.reset()
            return
        if script.hang:
            # Nothing scheduled: only the client or stop() ends it.
            return
        if script.status != 200:
            reply.sendJSON(script.status, errorBody(script.status))
            return
        try:
            answer = handler(self, received, script)
        except Refusal as e:
            reply.sendJSON(e.status, e.body)
            return
        if isinstance(answer, Stream):
            EventSender(reply, answer).start()
        elif script.hold:
            reply.hold(lambda: self._sendWhole(reply, answer))
        else:
            self._sendWhole(reply, answer)

    def _sendWhole(self, reply, answer):
        script = reply.script
        if script.malformed:
            reply.sendBytes(200, b"application/json", _MALFORMED_JSON)
        elif script.resetMidStream is not None:
            reply.sendCut(answer)
        else:
            reply.sendJSON(200, answer)

    # For the replies and the endpoints.

    def now(self):
        return int(self.clock.seconds())

    def replyHeld(self, reply):
        waiters, self._heldWaiters = self._heldWaiters, []
        for d in waiters:
            d.callback(None)

    def replyClosed(self, reply):
        if reply in self._replies:
            self._replies.remove(reply)



def _receive(request):
    if request.content is not None:
        request.content.seek(0)
        raw = request.content.read()
    else:
        raw = b""
    headers = {
        name.decode("latin-1").lower(): values[-1].decode("latin-1")
        for name, values in request.requestHeaders.getAllRawHeaders()
    }
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Received(
        method=request.method.decode("latin-1"),
        uri=request.uri.decode("latin-1"),
        path=request.path.decode("latin-1"),
        headers=headers,
        body=raw,
        json=parsed,
    )


def listenFake(reactor, provider, addCleanup=None):
    """
    Serve C{provider} on an ephemeral port of 127.0.0.1.

    @param reactor: an L{IReactorTCP}.
    @param addCleanup: e.g. C{TestCase.addCleanup}; when given, the port
        is closed and L{FakeProvider.stop} runs after the test.
    @return: the listening port and the base URL
        C{http://127.0.0.1:<port>/v1}.
    """
    site = Site(provider)
    site.noisy = False
    # Its access log would print what the gateway forwarded (queries
    # included) among the gateway's own log lines.
    site.log = lambda request: None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    if addCleanup is not None:
        addCleanup(port.stopListening)
        # Cleanups run last-in first-out: unfinished replies go first.
        addCleanup(provider.stop)
    return port, "http://127.0.0.1:%d/v1" % (port.getHost().port,)
