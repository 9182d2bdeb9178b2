"""gitlab-runner's custom-executor protocol as data: the stages, their kinds, the exit
codes and the ``config`` stage's JSON (``docs/executors/custom.md``).

Owns: which ``run`` sub-stage is the runner's own (fetching sources, caches and
artifacts: network to the GitLab host only) and which is the job's (its profile); the
driver's exit codes, always the runner's own ``$BUILD_FAILURE_EXIT_CODE`` /
``$SYSTEM_FAILURE_EXIT_CODE`` (never hard-coded: the runner may change them); the job's
directories and the ``config`` answer. Does not own: running anything (``driver``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator import __version__
from orchestrator.core.errors import CodexBoxError

# The runner's own sub-stages: scripts gitlab-runner generates to fetch the sources and
# move caches and artifacts. They need the GitLab server and nothing else.
RUNNER_STAGES = frozenset(
    {
        "get_sources",
        "restore_cache",
        "download_artifacts",
        "archive_cache",
        "archive_cache_on_failure",
        "upload_artifacts_on_success",
        "upload_artifacts_on_failure",
    }
)
# Everything else — build_script, step_script, step_*, after_script, prepare_script,
# cleanup_file_variables, and any name a later runner invents — runs as the job.
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# CI_CONCURRENT_PROJECT_ID is a small number; CI_PROJECT_PATH_SLUG is GitLab's slug
# (lower-case letters, digits, '-', at most 63). Both come from variables a job can set
# itself, so anything else — '..', '/', a NUL — is refused, not cleaned up.
_CONCURRENT_ID = re.compile(r"^[0-9]{1,6}$")
_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62})$")
DRIVER_NAME = "codex-box"


class ProtocolError(CodexBoxError):
    """The runner (or a job's variables) gave the driver something it cannot use."""


def is_runner_stage(stage: str) -> bool:
    return stage in RUNNER_STAGES


def check_stage(stage: str) -> str:
    if not STAGE_NAME.match(stage):
        raise ProtocolError(
            f"stage name {stage!r} is not one gitlab-runner sends",
            hint="run_exec is called as: codex-box ci gitlab run SCRIPT STAGE",
        )
    return stage


@dataclass(frozen=True, slots=True)
class ExitCodes:
    """The runner's codes for this job (each run of the driver reads them afresh)."""

    build_failure: int
    system_failure: int

    @classmethod
    def of(cls, environ: Mapping[str, str]) -> ExitCodes:
        codes = []
        for name in ("BUILD_FAILURE_EXIT_CODE", "SYSTEM_FAILURE_EXIT_CODE"):
            raw = environ.get(name, "")
            if not raw.isdigit() or not 0 < int(raw) < 256:
                raise ProtocolError(
                    f"${name} is {'unset' if not raw else repr(raw)}: this driver is run "
                    "by gitlab-runner's custom executor, which sets it",
                    hint="set it to test the driver by hand, e.g. BUILD_FAILURE_EXIT_CODE=1 "
                    "SYSTEM_FAILURE_EXIT_CODE=2",
                )
            codes.append(int(raw))
        return cls(build_failure=codes[0], system_failure=codes[1])


@dataclass(frozen=True, slots=True)
class JobDirs:
    """Where one job works: ``root`` (the runner stages' workspace) holds ``builds``
    (``builds_dir``: the checkout goes to builds/<namespace>/<project>, the job's
    workspace) and ``cache`` (``cache_dir``). Concurrent jobs of one project get
    different CI_CONCURRENT_PROJECT_IDs, so never the same directory."""

    root: str
    builds: str
    cache: str

    @classmethod
    def of(cls, builds_root: str, environ: Mapping[str, str]) -> JobDirs:
        concurrent = environ.get("CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID", "")
        slug = environ.get("CUSTOM_ENV_CI_PROJECT_PATH_SLUG", "")
        for name, value, pattern in (
            ("CI_CONCURRENT_PROJECT_ID", concurrent, _CONCURRENT_ID),
            ("CI_PROJECT_PATH_SLUG", slug, _SLUG),
        ):
            if not pattern.match(value):
                raise ProtocolError(
                    f"CUSTOM_ENV_{name}={value!r} cannot name a job directory",
                    hint="gitlab-runner sets it; a job's own variables must not override it",
                )
        root = f"{builds_root.rstrip('/')}/{concurrent}/{slug}"
        return cls(root=root, builds=f"{root}/builds", cache=f"{root}/cache")


def config_answer(dirs: JobDirs, *, hostname: str, job_env: Mapping[str, str]) -> dict[str, Any]:
    """The ``config`` stage's JSON: each job its own directories, never shared."""
    return {
        "builds_dir": dirs.builds,
        "cache_dir": dirs.cache,
        "builds_dir_is_shared": False,
        "hostname": hostname,
        "driver": {"name": DRIVER_NAME, "version": __version__},
        "job_env": dict(job_env),
    }
