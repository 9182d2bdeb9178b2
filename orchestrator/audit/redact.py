"""Redaction of text bound for the audit log: no secret and no user identity in it.

Owns: turning one string into what may be written to the log — secret values become
``[REDACTED]`` (the key, option or header name stays, so a record still says *what*
was passed), and the user's home directory and login name become ``[USER]``.
Does not own: which record fields are redacted or when (``audit``), or where the user
name and home come from (``runner``).

Why: the log is kept for months, copied into bug reports and read by people who must
not see the user's credentials. Commands carry secrets in argv (``--password=…``,
``GITHUB_TOKEN=…``, ``curl -H 'Authorization: …'``, ``https://user:pass@host``), and
paths and names identify the user. Redaction is best effort and errs towards removing
too much: a lost option value costs an auditor a guess, a leaked token costs a rotation.

Rules, applied in this order:

1. PEM private-key blocks: the body (to the END line, or to the end of the text if
   it was cut off) → ``[REDACTED]``; the BEGIN/END lines stay.
2. Well-known key shapes anywhere: AWS access key ids, GitHub, OpenAI/Anthropic
   (``sk-``), Stripe, Slack and Google API keys, JWTs, and ``Bearer <16+ chars>``.
3. URL credentials: ``scheme://user:PASS@host`` → ``scheme://user:[REDACTED]@host``.
   A user name alone (``ssh://git@host``) is not a secret.
4. Values of secret-looking names: ``NAME=VALUE``, ``NAME: VALUE`` (HTTP headers,
   YAML, JSON), ``--name VALUE`` and ``curl -u user:PASS``. See ``_secret_name``
   for which names are secret. Values are found the way a shell splits words, so a
   quoted value (``--password='a b'``) goes as a whole; inside a quoted argument the
   value runs to the end of that argument (``'user=bob&password=a b'``), except in a
   shell script (the quoted operand of ``sh -c``/``bash -lc``), where it is one word
   of the script and the rest of the script stays readable.
5. The home directory → ``[USER]`` where it is a whole path prefix
   (``/home/alice/x`` → ``[USER]/x``; ``/home/alice2`` is another directory).
6. The login name → ``[USER]`` as a whole word, where word characters are letters,
   digits, ``_``, ``.`` and ``-`` (``alice`` in ``by alice.`` or ``owner=alice,`` but
   not in ``malice``, ``alice_bot``, ``alice-cooper`` or ``alice.txt``). A generic
   account name (``root``, ``admin``, ``ubuntu``, ``runner``, …; ``GENERIC_USERS``)
   identifies nobody and is also an ordinary word, so it is replaced only where it
   names the account: after ``~``, ``=``, ``/home/`` or ``/Users/``, or before ``@``
   (``~root``, ``USER=root``, ``root@host``) — never in prose ("the root directory").

Redaction is idempotent, never raises, and takes time linear in the text: every
unbounded run in a pattern starts at a boundary its own characters cannot cross (so a
long run is scanned once, not once per position) or is bounded, quantifiers over runs
are possessive (no backtracking), and nothing looks further back than a fixed window.
Not covered: a secret passed as a bare positional argument (``aws configure set
aws_secret_access_key VALUE``), or a value split by unquoted whitespace in free text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

REDACTED = "[REDACTED]"
USER = "[USER]"

# Generic account names: replacing them in running text would mangle messages ("the
# root directory", "a test build") and hide nothing, since they name no person.
GENERIC_USERS = frozenset(
    {
        "admin",
        "administrator",
        "app",
        "build",
        "builder",
        "centos",
        "ci",
        "codex",
        "debian",
        "default",
        "dev",
        "developer",
        "docker",
        "ec2-user",
        "fedora",
        "git",
        "guest",
        "jenkins",
        "node",
        "nobody",
        "pi",
        "root",
        "runner",
        "sandbox",
        "test",
        "ubuntu",
        "user",
        "vagrant",
    }
)

# --- 1. PEM private keys --------------------------------------------------------------
# A block cut off before its END line (truncated output) is still a key: the body then
# runs to the end of the text. The label is bounded, so a run of BEGIN lines is cheap.
_PEM_LABEL = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM = re.compile(
    rf"(?P<begin>-----BEGIN {_PEM_LABEL})(?:.*?(?P<end>-----END {_PEM_LABEL})|.*)", re.S
)

# --- 2. key shapes ----------------------------------------------------------------------
# Each unbounded run starts after a character it cannot contain (the look-behind), so
# a long run is scanned once, not once per position. AWS ids are bounded (20 long)
# and need no boundary: "xAKIA…" is redacted too.
_SHAPES = re.compile(
    r"""
      (?:AKIA|ASIA)[A-Z0-9]{16}                                   # AWS access key id
    | (?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36,}                  # GitHub token
    | (?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,}               # GitHub fine-grained
    | (?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}                     # OpenAI, Anthropic
    | (?<![A-Za-z0-9])[sr]k_(?:live|test)_[A-Za-z0-9]{10,}        # Stripe
    | (?<![A-Za-z0-9-])(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}     # Slack
    | (?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35,}                    # Google API key
    | (?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]++\.eyJ[A-Za-z0-9_-]++\.[A-Za-z0-9_-]*+  # JWT
    | (?<![\w.-])(?P<bearer>Bearer[ \t]++)[A-Za-z0-9._~+/-]{16,}+=*+  # Bearer <token>
    """,
    re.X,
)

# --- 3. URL credentials -----------------------------------------------------------------
# The password runs to the last '@' before the host, so an unencoded '@' in it is
# still covered. A scheme starts at a boundary; the user part is possessive.
_URL_CREDENTIALS = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]*+://[^\s/?#@:'\"]*+:)"
    r"[^\s/?#'\"]+@"
)

# --- 4. secret-named values ---------------------------------------------------------------
# A cheap look-ahead keeps the exact (Python) name check to candidates; both runs start
# at a word boundary and are possessive.
_KEY_VALUE = re.compile(
    r"""
    (?<![\w.-])
    (?:
        (?P<opt>-u|-U|--user|--proxy-user)(?P<optsep>=|[ \t]++)   # curl -u user:pass
      | (?=-*+[\w.-]*?(?i:pass|pw|secret|token|key|auth|cred|cookie|jwt|otp|pat|bearer))
        (?P<key>-*+[A-Za-z_][\w.-]*+)
        (?:(?P<eq>=)|(?P<colon>["']?:[ \t]*+)|(?P<space>[ \t]++))
    )
    """,
    re.X,
)
# Shell lexing, possessive throughout (no backtracking): a backslash escape, a single-
# and a double-quoted string (an unterminated one runs to the end of the text).
_ESC = r"\\."
_SQ = r"'[^']*+'?"
_DQ = r'"(?:[^"\\]++|\\.)*+"?'
# One shell word, and one line of shell text (a quoted part may span lines).
_WORD = re.compile(rf"""(?:[^\s'"\\;&|<>()]++|{_ESC}|{_SQ}|{_DQ})*+""", re.S)
_LINE = re.compile(rf"""(?:[^\r\n'"\\]++|{_ESC}|{_SQ}|{_DQ})*+""", re.S)
# A quoted header/JSON/YAML value ("token": "x", …) and what is glued to it short of a
# separator: its quotes are written back, so the structure around it survives.
_QUOTED_VALUE = re.compile(
    rf"""(?:'[^']*+'|"(?:[^"\\]++|\\.)*+")(?:[^\s'"\\;&|<>(),\]}}]++|{_ESC}|{_SQ}|{_DQ})*+""",
    re.S,
)
# Quoted strings where a shell sees them (outside quotes, a backslash escapes a quote).
_QUOTE = re.compile(
    rf"""{_ESC}|'(?P<s>[^']*+)(?P<sq>')?|"(?P<d>(?:[^"\\]++|\\.)*+)(?P<dq>")?""", re.S
)
# The quoted operand of `sh -c`, `bash -lc`, `/bin/zsh -o pipefail -c` …: a script.
_SCRIPT_WINDOW = 200
_SCRIPT_OPTION = re.compile(
    r"(?:^|[\s/])(?:ba|z|da|k|mk|fi)?sh(?:[ \t]++[^\s'\"]++)*?[ \t]++-[A-Za-z]*c[ \t]++$"
)
# Authorization schemes are kept ("Bearer [REDACTED]"): the scheme is no secret and
# tells an auditor what kind of credential was sent.
_AUTH_SCHEME = re.compile(
    r"(?i:bearer|basic|token|digest|negotiate|ntlm|bot|oauth|apikey|key|ssws|hawk"
    r"|aws4-hmac-sha256)[ \t]++(?=[^\s'\"])"
)
_QUERY_WINDOW = 1024  # further back, the key is judged as any other (never less redacted)
_QUERY_VALUE = re.compile(r"[^\s'\"&#]*+")
_OPTION_LIKE = re.compile(r"--|-[A-Za-z](?:\s|$)")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NAME_SEPARATORS = re.compile(r"[_.\-]+")
# Substrings of the name with its separators removed (api_key, api-key, apiKey, APIKEY).
_SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "cookie",
    "apikey",
    "accesskey",
    "privatekey",
    "privkey",
    "sessionkey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "authkey",
    "accountkey",
    "clientkey",
    "licensekey",
)
# Whole words of the name only: as substrings they are everywhere (bypass, compass).
_SECRET_WORDS = frozenset({"pass", "pw", "pwd", "cred", "creds", "jwt", "otp", "totp", "pat"})
# A last word naming where the secret is, not the secret: --password-file=PATH,
# --password-stdin, TOKEN_ENV=VAR, credential.helper=store, token_type=bearer.
_REFERENCE_WORDS = frozenset(
    {
        "file",
        "files",
        "path",
        "dir",
        "fd",
        "env",
        "var",
        "cmd",
        "command",
        "helper",
        "stdin",
        "url",
        "uri",
        "jar",
        "type",
    }
)
# First words of boolean options: `--no-password`, `--with-token`, `--show-token` take
# no value, so the next argument is not theirs.
_FLAG_WORDS = frozenset(
    {"no", "without", "with", "skip", "ask", "prompt", "show", "print", "use", "require"}
)
# The shell's working directories, not passwords.
_NOT_SECRET = frozenset({"PWD", "OLDPWD"})


def _words(name: str) -> list[str]:
    return [w for w in _NAME_SEPARATORS.split(_CAMEL.sub("_", name).lower()) if w]


def _auth_word(word: str) -> bool:
    # auth, oauth, basicauth, authn, authorization — but not author, authority.
    return (
        word == "authorization"
        or word.endswith("auth")
        or (word.startswith("auth") and not word.startswith("author"))
    )


def _secret_name(key: str) -> bool:
    """Whether ``key`` (``NAME``, ``-name`` or ``--name``) names a secret.

    Erring on the side of redacting: ``token_count`` and ``max_tokens`` contain
    "token" and are redacted too. Not secret: a name whose last word says where the
    secret is (``--password-file``, ``--password-stdin``, ``TOKEN_ENV``), ``PWD``.
    """
    name = key.lstrip("-")
    if name == key and name.upper() in _NOT_SECRET:
        return False
    words = _words(name)
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    joined = "".join(words)
    return any(s in joined for s in _SECRET_SUBSTRINGS) or any(
        w in _SECRET_WORDS or _auth_word(w) for w in words
    )


def _authorization(key: str) -> bool:
    return _words(key.lstrip("-"))[-1:] == ["authorization"]


@dataclass(frozen=True, slots=True)
class _Span:
    start: int  # first character inside the quotes
    end: int  # the closing quote, or the end of the text if there is none
    close_end: int  # after the closing quote
    closer: str  # the closing quote, or ""


@dataclass(frozen=True, slots=True)
class _Context:
    """Where a value that starts inside a quoted string may run to."""

    limit: int
    close_end: int
    closer: str
    outer: bool  # a top-level quoted argument, not a string inside one
    script: bool  # the operand of `sh -c`: its content is shell words


class _Quotes:
    """The quoted strings of one text, and of the arguments among them, lexed on use."""

    __slots__ = ("_inner", "_outer", "_scripts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._outer: tuple[list[int], list[_Span]] | None = None
        self._inner: dict[int, tuple[list[int], list[_Span]]] = {}
        self._scripts: dict[int, bool] = {}

    def _lex(self, start: int, end: int) -> tuple[list[int], list[_Span]]:
        spans = []
        for m in _QUOTE.finditer(self._text, start, end):
            group = "s" if m["s"] is not None else "d" if m["d"] is not None else None
            if group is None:  # a backslash escape
                continue
            closer = m["sq" if group == "s" else "dq"] or ""
            inside_end = m.end(group)
            spans.append(_Span(m.start(group), inside_end, inside_end + len(closer), closer))
        return [s.start for s in spans], spans

    @staticmethod
    def _find(index: tuple[list[int], list[_Span]], pos: int) -> tuple[int, _Span] | None:
        i = bisect_right(index[0], pos) - 1
        if i < 0 or pos > index[1][i].end:
            return None
        return i, index[1][i]

    def at(self, pos: int) -> _Context | None:
        if self._outer is None:
            self._outer = self._lex(0, len(self._text))
        found = self._find(self._outer, pos)
        if found is None:
            return None
        i, outer = found
        if i not in self._inner:
            self._inner[i] = self._lex(outer.start, outer.end)
            opening = outer.start - 1
            self._scripts[i] = (
                _SCRIPT_OPTION.search(self._text, max(0, opening - _SCRIPT_WINDOW), opening)
                is not None
            )
        inner = self._find(self._inner[i], pos)
        if inner is not None:
            span = inner[1]
            return _Context(span.end, span.close_end, span.closer, outer=False, script=False)
        return _Context(
            outer.end, outer.close_end, outer.closer, outer=True, script=self._scripts[i]
        )


def _match_end(pattern: re.Pattern[str], text: str, pos: int, endpos: int) -> int:
    m = pattern.match(text, pos, endpos)
    return m.end() if m else pos


def _extent(
    text: str, quotes: _Quotes, pos: int, *, line: bool, word: bool
) -> tuple[int, int, str]:
    """The value starting at ``pos``: where to cut (start, end) and what to write back
    after the placeholder (a closing quote the cut took).

    ``line``: at top level the value runs to the end of the line (a header, YAML), or
    is one quoted string (JSON). ``word``: inside a quoted argument the value is one
    word, not the rest of the argument.
    """
    ctx = quotes.at(pos)
    quoted_start = text.startswith(("'", '"'), pos)
    if line and quoted_start:
        quoted = _QUOTED_VALUE.match(text, pos, len(text) if ctx is None else ctx.limit)
        if quoted:  # keep the quotes: "token": "[REDACTED]", …
            return pos + 1, quoted.end(), text[pos]
    if ctx is None:
        pattern = _LINE if line and not quoted_start else _WORD
        return pos, _match_end(pattern, text, pos, len(text)), ""
    if ctx.script or (word and ctx.outer):
        pattern = _LINE if line and not quoted_start else _WORD
        end = _match_end(pattern, text, pos, ctx.limit)
        if end < ctx.limit:
            return pos, end, ""
    # To the end of the quoted string; for a top-level argument, also whatever is glued
    # to its closing quote ('--password=a'"'"'b' is one argument).
    end = ctx.close_end
    if ctx.outer and ctx.closer:
        end = _match_end(_WORD, text, end, len(text))
    return pos, end, ctx.closer


def _in_query(text: str, key_start: int) -> bool:
    """Whether the key at ``key_start`` follows '?' or '&' in the query of a URL."""
    if key_start == 0 or text[key_start - 1] not in "?&":
        return False
    before = text[max(0, key_start - _QUERY_WINDOW) : key_start]
    word_start = max(before.rfind(c) for c in " \t\r\n'\"") + 1
    return "://" in before[word_start:] and "?" in before[word_start:]


def _value(text: str, quotes: _Quotes, m: re.Match[str]) -> tuple[int, int, str] | None:
    """The region of ``m``'s secret value to replace, and the quote to write after it."""
    pos = m.end()
    if m["opt"]:
        # curl -u user:password: the user stays, the password goes (uid:gid too).
        if m["optsep"] != "=" and _OPTION_LIKE.match(text, pos):
            return None
        _, end, closer = _extent(text, quotes, pos, line=False, word=True)
        colon = text.find(":", pos, end)
        if colon < 0 or text.startswith("//", colon + 1):  # no password, or a URL (rule 3)
            return None
        value = text[pos:end]
        if not closer and len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
            closer = value[0]
        start = colon + 1
    else:
        key = m["key"]
        if not _secret_name(key):
            return None
        if m["space"]:
            if not key.startswith("-") or _words(key.lstrip("-"))[0] in _FLAG_WORDS:
                return None
            if _OPTION_LIKE.match(text, pos):  # --password -u root: -u is no password
                return None
        if m["colon"] and text.startswith("//", pos):  # a URL scheme, not a key
            return None
        if m["eq"] and _in_query(text, m.start()):
            # A URL query parameter: URL-encoded, so it ends at '&', '#' or the URL's end.
            start, end, closer = pos, _match_end(_QUERY_VALUE, text, pos, len(text)), ""
        else:
            start, end, closer = _extent(
                text, quotes, pos, line=m["colon"] is not None, word=m["space"] is not None
            )
        if m["colon"] and _authorization(key):
            scheme = _AUTH_SCHEME.match(text, start, end)
            if scheme:
                start = scheme.end()
    if end - start <= len(closer):  # nothing (but a closing quote) to hide
        return None
    return start, end, closer


def _redact_values(text: str) -> str:
    m = _KEY_VALUE.search(text)
    if m is None:
        return text
    quotes = _Quotes(text)
    out: list[str] = []
    last = 0
    while m is not None:
        resume = m.end()
        region = _value(text, quotes, m)
        if region is not None:
            start, end, closer = region
            out += (text[last:start], REDACTED, closer)
            last = resume = end
        m = _KEY_VALUE.search(text, resume)
    out.append(text[last:])
    return "".join(out)


def _shape(m: re.Match[str]) -> str:
    return (m["bearer"] or "") + REDACTED


def _pem(m: re.Match[str]) -> str:
    return m["begin"] + REDACTED + (m["end"] or "")


def redact_secrets(text: str) -> str:
    """Rules 1-4: secret values → ``[REDACTED]``."""
    text = _PEM.sub(_pem, text)
    text = _SHAPES.sub(_shape, text)
    text = _URL_CREDENTIALS.sub(lambda m: m["head"] + REDACTED + "@", text)
    return _redact_values(text)


# Word characters of names and paths: letters, digits, '_', '.', '-'. A '.' that is
# not followed by another word character ends a sentence, not the name.
_BEFORE = r"(?<![\w.-])"
_AFTER = r"(?![\w-]|\.[\w-])"


# Placeholders already in the text are left alone: a user called "USER" (or "[USER") must
# not turn "[USER]" into "[[USER]]" on a second pass.
_PLACEHOLDERS = re.compile(rf"({re.escape(USER)}|{re.escape(REDACTED)})")


@lru_cache(maxsize=32)
def _identity(user: str, home: str) -> Callable[[str], str]:
    """Rules 5-6 for one user, compiled once."""
    steps: list[re.Pattern[str]] = []
    home = home.rstrip("/")
    if home:
        steps.append(re.compile(_BEFORE + re.escape(home) + _AFTER))
    if user:
        name = re.escape(user)
        if user.lower() in GENERIC_USERS:
            where = rf"(?:(?<=[~=])|(?<=/home/)|(?<=/Users/)){name}{_AFTER}|{_BEFORE}{name}(?=@)"
        else:
            where = _BEFORE + name + _AFTER
        steps.append(re.compile(where))

    def replace(text: str) -> str:
        parts = _PLACEHOLDERS.split(text)
        for i in range(0, len(parts), 2):  # odd indexes are the placeholders
            for pattern in steps:
                parts[i] = pattern.sub(USER, parts[i])
        return "".join(parts)

    return replace


@dataclass(frozen=True, slots=True)
class Redactor:
    """``Redactor(user, home)(text)``: ``text`` fit for the audit log (rules above)."""

    user: str  # the user's login name ("" = unknown)
    home: str  # the user's home directory ("" or "/" = none)

    def __call__(self, text: str) -> str:
        # Secrets first: a password that happens to contain the user name must go whole.
        return _identity(self.user, self.home)(redact_secrets(text))
