"""
The headers a target is sent (L{keeptrusts.api.upstream.outgoingHeaders})
and the targets a configuration can use.
"""

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from keeptrusts.api.upstream import outgoingHeaders, usableTargets
from keeptrusts.config import SecretKeyRef, Target

TOKEN = "ghp_R8k2mQ9vX4tL7nP3wZ6yB1cF5hJ0dS2aG8eK"


def configured(id, header="Authorization", prefix="Bearer ", env=None):
    return Target(id=id, provider="openai-compatible",
                  base_url="https://%s.example/v1" % (id,),
                  secret_key_ref=SecretKeyRef(env=env) if env else None,
                  api_key_header=header, api_key_prefix=prefix)


class OutgoingHeadersTests(SynchronousTestCase):
    def setUp(self):
        # An API gateway's key header, a provider's, and a target that
        # takes the client's own credentials.
        self.apim, self.direct, self.open = usableTargets([
            configured("apim", "Ocp-Apim-Subscription-Key", "",
                       env="APIM_KEY"),
            configured("direct", env="OPENAI_KEY"),
            configured("open")], {"APIM_KEY": "apim-key",
                                  "OPENAI_KEY": "sk-gw"})

    def sent(self, target, passClientAuth=True, **headers):
        client = Headers({b"content-type": [b"application/json"]})
        for name, value in headers.items():
            client.setRawHeaders(name.replace("_", "-"), [value])
        sent = outgoingHeaders(client, target, passClientAuth)
        return {name.lower(): values for name, values
                in sent.getAllRawHeaders()}

    def test_anotherTargetsKeyHeaderWithheld(self):
        """
        A client's header by the name of a configured target's key goes to
        no target: the one whose key it is gets its key there, the others
        (a fallback's) nothing, keyed or not (found by review: after a 429
        it went unread to the next target).
        """
        key = b"ocp-apim-subscription-key"
        self.assertEqual(self.sent(self.apim, Ocp_Apim_Subscription_Key=TOKEN)[
            key], [b"apim-key"])
        for target in (self.direct, self.open):
            for passClientAuth in (True, False):
                self.assertNotIn(key, self.sent(
                    target, passClientAuth,
                    Ocp_Apim_Subscription_Key=TOKEN))
        self.assertEqual(self.sent(self.open, X_Note="kept")[b"x-note"],
                         [b"kept"])

    def test_clientsOwnCredentials(self):
        """
        The client's own credentials go on as before, though another
        target's key has their name: to a target without a key of its own
        when they may (no access keys), else nowhere.
        """
        self.assertEqual(self.direct.credential[0], b"Authorization")
        self.assertEqual(
            self.sent(self.open, Authorization="Bearer " + TOKEN)[
                b"authorization"], [b"Bearer " + TOKEN.encode()])
        self.assertNotIn(b"authorization", self.sent(
            self.open, False, Authorization="Bearer " + TOKEN))
        self.assertEqual(self.sent(self.apim, Authorization="Bearer x").get(
            b"authorization"), None)
        self.assertEqual(self.sent(self.direct, Authorization="Bearer x")[
            b"authorization"], [b"Bearer sk-gw"])

    def test_keyHeaders(self):
        """
        Each target withholds the key headers of every configured target
        (an unavailable one's too: its key header is a key's name all the
        same), but the client's own credentials.
        """
        targets = usableTargets([
            configured("a", "X-Portkey-Api-Key", "", env="A_KEY"),
            configured("b", "x-api-key", "", env="B_KEY"),
            configured("c", "X-Custom-Key", "", env="UNSET"),
            configured("d", "X-Not-A-Key")], {"A_KEY": "a", "B_KEY": "b"})
        self.assertEqual([t.id for t in targets], ["a", "b", "d"])
        self.assertEqual(
            {t.id: t.keyHeaders for t in targets},
            {"a": {b"x-portkey-api-key", b"x-custom-key"},
             "b": {b"x-portkey-api-key", b"x-custom-key", b"x-api-key"},
             "d": {b"x-portkey-api-key", b"x-custom-key"}})


class UsableTargetsTests(SynchronousTestCase):
    def test_unsetKeyLoggedScrubbed(self):
        """
        The warning of a target whose key is not set names the target, a
        key in its id replaced by its marker.
        """
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.assertEqual(usableTargets([configured(TOKEN, env="UNSET")], {}),
                         ())
        [line] = [formatEvent(e) for e in events
                  if e.get("log_namespace") == "keeptrusts.api.upstream"]
        self.assertEqual(line, "target [REDACTED:GITHUB_TOKEN]: $UNSET is "
                               "not set; target unavailable")
