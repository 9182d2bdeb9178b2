"""The backend interface, the lazy registry, and backend selection.

Owns: the ``Backend`` protocol every backend satisfies, ``HostFacts`` (what a backend's
one probe found, handed to its pure ``translate`` and its ``run``), the name → module
registry (modules are imported only when chosen, so ``import orchestrator`` never pulls
in an engine SDK), and ``--backend auto`` selection, which probes each candidate once.
Does not own: any backend's behaviour, or what each backend's facts hold (its own
``HostFacts`` subclass).
"""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, Self, runtime_checkable

from orchestrator.core.errors import BackendUnavailable, CodexBoxError, ConfigError, did_you_mean
from orchestrator.core.spec import RunResult, SandboxSpec

if TYPE_CHECKING:  # a one-shot run never loads the session vocabulary
    from orchestrator.core.session import ExecCall, ExecEnd


@dataclass(frozen=True, slots=True)
class Availability:
    ok: bool
    reason: str  # why not, or a short description of what enforces the spec


@dataclass(frozen=True, slots=True, kw_only=True)
class HostFacts:
    """What one backend's probe found on this host. Each backend subclasses it with the
    facts its ``translate`` and ``run`` decide from (Docker: the host's AppArmor;
    Podman: the probed service; native: the kernel's sandboxing features), so that
    neither looks at the host again and ``translate`` stays a pure function."""

    available: bool  # can this backend enforce the spec it was probed for, here, now
    reason: str  # why not, or a short description of what enforces the spec

    def availability(self) -> Availability:
        return Availability(self.available, self.reason)

    @classmethod
    def of(cls, facts: HostFacts) -> Self:
        """``facts`` as this backend's own kind: facts probed by another backend (or
        none at all) are a caller's mistake, never something to run on."""
        if not isinstance(facts, cls):
            raise TypeError(
                f"{cls.__name__} expected (from the same backend's probe), "
                f"got {type(facts).__name__}: {facts.reason}"
            )
        return facts


# A hand-made Selection's facts: no backend accepts them (stubs in tests ignore them).
NOT_PROBED = HostFacts(available=False, reason="not probed")


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


class SessionSandbox(Protocol):
    """A sandbox that lives: started once by ``Backend.start_session``, then running
    each exec with exactly the confinement it was built with (same namespaces,
    Landlock, seccomp, user, mounts; nothing an exec asks for can widen them).
    Held by the session's keeper (``runner.sessions``); every method is thread-safe."""

    backend: str

    def exec(
        self,
        call: ExecCall,
        stdio: tuple[int, int, int],
        *,
        on_end: Callable[[ExecEnd], None] | None = None,
    ) -> ExecEnd:
        """Run ``call`` with ``stdio`` as its stdin, stdout and stderr (the caller keeps
        its own copies) until it ends — and its whole process tree with it, unless
        ``call.detach`` (then return once it started, and call ``on_end`` from another
        thread when it ended; never for one the session's stop ended). A timeout ends
        the tree: 124."""
        ...

    def signal(self, exec_id: str, signum: int) -> None:
        """Pass ``signum`` to a running exec's command (Ctrl-C at the client); never raises."""
        ...

    def kill(self, exec_id: str) -> None:
        """End a running exec's whole process tree now (its client went away); never raises."""
        ...

    def alive(self) -> bool:
        """False once the sandbox died (its root was killed); the keeper then stops."""
        ...

    def detached(self) -> list[dict[str, Any]]:
        """The detached execs: ``{"exec_id", "argv", "running", "exit_code"}`` each."""
        ...

    def stop(self) -> None:
        """End every process of the session and remove what it made (container, cgroup,
        mounts); idempotent, never raises for what is already gone."""
        ...


