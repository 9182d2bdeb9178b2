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
from orchestrator.core.paths import inside
from orchestrator.runner.context import HostContext
from orchestrator.runner.sessions.request import StartRequest, parse_duration

from .. import jobs
from . import choice, job, narrowing, protocol

JOB, RUNNER = "job", "runner"
HOST_TMP = "/tmp"  # noqa: S108 -- the host's, masked (runner_files), never used


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
    # The config stage's answer (job_env, for the driver's own later calls), else the
    # default root; either way the job's own directory, by the job response's ids.
    root = (
        environ.get("CODEX_BOX_GITLAB_ROOT")
        or protocol.JobDirs.of(
            default_builds_root(context), project_id=the_job.project_id, job_id=the_job.id
        ).root
    )
    if not root.endswith(f"/{the_job.project_id}/{the_job.id}") or not os.path.isabs(root):
        raise protocol.ProtocolError(
            f"the job directory {root} is not job {the_job.id}'s",
            hint="config_exec must be `codex-box ci gitlab config`",
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
        # The job's timeout as GitLab set it, plus a margin: a session outliving a lost
        # cleanup ends (a job's own variable cannot stretch it).
        lifetime_s=float((the_job.timeout_s or 8 * 3600) + 600),
    )


def start(context: HostContext, state: job.JobState, role: str, environ: Mapping[str, str]) -> str:
    workspace = state.builds if role == JOB else state.root
    profile = state.profile if role == JOB else (state.runner_profile or state.profile)
    return jobs.start_session(
        StartRequest(
            environ=dict(context.environ),
            cwd=workspace,
            profile=profile,
            workspace=workspace,
            backend=state.backend,
            options=LaunchOptions(
                image=state.image,
                hide=runner_files(environ, private_tmp=context.store.get(profile).private_tmp),
            ),
            name=name(state.job_id, role),
            idle_timeout_s=parse_duration("--idle-timeout", state.idle_timeout),
            max_lifetime_s=state.lifetime_s,
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


def runner_files(environ: Mapping[str, str], *, private_tmp: bool) -> tuple[str, ...]:
    """What each sandbox of the job must not see of gitlab-runner's own files: the
    directory holding every job's directory (``$TMPDIR/custom-executor*``: job responses
    with tokens and every variable, stage scripts) — not only this job's, since a job
    narrowed to ``offline`` would see the host's /tmp and its neighbours' — and the
    host's /tmp for a profile without a private one. Under /tmp, a private /tmp already
    hides them (and masking /tmp would take the job's private one away)."""
    hidden = {HOST_TMP} if not private_tmp else set()
    path = environ.get("JOB_RESPONSE_FILE")
    if path:
        hidden.add(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    return tuple(sorted(p for p in hidden if not (private_tmp and inside(p, HOST_TMP))))
