"""Brokered secrets: credentials a sandbox uses without ever holding them.

Owns: the two shapes a brokered secret takes — ``SecretBinding``, as a profile declares
it (where the real value comes from, the hosts it is bound to, how it is injected), and
``BrokeredSecret``, as one run's egress proxy holds it (the binding's hosts and the
run's unique placeholder; never the value). The real value lives only in the proxy's
memory (``netproxy.broker``), read at launch (``runner.credentials``).
Does not own: parsing (``profiles.secrets``), presets (``profiles.secrets``), making
placeholders (``compile.credentials``) or injecting (``netproxy.broker``).
"""

from __future__ import annotations

from dataclasses import dataclass

# How a placeholder may be swapped for the real value, and only in request headers:
#   header      anywhere in a header's value (Authorization: Bearer/token …, X-Api-Key)
#   basic-auth  the password of ``Authorization: Basic`` (git over HTTPS, twine)
INJECT_MODES = ("header", "basic-auth")
SOURCE_KINDS = ("env", "file", "command")


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretBinding:
    name: str  # the variable the sandbox sees (GH_TOKEN)
    source: tuple[str, ...]  # ("env", NAME) | ("file", PATH) | ("command", *argv)
    hosts: tuple[str, ...]  # domains.py patterns, exact or *.suffix; never *
    inject: tuple[str, ...]  # INJECT_MODES
    prefix: str = ""  # the placeholder's shape: ghp_, pypi-, npm_, sk-, sk-ant-api03-
    length: int = 40  # the placeholder's length, prefix included

    def shown_source(self) -> str:
        return shown_source(self.source)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokeredSecret:
    """One secret as the run's proxy knows it: no value (the spec is printed, logged
    and handed to backends), only what to look for and where it may go."""

    name: str
    hosts: tuple[str, ...]
    inject: tuple[str, ...]
    placeholder: str  # unique per run; what the sandbox's variable holds
    # Where the runner reads the value (a variable's name, a path, a command): chosen
    # once by compile, so the runner never redoes the profile-over-config choice.
    source: tuple[str, ...] = ()

    def shown_source(self) -> str:
        return shown_source(self.source)


def shown_source(source: tuple[str, ...]) -> str:
    """``env:NAME``, ``file:PATH``, ``command:argv…`` (for errors and ``explain``)."""
    kind, *rest = source
    return f"{kind}:{' '.join(rest)}" if kind == "command" else f"{kind}:{rest[0]}"
