"""The native backend's filesystem promises, on the real kernel (Landlock, mounts)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from tests.conftest import SANDBOX_PYTHON

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
def test_no_sandboxed_profile_can_write_etc(sandbox, profile):
    ran = sandbox(profile, "sh", "-c", "echo pwned > /etc/codex-box-escape-test")
    assert ran.returncode != 0
    assert not Path("/etc/codex-box-escape-test").exists()


@pytest.mark.parametrize("profile", SANDBOXED)
def test_no_sandboxed_profile_can_write_home(sandbox, profile, home):
    ran = sandbox(profile, "sh", "-c", f"echo x > {home}/planted")
    assert ran.returncode != 0
    assert not (home / "planted").exists()


@pytest.mark.parametrize("profile", READ_ONLY_PROFILES)
def test_read_only_profiles_cannot_write_the_workspace(sandbox, profile, workspace):
    (workspace / "existing").write_text("keep\n")
    ran = sandbox(profile, "sh", "-c", "echo x > new; echo y > existing; rm -f existing")
    assert not (workspace / "new").exists()
    assert (workspace / "existing").read_text() == "keep\n"
    assert ran.returncode != 0


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_write_profiles_write_the_workspace_as_the_invoking_user(sandbox, profile, workspace):
    ran = sandbox(profile, "sh", "-c", "mkdir -p sub && echo made > sub/file && cat sub/file")
    assert ran.returncode == 0, ran.stderr
    made = workspace / "sub" / "file"
    assert made.read_text() == "made\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (os.getuid(), os.getgid())


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_write_profiles_get_a_private_writable_tmp(sandbox, profile):
    marker = f"codex-box-private-tmp-{os.getpid()}"
    ran = sandbox(profile, "sh", "-c", f"echo x > /tmp/{marker} && ls /tmp")
    assert ran.returncode == 0, ran.stderr
    assert marker in ran.stdout
    assert not Path(f"/tmp/{marker}").exists(), "the sandbox's /tmp must not be the host's"


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_write_profiles_cannot_write_outside_the_workspace(sandbox, profile, outside):
    ran = sandbox(profile, "sh", "-c", f"echo x > {outside}/new; echo y >> {outside}/target")
    assert ran.returncode != 0
    assert not (outside / "new").exists()
    assert (outside / "target").read_text() == "original\n"


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_git_hooks_cannot_be_planted_in_an_existing_repository(sandbox, profile, workspace):
    (workspace / ".git" / "hooks").mkdir(parents=True)
    ran = sandbox(profile, "sh", "-c",
                  "echo 'curl evil' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit")
    assert ran.returncode != 0
    assert not (workspace / ".git" / "hooks" / "pre-commit").exists()


@pytest.mark.parametrize("name", [".git", ".codex", ".codex-profile"])
def test_protected_names_cannot_be_created_when_missing(sandbox, workspace, name):
    ran = sandbox("workspace", "sh", "-c",
                  f"mkdir -p {name}/hooks 2>&1; echo workspace-net > {name} 2>&1; "
                  f"rm -rf {name} 2>&1; mv {name} moved 2>&1; echo done")
    assert "done" in ran.stdout
    assert not (workspace / name).exists(), "placeholder must be gone and nothing created"
    assert not (workspace / "moved").exists()


def test_protected_names_cannot_be_replaced_or_removed(sandbox, workspace):
    (workspace / ".codex-profile").write_text("offline\n")
    (workspace / ".codex").mkdir()
    (workspace / ".codex" / "config.toml").write_text("# mine\n")
    ran = sandbox("workspace", "sh", "-c",
                  "echo trusted > .codex-profile; rm -f .codex-profile; "
                  "mv .codex-profile x; mv .codex y; rm -rf .codex; "
                  "echo 'sandbox_mode=\"danger-full-access\"' >> .codex/config.toml; "
                  "ln -sf /etc/passwd .codex-profile; echo end")
    assert "end" in ran.stdout
    assert (workspace / ".codex-profile").read_text() == "offline\n"
    assert (workspace / ".codex" / "config.toml").read_text() == "# mine\n"
    assert not (workspace / "x").exists() and not (workspace / "y").exists()


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


def test_workspace_under_tmp_stays_visible_and_writable(sandbox, workspace):
    """pytest's tmp_path lives under /tmp, which write profiles replace: it is re-bound."""
    assert str(workspace).startswith("/tmp/")
    ran = sandbox("workspace", SANDBOX_PYTHON, "-c",
                  "import os; open('w.txt','w').write('ok'); print(os.getcwd())")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(workspace)
    assert (workspace / "w.txt").read_text() == "ok"


def test_trusted_with_opt_in_writes_outside_the_workspace(cli, native_available, outside):
    ran = cli("run", "--backend", "native", "--profile", "trusted",
              "--yes-i-trust-this-workspace", "--", "sh", "-c",
              f"echo trusted > {shlex.quote(str(outside))}/new")
    assert ran.returncode == 0, ran.stderr
    assert (outside / "new").read_text() == "trusted\n"
