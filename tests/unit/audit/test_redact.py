"""redact.Redactor: secrets → [REDACTED] (names kept), home and login → [USER]."""

from __future__ import annotations

import shlex
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from orchestrator.audit.redact import GENERIC_USERS, REDACTED, USER, Redactor

R = Redactor(user="alice", home="/home/alice")
ROOT = Redactor(user="root", home="/root")
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI cannot turn red by chance
    database=None,  # and nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def check(text: str, expected: str, redactor: Redactor = R) -> None:
    assert redactor(text) == expected
    assert redactor(expected) == expected  # idempotent


# --- the user: home directory and login name ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat /home/alice/.ssh/id_rsa", "cat [USER]/.ssh/id_rsa"),
        ("cd /home/alice", "cd [USER]"),
        ("cd /home/alice/", "cd [USER]/"),
        ("PATH=/home/alice/bin:/usr/bin", "PATH=[USER]/bin:/usr/bin"),
        ("file:///home/alice/x", "file://[USER]/x"),
        ("'/home/alice/my dir'", "'[USER]/my dir'"),
        ("ls ~alice; echo alice", "ls ~[USER]; echo [USER]"),
        ("owner=alice,group=staff", "owner=[USER],group=staff"),
        ("chosen by alice.", "chosen by [USER]."),
        ("ssh alice@host", "ssh [USER]@host"),
        ("/mnt/home/alice/x", "/mnt/home/[USER]/x"),  # another tree: the name still goes
    ],
)
def test_home_and_user_name_become_user(text: str, expected: str) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    "text",
    [
        "malice",
        "alicent",
        "alice_bot",
        "alice-cooper",
        "alice.txt",  # '.' joins words: a file name, not the user
        "grep -r palace",
        "/home/alicex/data",
        "/home/alice2",
        "/home/alice.bak/x",
    ],
)
def test_words_merely_containing_the_name_or_home_are_kept(text: str) -> None:
    assert R(text) == text


def test_a_short_name_is_replaced_only_as_a_whole_word() -> None:
    al = Redactor(user="al", home="")
    assert al("also deal al_x al-x al.x et al") == "also deal al_x al-x al.x et [USER]"


def test_no_user_and_a_root_or_empty_home_change_nothing() -> None:
    assert Redactor(user="", home="/")("cd /etc && make") == "cd /etc && make"
    assert Redactor(user="", home="")("cd /etc && make") == "cd /etc && make"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rm -rf of the root directory", "rm -rf of the root directory"),
        ("chown root:root f", "chown root:root f"),
        ("--root=/srv", "--root=/srv"),
        ("cat /root/.bashrc", "cat [USER]/.bashrc"),
        ("ls ~root", "ls ~[USER]"),
        ("USER=root ssh root@host", "USER=[USER] ssh [USER]@host"),
        ("/home/root/x", "/home/[USER]/x"),
    ],
)
def test_a_generic_account_name_is_replaced_only_where_it_names_the_account(
    text: str, expected: str
) -> None:
    check(text, expected, ROOT)


def test_generic_account_names_include_the_usual_suspects() -> None:
    assert {"root", "admin", "ubuntu", "runner", "user"} <= GENERIC_USERS
    runner = Redactor(user="runner", home="/home/runner")
    assert (
        runner("the test runner ran in /home/runner/work") == "the test runner ran in [USER]/work"
    )


@pytest.mark.parametrize("name", ["USER", "REDACTED"])
def test_a_user_named_like_a_placeholder_does_not_grow_it(name: str) -> None:
    odd = Redactor(user=name, home="")
    once = odd(f"~{name} {name}@host --token x")
    assert once == f"~{USER} {USER}@host --token {REDACTED}"
    assert odd(once) == once


def test_secrets_go_before_the_user_name_so_a_password_containing_it_goes_whole() -> None:
    check("--password alice", "--password [REDACTED]")
    check("https://alice:pw@host/", "https://[USER]:[REDACTED]@host/")


