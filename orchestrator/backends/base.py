"""The backend interface, the lazy registry, and backend selection.

Owns: the ``Backend`` protocol every backend satisfies, the name → module registry
(modules are imported only when chosen, so ``import orchestrator`` never pulls in an
engine SDK), and ``--backend auto`` selection.
Does not own: any backend's behaviour.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import BackendUnavailable, ConfigError, did_you_mean
from ..spec import RunResult, SandboxSpec


@dataclass(frozen=True, slots=True)
class Availability:
    ok: bool
    reason: str  # why not, or a short description of what enforces the spec


@runtime_checkable
class Backend(Protocol):
    name: str

    def availability(self) -> Availability:
        """Cheap probe: can this backend enforce specs on this machine right now?"""
        ...

    def translate(self, spec: SandboxSpec) -> Mapping[str, Any]:
        """Pure: the exact request this backend would make for ``spec``."""
        ...

    def run(self, spec: SandboxSpec) -> RunResult:
        """Run ``spec`` to completion; raise ``CodexBoxError`` if it cannot be enforced."""
        ...


# name → "module:Class". Imported on demand only.
REGISTRY: Mapping[str, str] = {
    "native": "orchestrator.backends.linux:LinuxBackend",
}
# `auto` tries these in order (Docker and Podman join when their issues land).
AUTO_ORDER = ("native",)
CHOICES = ("auto", *REGISTRY)


def load(name: str) -> Backend:
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown backend '{name}'",
            hint=f"{did_you_mean(name, CHOICES)}choose one of: {', '.join(CHOICES)}",
        )
    module_name, _, class_name = REGISTRY[name].partition(":")
    backend: Backend = getattr(importlib.import_module(module_name), class_name)()
    return backend


def select(requested: str) -> Backend:
    """The backend for ``requested`` (``auto`` or a name), or raise listing every reason."""
    names = AUTO_ORDER if requested == "auto" else (requested,)
    reasons = []
    for name in names:
        backend = load(name)
        availability = backend.availability()
        if availability.ok:
            return backend
        reasons.append(f"{name}: {availability.reason}")
    raise BackendUnavailable(
        f"no backend can enforce the sandbox on this machine ({sys.platform}): "
        + "; ".join(reasons),
        hint="run `codex-box run --backend native` on a Linux host with Landlock, "
        "or install Docker/Podman",
    )
