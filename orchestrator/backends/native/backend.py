"""The native Linux backend: probe the kernel once → ``SandboxSpec`` → launch plan (pure)
→ launcher process.

Owns: ``LinuxBackend``, the registry's entry point: its probe (``host``), its pure
``translate`` (the plan, ``plan``), ``doctor``'s view of this kernel, refusing an egress
spec without a proxy, and removing what killed runs left (cgroups).
Does not own: the plan (``plan``), a run's process handling (``launch``), or what
happens inside the sandbox (``sandbox.linux.launcher``). Nothing here imports the
container backends: a native run loads only its own path.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.backends import cgroups
from orchestrator.backends.base import (
    Availability,
    Diagnosis,
    EgressPort,
    HostFacts,
    fail_with_full_probe,
)
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.spec import RunResult, SandboxSpec
from orchestrator.host.hostinfo import apparmor_enabled, cgroup_layout

from . import host
from .host import NativeFacts
from .launch import Launch
from .plan import translate

if TYPE_CHECKING:
    from .session import NativeSession


class LinuxBackend:
    name = "native"

    def probe(self, spec: SandboxSpec | None = None, *, quick: bool = False) -> NativeFacts:
        """This kernel's facts (the same for every spec), unavailable for ``spec`` when
        it asks for a limit this host cannot enforce (``cannot_enforce``)."""
        facts = host.probe(quick=quick)
        if spec is not None and facts.available and (problem := cannot_enforce(spec)):
            return dataclasses.replace(facts, available=False, reason=problem)
        return facts

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        return self.probe(spec).availability()

    def translate(self, spec: SandboxSpec, facts: HostFacts) -> Mapping[str, Any]:
        NativeFacts.of(facts)  # the plan depends on no host fact: the launcher checks them
        return translate(spec)

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        probed = self.probe(spec)
        facts = {
            "kernel": os.uname().release,
            "landlock ABI": str(probed.landlock_abi),
            "seccomp": host.libseccomp_version(),
            "user namespaces": "no" if probed.user_namespaces else "yes",
            "cgroups": cgroup_layout(),
            "apparmor": "yes" if apparmor_enabled() else "no (not in this kernel)",
        }
        notes: tuple[str, ...] = ()
        if os.geteuid() != 0:
            notes = (_not_root_note(),)
        return Diagnosis(available=probed.available, reason=probed.reason, facts=facts, notes=notes)

    def run(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> RunResult:
        """No host fact is needed here: the launcher refuses what this kernel cannot
        enforce, so ``facts`` None is not probed for."""
        if facts is not None:
            NativeFacts.of(facts)
        if spec.egress is not None and egress is None:  # fail closed: no proxy, no run
            raise SandboxSetupError(
                "this profile's network goes through the egress proxy, but none was given",
                hint="run through codex-box (Runner), which starts the proxy",
            )
        try:
            return Launch(spec, egress, backend=self.name).execute()
        except SandboxSetupError as exc:  # the launcher fails before the command runs
            fail_with_full_probe(self.name, exc, host.probe)

    def start_session(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> NativeSession:
        from .session import NativeSession  # a one-shot run never loads it: start-up time

        if facts is not None:
            NativeFacts.of(facts)
        try:
            return NativeSession(spec, egress)
        except SandboxSetupError as exc:  # the sandbox could not be built
            fail_with_full_probe(self.name, exc, host.probe)

    def gc(self) -> list[str]:
        return cgroups.sweep_stale()


def cannot_enforce(spec: SandboxSpec) -> str | None:
    """Why a native run of ``spec`` would have less than it asks (then it is refused
    before anything starts, with this reason; the launcher refuses too, as a backstop).

    - ``--cpus``: the native sandbox has no CPU quota (it was silently ignored).
    - an explicit ``--memory`` without a cgroup codex-box can write (a normal user
      without a delegated cgroup): rlimits do not bound a process tree, tmpfs or shared
      memory. The default cap is dropped instead (``memory_is_default``).
    - ``--pids`` as root without a cgroup: the kernel never applies RLIMIT_NPROC to
      uid 0. (A normal user gets RLIMIT_NPROC, exact in the run's own user namespace.)
    """
    if spec.devcontainer is not None:
        return f"runs no container image: {spec.devcontainer} needs --backend docker or podman"
    limits = spec.limits
    if limits.cpus is not None:
        return "has no CPU quota: --cpus needs --backend docker or podman (or drop --cpus)"
    memory = limits.memory_bytes is not None and not limits.memory_is_default
    pids_as_root = limits.pids is not None and os.geteuid() == 0
    if not (memory or pids_as_root):
        return None
    why = cgroups.why_none()
    if why is None:
        return None
    if memory:
        return (
            f"cannot enforce --memory without a cgroup codex-box can write ({why}): "
            "run as root, or delegate a cgroup v2 subtree to this user"
        )
    return (
        f"cannot limit processes for uid 0 without a cgroup ({why}): give codex-box a "
        "writable cgroup, or pass --pids 0"
    )


def _not_root_note() -> str:
    why = cgroups.why_none()
    if why is None:
        return "not root, with a cgroup codex-box can write: limits work as for root"
    return (
        f"not root, no cgroup codex-box can write ({why}): --pids is RLIMIT_NPROC (exact: "
        "each run has its own user namespace; a trusted run, which has none, counts all "
        "your processes), an explicit --memory is refused (exit 125), the default memory "
        "cap is dropped"
    )
