"""The native backend's filesystem promises, on the real kernel (Landlock, mounts)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

WRITE_PROFILES = ("workspace", "workspace-net")
READ_ONLY_PROFILES = ("offline", "net-read-only")
SANDBOXED = (*READ_ONLY_PROFILES, *WRITE_PROFILES)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A root-owned directory outside the workspace, not under /tmp (which write
    profiles replace with a private tmpfs), so it is visible inside every sandbox."""
    base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else tmp_path
    path = base / f"codex-box-outside-{os.getpid()}-{tmp_path.name}"
    path.mkdir()
    (path / "target").write_text("original\n")
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.mark.parametrize("profile", SANDBOXED)
def test_every_sandboxed_profile_reads_the_whole_filesystem(sandbox, profile):
    ran = sandbox(profile, "sh", "-c", "head -1 /etc/os-release")
    assert ran.returncode == 0, ran.stderr
    assert "NAME" in ran.stdout


@pytest.mark.parametrize("profile", SANDBOXED)
def test_no_sandboxed_profile_can_write_home(sandbox, profile, outside):
    """$HOME outside /tmp (which write profiles hide), so only the sandbox can stop it."""
    ran = sandbox(profile, "sh", "-c", 'echo x > "$HOME/planted" && echo WROTE',
                  env={"HOME": str(outside)})
    assert "WROTE" not in ran.stdout
    assert "Read-only file system" in ran.stderr or "Permission denied" in ran.stderr
    assert not (outside / "planted").exists()


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_write_profiles_cannot_write_outside_the_workspace(sandbox, profile, outside):
    ran = sandbox(profile, "sh", "-c", f"echo x > {outside}/new; echo y >> {outside}/target")
    assert ran.returncode != 0
    assert not (outside / "new").exists()
    assert (outside / "target").read_text() == "original\n"


def test_a_symlink_in_the_workspace_does_not_lead_outside(sandbox, workspace, outside):
    (workspace / "link").symlink_to(outside / "target")
    (workspace / "dirlink").symlink_to(outside)
    ran = sandbox("workspace", "sh", "-c",
                  "echo pwned > link; echo pwned > dirlink/new; echo pwned >> dirlink/target")
    assert ran.returncode != 0
    assert (outside / "target").read_text() == "original\n"
    assert not (outside / "new").exists()


def test_a_hard_link_made_inside_cannot_reach_a_file_outside(sandbox, workspace, outside):
    ran = sandbox("workspace", "sh", "-c",
                  f"ln {outside}/target hard 2>&1; echo pwned > hard 2>&1; echo end")
    assert "end" in ran.stdout
    assert "Invalid cross-device link" in ran.stdout or "Permission denied" in ran.stdout
    assert (outside / "target").read_text() == "original\n"
    assert (outside / "target").stat().st_nlink == 1, "no link to the outside file was made"


@pytest.mark.parametrize("profile", SANDBOXED)
def test_metadata_of_files_outside_cannot_change(sandbox, profile, outside):
    """Landlock does not govern chmod/chown/utimes/xattrs: the read-only mount must."""
    target = outside / "target"
    before = target.stat()
    ran = sandbox(profile, "sh", "-c",
                  f"chmod 777 {target}; chown 65534 {target}; touch -d 2001-01-01 {target}; "
                  f"truncate -s 0 {target}; echo end")
    assert "end" in ran.stdout
    after = target.stat()
    assert (after.st_mode, after.st_uid, after.st_mtime, after.st_size) == (
        before.st_mode, before.st_uid, before.st_mtime, before.st_size)


def test_trusted_with_opt_in_writes_outside_the_workspace(cli, native_available, outside):
    ran = cli("run", "--backend", "native", "--profile", "trusted",
              "--yes-i-trust-this-workspace", "--", "sh", "-c",
              f"echo trusted > {shlex.quote(str(outside))}/new")
    assert ran.returncode == 0, ran.stderr
    assert (outside / "new").read_text() == "trusted\n"
