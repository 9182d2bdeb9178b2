"""Which environment variables reach the sandboxed command.

Owns: the secret-name filter and ``--env`` handling.
Does not own: anything a backend adds for its own plumbing.

Host variables whose names look like credentials are withheld unless the user names
them with ``--env NAME``: an agent's tool call should not inherit the keys of the
person who launched it by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from orchestrator.core.errors import UsageError

SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASS", "CREDENTIAL", "JWT")
# Matched as whole words only: GIT_AUTHOR_NAME is not a secret, NPM_AUTH and GH_PAT are.
SECRET_WORDS = frozenset({"AUTH", "AUTHORIZATION", "COOKIE", "PAT", "PWD"})
NOT_SECRET = frozenset({"PWD", "OLDPWD"})  # the working directories, not passwords
# A value that carries credentials whatever its name: scheme://user:password@host
_CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_secret(name: str, value: str = "") -> bool:
    upper = name.upper()
    if upper in NOT_SECRET:
        return False
    words = set(re.split(r"[^A-Z0-9]+", upper))
    return (
        any(marker in upper for marker in SECRET_MARKERS)
        or bool(words & SECRET_WORDS)
        or bool(_CREDENTIAL_URL.search(value))
    )


def sandbox_environment(
    host: Mapping[str, str], *, passthrough: Iterable[str], extra: Mapping[str, str]
) -> dict[str, str]:
    """Host env minus secret-looking names, plus ``--env NAME`` / ``--env NAME=VALUE``."""
    env = {k: v for k, v in host.items() if not looks_secret(k, v)}
    for item in passthrough:
        name, sep, value = item.partition("=")
        if not _NAME.match(name):
            raise UsageError(
                f"--env {item!r}: '{name}' is not a variable name",
                hint="use --env NAME or --env NAME=VALUE",
            )
        if sep:
            env[name] = value
        elif name in host:
            env[name] = host[name]
        else:
            raise UsageError(
                f"--env {name}: not set in this environment",
                hint=f"export {name} first, or pass --env {name}=VALUE",
            )
    env.update(extra)
    return env
