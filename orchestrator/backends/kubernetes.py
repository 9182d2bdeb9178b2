"""The Kubernetes backend: not built yet, and says so.

Owns: an honest "not available" for ``--backend kubernetes`` (and in ``doctor``), so
that naming it fails with a clear reason instead of an unknown-backend error.
Does not own: Pod manifests or a cluster client (a later issue).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.core.errors import BackendUnavailable
from orchestrator.core.spec import RunResult, SandboxSpec

from .base import Availability, Diagnosis, EgressPort, HostFacts, SessionSandbox

REASON = "not built yet: codex-box cannot run on a cluster in this version"


class KubernetesBackend:
    name = "kubernetes"

    def probe(self, spec: SandboxSpec | None = None, *, quick: bool = False) -> HostFacts:
        return HostFacts(available=False, reason=REASON)

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        return self.probe(spec).availability()

    def translate(self, spec: SandboxSpec, facts: HostFacts) -> Mapping[str, Any]:
        raise BackendUnavailable(f"kubernetes backend {REASON}", hint="use --backend auto")

    def run(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> RunResult:
        raise BackendUnavailable(f"kubernetes backend {REASON}", hint="use --backend auto")

    def start_session(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> SessionSandbox:
        raise BackendUnavailable(f"kubernetes backend {REASON}", hint="use --backend auto")

    def gc(self) -> list[str]:
        return []

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        return Diagnosis(available=False, reason=REASON)
