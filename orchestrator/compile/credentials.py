"""Brokered secrets for one run: a fresh placeholder per secret, and the variables that
hold them inside the sandbox.

Owns: making placeholders (the preset's prefix and length, the rest random from the
OS's CSPRNG, unique per run so one run's placeholder means nothing in another) and
refusing ``--env`` for a brokered name (the real value would be handed in after all).
Does not own: the declarations (``profiles.secrets``), the values
(``runner.credentials``) or the swap (``netproxy.broker``).
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Iterable

from orchestrator.core.brokered import BrokeredSecret, SecretBinding
from orchestrator.core.errors import UsageError

_ALPHABET = string.ascii_letters + string.digits
MIN_RANDOM = 32  # characters of randomness in every placeholder, whatever its shape


def placeholder(binding: SecretBinding) -> str:
    size = max(binding.length - len(binding.prefix), MIN_RANDOM)
    return binding.prefix + "".join(secrets.choice(_ALPHABET) for _ in range(size))


def brokered_secrets(bindings: Iterable[SecretBinding]) -> tuple[BrokeredSecret, ...]:
    return tuple(
        BrokeredSecret(
            name=b.name,
            hosts=b.hosts,
            inject=b.inject,
            placeholder=placeholder(b),
            source=b.source,
        )
        for b in bindings
    )


def check_passthrough(bindings: Iterable[SecretBinding], passthrough: Iterable[str]) -> None:
    """``--env`` may name neither a brokered variable nor the variable a value is read
    from: either would hand the real value in after all."""
    names = {b.name: b.name for b in bindings}
    names |= {name: b.name for b in bindings for name in source_variables([b])}
    for item in passthrough:
        name = item.partition("=")[0]
        if name in names:
            secret = names[name]
            what = "a brokered secret" if name == secret else f"the source of secret {secret}"
            raise UsageError(
                f"--env {name}: {name} is {what} of this profile; the sandbox gets a "
                "placeholder and the egress proxy adds the real value",
                hint=f"drop --env {name}",
            )


def source_variables(bindings: Iterable[SecretBinding]) -> list[str]:
    """The host variables real values are read from (``from: env:NAME``)."""
    return [b.source[1] for b in bindings if b.source[0] == "env"]


def source_files(bindings: Iterable[SecretBinding], *, home: str) -> list[str]:
    """The files real values are read from (``from: file:PATH``), as the sandbox would
    reach them (symlinks resolved), where they exist: for ``filesystem.deny_read``."""
    found = []
    for b in bindings:
        if b.source[0] != "file":
            continue
        path = b.source[1]
        path = os.path.join(home, path[2:]) if path.startswith("~/") else path
        real = os.path.realpath(path)  # a mask goes on the file, never on a link to it
        if os.path.isfile(real):
            found.append(real)
    return found