# --- secrets by name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run --password=hunter2 -v", "run --password=[REDACTED] -v"),
        ("run --password hunter2 -v", "run --password [REDACTED] -v"),
        ("run --token=abc", "run --token=[REDACTED]"),
        ("run --api-key k1 --secret s1", "run --api-key [REDACTED] --secret [REDACTED]"),
        ("run --client-secret='a b' x", "run --client-secret=[REDACTED] x"),
        ("run --pass 'two words' x", "run --pass [REDACTED] x"),
        ("TOKEN=abc make", "TOKEN=[REDACTED] make"),
        (
            "GITHUB_TOKEN=ghx1 AWS_SECRET_ACCESS_KEY=a/b+c",
            "GITHUB_TOKEN=[REDACTED] AWS_SECRET_ACCESS_KEY=[REDACTED]",
        ),
        (
            "DB_PASSWORD=p PASSWD=p API_KEY=k",
            "DB_PASSWORD=[REDACTED] PASSWD=[REDACTED] API_KEY=[REDACTED]",
        ),
        (
            "PRIVATE_KEY=k CLIENT_SECRET=s NPM_AUTH=a",
            "PRIVATE_KEY=[REDACTED] CLIENT_SECRET=[REDACTED] NPM_AUTH=[REDACTED]",
        ),
        (
            "CREDENTIALS=c MYSQL_PWD=p SESSION_KEY=s",
            "CREDENTIALS=[REDACTED] MYSQL_PWD=[REDACTED] SESSION_KEY=[REDACTED]",
        ),
        ("apiKey=k accessToken=t", "apiKey=[REDACTED] accessToken=[REDACTED]"),
        ("-Djavax.net.ssl.keyStorePassword=p", "-Djavax.net.ssl.keyStorePassword=[REDACTED]"),
        ("export TOKEN=abc; make", "export TOKEN=[REDACTED]; make"),
        (
            "curl 'https://h/api?access_token=abc&page=2'",
            "curl 'https://h/api?access_token=[REDACTED]&page=2'",
        ),
        ("mount -o username=bob,password=p,uid=1 x", "mount -o username=bob,password=[REDACTED] x"),
        ("openssl rsa -passin pass:pw -in k", "openssl rsa -passin [REDACTED] -in k"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'),
        ('{"token":"x","n":1}', '{"token":"[REDACTED]","n":1}'),
        ("password: hunter2 is weak\nnext", "password: [REDACTED]\nnext"),
        ("curl -u bob:pa55 https://h", "curl -u bob:[REDACTED] https://h"),
        ("curl --user='bob:p w' h", "curl --user='bob:[REDACTED]' h"),
    ],
)
def test_secret_named_values_go_and_names_stay(text: str, expected: str) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docker login --password-stdin -u bob", "docker login --password-stdin -u bob"),
        # Boolean options take no value: the next argument is not a secret.
        ("gh auth login --with-token < t", None),
        ("gh auth status --show-token", None),
        ("x --no-password -v", None),
        # An option is not taken as the value: `mysql --password` prompts.
        ("mysql --password -u root db", None),
        ("x --token --verbose", None),
        # Not secret names: author, authority; the shell's PWD.
        ("git commit --author='A <a@b.c>' --authority=x", None),
        ("PWD=/srv OLDPWD=/tmp", None),
        # Look-alike key shapes that are too short.
        ("sk-abc sk-123 ghp_short AKIA12 eyJx.y", None),
        ("task-0123456789012345678901 disk_test_abcdefghijklmn", None),
        # A URL with a user but no password, and a port.
        ("git clone ssh://git@host:22/r.git https://host:8443/x", None),
        ("Bearer of bad news", None),
    ],
)
def test_look_alikes_are_kept(text: str, expected: str | None) -> None:
    assert R(text) == (text if expected is None else expected)


