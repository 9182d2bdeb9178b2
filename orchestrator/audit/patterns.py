"""What a secret looks like in free text: the regular expressions redaction scans with.

Owns: the patterns of rules 1-4 of ``redact`` — PEM private-key blocks, well-known key
shapes (AWS, GitHub, OpenAI/Anthropic, Stripe, Slack, Google, JWT, ``Bearer``), URL
credentials, and the candidates for a secret-named value (``NAME=``, ``NAME:``,
``--name VALUE``, ``curl -u``), with the small patterns that decide a value's start
(authorization schemes, URL queries, option-looking words).
Does not own: which names are secret (``core.secrets``), where a value ends in shell
text (``quoting``), or applying any of it (``redact``).

Every pattern takes time linear in the text: each unbounded run starts after a
character it cannot contain (a look-behind), so a long run is scanned once, not once per
position, or is bounded; quantifiers over runs are possessive (no backtracking).
"""

from __future__ import annotations

import re

from orchestrator.core.secrets import FRAGMENTS

# --- 1. PEM private keys --------------------------------------------------------------
# A block cut off before its END line (truncated output) is still a key: the body then
# runs to the end of the text. The label is bounded, so a run of BEGIN lines is cheap.
_PEM_LABEL = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
PEM = re.compile(
    rf"(?P<begin>-----BEGIN {_PEM_LABEL})(?:.*?(?P<end>-----END {_PEM_LABEL})|.*)", re.S
)

# --- 2. key shapes ----------------------------------------------------------------------
# AWS ids are bounded (20 long) and need no boundary: "xAKIA…" is redacted too.
SHAPES = re.compile(
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

# Literal text every SHAPES match contains (``may_hold_secret`` skips text with none):
# a new shape above needs its mark here (tests/unit/audit checks each shape's samples).
SHAPE_MARKS = ("AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "sk-",
               "k_live_", "k_test_", "xox", "xapp-", "AIza", "eyJ", "Bearer")  # fmt: skip

# --- 3. URL credentials -----------------------------------------------------------------
# The password runs to the last '@' before the host, so an unencoded '@' in it is
# still covered. A scheme starts at a boundary; the user part is possessive.
URL_CREDENTIALS = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]*+://[^\s/?#@:'\"]*+:)"
    r"[^\s/?#'\"]+@"
)

# --- 4. secret-named values ---------------------------------------------------------------
# A cheap look-ahead (a fragment every secret name contains) keeps the exact check,
# ``core.secrets.secret_name``, to candidates; both runs start at a word boundary and
# are possessive.
_FRAGMENT = "|".join(FRAGMENTS)
KEY_VALUE = re.compile(
    rf"""
    (?<![\w.-])
    (?:
        (?P<opt>-u|-U|--user|--proxy-user)(?P<optsep>=|[ \t]++)   # curl -u user:pass
      | (?=-*+[\w.-]*?(?i:{_FRAGMENT}))
        (?P<key>-*+[A-Za-z_][\w.-]*+)
        (?:(?P<eq>=)|(?P<colon>["']?:[ \t]*+)|(?P<space>[ \t]++))
    )
    """,
    re.X,
)
# Authorization schemes are kept ("Bearer [REDACTED]"): the scheme is no secret and
# tells an auditor what kind of credential was sent.
AUTH_SCHEME = re.compile(
    r"(?i:bearer|basic|token|digest|negotiate|ntlm|bot|oauth|apikey|key|ssws|hawk"
    r"|aws4-hmac-sha256)[ \t]++(?=[^\s'\"])"
)
QUERY_WINDOW = 1024  # further back, the key is judged as any other (never less redacted)
QUERY_VALUE = re.compile(r"[^\s'\"&#]*+")
OPTION_LIKE = re.compile(r"--|-[A-Za-z](?:\s|$)")
# First words of boolean options: `--no-password`, `--with-token`, `--show-token` take
# no value, so the next argument is not theirs.
FLAG_WORDS = frozenset(
    {"no", "without", "with", "skip", "ask", "prompt", "show", "print", "use", "require"}
)
