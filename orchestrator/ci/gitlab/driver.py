"""``codex-box ci gitlab config|prepare|run|cleanup``: gitlab-runner's custom executor.

A job is two sessions, started by ``prepare`` and stopped by ``cleanup``: ``gl-<id>``
runs the job's own stages under the job's profile with the checkout directory
(``builds``) as its workspace; ``gl-<id>-runner`` runs the runner's own stages (sources,
caches, artifacts) with the job's directory (builds and cache) writable and network to
the GitLab server only. Each ``run`` execs one stage's script in one of them.

Owns: the order of each stage's steps and how every outcome becomes the runner's exit
code: the script's failure and a policy refusal (the reason in the job log) are build
failures; codex-box's own failure (it could not start or reach the session, an engine
is down) is a system failure. Stderr is the job log.
Does not own: the protocol's data (``protocol``), the job's facts (``job``), profiles
(``choice``), the scripts (``scripts``), sessions (``ci.jobs``, ``runner.sessions``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Mapping

from orchestrator.core.errors import EXIT_REFUSED, EXIT_USAGE, CodexBoxError
from orchestrator.runner.context import HostContext

from .. import jobs
from . import job, protocol, scripts, sessions, stages


def log(message: str) -> None:
    """One line in the job log (the driver's stderr)."""
    print(f"codex-box: {message}", file=sys.stderr, flush=True)


def _context(environ: Mapping[str, str]) -> HostContext:
    return HostContext.from_environ(jobs.clean_environ(environ), cwd="/")


def _exit_codes(environ: Mapping[str, str]) -> protocol.ExitCodes | None:
    """The runner's codes; None (said in the log) when the driver is not run by it."""
    try:
        return protocol.ExitCodes.of(environ)
    except CodexBoxError as exc:
        log(exc.message)
        return None


# --- config -----------------------------------------------------------------------


def config(environ: Mapping[str, str], *, builds_root: str | None) -> int:
    codes = _exit_codes(environ)
    if codes is None:
        return EXIT_USAGE
    try:
        the_job = job.read_job(environ)
        root = os.path.abspath(builds_root or sessions.default_builds_root(_context(environ)))
        dirs = protocol.JobDirs.of(root, project_id=the_job.project_id, job_id=the_job.id)
    except CodexBoxError as exc:
        log(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
        return codes.system_failure
    answer = protocol.config_answer(
        dirs,
        hostname=f"codex-box-{socket.gethostname()}",
        # For the driver's later calls only (gitlab-runner never shows them to the job).
        job_env={"CODEX_BOX_GITLAB_ROOT": dirs.root, "CODEX_BOX_GITLAB_JOB": the_job.id},
    )
    print(json.dumps(answer))
    return 0


# --- prepare ----------------------------------------------------------------------


def prepare(
    environ: Mapping[str, str],
    *,
    profile: str | None,
    max_profile: str | None,
    runner_profile: str | None = None,
    backend: str | None = None,
    image: str | None = None,
    refuse_unverified: bool = False,
    policy_mode: str | None = None,
    pass_job_token: bool = False,
    idle_timeout: str = "1h",
) -> int:
    codes = _exit_codes(environ)
    if codes is None:
        return EXIT_USAGE
    context = _context(environ)
    started: list[str] = []
    try:
        with jobs.terminable():
            the_job = job.read_job(environ)
            state = sessions.plan(
                context,
                environ,
                the_job,
                profile=profile,
                max_profile=max_profile,
                runner_profile=runner_profile,
                backend=backend,
                image=image,
            )
            state.approve = not refuse_unverified
            state.policy_mode = policy_mode
            state.pass_job_token = pass_job_token
            state.idle_timeout = idle_timeout
            for role in (sessions.RUNNER, sessions.JOB):
                name = sessions.name(the_job.id, role)
                jobs.stop_named(context.home, name)  # a retried prepare starts afresh
                started.append(name)
                state.sessions[role] = sessions.start(context, state, role, environ)
            job.save(context.home, state)
    except (CodexBoxError, OSError, jobs.Terminated) as exc:
        for name in started:
            jobs.stop_named(context.home, name)
        if isinstance(exc, jobs.Terminated):
            log("prepare cancelled; nothing is left running")
            return codes.system_failure
        if isinstance(exc, OSError):  # the job's directory (a planted link, a full disk)
            log(f"prepare: {exc}")
            return codes.system_failure
        log(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
        # A job variable asking for a wider profile is the job's fault, not the system's.
        return codes.build_failure if exc.exit_code == EXIT_REFUSED else codes.system_failure
    log(
        f"job {state.job_id}: {state.profile} for the job's stages, {state.runner_profile} "
        f"for the runner's (workspace {state.builds})"
    )
    return 0


# --- run --------------------------------------------------------------------------


def run(environ: Mapping[str, str], *, script: str, stage: str, as_json: bool = False) -> int:
    codes = _exit_codes(environ)
    if codes is None:
        return EXIT_USAGE
    context = _context(environ)
    try:
        with jobs.terminable():
            protocol.check_stage(stage)
            the_job = job.read_job(environ)
            state = job.load(context.home, the_job.id)
            if state is None:
                raise protocol.ProtocolError(
                    f"job {the_job.id} was not prepared here (no state)",
                    hint="prepare_exec must be `codex-box ci gitlab prepare`",
                )
            result = stages.run_stage(
                context, state, the_job, stage, _read_script(script), environ, log
            )
    except jobs.Terminated:
        log(f"{stage}: cancelled; its processes were killed")
        return codes.system_failure
    except CodexBoxError as exc:
        log(f"{stage}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
        return codes.build_failure if exc.exit_code == EXIT_REFUSED else codes.system_failure
    if as_json:  # the result contract (runner/result.schema.json), one line in the job log
        print(json.dumps(result), file=sys.stderr, flush=True)
    code = int(result["exit_code"])
    if code == 0:
        return 0
    if result.get("detail") and (code in (124, 125, 126, 127) or result.get("oom_killed")):
        log(f"{stage}: {result['detail']}")
    if code == 125 and not result.get("signal"):  # the sandbox, not the script, failed
        return codes.system_failure
    return codes.build_failure


def _read_script(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(scripts.MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise protocol.ProtocolError(f"cannot read the stage script {path}: {exc}") from exc
    if len(raw) > scripts.MAX_SCRIPT_BYTES:
        raise protocol.ProtocolError(f"the stage script {path} is over 32 MiB")
    return raw.decode("utf-8", "surrogateescape")


# --- cleanup ----------------------------------------------------------------------


def cleanup(environ: Mapping[str, str], *, keep_builds: bool = False) -> int:
    """Stop the job's sessions, remove its directory (``protocol.JobDirs``: one per job)
    and forget it. Idempotent: a second call, or one after a prepare that failed
    half-way, finds nothing and succeeds."""
    context = _context(environ)
    try:
        job_id = job.read_job(environ).id
    except CodexBoxError:
        job_id = environ.get("CODEX_BOX_GITLAB_JOB", "")
        if not re.fullmatch(r"[0-9]{1,20}", job_id):
            log("cleanup: no job id (neither $JOB_RESPONSE_FILE nor the config stage's)")
            return 0
    state = job.load_quietly(context.home, job_id)
    stopped = [
        name
        for role in (sessions.JOB, sessions.RUNNER)
        if jobs.stop_named(context.home, name := sessions.name(job_id, role))
    ]
    job.forget(context.home, job_id)
    root = state.root if state is not None else environ.get("CODEX_BOX_GITLAB_ROOT", "")
    if not keep_builds and root.endswith(f"/{job_id}") and os.path.isabs(root):
        import shutil

        shutil.rmtree(root, ignore_errors=True)  # fd-based: no link in it is followed
    print(f"codex-box: job {job_id}: stopped {', '.join(stopped) or 'nothing (none left)'}")
    return 0
