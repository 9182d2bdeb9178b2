"""Redaction of text bound for the audit log: no secret and no user identity in it.

Owns: turning one string into what may be written to the log — secret values become
``[REDACTED]`` (the key, option or header name stays, so a record still says *what*
was passed), and the user's home directory and login name become ``[USER]`` — and
rule 4, finding the value of a secret-named key.
Does not own: which record fields are redacted or when (``log``), which names are
secret (``core.secrets``), the patterns (``patterns``), where a value ends in shell text
(``quoting``), the identity rules 5-6 (``identity``), or where the user name and home
come from (``host.user``, the front door).

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
   YAML, JSON), ``--name VALUE`` and ``curl -u user:PASS``. Which names are secret:
   ``core.secrets.secret_name`` (the same rule that withholds variables from the
   sandbox). Values are found the way a shell splits words, so a
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
from dataclasses import dataclass

from orchestrator.core.secrets import FRAGMENTS, name_words, secret_name

from . import patterns as p
from .identity import GENERIC_USERS, REDACTED, USER, identity
from .quoting import Quotes, extent, match_end

__all__ = ["GENERIC_USERS", "REDACTED", "USER", "Redactor", "redact_secrets"]

_SQUEEZE = re.compile(r"[\W_]+")  # core.secrets' separators


def _authorization(key: str) -> bool:
    return name_words(key.lstrip("-"))[-1:] == ["authorization"]


def _in_query(text: str, key_start: int) -> bool:
    """Whether the key at ``key_start`` follows '?' or '&' in the query of a URL."""
    if key_start == 0 or text[key_start - 1] not in "?&":
        return False
    before = text[max(0, key_start - p.QUERY_WINDOW) : key_start]
    word_start = max(before.rfind(c) for c in " \t\r\n'\"") + 1
    return "://" in before[word_start:] and "?" in before[word_start:]


def _value(text: str, quotes: Quotes, m: re.Match[str]) -> tuple[int, int, str] | None:
    """The region of ``m``'s secret value to replace, and the quote to write after it."""
    pos = m.end()
    if m["opt"]:
        # curl -u user:password: the user stays, the password goes (uid:gid too).
        if m["optsep"] != "=" and p.OPTION_LIKE.match(text, pos):
            return None
        _, end, closer = extent(text, quotes, pos, line=False, word=True)
        colon = text.find(":", pos, end)
        if colon < 0 or text.startswith("//", colon + 1):  # no password, or a URL (rule 3)
            return None
        value = text[pos:end]
        if not closer and len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
            closer = value[0]
        start = colon + 1
    else:
        key = m["key"]
        if not secret_name(key):
            return None
        if m["space"]:
            if not key.startswith("-") or name_words(key.lstrip("-"))[0] in p.FLAG_WORDS:
                return None
            if p.OPTION_LIKE.match(text, pos):  # --password -u root: -u is no password
                return None
        if m["colon"] and text.startswith("//", pos):  # a URL scheme, not a key
            return None
        if m["eq"] and _in_query(text, m.start()):
            # A URL query parameter: URL-encoded, so it ends at '&', '#' or the URL's end.
            start, end, closer = pos, match_end(p.QUERY_VALUE, text, pos, len(text)), ""
        else:
            start, end, closer = extent(
                text, quotes, pos, line=m["colon"] is not None, word=m["space"] is not None
            )
        if m["colon"] and _authorization(key):
            scheme = p.AUTH_SCHEME.match(text, start, end)
            if scheme:
                start = scheme.end()
    if end - start <= len(closer):  # nothing (but a closing quote) to hide
        return None
    return start, end, closer


def _redact_values(text: str) -> str:
    m = p.KEY_VALUE.search(text)
    if m is None:
        return text
    quotes = Quotes(text)
    out: list[str] = []
    last = 0
    while m is not None:
        resume = m.end()
        region = _value(text, quotes, m)
        if region is not None:
            start, end, closer = region
            out += (text[last:start], REDACTED, closer)
            last = resume = end
        m = p.KEY_VALUE.search(text, resume)
    out.append(text[last:])
    return "".join(out)


def _shape(m: re.Match[str]) -> str:
    return (m["bearer"] or "") + REDACTED


def _pem(m: re.Match[str]) -> str:
    return m["begin"] + REDACTED + (m["end"] or "")


def may_hold_secret(text: str) -> bool:
    """Whether rules 1-4 could match: every match contains one of these literals, and
    finding them costs substring searches, not a pattern scan per position (most text,
    a workspace or a profile's reason, holds none). Non-ASCII text always goes through:
    the patterns' case-insensitive parts also match a few non-ASCII letters (the Kelvin
    sign is a ``k``)."""
    if not text.isascii() or "://" in text or "-----BEGIN " in text:
        return True
    if "-u" in text or "-U" in text or any(mark in text for mark in p.SHAPE_MARKS):
        return True  # curl -u/--user/--proxy-user, or a key shape
    low = text.lower()
    if any(fragment in low for fragment in FRAGMENTS):  # a secret-named key
        return True
    # secret_name reads a name without its separators (K.EY, api-k_ey are "key"): so
    # must the filter, or such a key's value would skip redaction.
    return any(fragment in _SQUEEZE.sub("", low) for fragment in FRAGMENTS)


def redact_secrets(text: str) -> str:
    """Rules 1-4: secret values → ``[REDACTED]``."""
    if not may_hold_secret(text):
        return text
    text = p.PEM.sub(_pem, text)
    text = p.SHAPES.sub(_shape, text)
    text = p.URL_CREDENTIALS.sub(lambda m: m["head"] + REDACTED + "@", text)
    return _redact_values(text)


@dataclass(frozen=True, slots=True)
class Redactor:
    """``Redactor(user, home)(text)``: ``text`` fit for the audit log (rules above)."""

    user: str  # the user's login name ("" = unknown)
    home: str  # the user's home directory ("" or "/" = none)

    def __call__(self, text: str) -> str:
        # Secrets first: a password that happens to contain the user name must go whole.
        return identity(self.user, self.home)(redact_secrets(text))
