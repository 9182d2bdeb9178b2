"""One ``run`` sub-stage: which session, what of the script it gets, the policy's
judgement, the exec, and what a stage leaves that the next must not have.

Owns: the job's stages losing the job token (unless ``--pass-job-token``); the runner's
stages losing the job's code-deciding variables (``scripts.for_runner_stage``); the
policy on the commands (a refusal is audited, then raised); and, after ``get_sources``,
the job token taken out of the checkout's remote URLs (gitlab-runner stores it there,
where the build stages would read it).
Does not own: exit codes (``driver``), the scripts' grammar (``scripts``), sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import LaunchOptions
from orchestrator.runner.context import HostContext
from orchestrator.runner.pipeline import Runner, RunRequest

from .. import jobs
from . import job, protocol, scripts, sessions

STAGE_ARGV = ("bash", "-c", 'eval "$(cat)"')  # the script comes on stdin (``scripts``)
# Run in the runner's session after get_sources: every remote URL of the checkout loses
# its user:password@ (the token). Fixed text: no value of the job's in it.
SCRUB_ARGV = (
    "sh",
    "-c",
    'cd "$1" 2>/dev/null && [ -d .git ] || exit 0; '
    'for r in $(git remote); do u=$(git remote get-url "$r") || continue; '
    'case $u in *://*@*) git remote set-url "$r" "$(printf %s "$u" | '
    "sed -E 's#^(https?://)[^/@]*@#\\1#')\";; esac; done",
    "gitlab-scrub-remotes",
)


def run_stage(
    context: HostContext,
    state: job.JobState,
    the_job: job.Job,
    stage: str,
    text: str,
    environ: Mapping[str, str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    role = sessions.RUNNER if protocol.is_runner_stage(stage) else sessions.JOB
    if role == sessions.JOB:
        sessions.narrow(context, state, environ, log)
        if not state.pass_job_token:
            # The token fetches sources and moves artifacts (the runner stages' work);
            # in a build script it would act as the job against GitLab's API.
            text = scripts.without(text, (the_job.token,))
    else:
        text, dropped = scripts.for_runner_stage(text)
        if dropped:
            log(f"{stage}: the job's {', '.join(dropped)} not applied to the runner's stage")
    _judge(context, state, role, stage, text, the_job)
    result = _exec(context, state, role, (*STAGE_ARGV, f"gitlab-{stage}"), text)
    if stage == "get_sources" and result.get("exit_code") == 0:
        project = _checkout(environ, state)
        if project is not None:
            scrubbed = _exec(context, state, sessions.RUNNER, (*SCRUB_ARGV, project), "")
            if scrubbed.get("exit_code") != 0:  # the token may still be in .git/config
                raise CodexBoxError(
                    f"could not take the job token out of {project}/.git/config "
                    f"(exit {scrubbed.get('exit_code')})",
                    hint="the job's stages would read it there; nothing more ran",
                )
    return result


def _exec(
    context: HostContext, state: job.JobState, role: str, argv: tuple[str, ...], text: str
) -> dict[str, Any]:
    import os

    stdin = jobs.stdin_of(text)
    try:
        return jobs.step(
            context.home,
            state.sessions[role],
            argv,
            environ=context.environ,
            stdin=stdin,
            approve=True,  # what runs was judged (``_judge``); this is our wrapper
        )
    finally:
        os.close(stdin)


def _checkout(environ: Mapping[str, str], state: job.JobState) -> str | None:
    from .narrowing import project_dir

    found = project_dir(environ, state.builds)
    return None if found is None else str(found)


def _judge(
    context: HostContext,
    state: job.JobState,
    role: str,
    stage: str,
    text: str,
    the_job: job.Job,
) -> None:
    """The execution policy on the commands the stage runs (masked values masked: a
    refusal is recorded with them). Raises ``Refused`` — audited — for forbidden, or
    for unverified under ``--refuse-unverified``."""
    shown = scripts.without(scripts.commands(text), the_job.secrets(), replacement=scripts.MASK)
    runner = Runner(
        context,
        RunRequest(
            argv=("bash", "-c", shown, f"gitlab-{stage}"),
            profile=state.profile if role == sessions.JOB else state.runner_profile,
            workspace=state.builds if role == sessions.JOB else state.root,
            backend=state.backend,
            options=LaunchOptions(image=state.image),
            approve=state.approve,
            policy_mode=state.policy_mode,
        ),
    )
    runner.prepare(probe=False)