def test_names_merely_containing_token_are_redacted_erring_on_the_safe_side() -> None:
    # token_count, max_tokens, tokenizer: the rule cannot tell a knob from a secret.
    check("token_count=5 max_tokens=9", "token_count=[REDACTED] max_tokens=[REDACTED]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # One rule with the sandbox's environment filter (core.secrets): a name that
        # says where a secret is, or merely contains a marker, is secret too.
        ("--password-file=/etc/pw", "--password-file=[REDACTED]"),
        ("--password-file /etc/pw", "--password-file [REDACTED]"),
        (
            "TOKEN_ENV=GH_TOKEN git -c credential.helper=store",
            "TOKEN_ENV=[REDACTED] git -c credential.helper=[REDACTED]",
        ),
        ("kubectl --token-type=bearer", "kubectl --token-type=[REDACTED]"),
        ("x --bypass=1 --compass=n", "x --bypass=[REDACTED] --compass=[REDACTED]"),
        ("sort --key 2 f", "sort --key [REDACTED] f"),
        ("key: v\nnext", "key: [REDACTED]\nnext"),
        (
            "OAUTH_URL=u CRED_FILE=f OTP_PATH=p",
            "OAUTH_URL=[REDACTED] CRED_FILE=[REDACTED] OTP_PATH=[REDACTED]",
        ),
    ],
)
def test_the_environment_filters_secret_names_are_redacted_too(text: str, expected: str) -> None:
    check(text, expected)


# --- quoting: what shlex.join makes of argv ---------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["x", "--password=a b"], "x '--password=[REDACTED]'"),
        (["x", "--password=a'b c"], "x '--password=[REDACTED]'"),
        (["x", "--password", "a'b c"], "x --password [REDACTED]"),
        (["curl", "-d", "user=bob&password=a b", "u"], "curl -d 'user=bob&password=[REDACTED]' u"),
        (["x", "TOKEN=a;b"], "x 'TOKEN=[REDACTED]'"),
        (
            ["curl", "-d", '{"password": "a b", "n": 1}', "u"],
            """curl -d '{"password": "[REDACTED]", "n": 1}' u""",
        ),
        (["curl", "-u", "bob:p'w x"], "curl -u 'bob:[REDACTED]'"),
        # A script's value is one word of the script; the rest stays readable.
        (
            ["bash", "-lc", 'export TOKEN="a b"; make test'],
            "bash -lc 'export TOKEN=[REDACTED]; make test'",
        ),
        (
            ["bash", "-lc", 'curl -H "Authorization: Bearer x y" https://h && echo ok'],
            "bash -lc 'curl -H \"Authorization: Bearer [REDACTED]\" https://h && echo ok'",
        ),
    ],
)
def test_a_value_is_an_argument_as_the_shell_splits_it(argv: list[str], expected: str) -> None:
    check(shlex.join(argv), expected)


# --- headers and URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
        ("Authorization: Basic dXNlcjpwYXNz\nHost: h", "Authorization: Basic [REDACTED]\nHost: h"),
        ("authorization: token gho_x", "authorization: token [REDACTED]"),
        ("Authorization: abc", "Authorization: [REDACTED]"),
        ("Proxy-Authorization: Basic abc", "Proxy-Authorization: Basic [REDACTED]"),
        ("X-Api-Key: k123", "X-Api-Key: [REDACTED]"),
        ("Cookie: a=1; b=2", "Cookie: [REDACTED]"),
        ("Private-Token: abc", "Private-Token: [REDACTED]"),
        (
            "curl -H 'Authorization: Bearer x' https://api/v1",
            "curl -H 'Authorization: Bearer [REDACTED]' https://api/v1",
        ),
        (
            'curl -H "X-Api-Key: k 1" -H "Accept: json" u',
            'curl -H "X-Api-Key: [REDACTED]" -H "Accept: json" u',
        ),
        (
            "git -c 'http.extraHeader=Authorization: Basic abc' fetch",
            "git -c 'http.extraHeader=Authorization: Basic [REDACTED]' fetch",
        ),
        ('{"Authorization": "Bearer xyz"}', '{"Authorization": "Bearer [REDACTED]"}'),
        ("got Bearer abcdefghijklmnop1234", "got Bearer [REDACTED]"),
    ],
)
def test_credential_headers_lose_their_value(text: str, expected: str) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "git clone https://bob:s3cr3t@github.com/x.git",
            "git clone https://bob:[REDACTED]@github.com/x.git",
        ),
        (
            "pip install git+ssh://bob:pw@host/r.git",
            "pip install git+ssh://bob:[REDACTED]@host/r.git",
        ),
        ("psql postgres://u:p@ss@db:5432/x", "psql postgres://u:[REDACTED]@db:5432/x"),
        (
            "redis-cli -u redis://:pw@localhost:6379/0",
            "redis-cli -u redis://:[REDACTED]@localhost:6379/0",
        ),
        ("'https://bob:a&b@h/p'", "'https://bob:[REDACTED]@h/p'"),
    ],
)
def test_url_passwords_go_and_users_stay(text: str, expected: str) -> None:
    check(text, expected)


