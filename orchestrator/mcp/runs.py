"""Where the commands of ``codex-box mcp`` run: ``Runs``, the four launches its run and
session tools make once ``box`` and ``sessions`` decided what to ask for, and ``Local``,
which makes them on this machine (the fork server; sessions' keepers). ``api.Remote``
makes them through a ``codex-box serve`` instead (``--server``); the CLI chooses one.

Owns: a launch's request turned into the local runner's (a run through the fork server,
a session started, an exec through its keeper, a stop), their output captured (never
the server's stdio). Does not own: narrowing, the sessions an agent may reach, approvals
(``box``, ``sessions``), any decision (the runner and the keepers).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from orchestrator.runner.context import HostContext
from orchestrator.runner.forkserver import ForkServer
from orchestrator.runner.sessions import client
from orchestrator.runner.sessions.request import StartRequest
from orchestrator.runner.sessions.start import start as start_session

from .capture import Capture, Stop


class Runs(Protocol):
    """A launch's request has the API's fields (``RunBody``, ``SessionBody``,
    ``ExecBody``); None values are left out. A result is ``run --json``'s, with stdout
    and stderr each ``{text, bytes, truncated}``."""

    def run(self, request: Mapping[str, Any], stop: Stop | None) -> dict[str, Any]: ...

    def start(self, request: Mapping[str, Any]) -> dict[str, Any]: ...

    def exec(
        self, session: str, request: Mapping[str, Any], stop: Stop | None
    ) -> dict[str, Any]: ...

    def stop(self, session: str) -> bool: ...


class Local:
    """On this machine: runs through the fork server ``forkserver`` returns (started
    once, by ``box``), sessions as ``codex-box session`` starts them."""

    def __init__(self, context: HostContext, forkserver: Callable[[], ForkServer]) -> None:
        self.context, self.forkserver = context, forkserver

    def run(self, request: Mapping[str, Any], stop: Stop | None) -> dict[str, Any]:
        capture = Capture()
        try:
            channel = self.forkserver().launch(
                given(request), capture.theirs, cwd=str(request["workspace"])
            )
        finally:
            capture.handed_over()
        if stop is not None:
            stop.arm(channel.cancel)
        try:
            channel.started()
            result = channel.wait()
        finally:
            channel.close()
        return {**result, **capture.finish()}

    def start(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return start_session(
            StartRequest(
                environ=dict(self.context.environ),
                cwd=str(request["workspace"]),
                profile=request.get("profile"),
                workspace=str(request["workspace"]),
                trust_opt_in=bool(request.get("trust")),
                policy_mode=request.get("policy_mode"),
                name=request.get("name"),
            )
        )

    def exec(self, session: str, request: Mapping[str, Any], stop: Stop | None) -> dict[str, Any]:
        message = {
            "op": "exec",
            "environ": dict(self.context.environ),
            "detach": False,
            **request,
        }
        capture = Capture()
        try:
            sock = client.begin(self.context.home, session, message, stdio=capture.theirs)
        finally:
            capture.handed_over()
        if stop is not None:
            stop.arm(lambda: shut(sock))
        with sock:
            event = client.finish(sock)
        return {**dict(event["result"]), **capture.finish()}

    def stop(self, session: str) -> bool:
        client.request(self.context.home, session, {"op": "stop"})
        return bool(client.wait_stopped(self.context.home, session))


def given(request: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in request.items() if value is not None}


def shut(sock: socket.socket | None, how: int = socket.SHUT_WR) -> None:
    """A stopped launch's socket shut (its other end ends the launch)."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(how)
