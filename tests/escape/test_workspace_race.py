"""A concurrent sandbox swaps a component of the next run's workspace for a symlink.

Issue 17, part 1: one `workspace` run loops renameat2(RENAME_EXCHANGE) between `WS/sub`
and `WS/sub.alt` (a symlink to CODEX_HOME) while another run with `--workspace WS/sub`
launches. Every use of the path after compile checked it — placeholders, binds, the
working directory, an engine's own bind — must be the directory that was checked, or
the run is refused (125). Judged on the host: CODEX_HOME gains nothing.

The deterministic tests swap at the worst moments (after compile; after the placeholders,
just before the backend); the race test repeats the real attack for a bounded time.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.errors import CodexBoxError, Refused, SandboxSetupError
from orchestrator.runner import pipeline as runner_module
from orchestrator.runner.context import HostContext
from orchestrator.runner.pipeline import Runner, RunRequest
from tests.conftest import CODEX_BOX, SANDBOX_PYTHON

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_EXCHANGE = 2
RACE_SECONDS = 40


def exchange(a: Path, b: Path) -> None:
    if _libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@pytest.fixture
def layout() -> Iterator[dict[str, Path]]:
    """/var/tmp (not /tmp, which write profiles replace natively): WS, WS/sub, the
    link WS/sub.alt → CODEX_HOME, and CODEX_HOME with a policy in audit-only mode."""
    root = Path("/var/tmp") / f"codex-box-race-{uuid.uuid4().hex[:10]}"
    codex_home = root / "codex-home"
    ws = root / "ws"
    (ws / "sub").mkdir(parents=True)
    codex_home.mkdir()
    (codex_home / "config.toml").write_text('[policy]\nmode = "audit-only"\n')
    (ws / "sub.alt").symlink_to(codex_home)
    try:
        yield {"root": root, "ws": ws, "sub": ws / "sub", "alt": ws / "sub.alt", "ch": codex_home}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _env(layout: dict[str, Path]) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(layout["root"]),
        "CODEX_HOME": str(layout["ch"]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _planted(codex_home: Path) -> list[str]:
    """What a sandbox or codex-box itself made in CODEX_HOME through the link."""
    return sorted(
        n for n in ("m", ".git", ".codex", ".codex-profile") if (codex_home / n).exists()
    )


def _run_in_process(
    layout: dict[str, Path], backend: str, script: str = "echo pwned > m"
) -> None:
    request = RunRequest(
        argv=("sh", "-c", script),
        profile="workspace",
        workspace=str(layout["sub"]),
        backend=backend,
        approve=True,
    )
    Runner(HostContext.from_environ(_env(layout), cwd=str(layout["sub"])), request).run()


def _swap_after(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, swap: Callable[[], None]
) -> None:
    original = getattr(owner, name)

    def swapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        swap()
        return result

    monkeypatch.setattr(owner, name, swapped)


def _swap_before(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, swap: Callable[[], None]
) -> None:
    original = getattr(owner, name)

    def swapped(*args: Any, **kwargs: Any) -> Any:
        swap()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, swapped)


def test_a_workspace_swapped_for_a_link_after_compile_is_refused_before_any_placeholder(
    backend: str, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _swap_after(
        monkeypatch, runner_module, "compile_spec", lambda: exchange(layout["sub"], layout["alt"])
    )
    with pytest.raises(SandboxSetupError, match="changed while codex-box launched"):
        _run_in_process(layout, backend)
    assert _planted(layout["ch"]) == [], "codex-box wrote into CODEX_HOME through the link"


def _backend_class(backend: str) -> Any:
    if backend == "native":
        from orchestrator.backends.native.backend import LinuxBackend

        return LinuxBackend
    if backend == "docker":
        from orchestrator.backends.docker import DockerBackend

        return DockerBackend
    from orchestrator.backends.podman.backend import PodmanBackend

    return PodmanBackend


def _victim_swap(layout: dict[str, Path]) -> tuple[Path, Callable[[], None]]:
    """A directory outside the workspace that sub.alt now links to, and the swap that
    first gives it the placeholders' names (so no engine stops at a missing bind
    source), then exchanges WS/sub with the link."""
    victim = layout["root"] / "victim"
    victim.mkdir()
    layout["alt"].unlink()
    layout["alt"].symlink_to(victim)

    def mirror_then_swap() -> None:
        for entry in layout["sub"].iterdir():  # the placeholders, as files or directories
            if entry.is_dir():
                (victim / entry.name).mkdir()
            else:
                (victim / entry.name).write_text("")
        exchange(layout["sub"], layout["alt"])

    return victim, mirror_then_swap


def test_a_workspace_swapped_after_its_placeholders_is_refused_by_the_backend(
    backend: str, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The placeholders are made in the real directory; then the name becomes a link
    (to a directory that has every protected name, so no engine stops at a missing
    bind source) just before the backend binds it. Native: the launcher reopens the path
    without following symlinks and compares inodes. Containers: the engine follows the
    link, and the container's own view is checked against the inode before (Podman) or
    at once after (Docker) start."""
    victim, swap = _victim_swap(layout)
    _swap_before(monkeypatch, _backend_class(backend), "run", swap)
    try:
        _run_in_process(layout, backend)
    except SandboxSetupError as exc:
        assert "checked" in str(exc) or "changed" in str(exc), str(exc)
    else:
        pytest.fail("the run went ahead on a swapped workspace")
    assert not (victim / "m").exists(), "the sandbox wrote through the link"