# --- key shapes --------------------------------------------------------------------------------

SHAPES = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "aws-session": "ASIAY34FZKBOKMUTVV7A",
    "github": "ghp_" + "a1B2" * 9,
    "github-oauth": "gho_" + "Z9" * 20,
    "github-pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "openai": "sk-" + "abcDEF123_" * 3,
    "openai-project": "sk-proj-" + "x1Y2-z3" * 5,
    "anthropic": "sk-ant-api03-" + "Q" * 40,
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "stripe-restricted": "rk_live_" + "abcdef1234567890",
    "slack": "xoxb-1234567890-0987654321-AbCdEfGh",
    "google": "AIzaSyA-" + "b" * 31,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl-_x",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("template", ["{}", "x {} y", "--opt={} y", "'{}'", "url/{}/z"])
def test_well_known_key_shapes_go_anywhere(name: str, template: str) -> None:
    out = R(template.format(SHAPES[name]))
    assert SHAPES[name] not in out
    assert out == template.format(REDACTED)


def test_a_private_key_block_goes_and_its_armour_stays() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK==\n-----END RSA PRIVATE KEY-----"
    check(
        f"note: none\n{pem}\nafter",
        "note: none\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\nafter",
    )


def test_a_private_key_block_cut_off_goes_to_the_end() -> None:
    check(
        "cat id\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk",
        "cat id\n-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED]",
    )


def test_public_keys_and_certificates_are_kept() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert R(cert) == cert


# --- robustness ---------------------------------------------------------------------------


def test_never_raises_on_surrogate_escapes_or_control_characters() -> None:
    text = "x\udcff --token=\udc80\udc81 \x00\x1b[31m /home/alice/\udcfe"
    out = R(text)
    assert out == "x\udcff --token=[REDACTED] \x00\x1b[31m [USER]/\udcfe"
    assert R(out) == out


@pytest.mark.parametrize(
    "unit", ["token= '", "'", "\\", "AKIA", "eyJa.", "sk-a", "-----BEGIN ", "https://a:", "&token="]
)
def test_long_runs_of_near_misses_are_handled(unit: str) -> None:
    # A quadratic pattern would take minutes here (pytest-timeout ends it); the speed
    # itself (1 MB of each of these in well under a second) is checked by hand, not
    # asserted, so a slow CI machine cannot fail the suite.
    text = unit * (256_000 // len(unit))
    once = R(text)
    assert R(once) == once


# --- properties ------------------------------------------------------------------------------

# Random argv words: quotes, spaces and shell metacharacters included (shlex quotes them),
# but no leading '-', so no word is an option that could claim a neighbour as its value.
WORD_CHARS = string.ascii_letters + string.digits + " _./:@%+,=\"'$;&*!?#"
WORDS = st.lists(
    st.text(WORD_CHARS, min_size=1, max_size=10).filter(lambda w: not w.startswith("-")),
    max_size=8,
)
# Secret values: at least 8 characters, shell specials and spaces included.
VALUE_CHARS = string.ascii_letters + string.digits + " _./:@%+,=\"'$;&*!?#()<>|~^"
VALUES = st.text(VALUE_CHARS, min_size=8, max_size=24).filter(
    lambda v: not v.startswith("-") and v.strip() == v
)
# In a URL the password is made of characters a URL may carry unencoded.
URL_VALUES = st.text(
    string.ascii_letters + string.digits + "-._~!$&*+,;=%", min_size=8, max_size=24
)

ENV_NAMES = (
    "TOKEN",
    "GITHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "DB_PASSWORD",
    "PASSWD",
    "API_KEY",
    "PRIVATE_KEY",
    "CLIENT_SECRET",
    "NPM_AUTH",
    "CREDENTIALS",
    "MYSQL_PWD",
    "SESSION_KEY",
    "apiKey",
)
OPTIONS = (
    "password",
    "passwd",
    "pass",
    "token",
    "api-key",
    "apikey",
    "secret",
    "client-secret",
    "access-key",
    "private-key",
    "auth",
    "auth-token",
    "credentials",
    "cookie",
)
HEADERS = ("X-Api-Key", "Cookie", "X-Auth-Token", "Private-Token", "Api-Key")
SCHEMES = ("Bearer", "Basic", "token", "Digest")


def _chars(alphabet: str, low: int, high: int | None = None) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=low, max_size=high if high is not None else low + 30)


ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "_-"


