"""
Tests for the built-in credential catalogue (L{keeptrusts.policy.catalogue})
over a labelled corpus generated here: for every type, random secrets of
its public shape (never a real one) in realistic developer text, and hard
negatives (placeholders, look-alikes, truncations).  The tests report recall
and the false-positive rate per type and fail below a recall of 0.99 or
above a false-positive rate of 0.02.
"""

import base64
import json
import random
import string
import uuid

from twisted.trial.unittest import SynchronousTestCase

from keeptrusts.policy.catalogue import CATALOGUE, TOKENS, TYPES
from keeptrusts.policy.matcher import Matcher, marker

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
LOWER_DIGITS = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
# Characters of generated passwords: no quotes, spaces or the characters
# that end a bare value ($,;(){}[]<>`\).
PASSWORD_CHARS = ALNUM + "!#%&*+-.=?@^_~"


def chars(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def password(rng, n=16):
    # At least a letter and a digit, so it never looks like a name.
    return (chars(rng, string.ascii_letters, 1) + chars(rng, string.digits, 1)
            + chars(rng, PASSWORD_CHARS, n - 2))


def b64(data):
    return base64.b64encode(data).decode("ascii")


def b64url(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def pemBody(rng, lines=8):
    body = b64(bytes(rng.getrandbits(8) for _ in range(48 * lines)))
    return [body[i:i + 64] for i in range(0, len(body), 64)]


def pem(rng, label="RSA PRIVATE KEY", joiner="\n", indent=""):
    lines = (["-----BEGIN %s-----" % (label,)] + pemBody(rng)
             + ["-----END %s-----" % (label,)])
    return joiner.join(indent + line for line in lines)


def jwt(rng):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": str(rng.getrandbits(40)),
                                 "iat": 1700000000}).encode())
    return "%s.%s.%s" % (header, payload, chars(rng, URLSAFE, 43))


def discordToken(rng):
    userId = str(rng.randrange(10 ** 17, 10 ** 18))
    return "%s.%s.%s" % (b64(userId.encode()), chars(rng, URLSAFE, 6),
                         chars(rng, URLSAFE, 38))


def sasSignature(rng):
    sig = b64(bytes(rng.getrandbits(8) for _ in range(32)))
    return sig.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")


def token(make):
    """
    A standalone token: the whole snippet is the secret, and it is put in
    each of L{CONTEXTS}.
    """
    def sample(rng):
        secret = make(rng)
        return secret, secret
    sample.standalone = True
    return sample


def named(*templates):
    """
    A secret that needs its name: C{templates} take C{{v}}, the value made
    by C{make(rng)}.
    """
    def wrap(make):
        def sample(rng):
            secret = make(rng)
            return rng.choice(templates).format(v=secret), secret
        sample.standalone = False
        return sample
    return wrap


def afterFirst(separator, make):
    """
    A token whose part before C{separator} is public (Discord's user id,
    Telegram's bot id): only the part from C{separator} on must go.
    """
    def sample(rng):
        whole = make(rng)
        return whole, whole[whole.index(separator):]
    sample.standalone = True
    return sample


def k8sYaml(rng, values, kindFirst):
    data = "data:\n" + "".join("  %s: %s\n" % (k, b64(v.encode()))
                               for k, v in values)
    meta = "metadata:\n  name: db-credentials\n"
    if kindFirst:
        return "apiVersion: v1\nkind: Secret\n" + meta + "type: Opaque\n" + data
    return "apiVersion: v1\n" + data + "kind: Secret\n" + meta + "type: Opaque\n"


def k8sSample(rng):
    values = [("username", "app"), ("password", password(rng))]
    form = rng.randrange(3)
    if form == 2:
        doc = json.dumps({"apiVersion": "v1", "data": {
            k: b64(v.encode()) for k, v in values}, "kind": "Secret",
            "metadata": {"name": "db"}}, indent=4)
    else:
        doc = k8sYaml(rng, values, kindFirst=form == 0)
    return doc, b64(values[1][1].encode())


k8sSample.standalone = False

