"""Behaviour every backend must show, run on each of them (native, docker): the same
test, the same assertions — only the enforcement point differs.

Containers run codex-box/base; the native sandbox runs the host's programs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CODEX_BOX, SANDBOX_PYTHON
from tests.procs import PROFILES, READ_ONLY_PROFILES, WRITE_PROFILES, marker_for, processes_with

# Inside containers python3 is /usr/bin/python3 of codex-box/base, as on the host.
PY = SANDBOX_PYTHON


def status_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines())}


PROCESS_HOG = """
import subprocess
children = []
try:
    for _ in range(40):
        children.append(subprocess.Popen(["sleep", "5"]))
except OSError as exc:
    print("refused", exc.errno)
print("started", len(children))
for child in children:
    child.kill()
"""


@pytest.mark.parametrize("profile", PROFILES)
def test_no_sandboxed_profile_can_write_etc(box, profile):
    ran = box(profile, "sh", "-c", "echo pwned > /etc/codex-box-escape-test")
    assert ran.returncode != 0
    assert not Path("/etc/codex-box-escape-test").exists()


@pytest.mark.parametrize("profile", READ_ONLY_PROFILES)
def test_read_only_profiles_cannot_write_the_workspace(box, profile, workspace):
    (workspace / "existing").write_text("keep\n")
    ran = box(profile, "sh", "-c", "echo x > new; echo y > existing; rm -f existing")
    assert not (workspace / "new").exists()
    assert (workspace / "existing").read_text() == "keep\n"
    assert ran.returncode != 0


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_write_profiles_write_the_workspace_as_the_invoking_user(box, profile, workspace):
    ran = box(profile, "sh", "-c", "mkdir -p sub && echo made > sub/file && cat sub/file")
    assert ran.returncode == 0, ran.stderr
    made = workspace / "sub" / "file"
    assert made.read_text() == "made\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (os.getuid(), os.getgid())


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_write_profiles_get_a_private_writable_tmp(box, profile):
    marker = f"codex-box-private-tmp-{os.getpid()}"
    ran = box(profile, "sh", "-c", f"echo x > /tmp/{marker} && ls /tmp")
    assert ran.returncode == 0, ran.stderr
    assert marker in ran.stdout
    assert not Path(f"/tmp/{marker}").exists(), "the sandbox's /tmp must not be the host's"


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_the_private_tmp_is_sticky_world_writable_and_nosuid_nodev(box, profile):
    """Engines drop tmpfs options silently (podman-py): look at the mount from inside."""
    ran = box(profile, "sh", "-c", "stat -c %a /tmp; grep ' /tmp ' /proc/mounts")
    assert ran.returncode == 0, ran.stderr
    mode, mount = ran.stdout.splitlines()[:2]
    assert mode == "1777"
    options = mount.split()[3].split(",")
    assert "nosuid" in options and "nodev" in options and "rw" in options


@pytest.mark.parametrize("profile", WRITE_PROFILES)
def test_git_hooks_cannot_be_planted_in_an_existing_repository(box, profile, workspace):
    (workspace / ".git" / "hooks").mkdir(parents=True)
    ran = box(profile, "sh", "-c",
                  "echo 'curl evil' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit")
    assert ran.returncode != 0
    assert not (workspace / ".git" / "hooks" / "pre-commit").exists()


@pytest.mark.parametrize("name", [".git", ".codex", ".codex-profile"])
def test_protected_names_cannot_be_created_when_missing(box, workspace, name):
    ran = box("workspace", "sh", "-c",
                  f"mkdir -p {name}/hooks 2>&1; echo workspace-net > {name} 2>&1; "
                  f"rm -rf {name} 2>&1; mv {name} moved 2>&1; echo done")
    assert "done" in ran.stdout
    assert not (workspace / name).exists(), "placeholder must be gone and nothing created"
    assert not (workspace / "moved").exists()


def test_protected_names_cannot_be_replaced_or_removed(box, workspace):
    (workspace / ".codex-profile").write_text("offline\n")
    (workspace / ".codex").mkdir()
    (workspace / ".codex" / "config.toml").write_text("# mine\n")
    ran = box("workspace", "sh", "-c",
                  "echo trusted > .codex-profile; rm -f .codex-profile; "
                  "mv .codex-profile x; mv .codex y; rm -rf .codex; "
                  "echo 'sandbox_mode=\"danger-full-access\"' >> .codex/config.toml; "
                  "ln -sf /etc/passwd .codex-profile; echo end")
    assert "end" in ran.stdout
    assert (workspace / ".codex-profile").read_text() == "offline\n"
    assert (workspace / ".codex" / "config.toml").read_text() == "# mine\n"
    assert not (workspace / "x").exists() and not (workspace / "y").exists()


def test_workspace_under_tmp_stays_visible_and_writable(box, workspace):
    """pytest's tmp_path lives under /tmp, which write profiles replace: it is re-bound."""
    assert str(workspace).startswith("/tmp/")
    ran = box("workspace", PY, "-c",
                  "import os; open('w.txt','w').write('ok'); print(os.getcwd())")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(workspace)
    assert (workspace / "w.txt").read_text() == "ok"


