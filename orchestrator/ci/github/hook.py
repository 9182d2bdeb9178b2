"""``codex-box ci github-hook``: the four commands of GitHub's runner container hooks,
each a call on one session (``orchestrator.runner.sessions.api.Session``).

Owns: what each command does — ``prepare_job`` starts the job's session (profile: the
runner's ``CODEX_BOX_PROFILE``, default ``workspace``, which the job's container env may
only tighten; backend: the runner's ``CODEX_BOX_BACKEND``, default auto) and answers
the runner; ``run_script_step`` execs a step in it; ``run_container_step`` is refused
unless the profile is ``trusted``; ``cleanup_job`` stops it — the exit code the runner
sees, and the log lines it shows in the job's log. Does not own: the protocol's shapes
(``protocol``, ``mounts``) or anything a session decides (the keeper judges and audits
each exec as ``codex-box exec`` would: argv in the audit log, never the environment).

Trust: the runner's ``state`` comes back on stdin, and its response file lies in the
runner's ``_work/_temp``, which a job's steps can write. So nothing the job could edit
decides anything: the state names only the session, which must be one this hook
started (``github-`` name, this user's), and the job's path plan and container env are
kept in that session's own directory (0700, hidden from every sandbox, removed with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import IO, Any

from orchestrator.audit.redact import redact_secrets
from orchestrator.core.errors import CodexBoxError, printable
from orchestrator.profiles.schema import canonical_name
from orchestrator.profiles.widening import wider
from orchestrator.runner.context import HostContext
from orchestrator.runner.sessions import store
from orchestrator.runner.sessions.api import Session
from orchestrator.runner.sessions.locate import UnknownSession

from ..jobs import clean_environ
from . import mounts, protocol
from .protocol import HookInput, ProtocolError

BACKEND_VAR = "CODEX_BOX_BACKEND"
PATH_VAR = "CODEX_BOX_PATH"  # the runner's administrator may set the sessions' PATH
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PROFILE = "workspace"
NAME_PREFIX = "github-"
JOB_FILE = "github-job.json"
IDLE_S = 3600.0  # no step for an hour: the runner is gone, and so is the session
LIFETIME_S = 5 * 86400.0  # a self-hosted runner's longest job


def say(text: str) -> None:
    """One line in the job's log (the runner shows the hook's output)."""
    print(f"codex-box: {printable(redact_secrets(text))}", file=sys.stderr, flush=True)


def base_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """What a session gets of the runner's environment (``ci.jobs.clean_environ``: the
    host's basics, never the runner's own tokens); the job's env goes in explicitly."""
    env = clean_environ(environ)
    # Not the hook's own PATH: the runner puts the directories a job's steps added
    # through $GITHUB_PATH first, and a sandboxed step chooses those.
    env["PATH"] = environ.get(PATH_VAR) or SAFE_PATH
    return env


def main(environ: Mapping[str, str], stdin: IO[str]) -> int:
    """Run the command the runner wrote on ``stdin``; its exit code (0: done)."""
    try:
        hook = protocol.parse_input(stdin.read())
        handler = {
            "prepare_job": prepare_job,
            "run_script_step": run_script_step,
            "run_container_step": run_container_step,
            "cleanup_job": cleanup_job,
        }[hook.command]
        return handler(environ, hook)
    except PermissionError as exc:
        say(f"refused: {exc}")
        return 126
    except (ProtocolError, ValueError) as exc:
        say(f"bad hook input: {exc}")
        return 2
    except CodexBoxError as exc:
        say(exc.one_line())
        return exc.exit_code


def prepare_job(environ: Mapping[str, str], hook: HookInput) -> int:
    container = hook.args.get("container")
    if hook.args.get("services"):
        names = [
            str(s.get("contextName") or s.get("image"))
            for s in hook.args["services"]
            if isinstance(s, dict)
        ]
        raise PermissionError(
            f"the job asks for service containers ({', '.join(names)}): codex-box runs a "
            "job as one sandbox and starts no other container for it (a service would run "
            "outside the profile); run services in a step, or on another runner"
        )
    if not isinstance(container, dict):
        raise PermissionError("this runner runs only jobs with a `container:` (none was given)")
    if not hook.response_file:
        raise ProtocolError("prepare_job needs a responseFile")
    env = base_environ(environ)
    job_env, notes = protocol.valid_env(
        protocol.string_map(container.get("environmentVariables"), "container.environmentVariables")
    )
    known = HostContext.from_environ(env).store
    ceiling = canonical_name(environ.get(protocol.PROFILE_VAR) or DEFAULT_PROFILE)
    wish = job_env.get(protocol.PROFILE_VAR)
    widens = wider(known.get(ceiling), known.get(wish)) if wish else ()
    name = protocol.choose_profile(ceiling, canonical_name(wish) if wish else None, widens)
    profile = known.get(name)
    every = [
        *mounts.parse_mounts(container.get("systemMountVolumes"), "container.systemMountVolumes"),
        *mounts.parse_mounts(container.get("userMountVolumes"), "container.userMountVolumes"),
    ]
    workspace = mounts.work_directory(every)
    if workspace is None:
        raise ProtocolError("the job container has no mount at /__w (the runner's work directory)")
    kept, dropped = mounts.drop_engine_sockets(every, keep=not profile.sandboxed, profile=name)
    options, ignored = protocol.launch_options(container)
    # The runner's answers to the hook (this job's state) stay out of the sandbox: the
    # state is checked anyway (module docstring), but a step has no business reading it.
    options = replace(options, hide=(os.path.dirname(os.path.abspath(hook.response_file)),))
    for line in (*notes, *dropped, *ignored):
        say(line)
    session = Session.start(
        profile=name,
        workspace=workspace,
        backend=environ.get(BACKEND_VAR) or None,
        name=NAME_PREFIX + secrets.token_hex(6),
        idle_timeout_s=IDLE_S,
        max_lifetime_s=LIFETIME_S,
        options=options,
        trust_opt_in=profile.requires_opt_in,  # only when the runner's own profile is
        environ=env,
        cwd=workspace,
    )
    try:
        backend = str(session.info()["session"]["backend"])
        plan = mounts.plan(kept, workspace=workspace, host_visible=backend == "native")
        for line in plan.notes:
            say(line)
        if backend == "native" and options.image:
            say(f"image {options.image} not used: the native backend runs the job on this host")
        _save_job(session, {"plan": plan.to_json(), "env": job_env})
        response = protocol.prepare_response(
            session_id=session.id, network=str(profile.network), alpine=_alpine(session)
        )
        _write_response(hook.response_file, response)
    except BaseException:
        session.stop()
        raise
    say(
        f"job container → session {session.id} (profile {name}, backend {backend}, "
        f"workspace {workspace})"
    )
    return 0


