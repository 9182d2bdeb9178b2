"""The backend interface, the lazy registry, and backend selection.

Owns: the ``Backend`` protocol every backend satisfies, the name → module registry
(modules are imported only when chosen, so ``import orchestrator`` never pulls in an
engine SDK), and ``--backend auto`` selection.
Does not own: any backend's behaviour.
"""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from orchestrator.core.errors import BackendUnavailable, ConfigError, did_you_mean
from orchestrator.core.spec import RunResult, SandboxSpec


@dataclass(frozen=True, slots=True)
class Availability:
    ok: bool
    reason: str  # why not, or a short description of what enforces the spec


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnosis:
    """What `codex-box doctor` shows for one backend."""

    available: bool
    reason: str
    facts: Mapping[str, str] = field(default_factory=dict)  # versions, features
    notes: tuple[str, ...] = ()  # host quirks and what codex-box does about them


class EgressPort(Protocol):
    """The egress proxy of a run, as a backend sees it (``netproxy.session``)."""

    def serve(self, listener: socket.socket) -> None:
        """Accept connections on ``listener``: a TCP socket the backend created on the
        loopback of the sandbox's own network namespace."""
        ...


@runtime_checkable
class Backend(Protocol):
    name: str

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        """Cheap, bounded probe: can this backend enforce ``spec`` here right now?
        Without a spec: can it run anything at all?"""
        ...

    def translate(self, spec: SandboxSpec) -> Mapping[str, Any]:
        """Pure: the exact request this backend would make for ``spec``."""
        ...

    def run(self, spec: SandboxSpec, *, egress: EgressPort | None = None) -> RunResult:
        """Run ``spec`` to completion; raise ``CodexBoxError`` if it cannot be enforced
        (``spec.egress`` without ``egress`` included: no proxy, no network)."""
        ...

    def gc(self) -> list[str]:
        """Remove what runs killed with SIGKILL left behind; names what was removed."""
        ...

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        """Bounded: availability for ``spec`` plus versions and host quirks, for doctor."""
        ...


# name → "module:Class". Imported on demand only.
REGISTRY: Mapping[str, str] = {
    "docker": "orchestrator.backends.docker:DockerBackend",
    "podman": "orchestrator.backends.podman.backend:PodmanBackend",
    "native": "orchestrator.backends.native.backend:LinuxBackend",
    "kubernetes": "orchestrator.backends.kubernetes:KubernetesBackend",
}
# `auto` tries these in order: an engine first (the strongest isolation a machine has
# ready), then this OS's own sandbox. Kubernetes is only ever chosen by name.
AUTO_ORDER = ("docker", "podman", "native")
CHOICES = ("auto", *REGISTRY)


@dataclass(frozen=True, slots=True)
class Selection:
    backend: Backend
    why: str  # e.g. "docker: engine 20.10 at unix:///var/run/docker.sock"
    skipped: tuple[str, ...] = ()  # "docker: not reachable (...)" for each backend passed over


def load(name: str) -> Backend:
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown backend '{name}'",
            hint=f"{did_you_mean(name, CHOICES)}choose one of: {', '.join(CHOICES)}",
        )
    module_name, _, class_name = REGISTRY[name].partition(":")
    backend: Backend = getattr(importlib.import_module(module_name), class_name)()
    return backend


def select(requested: str, spec: SandboxSpec | None = None) -> Selection:
    """The backend for ``requested`` (``auto`` or a name), or raise listing every reason."""
    names = AUTO_ORDER if requested == "auto" else (requested,)
    skipped: list[str] = []
    for name in names:
        backend = load(name)
        availability = backend.availability(spec)
        if availability.ok:
            return Selection(backend, f"{name}: {availability.reason}", tuple(skipped))
        skipped.append(f"{name}: {availability.reason}")
    raise BackendUnavailable(
        f"no backend can run this on {sys.platform}: " + "; ".join(skipped),
        hint="start dockerd or the Podman service (and `make images`), or run natively on "
        "Linux with Landlock (--backend native)",
    )
