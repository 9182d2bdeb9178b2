"""Which names (and values) are secrets: the one vocabulary every part of codex-box uses.

Owns: ``secret_name`` — whether an environment variable, an option (``--name``,
``-name``), a config key or a header names a secret — and ``carries_credentials``,
whether a value is a URL with a password in it.
Does not own: what is done about a secret — the sandbox's environment withholds the
variable (``compile.environment``), the audit log replaces its value with
``[REDACTED]`` (``audit.redact``).

Why one rule: the two used to disagree (the environment filter withheld ``BYPASS_PROXY``
and ``TOKEN_FILE`` but not ``OAUTH_CLIENT``; the redactor the other way round), so a
variable could be kept from the sandbox yet written to the log in clear, or the
reverse. The rule is the union of both, erring on the side of secrecy: a withheld
variable costs one ``--env NAME``, a redacted value an auditor's guess; a leaked token
costs a rotation.

The rule: a name is secret when, lower-cased and with its separators (``_ . - :`` and
camelCase boundaries) removed, it contains a marker (``key``, ``secret``, ``token``,
``pass``, ``credential``, ``jwt``, ``cookie``: ``api_key``, ``apiKey``, ``PASSWD``,
``bypass``, ``max_tokens``), or when one of its words is a secret word (``pw``, ``pwd``,
``cred``, ``creds``, ``otp``, ``totp``, ``pat``) or an auth word (``auth``,
``authorization``, ``oauth``, ``authn`` — not ``author`` or ``authority``). Exceptions:
the bare names ``PWD`` and ``OLDPWD`` (the shell's working directories, in any case, but
not the option ``--pwd``).
"""

from __future__ import annotations

import re

# Substrings of the name with its separators removed (api_key, api-key, apiKey, APIKEY).
MARKERS = ("key", "secret", "token", "pass", "credential", "jwt", "cookie")
# Whole words of the name only: as substrings they are everywhere (pattern, compass).
WORDS = frozenset({"pw", "pwd", "cred", "creds", "otp", "totp", "pat"})
# The shell's working directories, not passwords.
NOT_SECRET = frozenset({"PWD", "OLDPWD"})
# Every secret name contains one of these (markers, words, "auth"): a cheap pre-filter
# for scanning text (``audit.patterns``). tests/unit/core/test_secrets.py keeps it complete.
FRAGMENTS = ("key", "secret", "token", "pass", "cred", "jwt", "cookie", "pw", "otp", "pat", "auth")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\W_]+")
# scheme://user:password@host, whatever the variable is called.
_CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


def name_words(name: str) -> list[str]:
    """``name``'s words, lower-cased: split at separators and camelCase boundaries
    (``AWS_SECRET_ACCESS_KEY``, ``aws-secret``, ``awsSecret`` → ``aws``, ``secret`` …)."""
    return [w for w in _SEPARATORS.split(_CAMEL.sub("_", name).lower()) if w]


def _auth_word(word: str) -> bool:
    # auth, oauth, basicauth, authn, authorization — but not author, authority.
    return (
        word == "authorization"
        or word.endswith("auth")
        or (word.startswith("auth") and not word.startswith("author"))
    )


def secret_name(name: str) -> bool:
    """Whether ``name`` (``NAME``, ``-name``, ``--name``, ``Header-Name``) names a secret.

    Erring on the side of secrecy: ``token_count``, ``--password-file`` and ``bypass``
    are secret too (the rule cannot tell a knob, or a secret's location, from a secret).
    """
    bare = name.lstrip("-")
    if bare == name and name.upper() in NOT_SECRET:
        return False
    words = name_words(bare)
    joined = "".join(words)
    # The words with and without camelCase splits: ``gh_pAT`` is ``gh``+``pat`` as the
    # shell spells it, though a camelCase reading makes it ``p``+``at``.
    plain = [w for w in _SEPARATORS.split(bare.lower()) if w]
    return any(marker in joined for marker in MARKERS) or any(
        word in WORDS or _auth_word(word) for word in (*words, *plain)
    )


def carries_credentials(value: str) -> bool:
    """Whether ``value`` holds a URL with a password (``https://user:pw@host``)."""
    return _CREDENTIAL_URL.search(value) is not None
