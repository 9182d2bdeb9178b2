"""What a review of sessions found, fixed, and now tested on every backend: a repository
an exec plants is reported like after a run (and at the session's stop for a detached
exec); a quick detached exec has one ended record; a client started with stdio closed
never hands the command its line to the keeper; a missing ``--cwd`` changes nothing."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import CODEX_BOX

from .session_helpers import (
    audit_records as _records,
)
from .session_helpers import (
    exec_in as _exec,
)
from .session_helpers import (
    session_starter,
    wait_until,
)

PLANT_BARE = (
    "mkdir -p {d}/objects {d}/refs && echo 'ref: refs/heads/main' > {d}/HEAD && "
    "printf '[core]\\n\\tbare = true\\n\\tfsmonitor = touch /tmp/pwned\\n' > {d}/config"
)


@pytest.fixture
def sessions(cli, codex_home):
    yield from session_starter(cli, codex_home)


def test_a_repository_an_exec_plants_is_reported_after_it_and_at_the_stop(
        backend, cli, sessions, codex_home):
    sid = sessions(backend)
    ran = _exec(cli, sid, "sh", "-c", PLANT_BARE.format(d="sub") + " && exit 3",
                flags=("--json",))
    assert ran.returncode == 3, ran.stderr  # the check never changes the exit code
    assert "codex-box: warning:" in ran.stderr and "bare repository at sub" in ran.stderr
    run_id = json.loads(ran.stderr.strip().splitlines()[-1])["run_id"]
    planted = [r for r in _records(codex_home) if r["operation"] == "planted_repo"]
    assert [(r["target"], r["run_id"], r["session_id"]) for r in planted] == \
        [("sub", run_id, sid)], planted
    # Control: an exec that plants nothing warns of nothing.
    quiet = _exec(cli, sid, "true")
    assert "warning" not in quiet.stderr, quiet.stderr
    # A detached exec's is found when the session stops (the first one is not repeated).
    detached = _exec(cli, sid, "sh", "-c", PLANT_BARE.format(d="later"), flags=("--detach",))
    assert detached.returncode == 0, detached.stderr
    assert cli("session", "stop", sid).returncode == 0
    planted = [r for r in _records(codex_home) if r["operation"] == "planted_repo"]
    assert sorted(r["target"] for r in planted) == ["later", "sub"], planted
    assert all(r["session_id"] == sid for r in planted)


def test_a_planted_repository_is_quarantined_when_the_profile_says_so(
        cli, sessions, codex_home, workspace, native_available):
    (codex_home / "profiles").mkdir()
    (codex_home / "profiles" / "strict.yaml").write_text(
        "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n")
    sid = sessions("native", profile="strict")
    ran = _exec(cli, sid, "sh", "-c", PLANT_BARE.format(d="sub"))
    assert ran.returncode == 0, ran.stderr
    assert "quarantined" in ran.stderr, ran.stderr
    assert not (workspace / "sub" / "config").exists()


def test_a_quick_detached_exec_has_exactly_one_ended_record(backend, cli, sessions,
                                                            codex_home):
    sid = sessions(backend)
    ids = []
    for _ in range(5):  # `true` often ends before the keeper hears it started
        ran = _exec(cli, sid, "true", flags=("--detach", "--json"))
        assert ran.returncode == 0, ran.stderr
        ids.append(json.loads(ran.stderr.strip().splitlines()[-1])["run_id"])

    def ended(run_id: str) -> list[dict]:
        return [r for r in _records(codex_home) if r.get("run_id") == run_id
                and r["operation"] == "command_exec" and r.get("phase") == "ended"]

    assert wait_until(lambda: all(ended(i) for i in ids), 15, step_s=0.3)
    assert cli("session", "stop", sid).returncode == 0
    for run_id in ids:
        (record,) = ended(run_id)  # not a second one, "killed: the session stopped"
        assert record["exit_code"] == 0, record


# The command writes to its stdin and stdout, then reads what comes back on its stdin:
# were either its connection to the keeper, a request would get an answer.
TALK_BACK = (
    "printf '\\000\\000\\000\\016{\"op\":\"info\"}' >&0 2>/dev/null; "
    "printf '\\000\\000\\000\\016{\"op\":\"info\"}' 2>/dev/null; "
    "timeout 2 cat <&0 2>/dev/null | head -c 300; echo END"
)


@pytest.mark.parametrize("closed", ["0", "1", "0,1"])
def test_a_client_with_stdio_closed_does_not_give_the_command_its_keeper(
        backend, cli, sessions, base_env, workspace, closed):
    sid = sessions(backend)
    out = workspace.parent / "out.txt"
    # The exec's own stdout goes to a file (when 1 is closed, to nowhere): either way
    # nothing the keeper says may appear in it or on stderr.
    redirections = " ".join(f"{fd}<&-" if fd == "0" else f"{fd}>&-" for fd in closed.split(","))
    shell = (f"exec 3>{out}; {CODEX_BOX} exec --session {sid} -- sh -c '{TALK_BACK}' "
             f">&3 {redirections}")
    ran = subprocess.run(["sh", "-c", shell], env=base_env, cwd=workspace,
                         capture_output=True, text=True, timeout=60)
    assert "event" not in ran.stderr and '"info"' not in ran.stderr, ran.stderr
    written = out.read_text() if out.exists() else ""
    assert '"event"' not in written, written
    if closed == "0":  # control: with stdout open, the command ran and wrote
        assert "END" in written, (written, ran.stderr)
    assert ran.returncode == 0, ran.stderr


def test_a_missing_cwd_fails_that_exec_and_changes_nothing(backend, cli, sessions,
                                                           workspace):
    sid = sessions(backend)
    (workspace / "there").mkdir()
    assert _exec(cli, sid, "true", flags=("--cwd", "there")).returncode == 0
    missing = _exec(cli, sid, "pwd", flags=("--cwd", "no-such-dir"))
    assert missing.returncode != 0, missing.stdout
    assert "no-such-dir" in missing.stderr, missing.stderr
    after = _exec(cli, sid, "pwd")
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == str(workspace / "there")


def test_a_sessions_directory_that_is_a_link_is_refused(cli, codex_home, tmp_path,
                                                        native_available):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (codex_home / "sessions").symlink_to(elsewhere)
    ran = cli("session", "start", "--backend", "native", "--profile", "offline")
    assert ran.returncode == 125, ran.stdout + ran.stderr
    assert "symbolic link" in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    assert not list(elsewhere.iterdir())
    # Control: with a real directory it starts.
    (codex_home / "sessions").unlink()
    started = cli("session", "start", "--backend", "native", "--profile", "offline")
    assert started.returncode == 0, started.stderr
    assert cli("session", "stop", started.stdout.strip()).returncode == 0


def test_a_taken_name_is_refused_in_one_line_and_its_start_has_a_stop(
        cli, sessions, codex_home, native_available):
    first = sessions("native", "--name", "builder")
    again = cli("session", "start", "--backend", "native", "--name", "builder")
    assert again.returncode == 125, again.stdout + again.stderr
    assert "builder" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    listed = json.loads(cli("session", "ls", "--json").stdout)
    assert [s["id"] for s in listed] == [first], listed  # the loser left nothing
    records = _records(codex_home)
    starts = {r["session_id"] for r in records if r["operation"] == "session_start"
              and r.get("decision") != "denied"}
    stops = {r["session_id"] for r in records if r["operation"] == "session_stop"}
    assert starts - stops == {first}, (starts, stops)
    assert cli("exec", "--session", "builder", "--", "true").returncode == 0
