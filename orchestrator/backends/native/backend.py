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
        # The same for every spec: the plan refuses what it cannot do.
        return host.probe(quick=quick)

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
            notes = ("not root: --memory needs a cgroup codex-box can write, else it is refused",)
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