def run_script_step(environ: Mapping[str, str], hook: HookInput) -> int:
    env = base_environ(environ)
    session, job = _attach(hook, env)
    step = protocol.script_step(
        hook.args,
        plan=mounts.PathPlan.from_json(job.get("plan")),
        job_env=protocol.string_map(job.get("env"), "the job's env"),
        base_path=env["PATH"],
    )
    for line in step.notes:
        say(line)
    with open(os.devnull, "rb") as null:
        result = session.exec(
            step.argv,
            cwd=step.cwd,
            env=[f"{k}={v}" for k, v in step.env.items()],
            approve=True,  # the workflow's author wrote the step: it is the approval
            stdio=(null.fileno(), 1, 2),
        )
    if result.detail and result.exit_code in (124, 125, 126, 127):
        say(result.detail)
    return result.exit_code


def run_container_step(environ: Mapping[str, str], hook: HookInput) -> int:
    env = base_environ(environ)
    session, _ = _attach(hook, env)
    profile_name = str(session.info()["session"]["profile"])
    if HostContext.from_environ(env).store.get(profile_name).sandboxed:
        raise PermissionError(
            f"a container step (a Docker action or `uses: docker://...`) needs a container "
            f"engine, which a job under profile '{profile_name}' does not get; use a script "
            "step in the job's container, or a runner whose CODEX_BOX_PROFILE is 'trusted'"
        )
    step_env = protocol.string_map(
        hook.args.get("environmentVariables"), "args.environmentVariables"
    )
    step_env, notes = protocol.valid_env(step_env)
    for line in notes:
        say(line)
    with open(os.devnull, "rb") as null:
        for argv in protocol.container_step_argv(hook.args, name=session.id):
            result = session.exec(
                argv,
                env=[f"{k}={v}" for k, v in step_env.items()],
                approve=True,
                stdio=(null.fileno(), 1, 2),
            )
            if result.exit_code != 0:
                return result.exit_code
    return 0


def cleanup_job(environ: Mapping[str, str], hook: HookInput) -> int:
    try:
        session, _ = _attach(hook, base_environ(environ))
    except UnknownSession:
        say("cleanup_job: the job's session is already gone")
        return 0
    session.stop()
    say(f"session {session.id} stopped")
    return 0


def _attach(hook: HookInput, env: Mapping[str, str]) -> tuple[Session, dict[str, Any]]:
    ref = hook.state.get("session")
    if not isinstance(ref, str) or not ref:
        raise ProtocolError(f"{hook.command}: the state names no session (was prepare_job run?)")
    session = Session.attach(ref, environ=env)
    found = store.find(session.home, session.id)
    if not (found.name or "").startswith(NAME_PREFIX):
        raise PermissionError(f"session {ref} was not started by this hook; it is not a job's")
    path = store.directory(session.home, session.id) / JOB_FILE
    try:
        job = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PermissionError(f"session {ref} has no job record of this hook ({exc})") from exc
    return session, job if isinstance(job, dict) else {}


def _save_job(session: Session, job: dict[str, Any]) -> None:
    path = store.directory(session.home, session.id) / JOB_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(job, out)


def _write_response(path: str, response: dict[str, Any]) -> None:
    """The runner created the file (empty) before calling; a symlink there is not ours."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(response) + "\n")


def _alpine(session: Session) -> bool:
    """As the runner's own docker path decides it: the image's os-release says alpine
    (the runner then picks its musl build of node for JavaScript actions)."""
    with open(os.devnull, "r+b") as null, contextlib.suppress(CodexBoxError):
        probe = ["/bin/sh", "-c", "test -f /etc/alpine-release"]
        result = session.exec(probe, approve=True, stdio=(null.fileno(),) * 3)
        return result.exit_code == 0
    return False
