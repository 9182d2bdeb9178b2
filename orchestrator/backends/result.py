"""How a run's ending becomes a ``RunResult``, the same on every backend.

Owns: the rules every backend applies to an ended run — a timeout is exit 124 (as
``timeout(1)``) whatever the command's own status, the one-line reason a run ended
early (timeout, OOM kill), and which signal ended the command when codex-box sent it.
Does not own: finding out how a run ended (each backend's ``run``: an engine's wait and
inspect, the native launcher's status pipe and cgroup), or the kernel log as witness of
an OOM kill an engine did not notice (``containers.common``).
"""

from __future__ import annotations

from orchestrator.core.spec import RunResult, SandboxSpec

TIMEOUT_EXIT = 124  # as timeout(1)


def ending_detail(spec: SandboxSpec, *, timed_out: bool, oom: bool) -> str | None:
    """The one-line reason a run ended early, the same on every backend."""
    if timed_out:
        return f"timed out after {spec.limits.timeout_s:g}s; killed"
    if oom:
        return "killed by the OOM killer (memory limit reached)"
    return None


def signal_of(status_code: int, *, sent: int | None) -> int | None:
    """The signal that ended the command, when we know it: one we sent and whose
    128+N status came back, or SIGKILL from the OOM killer (reported separately)."""
    return sent if sent is not None and status_code == 128 + sent else None


def finished(
    spec: SandboxSpec,
    *,
    backend: str,
    exit_code: int,
    duration_s: float,
    signal: int | None,
    timed_out: bool,
    oom_killed: bool,
    detail: str = "",
) -> RunResult:
    """The result of a run that ended: ``exit_code`` as the backend saw it (124 on a
    timeout), and the early-ending reason in place of the backend's own ``detail``."""
    return RunResult(
        exit_code=TIMEOUT_EXIT if timed_out else exit_code,
        backend=backend,
        duration_s=duration_s,
        signal=signal,
        timed_out=timed_out,
        oom_killed=oom_killed,
        detail=ending_detail(spec, timed_out=timed_out, oom=oom_killed) or detail,
    )
