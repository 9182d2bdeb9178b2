"""One ``run`` sub-stage (orchestrator.ci.gitlab.stages): which session, what of the
script it gets, what the policy is shown, and the token taken out of the checkout's
remotes after get_sources. The session's keeper and the policy's runner are faked; the
scrub's shell text runs for real, with git, on a repository in a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from orchestrator.ci.gitlab import job, scripts, stages
from orchestrator.ci.gitlab.protocol import ProtocolError
from orchestrator.core.errors import Refused

from .conftest import runner_script

TOKEN = "glcbt-64_TestJobToken0123456789"  # noqa: S105 -- a test value
MASKED = "masked-Value-7f3a9c"

# --- SCRUB_ARGV, for real ----------------------------------------------------------------

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _scrub(directory: Path, shell: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = list(stages.SCRUB_ARGV)
    if shell is not None:
        argv[0] = shell
    return subprocess.run(
        [*argv, str(directory)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(directory.parent), "LC_ALL": "C"},
        timeout=30,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "builds" / "group" / "proj"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


REMOTES = {
    # name: (before, after)
    "origin": (
        f"https://gitlab-ci-token:{TOKEN}@gitlab.example.test/group/proj.git",
        "https://gitlab.example.test/group/proj.git",
    ),
    "port": (
        f"http://gitlab-ci-token:{TOKEN}@gitlab.example.test:8080/group/proj.git",
        "http://gitlab.example.test:8080/group/proj.git",
    ),
    "plain": ("https://gitlab.example.test/group/other.git", None),
    "scp": ("git@gitlab.example.test:group/proj.git", None),
    "at_in_path": ("https://gitlab.example.test/group/proj@v2.git", None),
    "local": ("/srv/mirror/proj.git", None),
}


@needs_git
@pytest.mark.parametrize("shell", [None, "bash"])
def test_the_scrub_takes_the_userinfo_out_of_token_urls_only(
    checkout: Path, shell: str | None
) -> None:
    for name, (url, _) in REMOTES.items():
        _git(checkout, "remote", "add", name, url)
    done = _scrub(checkout, shell)
    assert done.returncode == 0, done.stderr
    for name, (url, after) in REMOTES.items():
        assert _git(checkout, "remote", "get-url", name) == (after or url), name
    assert TOKEN not in (checkout / ".git" / "config").read_text()


@needs_git
def test_the_scrub_is_run_as_bash_c_with_the_directory_as_1(checkout: Path) -> None:
    _git(checkout, "remote", "add", "origin", REMOTES["origin"][0])
    done = subprocess.run(
        ["bash", "-c", stages.SCRUB_ARGV[2], "gitlab-scrub-remotes", str(checkout)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _git(checkout, "remote", "get-url", "origin") == REMOTES["origin"][1]


@needs_git
def test_a_second_scrub_changes_nothing(checkout: Path) -> None:
    _git(checkout, "remote", "add", "origin", REMOTES["origin"][0])
    assert _scrub(checkout).returncode == 0
    before = (checkout / ".git" / "config").read_bytes()
    assert _scrub(checkout).returncode == 0
    assert (checkout / ".git" / "config").read_bytes() == before


@needs_git
def test_the_scrub_of_a_checkout_without_remotes_succeeds(checkout: Path) -> None:
    before = (checkout / ".git" / "config").read_bytes()
    assert _scrub(checkout).returncode == 0
    assert (checkout / ".git" / "config").read_bytes() == before


def test_the_scrub_of_no_checkout_succeeds_and_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "not-a-repo").mkdir()
    (tmp_path / "not-a-repo" / "file").write_text("x")
    assert _scrub(tmp_path / "not-a-repo").returncode == 0
    assert _scrub(tmp_path / "missing").returncode == 0
    assert sorted(p.name for p in (tmp_path / "not-a-repo").iterdir()) == ["file"]


def test_the_scrub_is_fixed_text_with_the_directory_as_an_argument() -> None:
    # No value of the job's is in the shell text: the checkout is $1, never spliced in.
    assert stages.SCRUB_ARGV[:2] == ("sh", "-c")
    assert stages.SCRUB_ARGV[3] == "gitlab-scrub-remotes"  # $0
    assert '"$1"' in stages.SCRUB_ARGV[2]
    assert stages.STAGE_ARGV == ("bash", "-c", 'eval "$(cat)"')


# --- run_stage, with the keeper and the policy faked ------------------------------------------


class FakeRunner:
    requests: ClassVar[list[Any]] = []
    refuse: ClassVar[bool] = False

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        FakeRunner.requests.append(request)

    def prepare(self, *, probe: bool = True) -> None:
        assert probe is False
        if FakeRunner.refuse:
            raise Refused("forbidden by the policy")


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimpleNamespace:
    FakeRunner.requests = []
    FakeRunner.refuse = False
    h = SimpleNamespace(steps=[], narrowed=[], logged=[], results=[])

    def step(
        home: Path, session_id: str, argv: Any, *, environ: Any, stdin: int, approve: bool
    ) -> dict[str, Any]:
        os.lseek(stdin, 0, os.SEEK_SET)
        text = b""
        while chunk := os.read(stdin, 1 << 16):
            text += chunk
        h.steps.append(
            SimpleNamespace(session=session_id, argv=tuple(argv), stdin=text, approve=approve)
        )
        return h.results.pop(0) if h.results else {"exit_code": 0}

    monkeypatch.setattr(stages.jobs, "step", step)
    monkeypatch.setattr(stages, "Runner", FakeRunner)
    monkeypatch.setattr(
        stages.sessions, "narrow", lambda context, state, environ, log: h.narrowed.append(state)
    )
    builds = tmp_path / "b" / "77" / "1001" / "builds"
    (builds / "group" / "proj").mkdir(parents=True)
    h.context = SimpleNamespace(home=tmp_path / "home", environ={"PATH": "/usr/bin"})
    h.state = job.JobState(
        job_id="1001",
        profile="workspace",
        runner_profile="gitlab-gitlab-example-test-0123abcd",
        backend="native",
        image=None,
        root=str(builds.parent),
        builds=str(builds),
        cache=str(builds.parent / "cache"),
        sessions={"job": "s-job", "runner": "s-runner"},
    )
    h.job = job.Job(
        id="1001", token=TOKEN, server="gitlab.example.test", project_id="77", masked=(MASKED,)
    )
    h.environ = {"CUSTOM_ENV_CI_PROJECT_DIR": str(builds / "group" / "proj")}
    h.project = str(builds / "group" / "proj")

    def run(stage: str, text: str) -> dict[str, Any]:
        return stages.run_stage(h.context, h.state, h.job, stage, text, h.environ, h.logged.append)

    h.run = run
    return h


VARIABLES = {
    "CI_JOB_TOKEN": TOKEN,
    "CI_REPOSITORY_URL": f"https://gitlab-ci-token:{TOKEN}@gitlab.example.test/group/proj.git",
    "DEPLOY_KEY": MASKED,
    "CI": "true",
}


def test_a_job_stage_runs_in_the_job_s_session_without_the_token(
    harness: SimpleNamespace,
) -> None:
    script = runner_script("make test", variables=VARIABLES)
    assert harness.run("build_script", script) == {"exit_code": 0}
    assert harness.narrowed == [harness.state]  # the checkout's .codex-profile first
    [step] = harness.steps
    assert step.session == "s-job"
    assert step.argv == (*stages.STAGE_ARGV, "gitlab-build_script")
    assert step.approve is True
    assert TOKEN.encode() not in step.stdin
    assert step.stdin == scripts.without(script, (TOKEN,)).encode()
    assert MASKED.encode() in step.stdin  # a masked variable is the job's own to use


def test_a_job_stage_keeps_the_token_when_the_runner_passes_it(harness: SimpleNamespace) -> None:
    harness.state.pass_job_token = True
    script = runner_script("make test", variables=VARIABLES)
    harness.run("step_script", script)
    assert harness.steps[0].stdin == script.encode()


def test_a_job_stage_s_bytes_reach_the_sandbox_unchanged(harness: SimpleNamespace) -> None:
    script = runner_script("printf '\udcff'", variables={"NOTE": "caf\u00e9"})
    harness.run("step_script", script)
    assert harness.steps[0].stdin == script.encode("utf-8", "surrogateescape")


def test_the_policy_is_shown_the_commands_with_every_secret_masked(
    harness: SimpleNamespace,
) -> None:
    line = f"curl -H 'X: {MASKED}' https://gitlab.example.test"
    script = runner_script(line, variables=VARIABLES)
    harness.run("step_script", script)
    [request] = FakeRunner.requests
    argv = request.argv
    assert argv[:2] == ("bash", "-c") and argv[3] == "gitlab-step_script"
    assert TOKEN not in argv[2] and MASKED not in argv[2]
    assert argv[2] == f"curl -H 'X: {scripts.MASK}' https://gitlab.example.test\n"
    assert (request.profile, request.workspace) == ("workspace", harness.state.builds)
    assert request.approve is True and request.backend == "native"


def test_a_runner_stage_runs_in_the_runner_s_session_without_the_job_s_code_variables(
    harness: SimpleNamespace,
) -> None:
    risky = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.fsmonitor", "PATH": "/b/bin"}
    script = runner_script("git fetch", variables={**VARIABLES, **risky, "GIT_DEPTH": "5"})
    harness.run("restore_cache", script)
    assert harness.narrowed == []  # the job's profile is not the runner stages' business
    [step] = harness.steps
    assert step.session == "s-runner"
    assert step.argv == (*stages.STAGE_ARGV, "gitlab-restore_cache")
    expected, dropped = scripts.for_runner_stage(script)
    assert dropped == tuple(risky)
    assert step.stdin == expected.encode()
    assert TOKEN.encode() in step.stdin  # the runner's stages need it: sources, caches
    assert harness.logged == [
        "restore_cache: the job's GIT_CONFIG_COUNT, GIT_CONFIG_KEY_0, PATH not applied to "
        "the runner's stage"
    ]
    [request] = FakeRunner.requests
    assert (request.profile, request.workspace) == (
        harness.state.runner_profile,
        harness.state.root,
    )
    assert "GIT_CONFIG" not in request.argv[2]


def test_a_runner_stage_without_code_variables_logs_nothing(harness: SimpleNamespace) -> None:
    harness.run("archive_cache", runner_script("true", variables={"CI": "true"}))
    assert harness.logged == []


def test_a_runner_stage_of_another_shape_runs_nothing(harness: SimpleNamespace) -> None:
    with pytest.raises(ProtocolError, match="not the bash script gitlab-runner writes"):
        harness.run("get_sources", "#!/bin/sh\nexport GIT_CONFIG_COUNT=1\ngit fetch\n")
    assert harness.steps == [] and FakeRunner.requests == []


@pytest.mark.parametrize("stage", ["step_script", "get_sources"])
def test_a_refusal_of_the_policy_runs_nothing(harness: SimpleNamespace, stage: str) -> None:
    FakeRunner.refuse = True
    with pytest.raises(Refused):
        harness.run(stage, runner_script("rm -rf /"))
    assert harness.steps == []


def test_after_get_sources_the_checkout_s_remotes_are_scrubbed_in_the_runner_s_session(
    harness: SimpleNamespace,
) -> None:
    harness.results = [{"exit_code": 0, "stage": True}, {"exit_code": 0}]
    result = harness.run("get_sources", runner_script("git fetch", variables=VARIABLES))
    assert result == {"exit_code": 0, "stage": True}  # the stage's own result
    assert [s.session for s in harness.steps] == ["s-runner", "s-runner"]
    scrub = harness.steps[1]
    assert scrub.argv == (*stages.SCRUB_ARGV, harness.project)
    assert scrub.stdin == b""
    assert len(FakeRunner.requests) == 1  # the scrub is our fixed text, not the job's


def test_a_failed_get_sources_is_not_scrubbed(harness: SimpleNamespace) -> None:
    harness.results = [{"exit_code": 1}]
    assert harness.run("get_sources", runner_script("git fetch"))["exit_code"] == 1
    assert len(harness.steps) == 1


@pytest.mark.parametrize("project", [None, "", "group/proj", "/etc", "../../x"])
def test_get_sources_of_a_checkout_outside_builds_scrubs_nothing_there(
    harness: SimpleNamespace, project: str | None
) -> None:
    # CI_PROJECT_DIR is a job variable: the scrub (run where the token is) never goes
    # outside the job's builds directory.
    if project is None:
        del harness.environ["CUSTOM_ENV_CI_PROJECT_DIR"]
    else:
        harness.environ["CUSTOM_ENV_CI_PROJECT_DIR"] = project
    harness.run("get_sources", runner_script("git fetch"))
    assert len(harness.steps) == 1


@pytest.mark.parametrize("stage", ["restore_cache", "download_artifacts", "step_script"])
def test_only_get_sources_is_followed_by_the_scrub(harness: SimpleNamespace, stage: str) -> None:
    harness.run(stage, runner_script("true"))
    assert len(harness.steps) == 1


def test_a_failed_scrub_does_not_pass_for_a_clean_checkout(harness: SimpleNamespace) -> None:
    # The scrub is what keeps the token (in .git/config) from the job's stages: when it
    # fails, get_sources must not report success as if the checkout were clean.
    harness.results = [{"exit_code": 0}, {"exit_code": 1}]
    try:
        result = harness.run("get_sources", runner_script("git fetch"))
    except Exception:
        return
    assert result["exit_code"] != 0