@pytest.mark.parametrize("profile", PROFILES)
def test_the_child_has_no_capabilities_no_new_privs_and_a_seccomp_filter(box, profile):
    ran = box(profile, "cat", "/proc/self/status")
    assert ran.returncode == 0, ran.stderr
    fields = status_fields(ran.stdout)
    for key in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        assert int(fields[key], 16) == 0, key
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


@pytest.mark.parametrize("profile", PROFILES)
def test_the_child_sees_only_its_own_processes(box, profile):
    ran = box(profile, "sh", "-c", "ls /proc | grep -E '^[0-9]+$' | wc -l")
    assert ran.returncode == 0, ran.stderr
    assert int(ran.stdout) <= 5  # init, sh, ls, grep, wc


def test_a_secret_looking_host_variable_is_absent_unless_named(box):
    env = {"MY_SECRET_TOKEN": "s3cr3t-value", "PLAIN_SETTING": "visible"}
    withheld= box("offline", "env", env=env)
    assert "s3cr3t-value" not in withheld.stdout
    assert "PLAIN_SETTING=visible" in withheld.stdout
    passed= box("offline", "env", flags=("--env", "MY_SECRET_TOKEN"), env=env)
    assert "MY_SECRET_TOKEN=s3cr3t-value" in passed.stdout


def test_the_exit_code_passes_through(box):
    assert box("offline", "sh", "-c", "exit 42").returncode == 42


def test_death_by_signal_exits_128_plus_n(box):
    ran = box("offline", "sh", "-c", "kill -TERM $$", flags=("--json",))
    assert ran.returncode == 128 + signal.SIGTERM
    result = json.loads(ran.stderr.strip().splitlines()[-1])
    # The native launcher sees the signal itself; through an engine's init only 128+N
    # comes back, which cannot be told apart from `exit 143`.
    assert result["signal"] == (signal.SIGTERM if box.backend == "native" else None)


def test_a_missing_command_exits_127(box):
    ran = box("offline", "definitely-not-a-command-xyz")
    assert ran.returncode == 127
    assert "definitely-not-a-command-xyz" in ran.stderr


def test_stdin_reaches_the_command_and_stdout_comes_back(box):
    ran = box("offline", "tr", "a-z", "A-Z", input="hello sandbox\n")
    assert ran.returncode == 0
    assert ran.stdout == "HELLO SANDBOX\n"