@runtime_checkable
class Backend(Protocol):
    name: str

    def probe(self, spec: SandboxSpec | None = None, *, quick: bool = False) -> HostFacts:
        """Cheap, bounded, and made once per run (by ``select``, or ``named``): can this backend
        enforce ``spec`` here right now, and the host facts its ``translate`` and ``run``
        need. Without a spec: can it run anything at all? Never raises for an absent
        engine or feature: that is ``available=False`` with the reason.

        ``quick``: the user named this backend, so there is nothing to choose between;
        skip every check the run itself fails closed on with the same one-line reason
        (an engine that does not answer, a missing image, user namespaces the kernel
        refuses), keeping only the facts ``translate`` needs. Never skips a check whose
        absence could let a run start weaker than its profile asks."""
        ...

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        """``probe(spec)``'s verdict alone (``doctor`` asks it per profile)."""
        ...

    def translate(self, spec: SandboxSpec, facts: HostFacts) -> Mapping[str, Any]:
        """Pure: the exact request this backend would make for ``spec`` on the host
        ``facts`` describe (``facts`` from this backend's own ``probe``)."""
        ...

    def run(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> RunResult:
        """Run ``spec`` to completion on the host ``facts`` describe, without probing
        it again; raise ``CodexBoxError`` if it cannot be enforced (``spec.egress``
        without ``egress`` included: no proxy, no network). ``facts`` None: the backend
        looks up what its run needs itself (a caller that did not ``select``)."""
        ...

    def start_session(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> SessionSandbox:
        """Build ``spec``'s sandbox (its ``argv`` is empty) and keep it running for
        execs; raise ``CodexBoxError`` as ``run`` does when it cannot be enforced."""
        ...

    def gc(self) -> list[str]:
        """Remove what runs killed with SIGKILL left behind; names what was removed."""
        ...

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        """Bounded: the probe for ``spec`` plus versions and host quirks, for doctor."""
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
    facts: HostFacts = NOT_PROBED  # what ``backend``'s probe found: pass to translate and run


def load(name: str) -> Backend:
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown backend '{name}'",
            hint=f"{did_you_mean(name, CHOICES)}choose one of: {', '.join(CHOICES)}",
        )
    module_name, _, class_name = REGISTRY[name].partition(":")
    backend: Backend = getattr(importlib.import_module(module_name), class_name)()
    return backend


def select(
    requested: str, spec: SandboxSpec | None = None, *, order: Sequence[str] | None = None
) -> Selection:
    """The backend for ``requested`` (``auto`` or a name), or raise listing every reason.
    ``order``: the names ``auto`` tries, when not ``AUTO_ORDER`` (each probed at most once).
    A named backend is probed ``quick``: there is no other to fall back to, and its run
    refuses what the full probe would have found."""
    names = order or (AUTO_ORDER if requested == "auto" else (requested,))
    skipped: list[str] = []
    for name in names:
        backend = load(name)
        facts = backend.probe(spec, quick=requested != "auto")
        if facts.available:
            return Selection(backend, f"{name}: {facts.reason}", tuple(skipped), facts)
        skipped.append(f"{name}: {facts.reason}")
    raise unavailable(skipped)


def fail_with_full_probe(name: str, exc: CodexBoxError, probe: Callable[[], HostFacts]) -> NoReturn:
    """Re-raise ``exc``, a run that failed before anything ran, after a ``quick`` probe
    skipped the checks it may be about (no engine, no image, no user namespaces): the
    full ``probe``'s reason, in the words auto selection uses, when it finds the backend
    unavailable; else ``exc`` itself."""
    full = probe()
    if not full.available:
        raise unavailable([f"{name}: {full.reason}"]) from exc
    raise exc


def unavailable(reasons: Sequence[str]) -> BackendUnavailable:
    """The one error for "nothing here can run it": each backend tried, with why not."""
    return BackendUnavailable(
        f"no backend can run this on {sys.platform}: " + "; ".join(reasons),
        hint="start dockerd or the Podman service (and `make images`), or run natively on "
        "Linux with Landlock (--backend native)",
    )


def named(name: str, spec: SandboxSpec | None = None) -> Selection:
    """The backend called ``name`` and its probe, whether or not it could run ``spec``
    here (``--print-spec``: show the request a named backend would make anyway)."""
    backend = load(name)
    facts = backend.probe(spec)
    state = "" if facts.available else "cannot run here: "
    return Selection(backend, f"{name}: named ({state}{facts.reason})", (), facts)
