# -*- test-case-name: tests.test_policy_catalogue -*-
"""
The built-in credential catalogue of C{dlp-filter} and C{code-sanitation}:
secrets in their public shapes, as L{Pattern}s in priority order.

A data module.  Token types are recognised by their vendor prefixes;
secrets without one (an AWS secret key, a password) only next to the name
that introduces them.  Placeholders stay untouched: every type whose shape
a placeholder can take (C{ghp_xxxx...}, C{password: changeme},
C{<YOUR_API_KEY>}) has a validator.
"""

import regex

from keeptrusts.policy.matcher import Pattern
from keeptrusts.policy.validators import (
    allOf, assignedSecret, decodesToUserPassword, discordToken, isPlaceholder,
    jwtHeader, notPlaceholder, pemBody, randomLooking, secretOf)

# A token ends where its alphabet does.
_END = r"(?![A-Za-z0-9_-])"
# What joins a name to its value: api_key = "...", "apiKey": "...",
# SECRET: ..., password := ..., 'key' => ...
_SEP = r"""["']?[ \t]{0,8}(?::=|=>|=|:)[ \t]{0,8}["']?"""
_RANDOM = randomLooking(3.0)


def _token(kind, prefix, body, check=_RANDOM):
    """
    A vendor token: C{prefix} (a regex) then C{body}, standing alone.
    """
    return Pattern(kind, r"\b%s%s%s" % (prefix, body, _END), check)


def _named(kind, names, value, check=_RANDOM):
    """
    A secret found by the name it is given: C{names} (a regex, matched
    without case), a separator, then the C{value} that is replaced.
    """
    return Pattern(kind, r"(?i:%s)%s(?P<secret>%s)" % (names, _SEP, value),
                   check)


