"""Attacks on the CI front doors, as a hostile job (a .gitlab-ci.yml or workflow author,
or the repository it builds) would make them. Each test asserts the *secure* behaviour:
a hole makes it fail. Those that pass are regressions for what already holds.

GitLab: driven the way gitlab-runner drives ``codex-box ci gitlab`` (tests/gitlab_runner.py)
on the native backend, real sessions. Where gitlab-runner's own generated scripts matter
(``get_sources``), the commands are cut down to what the runner's bash shell runs:
``git clone``/``git fetch`` + ``git checkout -f`` + ``git clean``, and ``git remote
set-url origin`` with the token in the URL (the runner's default unless
FF_GIT_URLS_WITHOUT_TOKENS is on).

GitHub: the hook's pure parts (engine sockets in mounts).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from orchestrator.ci.github import mounts
from tests.escape.conftest import scratch_root
from tests.gitlab_runner import (
    BUILD_FAILURE,
    Call,
    FakeRunner,
    clone_commands,
    make_origin_repo,
)
from tests.procs import processes_with

ENFORCE = '[policy]\nmode = "enforce"\n'
MASKED_VALUE = "masked-Value-7f3a9c"
PROD_SECRET = "prod-Secret-99887766"  # noqa: S105 -- a marker, not a secret
SERVER = "gitlab.example.test"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Outside /tmp (a private /tmp would hide it anyway)."""
    yield from scratch_root("cbx-ciesc")


@pytest.fixture
def make_runner(
    native_available: None, base_env: dict[str, str], codex_home: Path, scratch: Path
) -> Iterator[Callable[..., FakeRunner]]:
    """Jobs of one gitlab-runner (one CODEX_HOME, one builds root), native backend.
    Every job made is cleaned up afterwards, whatever the test did."""
    (codex_home / "config.toml").write_text(ENFORCE)
    env = {**base_env, "CODEX_BOX_BACKEND": "native"}
    counter = iter(range(1, 1000))
    made: list[FakeRunner] = []

    def make(temp: Path | None = None, **kw: object) -> FakeRunner:
        n = next(counter)
        kw.setdefault("job_id", 8000 + n)
        kw.setdefault("masked", {"DEPLOY_KEY": MASKED_VALUE})
        kw.setdefault("builds_root", str(scratch / "builds"))
        runner = FakeRunner(env, temp or scratch / "tmp" / f"runner-{n}", **kw)  # type: ignore[arg-type]
        made.append(runner)
        return runner

    yield make
    for runner in made:
        if runner.job_env:
            runner.cleanup()


def ok(call: Call) -> Call:
    assert call.returncode == 0, f"rc {call.returncode}\n{call.stdout}\n{call.stderr}"
    return call


def root_of(runner: FakeRunner) -> Path:
    return Path(runner.job_env["CODEX_BOX_GITLAB_ROOT"])


def fetch_commands(origin: Path) -> str:
    """get_sources with the runner's default `fetch` strategy: a checkout left by an
    earlier job of the project is fetched and checked out again, not cloned afresh."""
    return (
        'if [ -d "$CI_PROJECT_DIR/.git" ]; then\n'
        'cd "$CI_PROJECT_DIR" && git fetch -q origin && git reset -q --hard'
        " && git checkout -f -q origin/main && git clean -q -ffdx\n"
        "else\n"
        'rm -rf "$CI_PROJECT_DIR" && mkdir -p "$CI_BUILDS_DIR"'
        f' && git clone -q {origin} "$CI_PROJECT_DIR"\n'
        "fi"
    )


def prepared(runner: FakeRunner, origin: Callable[[FakeRunner], Path] | None = None) -> Path | None:
    """config + prepare (+ the job's origin repository under its cache/, which every
    runner stage sees). Returns the origin."""
    ok(runner.config())
    bare = origin(runner) if origin else None
    ok(runner.prepare())
    return bare


def in_cache(files: Mapping[str, str] | None = None, executable: tuple[str, ...] = ()):
    def make(runner: FakeRunner) -> Path:
        cache = root_of(runner) / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        return make_origin_repo(cache / f"origin-{uuid.uuid4().hex[:6]}", files or {}, executable)

    return make


