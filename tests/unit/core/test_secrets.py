"""core.secrets: one rule for secret names, shared by the sandbox's environment filter
and the audit log's redaction — the union of the two rules they used to have."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orchestrator.audit.redact import REDACTED, Redactor, may_hold_secret
from orchestrator.compile.environment import looks_secret, sandbox_environment
from orchestrator.core.secrets import carries_credentials, name_words, secret_name

R = Redactor(user="", home="")

# --- the two rules this one replaced, kept here as oracles --------------------------------


def old_environment_rule(name: str) -> bool:
    upper = name.upper()
    if upper in {"PWD", "OLDPWD"}:
        return False
    words = set(re.split(r"[^A-Z0-9]+", upper))
    return any(m in upper for m in ("KEY", "SECRET", "TOKEN", "PASS", "CREDENTIAL", "JWT")) or bool(
        words & {"AUTH", "AUTHORIZATION", "COOKIE", "PAT", "PWD"}
    )


_SUBSTRINGS = (
    "password", "passwd", "passphrase", "secret", "token", "credential", "cookie", "apikey",
    "accesskey", "privatekey", "privkey", "sessionkey", "signingkey", "encryptionkey",
    "masterkey", "authkey", "accountkey", "clientkey", "licensekey",
)  # fmt: skip
_WORDS = {"pass", "pw", "pwd", "cred", "creds", "jwt", "otp", "totp", "pat"}
_REFERENCE = {
    "file", "files", "path", "dir", "fd", "env", "var", "cmd", "command", "helper", "stdin",
    "url", "uri", "jar", "type",
}  # fmt: skip


def old_redaction_rule(key: str) -> bool:
    name = key.lstrip("-")
    if name == key and name.upper() in {"PWD", "OLDPWD"}:
        return False
    words = [
        w for w in re.split(r"[_.\-]+", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()) if w
    ]
    if not words or words[-1] in _REFERENCE:
        return False
    joined = "".join(words)

    def auth(w: str) -> bool:
        return (
            w == "authorization"
            or w.endswith("auth")
            or (w.startswith("auth") and not w.startswith("author"))
        )

    return any(s in joined for s in _SUBSTRINGS) or any(w in _WORDS or auth(w) for w in words)


NAMES = [
    # secret to both
    "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "NPM_AUTH", "GH_PAT", "MYSQL_PWD",
    "GOOGLE_APPLICATION_CREDENTIALS", "openai_api_key", "apiKey", "--password", "Cookie",
    # secret to the environment filter only (before)
    "TOKEN_FILE", "PASSWORD_FILE", "--password-file", "BYPASS_PROXY", "compass", "KEYMAP",
    "--key", "AUTH_TYPE", "COOKIE_JAR", "credential.helper", "token_type", "SSH_KEY_PATH",
    "gh_pAT", "npm_aUTH",  # an upper-case run inside a word: the shell's words count
    # secret to the redaction only (before)
    "OAUTH_CLIENT", "--pw", "CRED", "creds", "OTP", "TOTP_SEED", "basicAuth", "AUTHN_HEADER",
    "x-auth-key", "jwt",
    # the location-word exception no longer applies: secret now, to neither before
    "CRED_FILE", "OTP_PATH", "OAUTH_URL", "pw_file",
    # secret to neither
    "PATH", "HOME", "LANG", "TERM", "SHELL", "USER", "LOGNAME", "EDITOR", "XDG_RUNTIME_DIR",
    "GIT_AUTHOR_NAME", "--author", "AUTHORITY", "PATTERN", "COMPATIBILITY", "PWD", "OLDPWD",
    "pwd", "", "--", "max_count",
]  # fmt: skip
NEITHER_BEFORE = {"CRED_FILE", "OTP_PATH", "OAUTH_URL", "pw_file"}


@pytest.mark.parametrize("name", NAMES)
def test_a_name_is_secret_when_either_former_rule_said_so(name: str) -> None:
    union = old_environment_rule(name) or old_redaction_rule(name)
    assert secret_name(name) == (union or name in NEITHER_BEFORE)


@given(st.text(alphabet="abcdeiklnoprstuwxyzAKPSTW_-.", max_size=16))
def test_the_rule_is_never_laxer_than_either_former_rule(name: str) -> None:
    if old_environment_rule(name) or old_redaction_rule(name):
        assert secret_name(name)


@given(st.text(alphabet="abcdeiklnoprstuwxyzAKPSTW_-.:", max_size=16))
@example("K:ey")  # found by hypothesis: a separator inside the marker
@example("api-k_ey")
def test_every_secret_name_contains_a_fragment_so_the_text_prefilter_sees_it(name: str) -> None:
    if secret_name(name):  # the prefilter must let "NAME=value" through to redaction
        assert may_hold_secret(f"{name}=value"), name


@pytest.mark.parametrize(
    ("name", "secret"),
    [("PWD", False), ("OLDPWD", False), ("pwd", False), ("--pwd", True), ("OLD_PWD", True)],
)
def test_only_the_bare_shell_working_directories_are_exempt(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


def test_words_split_at_separators_and_camel_case() -> None:
    assert name_words("awsSecret_ACCESS-key.id") == ["aws", "secret", "access", "key", "id"]


@pytest.mark.parametrize("name", [n for n in NAMES if re.fullmatch(r"[A-Za-z_][\w.-]*", n)])
def test_the_environment_filter_and_the_redaction_agree_on_every_name(name: str) -> None:
    redacted = R(f"{name}=v1") == f"{name}={REDACTED}"
    assert looks_secret(name) == redacted == secret_name(name)


def test_a_value_with_a_url_password_is_withheld_whatever_its_name() -> None:
    assert carries_credentials("https://bob:pw@host/x")
    assert not carries_credentials("ssh://git@host/x") and not carries_credentials("https://h:8/")
    env = sandbox_environment(
        {"MIRROR": "https://bob:pw@host/x", "PATH": "/bin", "BYPASS_PROXY": "1", "OTP": "1"},
        passthrough=(),
        extra={},
    )
    assert env == {"PATH": "/bin"}
