"""Run the real pipeline (resolve → compile → audit) against a stub backend that runs
nothing: the records a launch writes, without an engine or a kernel feature."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestrator.backends.base import Selection
from orchestrator.core.spec import RunResult, SandboxSpec
from orchestrator.runner.context import HostContext
from orchestrator.runner.pipeline import Outcome, Prepared, Runner, RunRequest


class StubBackend:
    name = "stub"

    def __init__(self) -> None:
        self.specs: list[SandboxSpec] = []

    def run(self, spec: SandboxSpec, facts: object = None, **_: object) -> RunResult:  # egress=…
        self.specs.append(spec)
        return RunResult(exit_code=0, backend=self.name, duration_s=0.0)


def stub_run(
    environ: Mapping[str, str],
    workspace: Path,
    *,
    profile: str | None = None,
    trust: bool = False,
    backend: object | None = None,
) -> Outcome:
    """A whole Runner.run() in ``workspace`` whose backend is ``backend`` (default: a
    StubBackend that records the spec and runs nothing)."""
    runner = Runner(
        HostContext.from_environ(environ, cwd=str(workspace)),
        RunRequest(argv=("true",), profile=profile, trust_opt_in=trust),
    )
    resolution, spec = runner.compile()
    backend = backend if backend is not None else StubBackend()
    prepared = Prepared(
        resolution=resolution,
        spec=spec,
        backend=backend,  # type: ignore[arg-type]
        selection=Selection(backend, "stub: no engine"),  # type: ignore[arg-type]
    )
    return runner.run(prepared)
