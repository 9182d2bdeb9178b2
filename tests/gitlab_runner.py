"""A stand-in for gitlab-runner driving ``codex-box ci gitlab`` as its custom executor.

It does what the runner does (docs/executors/custom.md): runs ``config`` and reads its
JSON, passes ``job_env`` to the later calls, runs ``prepare``, then ``run SCRIPT STAGE``
for each sub-stage in the runner's order with a bash script generated the runner's way
(``set -eo pipefail`` and the stage's commands ANSI-C quoted behind ``: | eval``, every
job variable exported in it), and ``cleanup`` always. Every call gets the runner's
environment: the job's variables as ``CUSTOM_ENV_*``, ``JOB_RESPONSE_FILE``, and
``BUILD_FAILURE_EXIT_CODE`` / ``SYSTEM_FAILURE_EXIT_CODE`` — deliberately not the
runner's usual 1 and 2, so a driver that hard-codes them fails.
Each driver call runs in its own process group, as the runner starts it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODEX_BOX = str(REPO / ".venv" / "bin" / "codex-box")
BUILD_FAILURE, SYSTEM_FAILURE = 41, 42
RUNNER_ORDER = (
    "prepare_script",
    "get_sources",
    "restore_cache",
    "download_artifacts",
    "step_script",
    "after_script",
    "archive_cache",
    "upload_artifacts_on_success",
    "cleanup_file_variables",
)


def ansi_c(text: str) -> str:
    """bash's $'…' quoting, as gitlab-runner's ShellEscape writes it."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


