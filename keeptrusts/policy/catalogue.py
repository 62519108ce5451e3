# -*- test-case-name: tests.test_policy_dlp -*-
"""
The built-in credential catalogue of C{dlp-filter}: named patterns for
secrets in their public shapes.

This is the first handful; each entry is C{(type, pattern)}, and a pattern
is a C{regex} expression that must not match placeholders such as
C{<YOUR_API_KEY>} or C{sk-...}.
"""

CATALOGUE = (
    ("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16,20}\b"),
    ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b"),
    ("github_fine_grained_token", r"\bgithub_pat_[A-Za-z0-9_]{82}\b"),
    ("openai_api_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}\b"
                       r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}"),
    ("anthropic_api_key", r"\bsk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{80,}"),
    ("slack_token", r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    # The body may not run past an END line: a lazy [\s\S]{16,}? here
    # defeats partial matching in Debian 12's regex (2022.10.31).
    ("private_key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
                    r"(?:(?!-----END )[\s\S]){16,}-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
)
