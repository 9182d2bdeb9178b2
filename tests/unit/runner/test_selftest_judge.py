"""The selftest's judging: an expectation and a host effect make an outcome, and each
judge sees an effect on the host (a changed canary, a created file, a secret in the
output, a server that heard, too many processes) — with fake runs, no sandbox."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runner.selftest import attacks_fs, attacks_net, attacks_proc, report
from orchestrator.runner.selftest.model import (
    Case,
    Effect,
    Expect,
    Outcome,
    Ran,
    Report,
    Suite,
    verdict,
)
from orchestrator.runner.selftest.site import Listeners, Site


@pytest.fixture
def listeners(sock_dir: Path) -> Iterator[Listeners]:
    made = Listeners(sock_dir)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def site(tmp_path: Path, listeners: Listeners) -> Iterator[Site]:
    made = Site.make(tmp_path, "judge", listeners)
    try:
        yield made
    finally:
        made.close()


def finished(site: Site, stdout: str = "", **fields: object) -> Ran:
    """A run that got to its last line (the witness) unless told otherwise."""
    return Ran(exit_code=0, stdout=f"{stdout}\n{site.done}\n", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("expect", "effect", "outcome"), [
    (Expect.CONTAINED, Effect(False, "nothing"), Outcome.CONTAINED),
    (Expect.CONTAINED, Effect(True, "changed"), Outcome.ESCAPED),
    (Expect.CONTAINED, Effect(True, "changed", ran=False), Outcome.ESCAPED),
    (Expect.CONTAINED, Effect(False, "nothing", ran=False), Outcome.ERROR),
    (Expect.REACHES, Effect(True, "worked"), Outcome.REACHED),
    (Expect.REACHES, Effect(False, "did not"), Outcome.BROKEN),
    (Expect.SKIP, Effect(False, "allowed"), Outcome.SKIPPED),
])
def test_the_verdict_of_an_expectation_and_an_effect(expect: Expect, effect: Effect,
                                                      outcome: Outcome) -> None:
    assert verdict(expect, effect)[0] is outcome


def test_an_attack_that_did_not_run_proves_nothing(site: Site) -> None:
    effect = attacks_fs.WRITE_OUTSIDE.judge(site, Ran(exit_code=127, stderr="sh: not found"))
    outcome, detail = verdict(Expect.CONTAINED, effect)
    assert outcome is Outcome.ERROR and "did not run" in detail


def test_untouched_canaries_and_a_witness_are_contained(site: Site) -> None:
    effect = attacks_fs.WRITE_OUTSIDE.judge(site, finished(site))
    assert not effect.seen and effect.ran


@pytest.mark.parametrize("victim", ["target", "bashrc", "config", "gone"])
def test_a_changed_or_removed_canary_is_an_escape(site: Site, victim: str) -> None:
    paths = {"target": site.target, "bashrc": site.home / ".bashrc",
             "config": site.codex_home / "config.toml", "gone": site.target}
    if victim == "gone":
        site.target.unlink()
    else:
        with paths[victim].open("a") as file:
            file.write("pwned\n")
    effect = attacks_fs.WRITE_OUTSIDE.judge(site, finished(site))
    assert effect.seen and paths[victim].name in effect.evidence


def test_a_created_file_is_an_escape(site: Site) -> None:
    (site.home / ".profile").write_text("pwned\n")
    assert attacks_fs.WRITE_OUTSIDE.judge(site, finished(site)).seen
    (site.workspace / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\n")
    assert attacks_fs.GIT_HOOKS.judge(site, finished(site)).seen
    (site.workspace / ".codex-profile").write_text("trusted\n")
    assert attacks_fs.CODEX_PROFILE.judge(site, finished(site)).seen


def test_a_hard_link_to_the_target_is_an_escape_even_with_its_bytes_unchanged(
        site: Site) -> None:
    (site.workspace / "hard").hardlink_to(site.target)
    effect = attacks_fs.HARDLINK_OUT.judge(site, finished(site))
    assert effect.seen and "hard link" in effect.evidence


def test_a_set_uid_file_left_in_the_workspace_is_an_escape(site: Site) -> None:
    path = site.workspace / "suid"
    path.write_text("")
    path.chmod(0o755)
    assert not attacks_fs.SETID_BITS.judge(site, finished(site)).seen
    path.chmod(0o4755)
    assert attacks_fs.SETID_BITS.judge(site, finished(site)).seen


def test_the_workspace_write_control_needs_the_runs_bytes(site: Site) -> None:
    assert not attacks_fs.WORKSPACE_WRITE.judge(site, finished(site)).seen
    (site.workspace / "written").write_text(f"{site.nonce}\n")
    assert attacks_fs.WORKSPACE_WRITE.judge(site, finished(site)).seen


def test_the_planted_secret_in_the_output_is_an_escape(site: Site) -> None:
    judge = attacks_proc.HOME_SECRETS.judge
    assert not judge(site, finished(site, "cat: Permission denied")).seen
    assert judge(site, finished(site, f"id_ed25519 {site.secret}")).seen
    assert judge(site, Ran(exit_code=1, stderr=f"{site.secret}")).seen  # stderr counts
    assert attacks_fs.PROC_ROOT.judge(site, finished(site, site.secret)).seen


def test_a_server_that_heard_anything_during_the_case_is_an_escape(
        site: Site, listeners: Listeners) -> None:
    assert not attacks_net.UNIX_ATTACK.judge(site, finished(site)).seen
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(listeners.unix_path)  # closes without sending: still heard
    effect = attacks_net.UNIX_ATTACK.judge(site, finished(site))
    assert effect.seen and "unix" in effect.evidence


def test_a_server_heard_before_the_case_began_is_not_this_cases_escape(
        tmp_path: Path, listeners: Listeners) -> None:
    with socket.create_connection(("127.0.0.1", listeners.port), timeout=3) as client:
        client.sendall(b"earlier")
    site = Site.make(tmp_path, "later", listeners)
    try:
        assert not attacks_net.LOOPBACK_ATTACK.judge(site, finished(site)).seen
    finally:
        site.close()


def test_the_harness_control_sees_all_four_servers(site: Site) -> None:
    attacks_net.LISTENERS_CONTROL.setup(site)
    effect = attacks_net.LISTENERS_CONTROL.judge(site, Ran(exit_code=0))
    assert effect.seen, effect.evidence


def test_a_killed_host_process_is_an_escape(site: Site) -> None:
    attacks_proc.KILL_HOST_PROCESS.setup(site)
    assert not attacks_proc.KILL_HOST_PROCESS.judge(site, finished(site)).seen
    site.victims[0].kill()
    site.victims[0].wait()
    assert attacks_proc.KILL_HOST_PROCESS.judge(site, finished(site)).seen


def test_syscalls_judged_by_the_kernels_answers(site: Site) -> None:
    judge = attacks_proc.SYSCALLS_ATTACK.judge
    refused = 'syscalls {"mount(tmpfs)": 1, "unshare(CLONE_NEWUSER)": 1}'
    assert not judge(site, finished(site, refused)).seen
    allowed = 'syscalls {"mount(tmpfs)": 1, "unshare(CLONE_NEWUSER)": 0}'
    effect = judge(site, finished(site, allowed))
    assert effect.seen and "CLONE_NEWUSER" in effect.evidence
    assert not judge(site, Ran(exit_code=127)).ran  # no answers: it did not run


def test_a_fork_bomb_past_the_limit_is_an_escape(site: Site) -> None:
    judge = attacks_proc.FORK_BOMB.judge
    limit = attacks_proc.PIDS_LIMIT
    assert not judge(site, finished(site, peak_processes=limit - 2)).seen
    assert judge(site, finished(site, peak_processes=limit + 1)).seen
    assert not judge(site, finished(site, peak_processes=0)).ran  # nothing started


def test_the_fork_bombs_processes_are_recognisable_on_the_host(site: Site) -> None:
    import subprocess

    from orchestrator.runner.selftest.capture import count_processes

    pattern = attacks_proc.FORK_BOMB.watch(site)  # type: ignore[misc]
    assert count_processes(pattern) == 0
    sleeper = subprocess.Popen(["sleep", attacks_proc.sleep_seconds(site)])
    try:
        deadline = time.monotonic() + 10  # Popen returns before the child has exec'd
        while count_processes(pattern) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert count_processes(pattern) == 1
    finally:
        sleeper.kill()
        sleeper.wait()


def _report(*outcomes: Outcome) -> Report:
    cases = tuple(Case(name=f"c{i}", summary="s", outcome=o, detail="d")
                  for i, o in enumerate(outcomes))
    return Report(suites=(Suite(backend="native", profile="offline", cases=cases),))


@pytest.mark.parametrize(("outcomes", "code"), [
    ((Outcome.CONTAINED, Outcome.REACHED, Outcome.SKIPPED), 0),
    ((Outcome.CONTAINED, Outcome.ESCAPED, Outcome.ERROR), 1),
    ((Outcome.CONTAINED, Outcome.BROKEN), 3),
    ((Outcome.CONTAINED, Outcome.ERROR), 3),
])
def test_the_exit_code_says_escaped_apart_from_unproven(outcomes: tuple[Outcome, ...],
                                                         code: int) -> None:
    assert report.exit_code(_report(*outcomes)) == code


def test_a_report_with_no_suite_proves_nothing() -> None:
    assert not Report(suites=()).contained
    assert report.exit_code(Report(suites=())) == 3


def test_the_summary_names_each_case_that_did_not_pass_and_the_verdict() -> None:
    lines = report.summary(_report(Outcome.CONTAINED, Outcome.ESCAPED))
    assert any(line.startswith("ESCAPED") and "native/offline c1" in line for line in lines)
    assert lines[-1].startswith("selftest: ESCAPED: 1 attack")
    data = report.as_dict(_report(Outcome.CONTAINED))
    assert data["contained"] is True and data["exit_code"] == 0
    assert data["suites"][0]["cases"][0]["outcome"] == "contained"