# ====================================================================================
# Findings: each fails while the hole is open.
# ====================================================================================


def test_a_jobs_variables_cannot_put_it_in_another_projects_directory(
    make_runner: Callable[..., FakeRunner],
) -> None:
    """CI_PROJECT_PATH_SLUG and CI_CONCURRENT_PROJECT_ID are job-overridable (GitLab's
    variable precedence: a job's ``variables:`` beat predefined ones); the job's root
    must still be its own, never another project's (whose checkout — .git included —
    its build stage could then rewrite, and whose later jobs would run it)."""
    victim = make_runner(project="victim/app")
    prepared(victim)
    ok(
        victim.run(
            "get_sources",
            'mkdir -p "$CI_PROJECT_DIR/.git" && echo victim > "$CI_PROJECT_DIR/src.txt"',
        )
    )
    ok(victim.cleanup())

    hostile = make_runner(
        project="evil/proj",
        concurrent_id=3,
        variables={"CI_PROJECT_PATH_SLUG": victim.slug, "CI_CONCURRENT_PROJECT_ID": "0"},
    )
    config = hostile.config()
    if config.returncode != 0:
        return  # refusing the job is secure too
    assert root_of(hostile) != root_of(victim), "the hostile project got the victim's job root"
    if hostile.prepare().returncode != 0:
        return
    ok(hostile.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"'))
    victim_git = Path(victim.project_dir) / ".git"
    hostile.run(
        "step_script",
        f'D={victim_git}; echo "[core]" > "$D/config" 2>/dev/null && echo WROTE',
    )
    assert not (victim_git / "config").exists(), "a job rewrote another project's .git"


def test_a_jobs_variables_do_not_reach_git_in_the_runner_stages(
    make_runner: Callable[..., FakeRunner],
) -> None:
    """gitlab-runner exports every job variable in every stage script, get_sources
    included. A job setting GIT_CONFIG_* (or LD_PRELOAD, PATH, ...) runs its own code in
    the runner's session — which holds the job token the job's stages are denied and
    writes the checkout they read."""
    runner = make_runner(
        variables={
            "GIT_CONFIG_COUNT": "3",
            "GIT_CONFIG_KEY_2": "core.hooksPath",
            "GIT_CONFIG_VALUE_2": "hooks",  # the repository's own hooks/ directory
        }
    )
    hook = '#!/bin/sh\necho "$CI_JOB_TOKEN" > "$CI_PROJECT_DIR/stolen.txt"\n'
    origin = prepared(runner, in_cache({"hooks/post-checkout": hook}, ("hooks/post-checkout",)))
    runner.run("get_sources", clone_commands(origin))
    build = runner.run("step_script", "cat stolen.txt 2>/dev/null || echo no-token")
    assert runner.token not in build.stdout, "the job read its token through a runner stage"
    assert not (Path(runner.project_dir) / "stolen.txt").exists()


def test_a_git_filter_planted_in_the_checkout_does_not_run_in_a_later_jobs_runner_stage(
    make_runner: Callable[..., FakeRunner],
) -> None:
    """The checkout is builds/<namespace>/<project>: its .git is *not* the workspace's
    protected top-level .git, so a build script writes it. A smudge filter planted there
    runs in the next job's get_sources (fetch strategy) — in the runner's session, with
    that job's token and every variable it has, protected and masked ones included."""
    first = make_runner()
    origin = prepared(first, in_cache())
    fetch = fetch_commands(origin)
    ok(first.run("get_sources", fetch))
    first.run(
        "step_script",
        'G="$CI_PROJECT_DIR/.git"\n'
        'printf \'[filter "x"]\\n\\tsmudge = sh -c "env > $CI_PROJECT_DIR/.git/loot; cat"\\n\''
        ' >> "$G/config"\n'
        'mkdir -p "$G/info" && echo "* filter=x" > "$G/info/attributes"\n'
        "rm -f README",
    )
    ok(first.cleanup())

    second = make_runner(masked={"PROD_SECRET": PROD_SECRET})  # e.g. a protected branch
    prepared(second)
    second.run("get_sources", fetch)
    ok(second.cleanup())
    loot = Path(second.project_dir) / ".git" / "loot"
    assert not loot.exists(), "code planted by an earlier job ran in a later job's runner stage"


def test_the_job_token_is_not_left_in_the_checkout_for_the_build_to_read(
    make_runner: Callable[..., FakeRunner],
) -> None:
    """The token is withheld from the job's stages (driver.run); gitlab-runner's
    get_sources stores it in .git/config's remote URL, which the build stage can read."""
    runner = make_runner()
    origin = prepared(runner, in_cache())
    ok(
        runner.run(
            "get_sources",
            clone_commands(origin) + "\n"
            f'git remote set-url origin "https://gitlab-ci-token:${{CI_JOB_TOKEN}}@{SERVER}/group/proj.git"',
        )
    )
    build = runner.run("step_script", "git config remote.origin.url; cat .git/config")
    assert runner.token not in build.stdout, "the build read the job token from .git/config"


def test_narrowing_to_offline_does_not_reveal_a_concurrent_jobs_response_file(
    make_runner: Callable[..., FakeRunner],
) -> None:
    """gitlab-runner keeps each job's response file (token, every variable) in
    $TMPDIR/custom-executor*/. Only the job's *own* directory is masked; a job that
    narrows itself to ``offline`` (allowed: it is "narrower") loses the private /tmp and
    sees the host's, with every concurrent job's response in it."""
    victim_temp = Path(tempfile.mkdtemp(prefix="custom-executor"))  # as the runner's
    victim = make_runner(
        temp=victim_temp, project="victim/app", masked={"PROD_SECRET": PROD_SECRET}
    )
    attacker = make_runner(
        project="evil/x", concurrent_id=1, variables={"CODEX_BOX_PROFILE": "offline"}
    )
    try:
        prepared(victim)
        prepared(attacker)
        ok(attacker.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"'))
        call = attacker.run(
            "step_script", f"cat {victim_temp}/*.json 2>/dev/null; ls {victim_temp} 2>&1"
        )
        assert PROD_SECRET not in call.stdout and victim.token not in call.stdout, (
            "a job read a concurrent job's response file (its token and masked variables)"
        )
    finally:
        for runner in (victim, attacker):
            if runner.job_env:
                runner.cleanup()  # while the victim's directory (its cwd) still exists
            runner.job_env = {}
        shutil.rmtree(victim_temp, ignore_errors=True)


def test_a_job_cannot_read_another_projects_checkout(
    make_runner: Callable[..., FakeRunner],
) -> None:
    """Builds persist under the runner's builds root (cleanup keeps them by default).
    The native backend shows the host read-only, so another project's job reads them
    (sources of a private project, anything its build left). The driver knows every
    other job's directory and hides its own runner temp dir already; it hides no other
    job's builds."""
    victim = make_runner(project="private/app")
    prepared(victim)
    ok(
        victim.run(
            "get_sources", f'mkdir -p "$CI_PROJECT_DIR" && echo {PROD_SECRET} > "$CI_PROJECT_DIR/s"'
        )
    )
    ok(victim.cleanup())
    other = make_runner(project="evil/y", concurrent_id=2)
    prepared(other)
    ok(other.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"'))
    call = other.run("step_script", f"cat {victim.project_dir}/s 2>&1")
    assert PROD_SECRET not in call.stdout, "a job read another project's checkout"


# ====================================================================================
# Regressions: attacks that fail today.
# ====================================================================================


def test_a_jobs_own_response_and_token_stay_out_of_both_sessions(
    make_runner: Callable[..., FakeRunner], codex_home: Path
) -> None:
    runner = make_runner()
    prepared(runner)
    # (Each stage echoes its commands: the markers below are not in them.)
    probe = (
        f"set +e; cat {runner.response} 2>/dev/null; ls {runner.temp} 2>/dev/null;"
        f" cat {runner.temp}/script*/script. 2>/dev/null;"
        f" ls {codex_home}/ci/gitlab {codex_home}/sessions || true;"
        ' cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n" | grep -a CUSTOM_EN[V]_ || true;'
        ' echo "<${CI_JOB_TOKEN}>"'
    )
    sources = runner.run("get_sources", f'mkdir -p "$CI_PROJECT_DIR"; {probe}')
    for leaked in ("git_info", "CUSTOM_ENV_CI", f"{runner.job_id}.json", "script1"):
        assert leaked not in sources.stdout, leaked
    build = runner.run("step_script", probe)
    for leaked in (runner.token, "git_info", "CUSTOM_ENV_CI", f"{runner.job_id}.json", "script1"):
        assert leaked not in build.stdout, leaked
    assert "<>" in build.stdout


def test_job_variables_naming_another_job_or_server_are_not_believed(
    make_runner: Callable[..., FakeRunner], codex_home: Path
) -> None:
    """CI_JOB_ID and CI_SERVER_URL from CUSTOM_ENV_* lose to the job response."""
    victim = make_runner()
    prepared(victim)
    ok(victim.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"'))
    hostile = make_runner(
        concurrent_id=1,
        project="evil/z",
        variables={"CI_JOB_ID": str(victim.job_id), "CI_SERVER_URL": "https://attacker.example"},
    )
    prepared(hostile)
    ok(hostile.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"'))
    ok(hostile.cleanup())  # must stop the hostile job's sessions, not the victim's
    assert ok(victim.run("step_script", "echo still-here")).stdout.endswith("still-here\n")
    assert not list((codex_home / "profiles").glob("gitlab-attacker*"))


@pytest.mark.parametrize(
    ("slug", "concurrent"),
    [("..", "0"), ("a/../../x", "0"), ("ok", "../1"), ("ok", "1/.."), ("ok\n", "0"), ("-x", "0")],
)
def test_the_job_directory_variables_decide_nothing(
    make_runner: Callable[..., FakeRunner], slug: str, concurrent: str, scratch: Path
) -> None:
    """The job's directory comes from the job response's project and job ids alone:
    whatever a job sets CI_PROJECT_PATH_SLUG / CI_CONCURRENT_PROJECT_ID to."""
    runner = make_runner(
        variables={"CI_PROJECT_PATH_SLUG": slug, "CI_CONCURRENT_PROJECT_ID": concurrent}
    )
    ok(runner.config())
    expected = scratch / "builds" / str(runner.project_id) / str(runner.job_id)
    assert root_of(runner) == expected
    assert runner.builds_dir == f"{expected}/builds"
    runner.job_env = {}


@pytest.mark.parametrize(
    "asked",
    [
        "trusted",
        "danger-full-access",
        "workspace-net",
        "net-read-only",
        f"gitlab-{SERVER.replace('.', '-')}",
    ],
)
def test_a_jobs_profile_variable_cannot_widen(
    make_runner: Callable[..., FakeRunner], asked: str
) -> None:
    if asked.startswith("gitlab-"):
        prepared(make_runner(concurrent_id=6))  # the runner stages' profile exists now
    runner = make_runner(variables={"CODEX_BOX_PROFILE": asked})
    ok(runner.config())
    assert runner.prepare().returncode == BUILD_FAILURE


def test_stage_names_from_the_runner_cannot_traverse(
    make_runner: Callable[..., FakeRunner],
) -> None:
    runner = make_runner()
    prepared(runner)
    script = runner.script("step_script", "echo hi")
    for stage in ("../../x", "get_sources/../step", "STEP", ""):
        assert runner.call("run", str(script), stage).returncode != 0


def test_daemons_do_not_outlive_their_stage_or_the_job(
    make_runner: Callable[..., FakeRunner],
) -> None:
    runner = make_runner()
    prepared(runner)
    ok(runner.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"'))
    marker = f"{uuid.uuid4().int % 10**6}.25"
    escape = (
        f"setsid sh -c 'sleep {marker}' </dev/null >/dev/null 2>&1 &\n"
        f"( ( nohup sleep {marker} </dev/null >/dev/null 2>&1 & ) & )\n"
        f"(trap '' HUP TERM; exec sleep {marker}) </dev/null >/dev/null 2>&1 &\n"
        "echo started"
    )
    ok(runner.run("step_script", escape))
    deadline = time.monotonic() + 5
    while processes_with(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(f"sleep\0{marker}") == [], "a job stage's daemon outlived the stage"
    ok(runner.run("archive_cache", escape))
    ok(runner.cleanup())
    runner.job_env = {}
    time.sleep(0.5)
    assert processes_with(f"sleep\0{marker}") == [], "a runner stage's daemon outlived cleanup"


def test_a_builds_symlink_planted_by_a_runner_stage_widens_no_later_job(
    make_runner: Callable[..., FakeRunner], scratch: Path
) -> None:
    """Code in the runner's session (see the GIT_CONFIG finding) can replace the job
    root's builds/ with a link; the next job of the project must not get the link's
    target as its writable workspace."""
    target = scratch / "outside"
    target.mkdir()
    first = make_runner()
    prepared(first)
    root = root_of(first)
    ok(
        first.run(
            "get_sources",
            f'mkdir -p "$CI_PROJECT_DIR"; cd {root} && rm -rf builds && ln -s {target} builds',
        )
    )
    ok(first.cleanup())
    assert not root.exists() and target.is_dir()  # the job's directory went, link and all
    second = make_runner()
    ok(second.config())
    if second.prepare().returncode == 0:
        second.run("get_sources", f"touch {root}/builds/pwned-by-runner")
        second.run("step_script", f"touch {root}/builds/pwned-by-job")
    assert list(target.iterdir()) == [], "a later job wrote through a planted builds link"


def test_a_codex_profile_that_is_a_fifo_or_link_neither_hangs_nor_widens(
    make_runner: Callable[..., FakeRunner],
) -> None:
    for plant in (
        'mkfifo "$CI_PROJECT_DIR/.codex-profile"',
        'ln -s /etc/hostname "$CI_PROJECT_DIR/.codex-profile"',
    ):
        runner = make_runner(concurrent_id=len(plant) % 7)
        prepared(runner)
        ok(runner.run("get_sources", f'mkdir -p "$CI_PROJECT_DIR"; {plant}'))
        started = time.monotonic()
        call = runner.run("step_script", "echo ran", timeout=60)
        assert time.monotonic() - started < 60
        assert "narrows" not in call.stderr
        ok(runner.cleanup())
        runner.job_env = {}


def test_masked_values_stay_out_of_the_audit_log_even_when_refused(
    make_runner: Callable[..., FakeRunner], codex_home: Path
) -> None:
    runner = make_runner()
    prepared(runner)
    ok(
        runner.run(
            "get_sources",
            f'mkdir -p "$CI_PROJECT_DIR"; echo {MASKED_VALUE} {runner.token} >/dev/null',
        )
    )
    refused = runner.run("step_script", f"echo {MASKED_VALUE}; echo {runner.token}; rm -rf /")
    assert refused.returncode == BUILD_FAILURE
    refused = runner.run("archive_cache", f"echo {MASKED_VALUE}; rm -rf /")
    assert refused.returncode == BUILD_FAILURE
    ok(runner.cleanup())
    runner.job_env = {}
    text = "".join(p.read_text() for p in codex_home.glob("audit.log*") if p.is_file())
    assert MASKED_VALUE not in text and runner.token not in text


# --- GitHub: engine sockets in a job container's mounts -----------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/var/run/docker.sock",
        "/var/run/docker.sock/",
        "//var//run//docker.sock",
        "/var/run/../run/docker.sock",
        "/run/./docker.sock",
        "/var/run",
        "/var/run/",
        "/run",
        "/var",
        "/",
        "/run/user/1000/docker.sock",
        "/run/user/1000",
        "/run/user",
        "/run/podman",
        "/run/containerd",
        "/home/runner/.docker/run/docker.sock",
        "/var/snap/docker/common/run/docker.sock",
        "/run/user/1000/podman/podman.sock",
    ],
)
def test_every_spelling_of_an_engine_socket_or_its_directory_is_dropped(path: str) -> None:
    mount = mounts.Mount(source=path, target="/x")
    kept, notes = mounts.drop_engine_sockets([mount], keep=False, profile="workspace")
    assert kept == () and notes
    mount = mounts.Mount(source="/home/ok", target=path)
    kept, notes = mounts.drop_engine_sockets([mount], keep=False, profile="workspace")
    assert kept == () and notes