POSITIVES = {
    "aws_access_key_id": token(lambda r: r.choice(["AKIA", "ASIA"]) + chars(r, UPPER_DIGITS, 16)),
    "aws_secret_access_key": named(
        "aws_secret_access_key = {v}", '"SecretAccessKey": "{v}"',
        "AWS_SECRET_ACCESS_KEY={v}", "aws_secret_key: '{v}'")(
        lambda r: chars(r, B64, 40)),
    "aws_session_token": named("aws_session_token = {v}", "AWS_SESSION_TOKEN={v}",
                               '"SessionToken": "{v}"')(
        lambda r: chars(r, B64, 300)),
    "gcp_api_key": token(lambda r: "AIza" + chars(r, URLSAFE, 35)),
    "gcp_service_account_key": named(
        '{{"type": "service_account", "private_key": "{v}", '
        '"client_email": "x@p.iam.gserviceaccount.com"}}')(
        lambda r: pem(r, "PRIVATE KEY", "\\n") + "\\n"),
    "gcp_oauth_client_secret": token(lambda r: "GOCSPX-" + chars(r, URLSAFE, 28)),
    "azure_storage_key": named(
        "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={v};"
        "EndpointSuffix=core.windows.net",
        "AZURE_STORAGE_KEY={v}")(lambda r: chars(r, B64, 86) + "=="),
    "azure_connection_string": named(
        "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={v}")(
        lambda r: b64(bytes(r.getrandbits(8) for _ in range(32)))),
    "azure_sas_token": named(
        "https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&sp=r"
        "&se=2026-01-01T00:00:00Z&sig={v}")(
        sasSignature),
    "azure_ad_client_secret": afterFirst("Q~", lambda r: chars(r, ALNUM, 3) + chars(
        r, string.digits, 1) + "Q~" + chars(r, ALNUM + "_~.-", 33) + chars(r, ALNUM, 1)),
    "alibaba_access_key_id": token(lambda r: "LTAI" + chars(r, ALNUM, 20)),
    "digitalocean_token": token(
        lambda r: r.choice(["dop", "doo", "dor"]) + "_v1_" + chars(r, HEX, 64)),
    "heroku_api_key": named("HRKU-{v}", "HEROKU_API_KEY={v}")(
        lambda r: str(uuid.UUID(int=r.getrandbits(128)))),
    "github_token": token(lambda r: "ghp_" + chars(r, ALNUM, 36)),
    "github_oauth_token": token(lambda r: "gho_" + chars(r, ALNUM, 36)),
    "github_app_token": token(lambda r: r.choice(["ghu_", "ghs_"]) + chars(r, ALNUM, 36)),
    "github_refresh_token": token(lambda r: "ghr_" + chars(r, ALNUM, 36)),
    "github_fine_grained_token": token(
        lambda r: "github_pat_" + chars(r, ALNUM, 22) + "_" + chars(r, ALNUM, 59)),
    "gitlab_token": token(
        lambda r: r.choice(["glpat-", "gldt-", "glft-"]) + chars(r, URLSAFE, 20)),
    "gitlab_runner_token": token(
        lambda r: r.choice(["glrt-", "GR1348941"]) + chars(r, URLSAFE, 20)),
    "bitbucket_app_password": token(lambda r: "ATBB" + chars(r, ALNUM, 32)),
    "atlassian_api_token": token(lambda r: "ATATT3" + chars(r, URLSAFE + "=", 180)),
    "slack_token": token(
        lambda r: r.choice(["xoxb-", "xoxp-"]) + chars(r, string.digits, 11) + "-"
        + chars(r, string.digits, 13) + "-" + chars(r, ALNUM, 24)),
    "slack_app_token": token(
        lambda r: "xapp-1-A" + chars(r, UPPER_DIGITS, 10) + "-" + chars(r, string.digits, 13)
        + "-" + chars(r, HEX, 64)),
    "slack_webhook_url": token(
        lambda r: "https://hooks.slack.com/services/T" + chars(r, UPPER_DIGITS, 10)
        + "/B" + chars(r, UPPER_DIGITS, 10) + "/" + chars(r, ALNUM, 24)),
    "discord_bot_token": afterFirst(".", discordToken),
    "discord_webhook_url": token(
        lambda r: "https://discord.com/api/webhooks/" + chars(r, string.digits, 18) + "/"
        + chars(r, URLSAFE, 68)),
    "telegram_bot_token": afterFirst(":", lambda r: chars(r, string.digits, 10) + ":AA"
                                     + chars(r, URLSAFE, 33)),
    "stripe_api_key": token(lambda r: r.choice(["sk_live_", "rk_test_"]) + chars(r, ALNUM, 40)),
    "stripe_webhook_secret": token(lambda r: "whsec_" + chars(r, ALNUM, 32)),
    "square_access_token": token(
        lambda r: r.choice(["EAAA" + chars(r, URLSAFE, 60), "sq0atp-" + chars(r, URLSAFE, 22)])),
    "square_oauth_secret": token(lambda r: "sq0csp-" + chars(r, URLSAFE, 43)),
    "shopify_token": token(lambda r: "shpat_" + chars(r, HEX, 32)),
    "twilio_api_key": token(lambda r: "SK" + chars(r, HEX, 32)),
    "sendgrid_api_key": token(
        lambda r: "SG." + chars(r, URLSAFE, 22) + "." + chars(r, URLSAFE, 43)),
    "mailgun_api_key": token(lambda r: "key-" + chars(r, HEX, 32)),
    "anthropic_api_key": token(lambda r: "sk-ant-api03-" + chars(r, URLSAFE, 93) + "AA"),
    "openai_api_key": token(lambda r: r.choice([
        "sk-proj-" + chars(r, URLSAFE, 48),
        "sk-" + chars(r, ALNUM, 20) + "T3BlbkFJ" + chars(r, ALNUM, 20)])),
    "huggingface_token": token(lambda r: "hf_" + chars(r, ALNUM, 34)),
    "npm_token": token(lambda r: "npm_" + chars(r, ALNUM, 36)),
    "npmrc_auth": named("//registry.npmjs.org/:_authToken={v}", "_auth={v}")(
        lambda r: b64(("ci:" + password(r)).encode())),
    "pypi_token": token(lambda r: "pypi-AgEIcHlwaS5vcmc" + chars(r, URLSAFE, 70)),
    "nuget_api_key": token(lambda r: "oy2" + chars(r, LOWER_DIGITS, 43)),
    "rubygems_api_key": token(lambda r: "rubygems_" + chars(r, HEX, 48)),
    "docker_hub_token": token(lambda r: "dckr_pat_" + chars(r, ALNUM, 27)),
    "docker_registry_auth": named(
        '{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{v}"}}}}}}')(
        lambda r: b64(("builder:" + password(r)).encode())),
    "hashicorp_vault_token": token(lambda r: "hvs." + chars(r, URLSAFE, 90)),
    "terraform_cloud_token": afterFirst(".", lambda r: chars(r, ALNUM, 14) + ".atlasv1."
                                        + chars(r, ALNUM, 67)),
    "postman_api_key": token(lambda r: "PMAK-" + chars(r, HEX, 24) + "-" + chars(r, HEX, 34)),
    "grafana_token": token(lambda r: "glsa_" + chars(r, ALNUM, 32) + "_" + chars(r, HEX, 8)),
    "new_relic_key": token(lambda r: "NRAK-" + chars(r, UPPER_DIGITS, 27)),
    "databricks_token": token(lambda r: "dapi" + chars(r, HEX, 32)),
    "doppler_token": token(lambda r: "dp.pt." + chars(r, ALNUM, 43)),
    "pulumi_token": token(lambda r: "pul-" + chars(r, HEX, 40)),
    "supabase_token": token(lambda r: "sbp_" + chars(r, HEX, 40)),
    "linear_api_key": token(lambda r: "lin_api_" + chars(r, ALNUM, 40)),
    "sentry_token": token(lambda r: "sntrys_" + chars(r, ALNUM, 60)),
    "mapbox_secret_token": token(
        lambda r: "sk.eyJ" + chars(r, URLSAFE, 60) + "." + chars(r, URLSAFE, 22)),
    "age_secret_key": token(lambda r: "AGE-SECRET-KEY-1" + chars(r, BECH32, 58)),
    "jwt": token(jwt),
    "private_key": named("{v}", "key.pem:\n{v}\n", "ssh_key: |\n{v}\n")(
        lambda r: pem(r, r.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY",
                                   "EC PRIVATE KEY"]))),
    "connection_string_password": named(
        "DATABASE_URL=postgres://app:{v}@db.internal:5432/app",
        "mongodb+srv://svc:{v}@cluster0.ab1cd.mongodb.net/prod",
        "redis://:{v}@cache:6379/0", "amqp://worker:{v}@mq.internal:5672/",
        "mysql://root:{v}@localhost/shop",
        "Server=db;Database=app;User Id=sa;Password={v};",
        "jdbc:postgresql://db:5432/app?user=app&password={v}")(
        lambda r: password(r, 14).replace("@", "A").replace("&", "B").replace(
            ";", "C").replace("#", "D").replace("?", "E").replace("/", "F")),
    "url_password": named("git clone https://deploy:{v}@git.internal.corp/team/repo.git",
                          "pip install --index-url https://ci:{v}@pypi.internal.corp/simple pkg")(
        lambda r: password(r, 14).replace("@", "A").replace("/", "F")),
    "bearer_token": named(
        "curl https://api.internal.io/v1/items -H 'Authorization: Bearer {v}'",
        'headers = {{"Authorization": "Bearer {v}"}}')(
        lambda r: chars(r, ALNUM, 40)),
    "basic_auth": named("curl -H 'Authorization: Basic {v}' https://ci.internal.io/api")(
        lambda r: b64(("admin:" + password(r)).encode())),
    "api_key_header": named("curl -H 'x-api-key: {v}' https://api.internal.io/v1",
                            "X-Auth-Token: {v}")(lambda r: chars(r, ALNUM, 40)),
    "kubernetes_secret": k8sSample,
    "password_assignment": named(
        'password = "{v}"', "DB_PASSWORD={v}", '"password": "{v}"', "  db_pass: {v}",
        "smtp_password: '{v}'", 'const passwd = "{v}";')(password),
    "secret_assignment": named(
        'api_key = "{v}"', "SECRET_KEY={v}", '"apiKey": "{v}"', "auth_token: {v}",
        "client_secret = '{v}'", "credentials: {v}", 'ACCESS_TOKEN := "{v}"')(
        lambda r: chars(r, ALNUM, 32)),
}

