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
DRIVER_NAME = "codex-box"


class ProtocolError(CodexBoxError):
    """The runner (or a job's variables) gave the driver something it cannot use."""


def is_runner_stage(stage: str) -> bool:
    return stage in RUNNER_STAGES


def check_stage(stage: str) -> str:
    if not STAGE_NAME.fullmatch(stage):
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
            if not re.fullmatch(r"[0-9]{1,3}", raw) or not 0 < int(raw) < 256:
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
    workspace) and ``cache`` (``cache_dir``).

    One directory per job, ``<builds root>/<project id>/<job id>``, both from the job
    response (what GitLab sent, which no job can change), removed by ``cleanup``: a
    directory a job could name itself (``CI_PROJECT_PATH_SLUG`` and
    ``CI_CONCURRENT_PROJECT_ID`` are job-overridable) would let one project's job work
    in another's checkout, and a checkout kept for the next job would carry whatever a
    build planted in its ``.git`` into that job's runner stages, which hold its token.
    """

    root: str
    builds: str
    cache: str

    @classmethod
    def of(cls, builds_root: str, *, project_id: str, job_id: str) -> JobDirs:
        for what, value in (("project id", project_id), ("job id", job_id)):
            if not re.fullmatch(r"[0-9]{1,20}", value):
                raise ProtocolError(f"the job's {what} {value!r} cannot name a directory")
        root = f"{builds_root.rstrip('/')}/{project_id}/{job_id}"
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
