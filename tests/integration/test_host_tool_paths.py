"""Paths a host tool later runs or trusts stay read-only in a `workspace` run, on the real
kernel (Landlock, mounts); repositories a run plants are reported and quarantined.

The absent-file cases (`.mcp.json`, `.envrc`, …) pass only once placeholders.py creates a
file (not a directory) for profile.PROTECTED_FILE_NAMES; the hooksPath case only once
compile/spec.py protects host.githooks.hooks_path_entry().
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.core.profile import PROTECTED_FILE_NAMES

HOST_TOOL_DIRS = (".vscode", ".devcontainer", ".claude", ".cursor", ".idea", ".gemini")
HOST_TOOL_FILES = (".mcp.json", ".devcontainer.json", ".envrc")
GIT = shutil.which("git") or "git"
# Each attack first writes an ordinary file: a sandbox that could write nothing at all
# must not pass these tests.
CONTROL = "echo ok > control; "


def planted_records(codex_home: Path) -> list[dict[str, object]]:
    log = codex_home / "audit.log"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("operation") == "planted_repo"]


@pytest.mark.parametrize("name", HOST_TOOL_DIRS)
def test_an_existing_host_tool_directory_cannot_be_written(sandbox, workspace, name):
    (workspace / name).mkdir()
    (workspace / name / "settings.json").write_text("{}\n")
    ran = sandbox("workspace", "sh", "-c",
                  f"{CONTROL}echo pwned > {name}/settings.json; echo x > {name}/tasks.json; "
                  f"mkdir {name}/rules; mv {name} moved; rm -rf {name}; echo end")
    assert "end" in ran.stdout
    assert (workspace / "control").read_text() == "ok\n", "positive control: writable"
    assert (workspace / name / "settings.json").read_text() == "{}\n"
    assert sorted(p.name for p in (workspace / name).iterdir()) == ["settings.json"]
    assert not (workspace / "moved").exists()


@pytest.mark.parametrize("name", HOST_TOOL_FILES)
def test_an_existing_host_tool_file_cannot_be_written_or_replaced(sandbox, workspace, name):
    (workspace / name).write_text("mine\n")
    ran = sandbox("workspace", "sh", "-c",
                  f"{CONTROL}echo pwned >> {name}; rm -f {name}; mv {name} moved; "
                  f"ln -sf /etc/passwd {name}; echo end")
    assert "end" in ran.stdout
    assert (workspace / "control").read_text() == "ok\n", "positive control: writable"
    assert (workspace / name).read_text() == "mine\n"
    assert not (workspace / "moved").exists()


@pytest.mark.parametrize("name", (*HOST_TOOL_DIRS, *HOST_TOOL_FILES))
def test_an_absent_host_tool_path_cannot_be_created(sandbox, workspace, name):
    kind = "-f" if name in PROTECTED_FILE_NAMES else "-d"
    ran = sandbox("workspace", "sh", "-c",
                  f"{CONTROL}test {kind} {name} && echo PLACEHOLDER-KIND-OK; "
                  f"mkdir -p {name}/rules 2>&1; echo '{{}}' > {name} 2>&1; "
                  f"echo x > {name}/tasks.json 2>&1; echo end")
    assert "end" in ran.stdout
    assert (workspace / "control").read_text() == "ok\n", "positive control: writable"
    assert "PLACEHOLDER-KIND-OK" in ran.stdout, "the placeholder must be a file or a directory"
    assert not (workspace / name).exists(), "placeholder must be gone and nothing created"


def test_the_directory_core_hooks_path_names_is_read_only(sandbox, workspace):
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text("[core]\n\thooksPath = .husky\n")
    (workspace / ".husky").mkdir()
    ran = sandbox("workspace", "sh", "-c",
                  f"{CONTROL}echo 'touch /tmp/pwned' > .husky/pre-commit; "
                  "chmod +x .husky/pre-commit; "
                  "mv .husky gone; echo end")
    assert "end" in ran.stdout
    assert (workspace / "control").read_text() == "ok\n", "positive control: writable"
    assert not (workspace / ".husky" / "pre-commit").exists()
    assert not (workspace / "gone").exists()


def test_a_missing_hooks_path_cannot_be_created(sandbox, workspace):
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text("[core]\n\thooksPath = tools/hooks\n")
    ran = sandbox("workspace", "sh", "-c",
                  f"{CONTROL}mkdir -p tools/hooks 2>&1; echo evil > tools/hooks/pre-commit 2>&1; "
                  "echo end")
    assert "end" in ran.stdout
    assert (workspace / "control").read_text() == "ok\n", "positive control: writable"
    assert not (workspace / "tools" / "hooks" / "pre-commit").exists()


def test_a_planted_nested_repository_with_fsmonitor_is_reported(sandbox, workspace, codex_home):
    ran = sandbox("workspace", "sh", "-c",
                  f"{GIT} init -q nested && {GIT} -C nested config core.fsmonitor "
                  "'touch /tmp/pwned' && exit 7")
    assert ran.returncode == 7, ran.stderr  # the check never changes the exit code
    assert "codex-box: warning:" in ran.stderr and "nested/.git" in ran.stderr
    assert "core.fsmonitor" in ran.stderr
    (record,) = planted_records(codex_home)
    assert record["target"] == "nested/.git" and record["decision"] == "allowed"
    assert (workspace / "nested" / ".git" / "config").exists()  # warn: left in place


PLANT_BARE = (
    "mkdir -p sub/objects sub/refs && echo 'ref: refs/heads/main' > sub/HEAD && "
    "printf '[core]\\n\\tbare = true\\n\\tfsmonitor = touch /tmp/pwned\\n' > sub/config"
)


def test_a_planted_bare_layout_is_reported(sandbox, workspace, codex_home):
    ran = sandbox("workspace", "sh", "-c", PLANT_BARE)
    assert ran.returncode == 0, ran.stderr
    assert "bare repository at sub" in ran.stderr
    (record,) = planted_records(codex_home)
    assert record["target"] == "sub"


def test_with_quarantine_the_planted_repositories_are_moved_aside(
    cli, native_available, workspace, codex_home
):
    (codex_home / "profiles").mkdir()
    (codex_home / "profiles" / "strict.yaml").write_text(
        "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n")
    ran = cli("run", "--backend", "native", "--profile", "strict", "--", "sh", "-c",
              f"{PLANT_BARE} && {GIT} init -q nested && "
              f"{GIT} -C nested config core.fsmonitor 'touch /tmp/pwned'")
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count("quarantined") == 2
    assert not (workspace / "sub" / "config").exists() and not (workspace / "sub/HEAD").exists()
    assert not (workspace / "nested" / ".git" / "config").exists()
    assert list((workspace / "nested" / ".git").glob("config.codex-box-quarantine-*"))
    assert {r["decision"] for r in planted_records(codex_home)} == {"denied"}


def test_an_unprotected_vscode_is_writable_with_a_user_profile(
    cli, native_available, workspace, codex_home
):
    (codex_home / "profiles").mkdir()
    (codex_home / "profiles" / "ide.yaml").write_text(
        "extends: workspace\nfilesystem:\n  unprotect: [.vscode]\n")
    (workspace / ".vscode").mkdir()
    ran = cli("run", "--backend", "native", "--profile", "ide", "--", "sh", "-c",
              "echo '{}' > .vscode/tasks.json && echo '{}' > .cursor-probe")
    assert ran.returncode == 0, ran.stderr
    assert (workspace / ".vscode" / "tasks.json").read_text() == "{}\n"
