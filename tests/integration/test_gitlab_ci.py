"""``codex-box ci gitlab`` driven the way gitlab-runner drives a custom executor
(tests/gitlab_runner.py), on every backend: real sessions, real sandboxes, the host
checked afterwards for anything left behind.

Judged by effect: exit codes against the runner's own (non-default) codes, what each
stage printed from inside the sandbox, files on the host, the audit log's text, and
processes, sessions and containers after cleanup.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.escape.conftest import scratch_root
from tests.gitlab_runner import (
    BUILD_FAILURE,
    SYSTEM_FAILURE,
    Call,
    FakeRunner,
    clone_commands,
    make_origin_repo,
)
from tests.procs import processes_with
from tests.serve_helpers import processes_under

ENFORCE = '[policy]\nmode = "enforce"\n'
MASKED_VALUE = "masked-Value-7f3a9c"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Outside /tmp (a private /tmp would hide it anyway): the runner's own directory
    and the origin repository, so only the driver's masking keeps the former hidden."""
    yield from scratch_root("cbx-gl")


@pytest.fixture
def runner_env(base_env: dict[str, str], codex_home: Path, scratch: Path) -> dict[str, str]:
    (codex_home / "config.toml").write_text(ENFORCE)
    return {**base_env, "CODEX_BOX_IMAGE": "codex-box/base"}


@pytest.fixture
def make_runner(
    runner_env: dict[str, str], scratch: Path, backend: str
) -> Callable[..., FakeRunner]:
    counter = iter(range(1, 1000))

    def make(**kw: object) -> FakeRunner:
        n = next(counter)
        kw.setdefault("job_id", 5000 + n)
        kw.setdefault("masked", {"DEPLOY_KEY": MASKED_VALUE})
        env = {**runner_env, "CODEX_BOX_BACKEND": backend}
        # On every backend the origin is reachable from the runner stages' workspace.
        kw.setdefault("builds_root", str(scratch / "builds"))
        return FakeRunner(env, scratch / "tmp" / f"runner-{n}", **kw)  # type: ignore[arg-type]

    return make


def origin_in(runner: FakeRunner, files: dict[str, str] | None = None) -> Path:
    """The job's own origin repository, inside the job's directory (cache/): every
    backend's runner stages see it there, network or not."""
    root = Path(runner.job_env["CODEX_BOX_GITLAB_ROOT"])
    (root / "cache").mkdir(parents=True, exist_ok=True)
    return make_origin_repo(root / "cache" / "origin", files)


def leftovers(codex_home: Path, backend: str, runner: FakeRunner) -> list[str]:
    found: list[str] = []
    sessions = codex_home / "sessions"
    if sessions.is_dir():
        found += [f"session {p.name}" for p in sessions.iterdir() if not p.name.startswith(".")]
    state = codex_home / "ci" / "gitlab" / f"{runner.job_id}.json"
    if state.exists():
        found.append(f"job state {state}")
    found += [f"process {pid}" for pid in processes_under(str(codex_home))]
    if backend in ("docker", "podman"):
        out = subprocess.run(
            [backend, "ps", "-aq", "--filter", "label=codex-box.session"],
            capture_output=True, text=True, check=False,
        ).stdout.split()
        mine = [
            c for c in out
            if str(codex_home) in subprocess.run(
                [backend, "inspect", "--format", "{{json .Mounts}}", c],
                capture_output=True, text=True, check=False,
            ).stdout
            or runner.job_env.get("CODEX_BOX_GITLAB_ROOT", "?") in subprocess.run(
                [backend, "inspect", "--format", "{{json .Mounts}}", c],
                capture_output=True, text=True, check=False,
            ).stdout
        ]
        found += [f"container {c}" for c in mine]
    return found


def audit_text(codex_home: Path) -> str:
    return "".join(p.read_text() for p in codex_home.glob("audit.log*") if p.is_file())


def ok(call: Call) -> Call:
    assert call.returncode == 0, f"rc {call.returncode}\n{call.stdout}\n{call.stderr}"
    return call


