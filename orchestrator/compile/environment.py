"""Which environment variables reach the sandboxed command.

Owns: withholding secret-looking host variables and ``--env`` handling.
Does not own: which names are secret (``core.secrets``, the same rule the audit log's
redaction uses), or anything a backend adds for its own plumbing.

Host variables whose names look like credentials (or whose values hold a URL with a
password) are withheld unless the user names them with ``--env NAME``: an agent's tool
call should not inherit the keys of the person who launched it by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from orchestrator.core.errors import UsageError
from orchestrator.core.secrets import carries_credentials, secret_name

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_secret(name: str, value: str = "") -> bool:
    """A host variable the sandbox does not get unless ``--env`` names it."""
    return secret_name(name) or carries_credentials(value)


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
