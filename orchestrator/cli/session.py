"""``codex-box session start|ls|show|stop`` and ``codex-box exec``: sandboxes that live.

Part of the command line: the options as Typer reads them. ``exec``'s body is in
``cli.exec_cmd`` (shared with its fast path, ``cli.exec_fast``); the rest is
here. Owns nothing the keeper decides (``runner.sessions``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import LaunchOptions
from orchestrator.core.paths import codex_home
from orchestrator.runner.sessions import client, store
from orchestrator.runner.sessions.request import StartRequest, parse_duration
from orchestrator.runner.sessions.start import start as start_session

from . import exec_cmd
from .exec_fast import ExecArgs
from .output import emit_json, fail, usage

session_app = typer.Typer(
    help="Sandboxes that live: start once, exec many commands in them.", no_args_is_help=True
)

JSON = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Server = Annotated[
    str | None,
    typer.Option(help="Through `codex-box serve` (default $CODEX_BOX_SERVER; unset: here)."),
]
SESSION_KEYS = ("id", "name", "profile", "backend", "workspace", "created", "expires")


def _server(flag: str | None) -> str | None:
    return flag or os.environ.get("CODEX_BOX_SERVER") or None


@session_app.command("start")
def start(
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile name.")] = None,
    workspace: Annotated[str | None, typer.Option(help="Workspace (default: cwd).")] = None,
    backend: Annotated[str | None, typer.Option(help="auto | docker | podman | native.")] = None,
    image: Annotated[str | None, typer.Option(help="Container backends: the image.")] = None,
    name: Annotated[str | None, typer.Option(help="A name to use instead of the id.")] = None,
    idle_timeout: Annotated[str, typer.Option(help="End after this long with no exec.")] = "30m",
    max_lifetime: Annotated[str, typer.Option(help="End after this long in any case.")] = "8h",
    memory: Annotated[str | None, typer.Option(help="Memory limit of the session.")] = None,
    pids: Annotated[str | None, typer.Option(help="Process limit of the session.")] = None,
    cpus: Annotated[str | None, typer.Option(help="CPU limit of the session.")] = None,
    trust: Annotated[
        bool, typer.Option("--yes-i-trust-this-workspace", help="Opt in to `trusted`.")
    ] = False,
    policy_mode: Annotated[str | None, typer.Option(help="enforce | audit-only | off.")] = None,
    devcontainer: Annotated[
        str | None,
        typer.Option(
            "--devcontainer",
            metavar="[PATH]",
            help="Use the workspace's devcontainer.json (or PATH); its lifecycle commands "
            "run in the session before this returns.",
        ),
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Lifecycle commands the policy cannot verify: run.")
    ] = False,
    as_json: JSON = False,
    server: Server = None,
) -> None:
    """Start a session; prints its id (with --json: id, profile, backend, workspace,
    created, expires). Exit 125 when it cannot start, 126 when refused; a failed
    devcontainer lifecycle command stops it and exits with that command's code."""
    if devcontainer is not None and _server(server) is not None:
        usage("--devcontainer starts a session here only, not through --server")
    if (address := _server(server)) is not None:
        from . import remote

        state = remote.session_call(
            address,
            "start_session",
            profile=profile,
            workspace=os.path.abspath(workspace or "."),
            backend=backend,
            image=image,
            name=name,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            memory=memory,
            pids=pids,
            cpus=cpus,
            trust=trust or None,
            policy_mode=policy_mode,
        )
        _started(state, as_json)
        return
    options = LaunchOptions(memory=memory, pids=pids, cpus=cpus, image=image)
    try:
        dc = _devcontainer(name, devcontainer, workspace, profile, backend, options)
        request = StartRequest(
            environ=dict(os.environ),
            cwd=os.getcwd(),
            profile=profile,
            workspace=workspace,
            backend=dc.engine if dc else backend,
            options=dc.options if dc else options,
            trust_opt_in=trust,
            policy_mode=policy_mode,
            name=name,
            idle_timeout_s=parse_duration("--idle-timeout", idle_timeout),
            max_lifetime_s=parse_duration("--max-lifetime", max_lifetime),
        )
        state = start_session(request)
        if dc is not None and dc.lifecycle:
            from . import devcontainer_launch

            home, session_id = codex_home(os.environ), str(state["id"])
            try:
                code = devcontainer_launch.run_lifecycle(home, session_id, dc, approve=approve)
            except BaseException:  # refused by the policy, Ctrl-C: no half-made session
                _stop_quietly(home, session_id)
                raise
            if code != 0:
                _stop_quietly(home, session_id)
                raise typer.Exit(code)
    except CodexBoxError as exc:
        fail(exc)
    _started(state, as_json)


def _stop_quietly(home: Path, session_id: str) -> None:
    with contextlib.suppress(CodexBoxError, OSError):
        client.request(home, session_id, {"op": "stop"})
        client.wait_stopped(home, session_id)


def _devcontainer(
    name: str | None,
    flag: str | None,
    workspace: str | None,
    profile: str | None,
    backend: str | None,
    options: LaunchOptions,
) -> Any:
    """The devcontainer this session uses (``cli.devcontainer_launch``), or None."""
    from . import devcontainer_launch
    from .output import host

    context = host()
    if flag is None and context.config.devcontainer != "auto":
        return None
    try:
        found = devcontainer_launch.config_file(context, flag, workspace)
        if found is None:
            return None
        dc = devcontainer_launch.prepare(
            context,
            file=found[0],
            workspace=found[1],
            profile=profile,
            backend=backend,
            options=options,
        )
    except CodexBoxError as exc:
        with contextlib.suppress(CodexBoxError):
            devcontainer_launch.audit_refused_session(context, name, exc)
        raise
    devcontainer_launch.report(dc, brief=False)
    return dc