@dataclass
class Call:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class FakeRunner:
    """One job. ``base_env``: the test's PATH/HOME/CODEX_HOME; ``temp``: the runner's own
    directory for this job (its job response and stage scripts), deliberately outside
    /tmp so only the driver's masking keeps it from the sandbox. Like the runner's
    ``$TMPDIR/custom-executor*``, its parent holds every job's: the driver masks that
    parent, so it must not also hold the builds root."""

    base_env: Mapping[str, str]
    temp: Path
    job_id: int = 1001
    project_id: int = 77
    concurrent_id: int = 0
    project: str = "group/proj"
    server: str = "https://gitlab.example.test"
    token: str = "glcbt-64_TestJobToken0123456789abcdef"  # noqa: S105 -- a test job's
    variables: dict[str, str] = field(default_factory=dict)
    masked: dict[str, str] = field(default_factory=dict)
    builds_root: str | None = None
    job_env: dict[str, str] = field(default_factory=dict)
    config_answer: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.temp.mkdir(parents=True, exist_ok=True)
        self.response = self.temp / "job_response.json"
        response = {
            "id": self.job_id,
            "token": self.token,
            "job_info": {"name": "test", "stage": "test", "project_id": self.project_id,
                         "project_name": self.project.rsplit("/", 1)[-1]},
            "runner_info": {"timeout": 3600},
            "git_info": {
                "repo_url": self.server.replace("://", f"://gitlab-ci-token:{self.token}@")
                + f"/{self.project}.git"
            },
            "variables": [
                {"key": k, "value": v, "public": True, "masked": False}
                for k, v in self.variables.items()
            ]
            + [
                {"key": k, "value": v, "public": False, "masked": True}
                for k, v in self.masked.items()
            ],
        }
        self.response.write_text(json.dumps(response))
        self.response.chmod(0o600)
        self._scripts = 0

    # -- what the runner knows ------------------------------------------------------

    @property
    def slug(self) -> str:
        return self.project.replace("/", "-").lower()

    @property
    def builds_dir(self) -> str:
        return str(self.config_answer.get("builds_dir", ""))

    @property
    def project_dir(self) -> str:
        return f"{self.builds_dir}/{self.project}"

    def ci_variables(self) -> dict[str, str]:
        return {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_JOB_ID": str(self.job_id),
            "CI_PROJECT_ID": str(self.project_id),
            "CI_JOB_TOKEN": self.token,
            "CI_CONCURRENT_PROJECT_ID": str(self.concurrent_id),
            "CI_PROJECT_PATH": self.project,
            "CI_PROJECT_PATH_SLUG": self.slug,
            "CI_PROJECT_DIR": self.project_dir,
            "CI_BUILDS_DIR": self.builds_dir,
            "CI_SERVER_URL": self.server,
            "CI_SERVER_HOST": self.server.split("://", 1)[1].split(":")[0],
            "CI_JOB_TIMEOUT": "3600",
            **self.variables,
            **self.masked,
        }

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(self.base_env)
        env.update({f"CUSTOM_ENV_{k}": v for k, v in self.ci_variables().items()})
        env.update(self.job_env)
        env.update(
            JOB_RESPONSE_FILE=str(self.response),
            BUILD_FAILURE_EXIT_CODE=str(BUILD_FAILURE),
            SYSTEM_FAILURE_EXIT_CODE=str(SYSTEM_FAILURE),
        )
        env.update(extra or {})
        return env

    # -- the four stages -------------------------------------------------------------

    def call(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 180) -> Call:
        proc = subprocess.run(
            [CODEX_BOX, "ci", "gitlab", *args],
            env=self.env(env),
            cwd=str(self.temp),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # the runner makes each call a process group
        )
        return Call(proc.returncode, proc.stdout, proc.stderr)

    def config(self, *args: str) -> Call:
        args = (*args, "--builds-root", self.builds_root) if self.builds_root else args
        done = self.call("config", *args)
        if done.returncode == 0:
            self.config_answer = json.loads(done.stdout)
            self.job_env = {str(k): str(v) for k, v in self.config_answer["job_env"].items()}
        return done

    def prepare(self, *args: str, env: Mapping[str, str] | None = None) -> Call:
        return self.call("prepare", *args, env=env)

    def script(self, stage: str, commands: str) -> Path:
        """The stage's script as gitlab-runner's bash shell writes it."""
        exports = "".join(
            f"export {k}={ansi_c(v)}\n" for k, v in sorted(self.ci_variables().items())
        )
        body = exports
        if stage not in ("prepare_script", "get_sources"):
            body += f'cd {ansi_c(self.project_dir)}\n'
        for line in commands.splitlines():
            body += f"echo {ansi_c(chr(27) + '[32;1m$ ' + line + chr(27) + '[0;m')}\n{line}\n"
        self._scripts += 1
        path = self.temp / f"script{self._scripts}" / "script."
        path.parent.mkdir()
        path.write_text(
            "#!/usr/bin/env bash\n\nset -eo pipefail\nset +o noclobber\n"
            f": | eval {ansi_c(body)}\nexit 0\n"
        )
        return path

    def run(self, stage: str, commands: str, *, timeout: float = 180) -> Call:
        return self.call("run", str(self.script(stage, commands)), stage, timeout=timeout)

    def start_run(self, stage: str, commands: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CODEX_BOX, "ci", "gitlab", "run", str(self.script(stage, commands)), stage],
            env=self.env(),
            cwd=str(self.temp),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def cleanup(self, *args: str) -> Call:
        return self.call("cleanup", *args)

    def job(
        self, stages: Mapping[str, str], *, prepare_args: Sequence[str] = ()
    ) -> dict[str, Call]:
        """A whole job the runner's way: stops at the first failing stage except that
        after_script and the on_failure stages still run, and cleanup always does."""
        done: dict[str, Call] = {}
        try:
            done["config"] = self.config()
            if done["config"].returncode != 0:
                return done
            done["prepare"] = self.prepare(*prepare_args)
            if done["prepare"].returncode != 0:
                return done
            # The runner always fetches the sources; a test that needs none gets an
            # empty checkout directory.
            stages = {"get_sources": 'mkdir -p "$CI_PROJECT_DIR"', **stages}
            failed = False
            for stage in RUNNER_ORDER:
                if stage not in stages:
                    continue
                if failed and stage not in ("after_script", "cleanup_file_variables"):
                    continue
                done[stage] = self.run(stage, stages[stage])
                failed = failed or done[stage].returncode != 0
            if failed and "upload_artifacts_on_failure" in stages:
                done["upload_artifacts_on_failure"] = self.run(
                    "upload_artifacts_on_failure", stages["upload_artifacts_on_failure"]
                )
        finally:
            done["cleanup"] = self.cleanup()
        return done


def clone_commands(origin_repo: Path) -> str:
    """get_sources, cut down: a fresh clone of a local repository (no network)."""
    return (
        'rm -rf "$CI_PROJECT_DIR" && mkdir -p "$CI_BUILDS_DIR"\n'
        f'git clone -q {origin_repo} "$CI_PROJECT_DIR"\n'
        'cd "$CI_PROJECT_DIR" && git log --oneline -1'
    )


def make_origin_repo(
    at: Path, files: Mapping[str, str] | None = None, executable: Sequence[str] = ()
) -> Path:
    """A bare repository with one commit: a README and ``files`` (``executable`` 0755)."""
    work = at / "src"
    work.mkdir(parents=True)
    (work / "README").write_text("hello from the repository\n")
    for name, text in (files or {}).items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name in executable:
            path.chmod(0o755)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)
    bare = at / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare
