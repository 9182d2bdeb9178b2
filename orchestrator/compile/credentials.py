"""Brokered secrets for one run: a fresh placeholder per secret, and the variables that
hold them inside the sandbox.

Owns: making placeholders (the preset's prefix and length, the rest random from the
OS's CSPRNG, unique per run so one run's placeholder means nothing in another) and
refusing ``--env`` for a brokered name (the real value would be handed in after all).
Does not own: the declarations (``profiles.secrets``), the values
(``runner.credentials``) or the swap (``netproxy.broker``).
"""

from __future__ import annotations

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
        BrokeredSecret(name=b.name, hosts=b.hosts, inject=b.inject, placeholder=placeholder(b))
        for b in bindings
    )


def check_passthrough(secrets_: Iterable[BrokeredSecret], passthrough: Iterable[str]) -> None:
    names = {s.name for s in secrets_}
    for item in passthrough:
        name = item.partition("=")[0]
        if name in names:
            raise UsageError(
                f"--env {name}: {name} is a brokered secret of this profile; the sandbox "
                "gets a placeholder and the egress proxy adds the real value",
                hint=f"drop --env {name}",
            )
