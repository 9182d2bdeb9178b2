"""Filesystem attacks, every sandboxed profile x every backend, judged on the host: the
target file outside the workspace keeps its bytes and no new file appears.

Everything lives under one directory in /var/tmp (not /tmp, which write profiles replace
with a private tmpfs on the native backend), so on the native backend the target is
visible and readable from inside, the workspace and the target share a filesystem (a hard
link between them is possible, as the unsandboxed control shows), and $HOME is the host's
own. Each sandboxed script also makes a positive control: it reads a workspace file, and
under write profiles writes one, so a sandbox that breaks everything cannot pass.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SANDBOX_PYTHON
from tests.escape.conftest import scratch_root, scratch_workspace

SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
WRITE = ("workspace", "workspace-net")
ORIGINAL = "the host's own bytes\n"


@pytest.fixture
def root() -> Iterator[Path]:
    yield from scratch_root("codex-box-escape")


@pytest.fixture
def home(root: Path) -> Path:  # overrides conftest's: the CLI's $HOME is the host's here
    (root / "home").mkdir()
    (root / "home" / ".bashrc").write_text(ORIGINAL)
    return root / "home"


@pytest.fixture
def workspace(root: Path) -> Path:
    return scratch_workspace(root)


@pytest.fixture
def target(root: Path) -> Path:
    (root / "outside").mkdir()
    path = root / "outside" / "target.txt"
    path.write_text(ORIGINAL)
    return path


def _host_unchanged(*files: Path) -> None:
    for path in files:
        assert path.read_text() == ORIGINAL, f"{path} was changed from inside the sandbox"


def _positive_control(box, profile: str, ran, workspace: Path) -> None:
    assert "workspace-readable" in ran.stdout, ran.stdout + ran.stderr
    written = workspace / "control-written"
    if profile in WRITE:
        assert written.read_text() == "ok\n", "positive control: the workspace is writable"
    else:
        assert not written.exists()


CONTROL = "cat README; echo ok > control-written 2>/dev/null; "


def _read_first(target: Path) -> str:
    """The target's bytes, read before the attack: on the native backend the host's
    /var/tmp is visible, so a write refused there is refused for writing, not because the
    file is missing (checked by ``_target_was_readable``)."""
    return f"cat {target} 2>/dev/null; "


def _target_was_readable(box, ran) -> None:
    assert ORIGINAL in ran.stdout or box.backend != "native", \
        f"positive control: the target is readable on native\n{ran.stdout}{ran.stderr}"


@pytest.mark.parametrize("profile", SANDBOXED)
def test_writes_outside_by_absolute_path_dotdot_and_home_change_nothing(
        box, profile, workspace, home, target):
    dotdot = os.path.relpath(target, workspace)  # ../outside/target.txt
    assert dotdot.startswith("..")
    script = (CONTROL + _read_first(target) + f"echo pwned >> {target}; echo pwned >> {dotdot}; "
              f"echo pwned >> ../../../../../..{target}; echo pwned >> \"$HOME/.bashrc\"; "
              f"echo pwned >> {home}/.bashrc; echo pwned > {home}/.profile; "
              f"echo pwned > {target.parent}/new-file; echo end")
    ran = box(profile, "sh", "-c", script)
    assert "end" in ran.stdout, ran.stderr
    _host_unchanged(target, home / ".bashrc")
    assert not (home / ".profile").exists() and not (target.parent / "new-file").exists()
    _positive_control(box, profile, ran, workspace)
    _target_was_readable(box, ran)


@pytest.mark.parametrize("profile", SANDBOXED)
def test_a_symlink_planted_in_the_workspace_does_not_lead_out(box, profile, workspace,
                                                              target):
    """One link shipped with the repository, one made from inside."""
    (workspace / "planted").symlink_to(target)
    (workspace / "planted-dir").symlink_to(target.parent)
    script = (CONTROL + "cat planted; echo pwned >> planted; echo pwned > planted-dir/new-file; "
              f"ln -s {target} made-inside && echo pwned >> made-inside; echo end")
    ran = box(profile, "sh", "-c", script)
    assert "end" in ran.stdout, ran.stderr
    _host_unchanged(target)
    assert not (target.parent / "new-file").exists()
    _positive_control(box, profile, ran, workspace)
    _target_was_readable(box, ran)  # through the planted link


@pytest.mark.parametrize("profile", SANDBOXED)
def test_a_hard_link_made_in_the_workspace_does_not_lead_out(box, profile, workspace,
                                                             target):
    # Control: unsandboxed, the same link works (same filesystem, same user).
    os.link(target, workspace / "control-link")
    os.unlink(workspace / "control-link")
    script = (CONTROL + _read_first(target)
              + f"ln {target} hard && echo LINKED && echo pwned >> hard; echo end")
    ran = box(profile, "sh", "-c", script)
    assert "end" in ran.stdout, ran.stderr
    assert "LINKED" not in ran.stdout
    _host_unchanged(target)
    assert os.stat(target).st_nlink == 1
    _positive_control(box, profile, ran, workspace)
    _target_was_readable(box, ran)


REOPEN = r"""
import os, sys
for path in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        print(path, "unreadable", exc.errno)
        continue
    for how in (f"/proc/self/fd/{fd}", f"/proc/{os.getpid()}/fd/{fd}"):
        try:
            with open(how, "a") as reopened:
                reopened.write("pwned\n")
            print(path, "REOPENED-FOR-WRITE")
        except OSError as exc:
            print(path, "refused", exc.errno)
    for via in (f"/proc/self/root{path}", f"/proc/{os.getpid()}/root{path}",
                f"/proc/self/cwd/../{os.path.basename(os.path.dirname(path))}/"
                f"{os.path.basename(path)}"):
        try:
            with open(via, "a") as out:
                out.write("pwned\n")
            print(path, "WRITTEN-VIA", via)
        except OSError as exc:
            print(path, "refused", exc.errno)
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_reopening_through_proc_self_fd_and_root_does_not_gain_write(box, profile, workspace,
                                                                     target):
    """Read-only handles reopened for writing through /proc's magic links, and paths
    through /proc/self/root and /proc/self/cwd: outside the workspace always, and the
    workspace itself under the read-only profiles."""
    inside = workspace / "README"
    before = inside.read_text()
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", REOPEN, str(target), str(inside))
    _host_unchanged(target)
    # Each path must have been opened for reading, or the write attempts never ran: on
    # native both are visible; in a container the host's /var/tmp is simply not there.
    assert f"{inside} unreadable" not in ran.stdout, ran.stdout + ran.stderr
    if box.backend == "native":
        assert f"{target} unreadable" not in ran.stdout, ran.stdout + ran.stderr
        assert ran.stdout.count(f"{target} refused") == 5, ran.stdout + ran.stderr
    else:
        assert f"{target} unreadable 2" in ran.stdout, ran.stdout + ran.stderr
    assert f"{target} REOPENED" not in ran.stdout and f"{target} WRITTEN" not in ran.stdout
    if profile not in WRITE:
        assert inside.read_text() == before, "a read-only workspace was written via /proc"
        assert "REOPENED" not in ran.stdout and "WRITTEN" not in ran.stdout, ran.stdout
    else:
        assert "REOPENED-FOR-WRITE" in ran.stdout, "positive control: the workspace " \
            f"file is writable under {profile}\n{ran.stdout}{ran.stderr}"


def test_the_unsandboxed_control_of_the_proc_reopen_writes(workspace, target):
    """Without a sandbox the same script does write both files: the attack is real."""
    ran = subprocess.run([SANDBOX_PYTHON, "-I", "-c", REOPEN, str(target)],
                         capture_output=True, text=True, check=True, cwd=workspace)
    assert "REOPENED-FOR-WRITE" in ran.stdout and "WRITTEN-VIA" in ran.stdout
    assert "pwned" in target.read_text()