def test_a_workspace_that_crosses_a_planted_symlink_is_refused_naming_its_target(
    layout: dict[str, Path]
) -> None:
    """An earlier run may replace WS/sub with a link to any directory: a later
    --workspace WS/sub is refused, and the message names the real path to pass."""
    ran = subprocess.run(
        [CODEX_BOX, "run", "--backend", "native", "--profile", "workspace",
         "--workspace", str(layout["alt"]), "--", "true"],
        env=_env(layout), capture_output=True, text=True, timeout=60,
    )
    assert ran.returncode == 126, ran.stderr
    assert "crosses a symlink" in ran.stderr and str(layout["ch"]) in ran.stderr
    assert _planted(layout["ch"]) == []


def test_a_read_only_workspace_may_be_reached_through_a_symlink(
    native_available: None, layout: dict[str, Path]
) -> None:
    """Nothing is written through a read-only workspace: links stay usable there."""
    (layout["ws"] / "ro-link").symlink_to(layout["sub"])
    ran = subprocess.run(
        [CODEX_BOX, "run", "--backend", "native", "--profile", "offline",
         "--workspace", str(layout["ws"] / "ro-link"), "--", "pwd"],
        env=_env(layout), capture_output=True, text=True, timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(layout["sub"])


SWAPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, seconds = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end and not os.path.exists(sys.argv[4]):
    libc.renameat2(-100, a, -100, b, 2)
    n += 1
print(n)
"""


def test_a_concurrent_sandbox_swapping_the_workspace_never_reaches_codex_home(
    native_available: None, layout: dict[str, Path]
) -> None:
    """The attack as reported, bounded: a `workspace` sandbox on WS swaps WS/sub with a
    link to CODEX_HOME for RACE_SECONDS while runs with --workspace WS/sub write `m`.
    Each of those runs either writes WS/sub (or its alias after a swap) or is refused;
    CODEX_HOME never gains a file."""
    stop = layout["root"] / "stop"
    swapper = subprocess.Popen(
        [CODEX_BOX, "run", "--backend", "native", "--profile", "workspace",
         "--workspace", str(layout["ws"]), "--approve", "--",
         SANDBOX_PYTHON, "-c", SWAPPER, "sub", "sub.alt", str(RACE_SECONDS), str(stop)],
        cwd=layout["ws"], env=_env(layout), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + RACE_SECONDS - 2
    attempts = 0
    try:
        while time.monotonic() < deadline and attempts < 400:
            attempts += 1
            try:
                _run_in_process(layout, "native")
                outcomes["ran"] = outcomes.get("ran", 0) + 1
            except (SandboxSetupError, Refused) as exc:
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            except CodexBoxError as exc:  # e.g. the workspace was the link at compile
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            assert _planted(layout["ch"]) == [], f"escaped after {attempts} attempts: {outcomes}"
    finally:
        stop.mkdir(exist_ok=True)
        out, err = swapper.communicate(timeout=RACE_SECONDS + 30)
    swaps = int(out.strip() or 0) if out.strip().isdigit() else 0
    assert swaps > 100, f"the swapper did not run ({out!r} {err[-500:]!r})"
    assert outcomes.get("ran", 0) > 0, f"no run went ahead at all: {outcomes}"
    print(f"{attempts} attempts, {swaps} swaps: {outcomes}", file=sys.stderr)


def test_without_staging_docker_kills_a_container_whose_bind_was_swapped(
    docker_available: None, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker without root cannot stage binds: the container's view is checked right
    after start and a mismatch kills it before a command that takes any time writes."""
    from orchestrator.backends.containers import staging
    from orchestrator.backends.docker import DockerBackend

    monkeypatch.setattr(staging, "available", lambda: False)
    victim, swap = _victim_swap(layout)
    _swap_before(monkeypatch, DockerBackend, "run", swap)
    with pytest.raises(SandboxSetupError, match="bound another directory"):
        _run_in_process(layout, "docker", "sleep 3; echo pwned > m")
    time.sleep(4)  # had the container lived on, it would have written by now
    assert not (victim / "m").exists()