def test_a_job_that_passes(
    make_runner: Callable[..., FakeRunner], codex_home: Path, backend: str
) -> None:
    runner = make_runner()
    ok(runner.config())
    origin = origin_in(runner)
    ok(runner.prepare())
    ok(runner.run("prepare_script", "echo prepared"))
    show_length = '\necho "token-len=${#CI_JOB_TOKEN}"'
    sources = ok(runner.run("get_sources", clone_commands(origin) + show_length))
    assert "token-len=37" in sources.stdout  # the runner's stages get the job token
    build = ok(
        runner.run(
            "step_script",
            'echo "token=[${CI_JOB_TOKEN}]"\n'
            'echo "key=$DEPLOY_KEY"\n'
            "cat README\n"
            "echo built > out.txt\n"
            f"cat {runner.response} 2>&1 || echo response-unreadable"
        )
    )
    assert "token=[]" in build.stdout  # the job's own stages do not
    assert f"key={MASKED_VALUE}" in build.stdout  # masked ≠ withheld: the job uses it
    assert "hello from the repository" in build.stdout
    assert "response-unreadable" in build.stdout and '"token"' not in build.stdout
    assert (Path(runner.project_dir) / "out.txt").read_text() == "built\n"
    ok(runner.run("after_script", "echo after"))
    ok(runner.run("archive_cache", 'ls "$CI_PROJECT_DIR" > /dev/null && echo archived'))
    live = leftovers(codex_home, backend, runner)  # the check sees a job that is still there
    assert any(x.startswith("session") for x in live) and any(
        x.startswith("job state") for x in live
    )
    if backend != "native":
        assert sum(x.startswith("container") for x in live) >= 2, live  # + the netns one
    ok(runner.cleanup())
    assert not Path(runner.job_env["CODEX_BOX_GITLAB_ROOT"]).exists()
    text = audit_text(codex_home)
    assert runner.token not in text and MASKED_VALUE not in text
    assert "gitlab-step_script" in text  # each stage is on the record, by name
    assert leftovers(codex_home, backend, runner) == []
    ok(runner.cleanup())  # idempotent
    assert leftovers(codex_home, backend, runner) == []


def test_a_failing_script_is_a_build_failure(
    make_runner: Callable[..., FakeRunner], codex_home: Path, backend: str
) -> None:
    runner = make_runner()
    done = runner.job({"step_script": "echo before\nexit 3", "after_script": "echo after-ran"})
    assert done["step_script"].returncode == BUILD_FAILURE, done["step_script"]
    assert "before" in done["step_script"].stdout
    assert done["after_script"].returncode == 0 and "after-ran" in done["after_script"].stdout
    assert done["cleanup"].returncode == 0
    assert leftovers(codex_home, backend, runner) == []


def test_a_policy_refusal_is_a_build_failure_with_the_reason(
    make_runner: Callable[..., FakeRunner], codex_home: Path, backend: str
) -> None:
    runner = make_runner()
    done = runner.job({"step_script": "echo harmless\nrm -rf /"})
    call = done["step_script"]
    assert call.returncode == BUILD_FAILURE
    assert "forbids" in call.stderr and "rm of /" in call.stderr
    assert "harmless" not in call.stdout  # refused before anything ran
    denied = [
        json.loads(line) for line in audit_text(codex_home).splitlines()
        if '"denied"' in line and "gitlab-step_script" in line
    ]
    assert denied, "the refusal is on the record"
    assert leftovers(codex_home, backend, runner) == []


@pytest.mark.parametrize(
    ("prepare_args", "variables", "expected"),
    [
        (("--profile", "no-such-profile"), {}, SYSTEM_FAILURE),
        (("--profile", "workspace-net", "--max-profile", "workspace"), {}, SYSTEM_FAILURE),
        (("--profile", "offline"), {"CODEX_BOX_PROFILE": "workspace-net"}, BUILD_FAILURE),
        ((), {"CODEX_BOX_PROFILE": "trusted"}, BUILD_FAILURE),
    ],
)
def test_a_failed_prepare_leaves_nothing(
    make_runner: Callable[..., FakeRunner],
    codex_home: Path,
    backend: str,
    prepare_args: tuple[str, ...],
    variables: dict[str, str],
    expected: int,
) -> None:
    runner = make_runner(variables=variables)
    done = runner.job({"step_script": "echo never"}, prepare_args=prepare_args)
    assert done["prepare"].returncode == expected, done["prepare"]
    assert "step_script" not in done
    assert done["cleanup"].returncode == 0
    assert leftovers(codex_home, backend, runner) == []


