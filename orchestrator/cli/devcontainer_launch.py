"""``run --devcontainer`` and ``session start --devcontainer``: a project's devcontainer.json
as the launch's image, user, environment and lifecycle commands.

Owns: which file applies (``--devcontainer [PATH]``, or ``[sandbox] devcontainer =
"auto"`` and a workspace that has one), the engine it runs on (Docker or Podman: a
devcontainer needs an image; ``auto`` takes the first that answers), building its image,
the ``LaunchOptions`` it adds, and running its lifecycle commands in the session before
anything else — each one an exec the policy judges and the audit log records, its
output on stderr. A one-shot ``run`` with lifecycle commands is a session of its own:
started, the commands, the command, stopped.
Does not own: what the profile refuses or changes (``devcontainer.vetting``), reading
and building (``devcontainer``), any decision of the runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import CodexBoxError, UsageError
from orchestrator.core.options import LaunchOptions
from orchestrator.runner.context import HostContext

from .fast import RunArgs
from .output import confirm_on_tty, echo, emit_json


@dataclass(frozen=True, slots=True)
class Devcontainer:
    engine: str  # docker | podman
    options: LaunchOptions  # the caller's, with the devcontainer's fields set
    lifecycle: tuple[tuple[str, tuple[str, ...]], ...]
    changed: tuple[str, ...]  # the findings' lines: what the profile changed


def config_file(
    context: HostContext, flag: str | None, workspace: str | None
) -> tuple[Path, str] | None:
    """(devcontainer.json, workspace) for this launch, or None: ``flag`` is None (not
    asked: then config.toml's ``auto`` and a file in the workspace), "" (the workspace's
    file) or a file or folder."""
    from orchestrator.devcontainer.config import find_config

    root = context.resolved_workspace(workspace)
    if flag is None:
        if context.config.devcontainer != "auto":
            return None
        found = find_config(root)
        return (found, root) if found is not None else None
    if not flag:
        found = find_config(root)
        if found is None:
            raise UsageError(
                f"--devcontainer: no .devcontainer/devcontainer.json or .devcontainer.json "
                f"in {root}",
                hint="pass --devcontainer PATH, or --workspace the project's folder",
            )
        return found, root
    given = Path(os.path.abspath(flag))
    if given.is_dir():
        inner = given / "devcontainer.json"
        found = inner if inner.is_file() else find_config(given)
        if found is None:
            raise UsageError(f"--devcontainer {flag}: no devcontainer.json in it")
        return found, root
    if not given.is_file():
        raise UsageError(
            f"--devcontainer {flag}: no such file", hint="give a devcontainer.json or its folder"
        )
    return given, root


def prepare(
    context: HostContext,
    *,
    file: Path,
    workspace: str,
    profile: str | None,
    backend: str | None,
    options: LaunchOptions,
    build: bool = True,
) -> Devcontainer:
    from orchestrator.devcontainer.build import build_image, image_tag
    from orchestrator.devcontainer.config import read_config_text
    from orchestrator.devcontainer.plan import check_raw, plan
    from orchestrator.devcontainer.reading import load

    environ = dict(context.environ)
    resolution = context.resolve(profile, workspace)
    home, codex_home = context.user_home, str(context.home)
    raw, text = read_config_text(file)
    # The file as written first: nothing (the Dev Containers CLI, a build) reads a file
    # the profile refuses.
    check_raw(
        file, raw, text, resolution.profile, home=home, codex_home=codex_home, workspace=workspace
    )
    engine = _engine(context, backend)  # after: a refused file needs no engine to say so
    loaded = load(file, workspace, environ=environ, engine=engine, raw=raw)
    made = plan(loaded, resolution.profile, home=home, codex_home=codex_home, environ=environ)
    image = made.image
    if image is None and made.build is not None and not build:
        image = image_tag(workspace)  # --print-spec: what would be built, nothing built
    elif image is None and made.build is not None:
        echo(f"codex-box: building the image of {file} with {engine}", err=True)
        image = build_image(
            engine,
            made.build,
            workspace=workspace,
            profile=resolution.profile,
            home=context.user_home,
            codex_home=str(context.home),
            environ=environ,
        )
    return Devcontainer(
        engine=engine,
        options=dataclasses.replace(
            options,
            devcontainer=str(file),
            image=options.image or image,
            container_env=made.env,
            user=made.user,
            hostname=made.hostname,
            labels=made.labels,
            tmpfs=made.tmpfs,
        ),
        lifecycle=made.lifecycle,
        changed=tuple(f.line() for f in made.findings),
    )


def report(dc: Devcontainer, *, brief: bool) -> None:
    """What the profile changed, on stderr: every line, or (``run``, whose stderr is the
    command's) one line pointing at ``devcontainer check``."""
    if brief and dc.changed:
        echo(
            f"codex-box: {dc.options.devcontainer}: {len(dc.changed)} setting(s) changed by "
            "the profile (codex-box devcontainer check)",
            err=True,
        )
    elif not brief:
        for line in dc.changed:
            echo(f"codex-box: devcontainer: {line}", err=True)


def audit_refused_session(context: HostContext, name: str | None, exc: CodexBoxError) -> None:
    """A session start the devcontainer refused leaves its record, as the keeper's own
    refusals do (``records.session_refused``)."""
    from orchestrator.audit import records
    from orchestrator.runner.context import new_id

    record = records.session_refused(name=name, error=exc.one_line())
    head = {k: record[k] for k in ("operation", "target")}
    ids = {"session_id": context.session_id, "run_id": new_id()}
    context.audit_log(strict=False).append_many([{**head, **ids, **record}])


def _engine(context: HostContext, flag: str | None) -> str:
    from orchestrator.backends import base

    requested = context.backend_choice(flag)
    if requested in ("docker", "podman"):
        return requested
    if requested != "auto":
        raise UsageError(
            f"--backend {requested} runs no container image: a devcontainer needs docker or podman",
            hint="use --backend docker or --backend podman",
        )
    return base.select("auto", None, order=("docker", "podman")).backend.name


def run_lifecycle(home: Path, session_id: str, dc: Devcontainer, *, approve: bool) -> int:
    """Each lifecycle command in the session, its output on stderr; 0, or the exit
    code of the first that failed (nothing after it runs, as the Dev Containers CLI)."""
    from orchestrator.runner.sessions import client

    for key, argv in dc.lifecycle:
        echo(f"codex-box: devcontainer {key}: {' '.join(argv)}", err=True)
        with open(os.devnull, "rb") as nothing:
            event = client.execute(
                home,
                session_id,
                {
                    "op": "exec",
                    "argv": list(argv),
                    "environ": dict(os.environ),
                    "env": [],
                    "cwd": None,
                    "timeout": None,
                    "approve": approve,
                    "detach": False,
                },
                stdio=(nothing.fileno(), 2, 2),
                confirm=confirm_on_tty,
            )
        code = int(event["result"]["exit_code"])
        if code != 0:
            detail = event["result"].get("detail") or f"exit {code}"
            echo(f"codex-box: devcontainer {key} failed: {detail}", err=True)
            return code
    return 0


def run_in_session(context: HostContext, args: RunArgs, dc: Devcontainer) -> int:
    """A ``run`` whose devcontainer has lifecycle commands: a session of its own, so
    what they install stays for the command — started, each lifecycle command, the
    command, stopped (also on an error or Ctrl-C)."""
    from orchestrator.runner.sessions import client
    from orchestrator.runner.sessions.request import StartRequest
    from orchestrator.runner.sessions.start import start

    if args.tty:
        raise UsageError(
            "--tty with a devcontainer's lifecycle commands is not supported",
            hint="codex-box session start --devcontainer, then codex-box exec",
        )
    state = start(
        StartRequest(
            environ=dict(context.environ),
            cwd=context.cwd,
            profile=args.profile,
            workspace=args.workspace,
            backend=dc.engine,
            options=dataclasses.replace(dc.options, env_names=(), timeout=None, tty=False),
            trust_opt_in=args.trust,
            policy_mode=args.policy_mode,
        )
    )
    session_id = str(state["id"])
    try:
        code = run_lifecycle(context.home, session_id, dc, approve=args.approve)
        if code != 0:
            return code
        event = client.execute(
            context.home,
            session_id,
            {
                "op": "exec",
                "argv": list(args.command),
                "environ": dict(context.environ),
                "env": list(args.env),
                "cwd": None,
                "timeout": args.timeout,
                "approve": args.approve,
                "detach": False,
            },
            confirm=confirm_on_tty,
        )
    finally:
        with contextlib.suppress(CodexBoxError, OSError):
            client.request(context.home, session_id, {"op": "stop"})
            client.wait_stopped(context.home, session_id)
    result = event["result"]
    for warning in result.get("warnings") or ():
        echo(f"codex-box: warning: {warning}", err=True)
    ended_badly = result["exit_code"] in (124, 125, 126, 127) or result.get("oom_killed")
    if result.get("detail") and ended_badly:
        echo(f"codex-box: {result['detail']}", err=True)
    if args.as_json:
        emit_json(result, err=True)
    return int(result["exit_code"])