# A body of at most 16,384 characters (a 16384-bit RSA key takes some
# 12,800); a stream holds up to MAX_HOLD (8,192) waiting for one to end.
_PEM = (r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        # The body may not run past an END or a BEGIN line: a key without
        # its END costs a scan to the next armour line, not to the text's end.
        r"(?:(?!-----(?:END|BEGIN) )[\s\S]){16,16384}"
        r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

_URL_USER = r"://[^\s:/@\"'<>]*:(?P<secret>[^\s/@\"'<>]{1,256})@"

# Led by "ata:", the line's start looked at behind it: a pattern led by ^
# is tried at every line.
_K8S_DATA = (r"(?<=(?m:^)(?P<indent>[ \t]*)(?:stringD|d))ata:[ \t]*\r?\n"
             r"(?:(?P=indent)[ \t]+[\w.-]+:[ \t]*[\"']?(?P<secret>[^\s\"'#]+)"
             r"[\"']?[ \t]*(?:\r?\n|\Z))+")
_K8S_KIND = r"kind:[ \t]*[\"']?Secret[\"']?[ \t]*(?:\r?\n|\Z)"
_K8S_JSON_DATA = (r"\"(?:data|stringData)\"[ \t]*:[ \t]*\{(?:\s*\"[\w.-]+\"[ \t]*:"
                  r"[ \t]*\"(?P<secret>[^\"\\\s]*)\"[ \t]*,?)+\s*\}")
_K8S_JSON_KIND = r"\"kind\"[ \t]*:[ \t]*\"Secret\""


def _kubernetesData(match):
    return any(v and not isPlaceholder(v) for v in match.captures("secret"))


TOKENS = (
    # Cloud providers.
    _token("aws_access_key_id", "(?:AKIA|ASIA|ABIA|ACCA)", "[0-9A-Z]{16,20}",
           randomLooking(2.5)),
    # Led by "secret" (an alternation of names would be searched at every
    # place): secret_access_key, or aws_secret[_key] with its prefix.
    _named("aws_secret_access_key",
           r"secret(?:_?access_?key|(?<=aws_?secret)(?:_?key)?)",
           r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", randomLooking(3.5)),
    _named("aws_session_token", r"session_?token",
           r"[A-Za-z0-9/+=]{100,4096}", randomLooking(3.5)),
    _named("aws_session_token", r"security[_-]?token",
           r"[A-Za-z0-9/+=]{100,4096}", randomLooking(3.5)),
    _token("aws_session_token", "FwoGZXIvYXdzE", "[A-Za-z0-9/+=]{80,4096}"),
    _token("aws_session_token", "IQoJb3JpZ2luX2Vj", "[A-Za-z0-9/+=]{80,4096}"),
    _token("gcp_api_key", "AIza", "[0-9A-Za-z_-]{35}"),
    Pattern("gcp_service_account_key",
            r"\"private_key\"[ \t]*:[ \t]*\"(?P<secret>-----BEGIN PRIVATE KEY-----"
            r"(?:\\[nr]|[A-Za-z0-9+/= ]){64,16384}-----END PRIVATE KEY-----"
            r"(?:\\n)?)\"", pemBody),
    _token("gcp_oauth_client_secret", "GOCSPX-", "[A-Za-z0-9_-]{28}"),
    Pattern("azure_storage_key", r"AccountKey=(?P<secret>[A-Za-z0-9+/]{86}==)",
            randomLooking(4.0)),
    _named("azure_storage_key",
           r"storage_?(?:account_?)?(?:access_?)?key(?<=azure_?storage_?[a-z_]{0,16})",
           r"[A-Za-z0-9+/]{86}==", randomLooking(4.0)),
    Pattern("azure_connection_string",
            r"(?i:SharedAccessKey)=(?P<secret>[A-Za-z0-9+/]{42,43}=)",
            randomLooking(3.5)),
    Pattern("azure_sas_token",
            r"(?:\?|&)sig=(?P<secret>(?:[A-Za-z0-9+/]|%2[BbFf]){42,43}(?:%3[Dd]|=))"
            r"(?![A-Za-z0-9%])", randomLooking(3.5)),
    # Led by "Q~": led by its first characters, any word at the end of a
    # stream could be one and would be held.  They stay, as the portal
    # shows them.
    Pattern("azure_ad_client_secret",
            r"Q~(?<=(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}\dQ~)[A-Za-z0-9_~.-]{31,34}"
            r"(?![A-Za-z0-9_~.-])", randomLooking(3.5)),
    _token("alibaba_access_key_id", "LTAI", "[A-Za-z0-9]{12,20}"),
    _token("digitalocean_token", "do[por]_v1_", "[0-9a-f]{64}"),
    _token("heroku_api_key", "HRKU-", "[0-9A-Za-z_-]{20,80}"),
    _named("heroku_api_key", r"heroku_?(?:api_?)?(?:key|token)",
           r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    # Code hosting.
    _token("github_token", "ghp_", "[A-Za-z0-9]{36,251}"),
    _token("github_oauth_token", "gho_", "[A-Za-z0-9]{36,251}"),
    _token("github_app_token", "gh[us]_", "[A-Za-z0-9]{36,251}"),
    _token("github_refresh_token", "ghr_", "[A-Za-z0-9]{36,251}"),
    _token("github_fine_grained_token", "github_pat_", "[A-Za-z0-9_]{82}"),
    _token("gitlab_token", "gl(?:pat|dt|ft|cbt|oas|soat)-", "[0-9A-Za-z_-]{20,64}"),
    _token("gitlab_runner_token", "glrt-", "[0-9A-Za-z_-]{20,64}"),
    _token("gitlab_runner_token", "GR1348941", "[0-9A-Za-z_-]{20,64}"),
    _token("bitbucket_app_password", "ATBB", "[A-Za-z0-9_=.-]{28,64}"),
    _token("atlassian_api_token", "AT(?:ATT|CTT)3", "[A-Za-z0-9_=-]{100,250}"),
    # Chat and messaging.
    _token("slack_token", "xox[abposre]-", "[0-9A-Za-z-]{10,}"),
    _token("slack_app_token", "xapp-", r"\d-[A-Z0-9]{9,11}-\d{10,13}-[a-f0-9]{32,64}"),
    Pattern("slack_webhook_url",
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/"
            r"T[A-Z0-9]{8,12}/[A-Z0-9]{8,12}/[A-Za-z0-9]{20,}", _RANDOM),
    # Led by its first dot: a class-led pattern is tried at every capital
    # M, N or O.  The user id before the dot is not secret and stays.  The
    # six characters and the dot after it are looked at before the id
    # behind it: most dots (a sentence's end, a.method) fail there at once.
    Pattern("discord_bot_token",
            r"\.(?=[A-Za-z0-9_-]{6}\.)(?<=\b[MNO][A-Za-z0-9_-]{23,27}\.)"
            r"[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}" + _END, discordToken),
    Pattern("discord_webhook_url",
            r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/"
            r"\d{17,20}/[A-Za-z0-9_-]{60,68}" + _END, _RANDOM),
    # The bot's id before the colon is public; the part after it is secret.
    # In the Bot API's URLs it follows "bot": /bot123456789:AA...
    Pattern("telegram_bot_token",
            r":AA(?<=(?:\b|\bbot)\d{8,10}:AA)[0-9A-Za-z_-]{33}" + _END, _RANDOM),
    # Payments and commerce.
    _token("stripe_api_key", "(?:rk|sk)_(?:live|test)_", "[0-9A-Za-z]{24,247}"),
    _token("stripe_webhook_secret", "whsec_", "[A-Za-z0-9]{32,64}"),
    _token("square_access_token", "EAAA", "[0-9A-Za-z_-]{60}"),
    _token("square_access_token", "sq0atp-", "[0-9A-Za-z_-]{22}"),
    _token("square_oauth_secret", "sq0csp-", "[0-9A-Za-z_-]{43}"),
    _token("shopify_token", "shp(?:at|ca|pa|ss)_", "[0-9a-fA-F]{32}"),
    # Messaging APIs.
    _token("twilio_api_key", "SK", "[0-9a-f]{32}"),
    _token("sendgrid_api_key", r"SG\.", r"[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43}"),
    _token("mailgun_api_key", "key-", "[0-9a-f]{32}"),
    # AI providers.
    _token("anthropic_api_key", "sk-ant-(?:api|admin|oat|ort)", r"\d\d-[A-Za-z0-9_-]{80,}"),
    Pattern("openai_api_key",
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ"
            r"[A-Za-z0-9_-]{20,}\b|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
            _RANDOM),
    _token("huggingface_token", "hf_", "[A-Za-z0-9]{34,40}"),
    # Package registries.
    _token("npm_token", "npm_", "[A-Za-z0-9]{36}"),
    Pattern("npmrc_auth",
            r"(?:_authToken|_auth|_password)[ \t]*=[ \t]*[\"']?(?!npm_)"
            r"(?P<secret>[A-Za-z0-9+/=_.~-]{8,})", _RANDOM),
    _token("pypi_token", "pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)",
           "[A-Za-z0-9_-]{50,}"),
    _token("nuget_api_key", "oy2", "[a-z0-9]{43}", randomLooking(3.5)),
    _token("rubygems_api_key", "rubygems_", "[0-9a-f]{48}"),
    _token("docker_hub_token", "dckr_(?:pat|oat)_", "[A-Za-z0-9_-]{27,}"),
    Pattern("docker_registry_auth",
            r"\"auth\"[ \t]*:[ \t]*\"(?P<secret>[A-Za-z0-9+/]{4,}={0,2})\"",
            decodesToUserPassword),
    # Developer platforms.
    _token("hashicorp_vault_token", r"hv[sbr]\.", "[A-Za-z0-9_-]{24,}"),
    # Led by ".atlasv1." for the same reason; the token's id before it stays.
    Pattern("terraform_cloud_token",
            r"\.atlasv1\.(?<=\b[A-Za-z0-9]{14}\.atlasv1\.)[A-Za-z0-9_=-]{60,70}" + _END,
            _RANDOM),
    _token("postman_api_key", "PMAK-", "[a-f0-9]{24}-[a-f0-9]{34}"),
    _token("grafana_token", "(?:glsa_|glc_)", "[A-Za-z0-9_+/=]{32,400}"),
    _token("new_relic_key", "NRAK-", "[A-Z0-9]{27}"),
    _token("databricks_token", "dapi", "[a-f0-9]{32}(?:-[0-9])?"),
    _token("doppler_token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.", "[A-Za-z0-9]{40,44}"),
    _token("pulumi_token", "pul-", "[a-f0-9]{40}"),
    _token("supabase_token", "sbp_", "[a-f0-9]{40}"),
    _token("linear_api_key", "lin_api_", "[A-Za-z0-9]{40}"),
    _token("sentry_token", "sntry[su]_", "[A-Za-z0-9+/=_]{40,}"),
    _token("mapbox_secret_token", r"sk\.eyJ", r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}"),
    _token("age_secret_key", "AGE-SECRET-KEY-1", "[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    # Generic shapes.
    _token("jwt", "eyJ", r"[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
           jwtHeader),
    Pattern("private_key", _PEM, pemBody),
)

# A value that carries one of the tokens above is reported as that token,
# not as whatever names it.
_KNOWN_TOKEN = regex.compile("|".join(
    "(?:%s)" % (p.regex,) for p in TOKENS if "(?P<secret>" not in p.regex))


def _notKnownToken(match):
    return _KNOWN_TOKEN.search(secretOf(match)) is None


_ASSIGNED = allOf(_notKnownToken, assignedSecret)
_HEADER_VALUE = allOf(_notKnownToken, notPlaceholder, randomLooking(3.0))
# A generic secret's name: the keyword, maybe a suffix, then a separator.
_SUFFIX = (r"(?:[_.-]?(?:key|value|token|secret|str|string|b64|base64|hex|enc"
           r"|encrypted|plain|plaintext|[0-9]))?")
_GENERIC_SEP = r"""["']?[ \t]{0,8}(?::=|=>|=|:)[ \t]{0,8}"""
_GENERIC_VALUE = (r"""(?:"(?P<secret>[^"\s\\]{8,256})"|'(?P<secret>[^'\s\\]{8,256})'"""
                  r"""|(?P<secret>[^\s"'`<>()\[\]{},;$\\]{8,256})(?![^\s,;]))""")


# api_key, apiKey, SECRET_KEY, ...: what may come before a "key".
_KEY_NAME = (r"(?<=(?i:api|auth|access|secret|private|client|master|signing"
             r"|encryption|app|license|account|service)[_.-]?(?i:key))")


def _assignment(kind, keyword):
    return Pattern(kind, r"%s(?i:%s)%s%s"
                   % (keyword, _SUFFIX, _GENERIC_SEP, _GENERIC_VALUE), _ASSIGNED)


CONTEXTUAL = (
    # Credentials in URLs and connection strings.
    Pattern("connection_string_password",
            r"\b(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?"
            r"|mssql|sqlserver|oracle|cockroachdb|clickhouse|nats|kafka)" + _URL_USER,
            notPlaceholder),
    Pattern("connection_string_password",
            r"(?i:passw(?:or)?d)(?<=(?:[?&]|;[ \t]{0,4})(?i:passw(?:or)?d))[ \t]*=[ \t]*"
            r"(?P<secret>[^;&\s\"'<>#]{1,128})", notPlaceholder),
    Pattern("url_password",
            r"\b(?i:https?|ftps?|sftp|smtps?|imaps?|ldaps?|ssh|git|svn|wss?|socks[45]h?)"
            + _URL_USER, notPlaceholder),
    # Pasted HTTP headers: curl -H 'Authorization: Bearer ...'.
    Pattern("bearer_token",
            r"(?i:authorization)[\"']?[ \t]*[:=][ \t]*[\"']?(?i:bearer)[ \t]+"
            r"(?P<secret>[A-Za-z0-9._~+/=-]{16,})", _HEADER_VALUE),
    Pattern("basic_auth",
            r"(?i:authorization)[\"']?[ \t]*[:=][ \t]*[\"']?(?i:basic)[ \t]+"
            r"(?P<secret>[A-Za-z0-9+/]{8,}={0,2})", decodesToUserPassword),
    Pattern("api_key_header",
            r"(?i:api-key)[\"']?[ \t]*:[ \t]*[\"']?(?P<secret>[A-Za-z0-9._~+/=-]{16,})",
            _HEADER_VALUE),
    Pattern("api_key_header",
            r"(?i:x-auth-token)[\"']?[ \t]*:[ \t]*[\"']?(?P<secret>[A-Za-z0-9._~+/=-]{16,})",
            _HEADER_VALUE),
    # Kubernetes Secret data, in YAML (kind before or after data) and JSON.
    Pattern("kubernetes_secret",
            r"(?m:^)%s(?:(?![ \t]*(?:data|stringData):)[^\n]*\n){0,30}[ \t]*(?:stringD|d)%s"
            % (_K8S_KIND, _K8S_DATA), _kubernetesData),
    Pattern("kubernetes_secret",
            r"%s(?=(?:(?!---)[^\n]*\n){0,30}[ \t]*%s)" % (_K8S_DATA, _K8S_KIND),
            _kubernetesData),
    Pattern("kubernetes_secret",
            r"%s(?=\s*,\s*%s)" % (_K8S_JSON_DATA, _K8S_JSON_KIND), _kubernetesData),
    Pattern("kubernetes_secret",
            r"%s\s*,\s*(?:\"[\w]+\"\s*:\s*(?:\"[^\"]*\"|\{[^{}]*\})\s*,\s*){0,5}%s"
            % (_K8S_JSON_KIND, _K8S_JSON_DATA), _kubernetesData),
    # password=, api_key: ... in code, .env, YAML and JSON: last, so that a
    # more telling type found at the same place wins.
    # Each is led by a literal of five letters or more, or by one case of
    # "key": regex searches a short literal without case slowly.
    _assignment("password_assignment", r"(?i:passw(?:or)?d)"),
    _assignment("password_assignment", r"(?i:passphrase)"),
    _assignment("password_assignment", r"(?i:_pass)"),
    _assignment("secret_assignment", r"(?i:secret)"),
    _assignment("secret_assignment", r"(?i:token)"),
    _assignment("secret_assignment", r"key" + _KEY_NAME),
    _assignment("secret_assignment", r"Key" + _KEY_NAME),
    _assignment("secret_assignment", r"KEY" + _KEY_NAME),
    _assignment("secret_assignment", r"(?i:credentials?)"),
)

CATALOGUE = TOKENS + CONTEXTUAL

# The types, once each, in catalogue order: what disabled_types may name.
TYPES = tuple(dict.fromkeys(p.type for p in CATALOGUE))