def test_a_job_variable_narrows_the_profile(
    make_runner: Callable[..., FakeRunner], codex_home: Path, backend: str
) -> None:
    runner = make_runner(variables={"CODEX_BOX_PROFILE": "offline"})
    ok(runner.config())
    origin = origin_in(runner)
    ok(runner.prepare())
    ok(runner.run("get_sources", clone_commands(origin)))  # the runner's stages still write
    call = runner.run("step_script", "cat README\n: > written 2>/dev/null || echo read-only")
    assert call.returncode == BUILD_FAILURE  # the policy: offline writes nothing
    assert "writes" in call.stderr
    ok(runner.cleanup())


def test_a_checkouts_codex_profile_narrows_never_widens(
    make_runner: Callable[..., FakeRunner], codex_home: Path, backend: str
) -> None:
    narrowed, widened = make_runner(), make_runner(concurrent_id=1)
    for runner, name in ((narrowed, "offline"), (widened, "workspace-net")):
        ok(runner.config())
        origin = origin_in(runner, {".codex-profile": f"{name}\n"})  # the repository's own
        ok(runner.prepare("--profile", "workspace" if name == "offline" else "net-read-only"))
        ok(runner.run("get_sources", clone_commands(origin)))
    call = narrowed.run("step_script", "echo x > out.txt")
    assert "narrows the job's profile: workspace → offline" in call.stderr
    assert call.returncode == BUILD_FAILURE
    call = widened.run("step_script", "cat README")
    assert "wider than the job's net-read-only" in call.stderr and call.returncode == 0
    for runner in (narrowed, widened):
        ok(runner.cleanup())
    for runner in (narrowed, widened):
        assert leftovers(codex_home, backend, runner) == []


def test_sigterm_mid_build_kills_the_stage_at_once(
    make_runner: Callable[..., FakeRunner], codex_home: Path, backend: str
) -> None:
    runner = make_runner()
    ok(runner.config())
    ok(runner.prepare())
    ok(runner.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"'))
    marker = f"{uuid.uuid4().int % 10**6}.5"
    driver = runner.start_run(
        "step_script", f"trap '' TERM\n(sleep {marker}) &\nsleep {marker}"
    )
    deadline = time.monotonic() + 60
    while len(processes_with(f"sleep\0{marker}")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(processes_with(f"sleep\0{marker}")) == 2, "both sleeps started"
    os.killpg(driver.pid, signal.SIGTERM)  # gitlab-runner's cancel: the whole group
    sent = time.monotonic()
    out, err = driver.communicate(timeout=30)
    while processes_with(f"sleep\0{marker}") and time.monotonic() - sent < 10:
        time.sleep(0.05)
    assert processes_with(f"sleep\0{marker}") == [], "the stage's process tree outlived the cancel"
    assert time.monotonic() - sent < 10
    assert driver.returncode == SYSTEM_FAILURE, (out, err)
    assert "cancelled" in err
    ok(runner.cleanup())
    assert leftovers(codex_home, backend, runner) == []
    cancelled = [
        json.loads(line) for line in audit_text(codex_home).splitlines()
        if '"cancelled": true' in line
    ]
    assert cancelled, "the cancelled stage's end is on the record"


def test_four_concurrent_jobs(
    make_runner: Callable[..., FakeRunner], codex_home: Path, backend: str
) -> None:
    runners = [make_runner(concurrent_id=i, project=f"group/proj{i}") for i in range(4)]
    results: dict[int, dict[str, Call]] = {}

    def one(i: int, runner: FakeRunner) -> None:
        results[i] = runner.job(
            {
                "step_script": f"echo job-{i} > mine.txt\nls .. | sort | tr '\\n' ' '",
                "after_script": "cat mine.txt",
            }
        )

    threads = [threading.Thread(target=one, args=(i, r)) for i, r in enumerate(runners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for i, r in enumerate(runners):
        done = results[i]
        assert all(c.returncode == 0 for c in done.values()), done
        assert f"job-{i}" in done["after_script"].stdout
        assert not Path(r.job_env["CODEX_BOX_GITLAB_ROOT"]).exists()  # one per job, removed
        # Each job's builds directory holds its own project only.
        assert done["step_script"].stdout.strip().endswith(f"proj{i}")
    for r in runners:
        assert leftovers(codex_home, backend, r) == []
