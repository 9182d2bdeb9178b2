"""A GitLab job's two sessions: what they are started with, and starting them.

Owns: planning a job at ``prepare`` (its directories, the profile of each session), the
session names (``gl-<job id>`` for the job's stages, ``gl-<job id>-runner`` for the
runner's), starting a session with gitlab-runner's own files masked in it, and starting
the job's session again when the checkout's ``.codex-profile`` narrows its profile.
Does not own: the profiles themselves (``choice``, ``narrowing``), the stages
(``driver``), sessions (``ci.jobs``, ``runner.sessions``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from orchestrator.core.options import LaunchOptions
from orchestrator.runner.context import HostContext
from orchestrator.runner.sessions.request import StartRequest, parse_duration

from .. import jobs
from . import choice, job, narrowing, protocol

JOB, RUNNER = "job", "runner"


def default_builds_root(context: HostContext) -> str:
    return os.path.join(context.user_home, "codex-box-builds")


def name(job_id: str, role: str) -> str:
    return f"gl-{job_id}" if role == JOB else f"gl-{job_id}-runner"


def plan(
    context: HostContext,
    environ: Mapping[str, str],
    the_job: job.Job,
    *,
    profile: str | None,
    max_profile: str | None,
    runner_profile: str | None,
    backend: str | None,
    image: str | None,
) -> job.JobState:
    root = (
        environ.get("CODEX_BOX_GITLAB_ROOT")
        or protocol.JobDirs.of(default_builds_root(context), environ).root
    )
    chosen = choice.job_profile(
        context.store,
        flag=profile,
        max_profile=max_profile,
        asked=environ.get("CUSTOM_ENV_CODEX_BOX_PROFILE") or None,
    )
    if runner_profile:
        runner = context.store.get(runner_profile, source="prepare_args --runner-profile").name
    else:
        runner = choice.runner_profile(context.store, the_job.server)
    dirs = protocol.JobDirs(root=root, builds=f"{root}/builds", cache=f"{root}/cache")
    for path in (dirs.builds, dirs.cache):
        os.makedirs(path, mode=0o700, exist_ok=True)
    # The job state's directory exists before any sandbox does: it is masked in each.
    job.state_dir(context.home).mkdir(mode=0o700, parents=True, exist_ok=True)
    return job.JobState(
        job_id=the_job.id,
        profile=chosen.name,
        runner_profile=runner,
        backend=backend or environ.get("CODEX_BOX_BACKEND"),
        image=image,
        root=dirs.root,
        builds=dirs.builds,
        cache=dirs.cache,
    )


def start(context: HostContext, state: job.JobState, role: str, environ: Mapping[str, str]) -> str:
    workspace = state.builds if role == JOB else state.root
    return jobs.start_session(
        StartRequest(
            environ=dict(context.environ),
            cwd=workspace,
            profile=state.profile if role == JOB else state.runner_profile,
            workspace=workspace,
            backend=state.backend,
            options=LaunchOptions(image=state.image, hide=_runner_files(environ)),
            name=name(state.job_id, role),
            idle_timeout_s=parse_duration("--idle-timeout", state.idle_timeout),
            max_lifetime_s=_lifetime(environ),
        )
    )


def narrow(
    context: HostContext,
    state: job.JobState,
    environ: Mapping[str, str],
    log: Callable[[str], None],
) -> None:
    """Once the checkout is there: its ``.codex-profile`` may narrow the job's profile
    (``narrowing``); the job's session then starts again under it (the checkout, on
    disk, is all a stage leaves to the next)."""
    project = narrowing.project_dir(environ, state.builds)
    profile = narrowing.narrowed(context.store, state.profile, project, log)
    if profile is None:
        return
    log(f"{project}/.codex-profile narrows the job's profile: {state.profile} → {profile.name}")
    jobs.stop_named(context.home, name(state.job_id, JOB))
    state.profile = profile.name
    state.sessions[JOB] = start(context, state, JOB, environ)
    job.save(context.home, state)


def _runner_files(environ: Mapping[str, str]) -> tuple[str, ...]:
    """gitlab-runner's directory for this job (its job response, holding the token and
    every variable, and the stage scripts): masked in each sandbox, whatever the
    profile shows of the host's /tmp."""
    path = environ.get("JOB_RESPONSE_FILE")
    return (os.path.dirname(os.path.abspath(path)),) if path else ()


def _lifetime(environ: Mapping[str, str]) -> float:
    """The job's timeout plus a margin (a session outliving a lost cleanup ends)."""
    raw = environ.get("CUSTOM_ENV_CI_JOB_TIMEOUT", "")
    seconds = int(raw) if raw.isdigit() and 0 < int(raw) < 30 * 86400 else 8 * 3600
    return float(seconds + 600)