# Where a standalone token shows up in a prompt.
CONTEXTS = [
    "How do I use this key? {s}",
    "export SERVICE_TOKEN={s}\n",
    '{{"credential": "{s}", "region": "eu-west-1"}}',
    'client = Client("{s}")',
    "settings:\n  token: {s}\n  retries: 3\n",
    "Traceback: auth failed with `{s}` (401)",
    "{s}",
]


def positives(kind, rng, n):
    """
    C{n} snippets of C{kind}: C{(text, secret)}.
    """
    sample = POSITIVES[kind]
    out = []
    for i in range(n):
        snippet, secret = sample(rng)
        if sample.standalone:
            snippet = CONTEXTS[i % len(CONTEXTS)].format(s=snippet)
        out.append((snippet, secret))
    return out


def placeholderized(secret):
    """
    The secret's shape with its random part all x: how templates write it.
    """
    head = len(secret) // 4
    return secret[:head] + "x" * (len(secret) - head)


# Look-alikes and placeholders that no type may report.
NEGATIVES = [
    "<YOUR_API_KEY>", "export OPENAI_API_KEY=sk-...", "OPENAI_API_KEY=${OPENAI_API_KEY}",
    'api_key = os.environ["OPENAI_API_KEY"]', "const key = process.env.OPENAI_API_KEY;",
    'api_key = os.getenv("API_KEY")', "password = get_password()", "password: ${DB_PASSWORD}",
    'token: "{{ .Values.token }}"', "secret: <base64-encoded-secret>",
    "AKIAXXXXXXXXXXXXXXXX", "AKIA...", "AKIAIOSFODNN7EXAMPL", "ghp_" + "x" * 36, "ghp_...",
    "ghp_" + "*" * 36, "sk-proj-...", "sk-ant-...", "xoxb-...", "xoxb-xxxxxxxxxxxx",
    "Authorization: Bearer $TOKEN", "Authorization: Bearer <token>",
    'headers = {"Authorization": f"Bearer {api_key}"}',
    "-H 'Authorization: Bearer YOUR_TOKEN_HERE'",
    "postgres://user:password@localhost/db", "https://user:pass@example.com/x",
    "redis://localhost:6379/0", "mongodb://localhost:27017",
    "max_tokens: 4096", 'tokenizer = AutoTokenizer.from_pretrained("gpt2")',
    "secretName: db-credentials", "password_hash = bcrypt.hashpw(pw, salt)",
    "PASSWORD_MIN_LENGTH = 12", "token_type: bearer", "session_token = None",
    "password = settings.DB_PASSWORD", "api_key: YOUR_API_KEY_HERE", "secret = 'changeme'",
    'password = "********"', "DB_PASSWORD=", "token = request.headers.get('token')",
    "kind: ConfigMap\ndata:\n  log_level: debug\n  feature_flags: a,b\n",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\n<your key here, base64 encoded, 64 chars a line>\n"
    "-----END RSA PRIVATE KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUabc\n-----END CERTIFICATE-----",
    r'AWS_KEY_RE = re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}")', r"ghp_[A-Za-z0-9]{36}",
    r"sk-[A-Za-z0-9]{48}", r"xox[baprs]-([0-9a-zA-Z]{10,48})", r"\bSK[0-9a-fA-F]{32}\b",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "request_id: 550e8400-e29b-41d4-a716-446655440000",
    "md5 d41d8cd98f00b204e9800998ecf8427e", "integrity sha512-" + "A1b2" * 22,
    "curl -u $USER:$PASS https://x", "git@github.com:org/repo.git",
    "def check(self, key):\n    return self._cache.get(key, default)",
]


