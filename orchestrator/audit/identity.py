"""The user's identity out of audit text: home directory and login name → ``[USER]``.

Owns: rules 5 and 6 of ``redact`` — the home directory where it is a whole path prefix,
the login name as a whole word — which account names are generic enough to be replaced
only where they name the account (``GENERIC_USERS``), and the two placeholders
(``[USER]``, ``[REDACTED]``) that replacing must leave alone.
Does not own: secrets (``redact``), or where the name and home come from
(``host.user``, the front door's ``$HOME``).

Word characters of names and paths are letters, digits, ``_``, ``.`` and ``-``; a ``.``
not followed by another word character ends a sentence, not the name. Placeholders
already in the text are left alone, so replacing is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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

_BEFORE = r"(?<![\w.-])"
_AFTER = r"(?![\w-]|\.[\w-])"

# A user called "USER" (or "[USER") must not turn "[USER]" into "[[USER]]" on a second
# pass.
_PLACEHOLDERS = re.compile(rf"({re.escape(USER)}|{re.escape(REDACTED)})")


@lru_cache(maxsize=32)
def identity(user: str, home: str) -> Callable[[str], str]:
    """Rules 5-6 for one user, compiled once: ``identity(user, home)(text)``."""
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
    # Every match contains one of these, case and all: text with neither is not scanned.
    literals = [name for name in (home, user) if name]

    def replace(text: str) -> str:
        if not any(literal in text for literal in literals):
            return text
        parts = _PLACEHOLDERS.split(text)
        for i in range(0, len(parts), 2):  # odd indexes are the placeholders
            for pattern in steps:
                parts[i] = pattern.sub(USER, parts[i])
        return "".join(parts)

    return replace
