"""One exec inside a live session, as its keeper handles it: judged, audited and
confined exactly like ``run``.

Owns: turning a client's request into the exec's own spec (the session's profile and
workspace, fixed at start; this exec's command, environment through the profile's
filter, ``--env`` and timeout), the policy's verdict (an approval asked through the
client), the exec's audit records (decided + ended, with the session's id), and
watching the client while the exec runs (Ctrl-C passed on; a client gone → the exec's
tree killed).
Does not own: running it (the backend's ``SessionSandbox``) or the session (``keeper``).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestrator.audit import records
from orchestrator.backends import result
from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.errors import CodexBoxError, UsageError
from orchestrator.core.session import ExecCall, ExecEnd
from orchestrator.core.spec import RunResult
from orchestrator.policy import gate
from orchestrator.runner import postrun
from orchestrator.runner.context import new_id
from orchestrator.runner.views import result_dict
from orchestrator.sandbox.linux import wire

from .execs_io import Watcher, asker, close

if TYPE_CHECKING:
    from .keeper import Keeper

# Flags a session fixes at start: an exec asking for one is refused, never obeyed.
FIXED = ("profile", "workspace", "backend", "image", "memory", "pids", "cpus")


def handle(keeper: Keeper, conn: socket.socket, message: dict[str, Any], fds: list[int]) -> None:
    """One exec request, answered on ``conn``; ``fds`` (the client's stdio) are closed
    here on every way out (the sandbox has its own copies)."""
    run_id = new_id()
    try:
        argv = _argv(message)
        _judged_and_run(keeper, conn, message, fds, argv, run_id)
    except CodexBoxError as exc:  # refused before anything ran: on record, then answered
        with contextlib.suppress(CodexBoxError):  # an audit failure is the answer then
            keeper.write(
                run_id,
                records.command_denied(
                    argv=_shown(message),
                    error=exc.one_line(),
                    profile=keeper.spec.profile,
                    profile_source=keeper.resolution.source.value,
                    policy=exc.policy if isinstance(exc, gate.PolicyRefused) else None,
                ),
            )
        _send_error(conn, exc)
    finally:
        close(fds)
        keeper.cited(run_id)  # answered (or never will be): its seqs are not kept


def _judged_and_run(
    keeper: Keeper,
    conn: socket.socket,
    message: dict[str, Any],
    fds: list[int],
    argv: tuple[str, ...],
    run_id: str,
) -> None:
    if len(fds) != 3:
        raise UsageError("an exec needs stdin, stdout and stderr", hint="use codex-box exec")
    if any(_connected_to_us(fd, conn) for fd in fds):
        # The command would hold a line to its keeper (a client with stdio closed).
        raise UsageError("an exec's stdio may not be a connection to the session")
    for key in FIXED:
        if message.get(key) is not None:
            raise UsageError(
                f"--{key} cannot be given to an exec: the session fixed it at start",
                hint="start another session with what you need",
            )
    cwd = _cwd(keeper, message.get("cwd"))
    spec = _spec(keeper, message, argv, cwd, run_id)
    verdict = gate.decide(
        spec,
        mode=keeper.policy_mode,
        home=keeper.context.user_home,
        codex_home=keeper.context.home,
        approve=message.get("approve") is True,
        confirm=asker(conn) if message.get("can_ask") is True else None,
        record=lambda *batch: keeper.write(run_id, *batch),
    )
    launch = keeper.launch_facts(verdict.policy)
    # Not on record: not run (an AuditError is refused like any other error).
    keeper.write(
        run_id,
        records.command_allowed(argv=argv, launch=launch, chosen_by=keeper.resolution.describe()),
    )
    detach = message.get("detach") is True
    call = ExecCall(
        exec_id=run_id,
        argv=argv,
        env=spec.env,
        cwd=cwd,
        timeout_s=spec.limits.timeout_s,
        detach=detach,
    )
    stdio = (fds[0], fds[1], fds[2])
    null = None
    if detach:  # it outlives its client: its output goes nowhere (as on every backend)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        stdio = (null, null, null)
    started = time.monotonic()

    def ended(end: ExecEnd) -> RunResult:
        ran = result.finished(
            spec,
            backend=keeper.backend.name,
            exit_code=end.exit_code,
            duration_s=time.monotonic() - started,
            signal=end.signal,
            timed_out=end.timed_out,
            oom_killed=end.oom_killed,
            detail=end.detail,
        )
        with contextlib.suppress(CodexBoxError):  # it ran: nothing left to refuse
            keeper.write(
                run_id,
                records.command_ended(
                    argv=argv, launch=launch, result=ran, cancelled=watcher.client_gone
                ),
            )
        return ran

    keeper.exec_started()
    if detach:  # before it can end: its end then always finds it (one ended record)
        keeper.detached_started(run_id, ended)
    # As after a run: a git repository (or host-tool file) the exec planted in the
    # workspace is reported (quarantined when the profile says so) before the user's
    # next host-side git command could run it. A detached exec's: at the session's stop.
    post_run = None if detach else keeper.planted_check(spec, run_id)
    watcher = Watcher(keeper, conn, run_id, detach=detach)
    try:
        watcher.start()
        try:
            end = keeper.sandbox.exec(
                call,
                stdio,
                on_end=(lambda end: keeper.detached_ended(run_id, ended, end)) if detach else None,
            )
        except CodexBoxError as exc:
            keeper.detached_forget(run_id)
            if post_run is not None:
                post_run.close()
            with contextlib.suppress(CodexBoxError):
                keeper.write(
                    run_id,
                    records.sandbox_setup_failed(argv=argv, launch=launch, error=exc.one_line()),
                )
            _send_error(conn, exc)
            return
        finally:
            watcher.done()
            if null is not None:
                os.close(null)
        warnings: tuple[str, ...] = ()
        if detach:
            ran = RunResult(
                exit_code=0, backend=keeper.backend.name, duration_s=0.0, detail="detached"
            )
        else:
            if message.get("cwd") is not None and not end.cwd_missing:
                keeper.cwd = cwd  # --cwd sticks, as a shell's cd does
            # Right after the exec (and before any record that could fail), as ``run`` does.
            findings, problems = post_run.finish() if post_run is not None else ([], [])
            keeper.planted_reported(f.text() for f in findings)
            ran = ended(end)
            warnings = postrun.report(
                findings, problems, write=lambda *batch: keeper.write(run_id, *batch), launch=launch
            )
        answer = result_dict(
            ran,
            run_id=run_id,
            session_id=keeper.session_id,
            profile=spec.profile,
            session=keeper.request.name,
            decision=launch.policy.decision if launch.policy is not None else None,
            audit=keeper.cited(run_id),
        )
        answer["warnings"] = list(warnings)
        with contextlib.suppress(OSError):
            wire.send(conn, {"event": "exit", "result": answer, "detached": detach})
    finally:
        # Only now: a stopping keeper waits for this count to reach 0 before it writes
        # session_stop and exits, so this exec's ended record and answer come first.
        keeper.exec_ended()


def _connected_to_us(fd: int, conn: socket.socket) -> bool:
    """``fd`` is a socket whose peer is our control socket's address."""
    copy = os.dup(fd)
    try:
        probe = socket.socket(fileno=copy)
    except OSError:  # not a socket
        os.close(copy)
        return False
    with probe:
        try:
            ours = conn.getsockname()
            return bool(probe.family == socket.AF_UNIX and probe.getpeername() == ours)
        except OSError:
            return False


def _argv(message: dict[str, Any]) -> tuple[str, ...]:
    """The command, checked: a list of strings, no NUL (execve would refuse it late)."""
    argv = message.get("argv")
    if (
        not isinstance(argv, list)
        or not argv
        or not all(isinstance(a, str) and "\0" not in a for a in argv)
    ):
        raise UsageError("an exec's command must be a non-empty list of strings without NUL")
    for key, kind in (("env", list), ("environ", dict)):
        if not isinstance(message.get(key, kind()), kind):
            raise UsageError(f"an exec's {key} has the wrong type", hint="use codex-box exec")
    if not all(isinstance(e, str) for e in message.get("env") or ()):
        raise UsageError("an exec's --env values must be strings")
    if not isinstance(message.get("cwd") or "", str) or "\0" in (message.get("cwd") or ""):
        raise UsageError("an exec's --cwd must be a path")
    return tuple(argv)


def _shown(message: dict[str, Any]) -> tuple[str, ...]:
    """The command as the audit record shows it, whatever shape it came in."""
    argv = message.get("argv")
    return tuple(str(a) for a in argv) if isinstance(argv, list) else (repr(argv)[:200],)


def _cwd(keeper: Keeper, given: Any) -> str:
    """The exec's working directory: ``--cwd`` (relative to the session's current one)
    or the current one; always absolute and normalised, inside the sandbox."""
    if given is None:
        return keeper.cwd
    return posixpath.normpath(posixpath.join(keeper.cwd, str(given)))


def _spec(keeper: Keeper, message: dict[str, Any], argv: tuple[str, ...], cwd: str, run_id: str):  # type: ignore[no-untyped-def]
    environ = message.get("environ")
    if not isinstance(environ, dict):
        raise UsageError("an exec needs the caller's environment", hint="use codex-box exec")
    context = keeper.context
    options = replace(
        keeper.options,
        env_names=tuple(str(e) for e in message.get("env") or ()),
        timeout=None if message.get("timeout") is None else str(message["timeout"]),
    )
    spec = compile_spec(
        keeper.resolution.profile,
        Request(
            argv=argv,
            workspace=keeper.spec.workspace,
            cwd=cwd,
            environ={str(k): str(v) for k, v in environ.items()},
            home=context.user_home,
            codex_home=str(context.home),
            uid=context.uid,
            gid=context.gid,
            # The session's: paths the proxy's CA and placeholders were made under.
            run_id=keeper.spec.run_id,
            session_id=keeper.session_id,
            options=options,
            network=context.config.network,
            secrets=context.config.secrets,
        ),
    )
    egress = keeper.spec.egress
    if egress is not None and egress.secrets:
        # The session's proxy brokers the placeholders made at its start: each exec's
        # variables hold those, not the fresh ones this compile made.
        env = dict(spec.env) | {s.name: s.placeholder for s in egress.secrets}
        spec = replace(spec, egress=egress, env=tuple(sorted(env.items())))
    # The policy judges from where the exec runs (a previous one may have moved it).
    return replace(spec, run_id=run_id, cwd=None if cwd == spec.workspace else cwd)


def _send_error(conn: socket.socket, exc: CodexBoxError) -> None:
    with contextlib.suppress(OSError):
        wire.send(
            conn,
            {
                "event": "error",
                "message": exc.message,
                "hint": exc.hint,
                "exit_code": exc.exit_code,
            },
        )