def imageNegative(rng):
    return "![logo](data:image/png;base64,%s)" % (
        b64(bytes(rng.getrandbits(8) for _ in range(3000))),)


def lookalikes(kind, rng, n):
    """
    Hard negatives for C{kind}: its shape with a placeholder body, and the
    generic negatives.
    """
    out = []
    for snippet, secret in positives(kind, rng, n):
        out.append(snippet.replace(secret, placeholderized(secret)))
    return out


class CatalogueTests(SynchronousTestCase):
    """
    The catalogue: at least forty types, each with generated samples, and
    the seed check of the product's guide.
    """

    def setUp(self):
        self.matcher = Matcher(CATALOGUE)

    def test_atLeastFortyTypes(self):
        self.assertGreaterEqual(len(TYPES), 40)
        self.assertEqual(len(TYPES), len(set(TYPES)))

    def test_everyTypeHasSamples(self):
        self.assertEqual(set(TYPES), set(POSITIVES))

    def test_guideSample(self):
        """
        The Cody guide's check: this key, 17 characters after AKIA.
        """
        self.assertEqual(
            self.matcher.redact("How do I use this API key? AKIA1234567890EXAMPLE"),
            ("How do I use this API key? [REDACTED:AWS_ACCESS_KEY_ID]",
             ["aws_access_key_id"]))

    def test_recallPerType(self):
        """
        Every generated secret is found as its own type and gone from the
        redacted text; recall is reported per type.
        """
        rng = random.Random(4)
        report = {}
        for kind in TYPES:
            samples = positives(kind, rng, 50)
            hits = 0
            for text, secret in samples:
                redacted, found = self.matcher.redact(text)
                if kind in found and secret not in redacted and marker(kind) in redacted:
                    hits += 1
            report[kind] = hits / len(samples)
        low = {kind: recall for kind, recall in report.items() if recall < 0.99}
        self.assertEqual(low, {}, "recall below 0.99")

    def test_falsePositiveRatePerType(self):
        """
        Hard negatives (placeholders, look-alikes of every type, hashes,
        UUIDs, base64 images, regular expressions describing keys) are left
        alone: at least as many negatives as positives, and a false-positive
        rate of at most 0.02 for every type.
        """
        rng = random.Random(5)
        negatives = list(NEGATIVES) + [imageNegative(rng) for _ in range(5)]
        for kind in TYPES:
            negatives.extend(lookalikes(kind, rng, 50))
        self.assertGreaterEqual(len(negatives), 50 * len(TYPES))
        reported = dict.fromkeys(TYPES, 0)
        wrong = []
        for text in negatives:
            redacted, found = self.matcher.redact(text)
            for kind in set(found):
                reported[kind] += 1
            if found:
                wrong.append((found, text[:80]))
        rates = {kind: n / len(negatives) for kind, n in reported.items()}
        high = {kind: rate for kind, rate in rates.items() if rate > 0.02}
        self.assertEqual(high, {}, "false-positive rate above 0.02")
        # And the fixed negatives are all clean.
        self.assertEqual([w for w in wrong if w[1] in [n[:80] for n in NEGATIVES]], [])

    def test_knownTokenInAssignmentKeepsItsType(self):
        """
        A token assigned to a name (C{api_key = "ghp_..."}) is reported as
        that token, not as a generic assignment.
        """
        rng = random.Random(6)
        for kind in TYPES:
            if not POSITIVES[kind].standalone:
                continue
            for template in ('api_key = "{s}"', "SECRET_TOKEN={s}", "password: {s}",
                             "Authorization: Bearer {s}"):
                if kind in ("discord_bot_token", "telegram_bot_token",
                            "azure_ad_client_secret", "terraform_cloud_token"):
                    continue
                _, secret = POSITIVES[kind](rng)
                found = self.matcher.redact(template.format(s=secret))[1]
                self.assertEqual(found, [kind], (kind, template))

    def test_tokenPatternsAreStandalone(self):
        """
        Every vendor token pattern stands alone: glued to a word it is not
        a token.
        """
        rng = random.Random(7)
        for kind in TYPES:
            if not POSITIVES[kind].standalone or kind in (
                    "slack_webhook_url", "discord_webhook_url", "discord_bot_token",
                    "telegram_bot_token", "azure_ad_client_secret"):
                continue
            snippet, _ = POSITIVES[kind](rng)
            text = "x" + snippet + "y"
            self.assertNotIn(kind, self.matcher.redact(text)[1], kind)

    def test_telegramTokenInABotAPIURL(self):
        token = "AAH" + "x1Y2z3" * 5 + "ab"
        text = "curl https://api.telegram.org/bot123456789:%s/getMe" % (token,)
        redacted, types = self.matcher.redact(text)
        self.assertEqual(types, ["telegram_bot_token"])
        self.assertNotIn(token[2:], redacted)
        self.assertIn("bot123456789", redacted)
        # Glued to another word, digits are not a bot's id.
        self.assertEqual(self.matcher.redact(
            "robot123456789:" + token)[1], [])

    def test_pemVariants(self):
        """
        PEM keys are redacted whole: plain, inside a JSON string with \\n
        escapes, and indented in YAML.
        """
        rng = random.Random(8)
        plain = pem(rng)
        escaped = json.dumps({"key": pem(rng, "PRIVATE KEY")})
        indented = "tls:\n  key: |\n" + pem(rng, "EC PRIVATE KEY", indent="    ") + "\n  x: 1"
        for text in (plain, escaped, indented):
            redacted, found = self.matcher.redact(text)
            self.assertEqual(found, ["private_key"])
            self.assertNotIn("PRIVATE KEY-----", redacted)
            self.assertNotIn(pemBody(random.Random(0))[0][:8], redacted)
        self.assertEqual(self.matcher.redact(indented)[0],
                         "tls:\n  key: |\n    [REDACTED:PRIVATE_KEY]\n  x: 1")

    def test_redactsValueOnly(self):
        self.assertEqual(
            self.matcher.redact("postgres://app:S3cretPassw0rd@db:5432/x")[0],
            "postgres://app:[REDACTED:CONNECTION_STRING_PASSWORD]@db:5432/x")
        self.assertEqual(
            self.matcher.redact('password = "Xk9#mQ2%vL7pR4w"')[0],
            'password = "[REDACTED:PASSWORD_ASSIGNMENT]"')

    def test_kubernetesSecretValues(self):
        doc = k8sYaml(random.Random(9), [("user", "app"), ("password", "p4ss-W0rd-x")], True)
        redacted, found = self.matcher.redact(doc)
        self.assertEqual(found, ["kubernetes_secret"])
        self.assertIn("  user: [REDACTED:KUBERNETES_SECRET]\n", redacted)
        self.assertIn("  password: [REDACTED:KUBERNETES_SECRET]\n", redacted)
        self.assertIn("kind: Secret", redacted)

    def test_entropyFloor(self):
        for text in ("password = 'aaaaaaaaaaaa'", "api_key = '1111111111111111'",
                     "secret: abcabcabcabc"):
            self.assertEqual(self.matcher.redact(text)[1], [], text)

    def test_tokensListedBeforeContextual(self):
        """
        Tokens come first in the catalogue: at the same place, the more
        telling type wins.
        """
        self.assertEqual(CATALOGUE[:len(TOKENS)], TOKENS)