def _shaped(prefix: st.SearchStrategy[str], body: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(prefix, body).map("".join)


KEY_SHAPES = st.one_of(
    _shaped(
        st.sampled_from(["AKIA", "ASIA"]), _chars(string.ascii_uppercase + string.digits, 16, 16)
    ),
    _shaped(st.sampled_from(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]), _chars(ALNUM, 36)),
    _shaped(st.just("github_pat_"), _chars(ALNUM + "_", 22, 90)),
    _shaped(st.sampled_from(["sk-", "sk-proj-", "sk-ant-"]), _chars(B64URL, 20)),
    _shaped(st.sampled_from(["sk_live_", "rk_live_"]), _chars(ALNUM, 10)),
    _shaped(st.sampled_from([f"xox{c}-" for c in "abposr"]), _chars(ALNUM + "-", 10)),
    _shaped(st.just("AIza"), _chars(B64URL, 35, 35)),
    st.tuples(_chars(B64URL, 1), _chars(B64URL, 1), _chars(B64URL, 0)).map(
        lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"
    ),
)


@st.composite
def secret_in_argv(draw: st.DrawFn) -> tuple[list[str], str]:
    """Argv elements carrying one secret, and the secret (the part that must go)."""
    forms = ["env", "eq", "space", "header", "auth", "url", "user", "shape", "pem"]
    form = draw(st.sampled_from(forms))
    if form == "pem":
        secret = draw(_chars(ALNUM + "+/=\n", 8))
        label = draw(st.sampled_from(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "]))
        block = f"-----BEGIN {label}PRIVATE KEY-----\n{secret}\n-----END {label}PRIVATE KEY-----"
        return [draw(st.sampled_from([block, block[: -len(label) - 20]]))], secret
    if form == "shape":
        secret = draw(KEY_SHAPES)
        where = draw(st.sampled_from(["{}", "--opt={}", "x:{}", "{}/"]))
        return [where.format(secret)], secret
    if form == "url":
        secret = draw(URL_VALUES)
        scheme = draw(st.sampled_from(["https", "git+ssh", "postgres", "redis"]))
        user = draw(st.sampled_from(["", "bob", "x-access-token"]))
        return [f"{scheme}://{user}:{secret}@host.example/path"], secret
    secret = draw(VALUES)
    if form == "env":
        return [f"{draw(st.sampled_from(ENV_NAMES))}={secret}"], secret
    option = draw(st.sampled_from(OPTIONS))
    if form == "eq":
        return [f"--{option}={secret}"], secret
    if form == "space":
        return [f"--{option}", secret], secret
    if form == "header":
        return ["-H", f"{draw(st.sampled_from(HEADERS))}: {secret}"], secret
    if form == "auth":
        return ["-H", f"Authorization: {draw(st.sampled_from(SCHEMES))} {secret}"], secret
    return ["-u", f"bob:{secret}"], secret  # form == "user"


@PROPERTY
@given(words=WORDS, carrier=secret_in_argv(), data=st.data())
def test_a_generated_secret_never_survives_redaction(
    words: list[str], carrier: tuple[list[str], str], data: st.DataObject
) -> None:
    elements, secret = carrier
    at = data.draw(st.integers(0, len(words)), label="position")
    argv = [*words[:at], *elements, *words[at:]]
    text = shlex.join(argv)
    # The value must not be ordinary text of the command line or of the placeholders.
    assume(secret not in shlex.join([*words, *(e.replace(secret, "") for e in elements)]))
    assume(secret not in REDACTED + USER)
    out = R(text)
    assert secret not in out
    assert R(out) == out


FRAGMENTS = (
    " ",
    "\n",
    "'",
    '"',
    "\\",
    "=",
    ":",
    ": ",
    "@",
    "~",
    "/",
    ";",
    "&",
    "-",
    "--",
    "token",
    "--password",
    "-u",
    "bob:pw",
    "Authorization: ",
    "Bearer ",
    "abcdefghijklmnopq",
    "https://",
    "alice",
    "/home/alice",
    "root",
    "AKIA",
    "ABCDEFGHIJKLMNOP",
    "eyJ",
    ".",
    "sk-",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "bash -lc ",
    "sh -c '",
    "?",
    '"token": ',
    "Cookie: ",
    "[REDACTED]",
    "[USER]",
    "=[",
    "]",
    "\udcff",
)


REDACTORS = st.sampled_from(
    [R, ROOT, Redactor(user="al", home="/h/al"), Redactor(user="USER", home=""), Redactor("", "")]
)


@PROPERTY
@given(REDACTORS, st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=30))
def test_redaction_is_idempotent_and_total(redactor: Redactor, pieces: list[str]) -> None:
    once = redactor("".join(pieces))
    assert redactor(once) == once


# --- the fast path: text that cannot hold a secret is not scanned --------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from orchestrator.audit import patterns, redact  # noqa: E402

SHAPE_SAMPLES = [
    "AKIA" + "A" * 16, "ASIA" + "B" * 16, "ghp_" + "a" * 36, "gho_" + "b" * 36,
    "ghu_" + "c" * 36, "ghs_" + "d" * 36, "ghr_" + "e" * 36, "github_pat_" + "f" * 22,
    "sk-" + "g" * 20, "sk_live_" + "h" * 10, "rk_test_" + "i" * 10, "xoxb-" + "j" * 10,
    "xapp-" + "k" * 10, "AIza" + "l" * 35, "eyJhbGci.eyJzdWIi.sig", "Bearer " + "m" * 16,
]


def test_every_key_shape_is_one_the_fast_path_scans() -> None:
    for sample in SHAPE_SAMPLES:
        assert patterns.SHAPES.search(sample), sample  # the samples are real shapes
        assert redact.may_hold_secret(f"run {sample} now"), sample
        assert "[REDACTED]" in redact.redact_secrets(f"run {sample} now"), sample


WORDS = st.sampled_from(
    ["run", "pytest", "-q", "--user", "-u", "x", "=", ":", " ", "'", '"', "/", "@", "://",
     "TOKEN", "Api", "pw", "Pass", "AKI", "AKIA", "sk-", "ghp_", "eyJ", "Bearer ", "BEGIN",
     "-----BEGIN ", "PRIVATE KEY-----", "xox", "k_live_", "é", "K", "\u212a", "ey", "http",
     "abcdefghijklmnopqrstuvwxyz0123456789", "AAAAAAAAAAAAAAAAAAAA", "alice:hunter2",
     "--proxy-user", "-U", "ftp://a:b@h", "-u alice:hunter2 "]
)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(WORDS, max_size=12).map("".join))
def test_skipping_the_scan_never_changes_the_result(text: str) -> None:
    fast = redact.redact_secrets(text)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(redact, "may_hold_secret", lambda _text: True)
        scanned = redact.redact_secrets(text)
    assert fast == scanned
