"""Questions about a run that launch nothing: which profile and backend would apply here.

Owns: compiling a profile's spec *without a command* (``--show-profile``, ``doctor``) —
the same resolve and compile a run does, with no policy verdict and no launch.
Does not own: printing (front doors), probing (each backend).
"""

from __future__ import annotations

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.spec import SandboxSpec
from orchestrator.profiles.store import BUILTIN_NAMES

from .context import HostContext
from .pipeline import Runner, RunRequest
from .selection import choose


def spec_for(context: HostContext, *, profile: str | None, workspace: str | None) -> SandboxSpec:
    """The spec a run of ``profile`` in ``workspace`` would get (raises like a run)."""
    request = RunRequest(argv=(), profile=profile, workspace=workspace, trust_opt_in=True)
    return Runner(context, request).compile(preview=True)[1]


def backend_for(
    context: HostContext, *, profile: str | None, workspace: str | None, backend: str | None
) -> str:
    """Which backend a run here would use and why, in one line (or why none)."""
    try:
        selection = choose(
            context, backend, spec_for(context, profile=profile, workspace=workspace)
        )
    except CodexBoxError as exc:
        return f"none — {exc.one_line()}"
    if not selection.skipped:
        return selection.why
    passed = ", ".join(s.partition(":")[0] for s in selection.skipped)
    return f"{selection.why} (skipped {passed}: `codex-box doctor` says why)"


def builtin_specs(context: HostContext) -> dict[str, SandboxSpec]:
    """Each built-in profile's spec here; a profile that does not compile is left out."""
    specs = {}
    for profile in BUILTIN_NAMES:
        try:
            specs[profile] = spec_for(context, profile=profile, workspace=None)
        except CodexBoxError:
            continue
    return specs