def _started(state: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json({k: state.get(k) for k in SESSION_KEYS})
    else:
        typer.echo(state["id"])


@session_app.command("ls")
def ls(as_json: JSON = False, server: Server = None) -> None:
    """List the sessions on record (a dead one until `codex-box gc`)."""
    if (address := _server(server)) is not None:
        from . import remote

        listed = [dict(s) for s in remote.session_call(address, "sessions")]
    else:
        listed = [
            {**s.public(), "live": live} for s, live in store.all_sessions(codex_home(os.environ))
        ]
    if as_json:
        emit_json([{k: v for k, v in s.items() if k != "pooled"} for s in listed])
        return
    if not listed:
        typer.echo("no sessions")
        return
    typer.echo(f"{'ID':12}  {'NAME':16}  {'PROFILE':13}  {'BACKEND':7}  {'STATE':5}  EXPIRES")
    for s in listed:
        typer.echo(
            f"{s['id']:12}  {s['name'] or '-':16}  {s['profile']:13}  {s['backend']:7}  "
            f"{'live' if s['live'] else 'dead':5}  {s['expires']}"
        )


@session_app.command("show")
def show(
    session: Annotated[str, typer.Argument(help="Its id or name.")],
    as_json: JSON = False,
    server: Server = None,
) -> None:
    """A live session's state: profile, working directory, execs, detached execs."""
    if (address := _server(server)) is not None:
        from . import remote

        state = remote.session_call(address, "session", session)
        if as_json:
            emit_json(state)
        else:
            for key, value in state.items():
                typer.echo(f"{key}: {value}")
        return
    home = codex_home(os.environ)
    try:
        info = client.request(home, store.find(home, session).id, {"op": "info"})
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json({k: v for k, v in info.items() if k != "event"})
        return
    for key, value in info["session"].items():
        typer.echo(f"{key}: {value}")
    typer.echo(f"cwd: {info['cwd']}\nexecs: {info['execs']} ({info['running']} running)")
    for entry in info["detached"]:
        state = "running" if entry["running"] else f"exited {entry['exit_code']}"
        typer.echo(f"detached {entry['exec_id']}: {' '.join(entry['argv'])} ({state})")


@session_app.command("stop")
def stop(
    session: Annotated[str | None, typer.Argument(help="Its id or name.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Stop every live session.")] = False,
    server: Server = None,
) -> None:
    """End a session (or all): its processes, container, cgroup and state are removed."""
    home = codex_home(os.environ)
    if every == (session is not None):
        usage("give a session id or name, or --all (not both)")
    if (address := _server(server)) is not None:
        from . import remote

        ids = (
            [s["id"] for s in remote.session_call(address, "sessions") if s["live"]]
            if every
            else [session]
        )
        for ref in ids:
            remote.session_call(address, "stop_session", ref)
            typer.echo(f"stopped {ref}")
        return
    try:
        targets = (
            [s.id for s, live in store.all_sessions(home) if live]
            if every
            else [store.find(home, session).id]
        )
        for session_id in targets:
            client.request(home, session_id, {"op": "stop"})
    except CodexBoxError as exc:
        fail(exc)
    for session_id in targets:
        if not client.wait_stopped(home, session_id):
            fail(
                CodexBoxError(
                    f"session {session_id} did not stop within 30s", hint="try `codex-box gc`"
                )
            )
        typer.echo(f"stopped {session_id}")


def exec_verb(
    command: Annotated[
        list[str] | None, typer.Argument(metavar="[--] COMMAND [ARGS]...", help="The command.")
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Id or name; default $CODEX_BOX_SESSION.")
    ] = None,
    cwd: Annotated[
        str | None, typer.Option(help="Working directory (sticks for later execs).")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="NAME or NAME=VALUE.")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="Kill the exec's tree after it (124).")
    ] = None,
    approve: Annotated[bool, typer.Option(help="Run an unverified command (audited).")] = False,
    detach: Annotated[bool, typer.Option(help="Return at once; `session show` lists it.")] = False,
    as_json: JSON = False,
    profile: Annotated[str | None, typer.Option("--profile", "-p", hidden=True)] = None,
    workspace: Annotated[str | None, typer.Option(hidden=True)] = None,
    backend: Annotated[str | None, typer.Option(hidden=True)] = None,
    image: Annotated[str | None, typer.Option(hidden=True)] = None,
    server: Server = None,
) -> None:
    """Run a command inside a live session, judged and audited like `run`."""
    for flag, value in (
        ("--profile", profile),
        ("--workspace", workspace),
        ("--backend", backend),
        ("--image", image),
    ):
        if value is not None:
            exec_cmd.fixed_flag(flag)
    args = ExecArgs(
        command=tuple(command or ()),
        session=session,
        cwd=cwd,
        env=tuple(env or ()),
        timeout=timeout,
        approve=approve,
        detach=detach,
        as_json=as_json,
        server=server,
    )
    raise typer.Exit(exec_cmd.execute(args))