def _start_and_see(box, base_env, workspace, profile, script, *markers, flags=()):
    """Start a run in the background and wait until every marked process exists."""
    argv = [CODEX_BOX, "run", "--backend", box.backend, "--profile", profile, "--json",
            *flags, "--", "bash", "-c", script]
    proc = subprocess.Popen(argv, cwd=workspace, env=base_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not all(processes_with(m) for m in markers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(processes_with(m) for m in markers), "the marked processes never started"
    return proc


def _no_container_of(run_id: str) -> bool:
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=codex-box.run={run_id}"],
                            capture_output=True, text=True, check=True)
    return listed.stdout.strip() == ""


def test_timeout_exits_124_quickly_and_leaves_no_process_behind(box, base_env, workspace):
    marker, set_m = marker_for("timeout")
    # Both ignore SIGTERM, and a background sleeper double-forks away into its own
    # session: a polite stop reaches neither, and both must still die.
    script = (f'{set_m}; trap "" TERM; (setsid bash -c "exec -a $M-bg sleep 60" &); '
              'exec -a "$M-fg" sleep 60')
    started = time.monotonic()
    proc = _start_and_see(box, base_env, workspace, "offline", script, f"{marker}-bg",
                          f"{marker}-fg", flags=("--timeout", "3"))
    for pid in processes_with(marker):
        ignored = int(status_fields(Path(f"/proc/{pid}/status").read_text())["SigIgn"], 16)
        assert ignored & (1 << (signal.SIGTERM - 1)), "the sleepers really ignore SIGTERM"
    _, stderr = proc.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert proc.returncode == 124, stderr
    assert elapsed < 7, f"took {elapsed:.1f}s"
    assert "timed out" in stderr
    time.sleep(0.3)
    assert processes_with(marker) == []
    if box.backend == "docker":
        assert _no_container_of(json.loads(stderr.strip().splitlines()[-1])["run_id"])


def test_background_processes_do_not_outlive_a_normal_exit(box, base_env, workspace):
    marker, set_m = marker_for("leftover")
    script = (f'{set_m}; (setsid bash -c "exec -a $M sleep 60" &); '
              'while ! pgrep -f "$M" >/dev/null; do sleep 0.05; done; sleep 0.5')
    proc = _start_and_see(box, base_env, workspace, "workspace", script, marker)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    time.sleep(0.3)
    assert processes_with(marker) == []
    if box.backend == "docker":
        assert _no_container_of(json.loads(stderr.strip().splitlines()[-1])["run_id"])


def test_a_process_limit_is_enforced(box):
    ran = box("offline", PY, "-c", PROCESS_HOG,
                  flags=("--pids", "16", "--timeout", "20"))
    assert "refused 11" in ran.stdout, ran.stdout + ran.stderr  # EAGAIN
    started = int(ran.stdout.split("started")[1].split()[0])
    assert 5 < started < 16
    unlimited = box("offline", PY, "-c", PROCESS_HOG, flags=("--timeout", "20"))
    assert "started 40" in unlimited.stdout, "control: without --pids all 40 start"


def test_a_memory_limit_is_enforced_and_reported(box):
    hog = "b = bytearray(400 * 1024 * 1024); print('allocated', len(b))"
    ran = box("offline", PY, "-c", hog,
                  flags=("--memory", "128m", "--json", "--timeout", "30"))
    assert "allocated" not in ran.stdout
    assert ran.returncode != 0
    if box.backend != "native" or os.geteuid() == 0:  # a cgroup: the OOM killer fires
        result = json.loads(ran.stderr.strip().splitlines()[-1])
        assert result["oom_killed"] is True
        assert ran.returncode == 128 + signal.SIGKILL


def test_every_launch_is_audited_before_and_after(box, codex_home):
    ran = box("workspace", "sh", "-c", "exit 7")
    assert ran.returncode == 7
    every = [json.loads(ln) for ln in (codex_home / "audit.log").read_text().splitlines()]
    assert [r["operation"] for r in every] == [
        "profile_resolve", "backend_select", "command_exec", "command_exec"]
    resolved, selected = every[:2]
    assert resolved["target"] == "workspace" and "flag" in resolved["reason"]
    assert selected["target"] == box.backend
    records = every[2:]
    assert [r["phase"] for r in records] == ["decided", "ended"]
    decided, ended = records
    assert decided["decision"] == "allowed" and decided["profile"] == "workspace"
    assert decided["backend"] == box.backend and decided["run_id"] == ended["run_id"]
    assert ended["exit_code"] == 7 and ended["duration_ms"] >= 0
    assert decided["target"] == "sh -c 'exit 7'"
