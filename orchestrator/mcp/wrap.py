"""``codex-box mcp wrap``: any stdio MCP server run as ONE sandboxed launch, its protocol
relayed between the agent (our stdin/stdout) and it (two pipes), each tool call audited.

Owns: the launch (through the fork server, as ``box`` launches a run: judged by the
runner and the execution policy like any command, its stdin and stdout pipes of ours,
its stderr ours — a stdio MCP server's log channel), the two relay threads (client →
server, server → client; a line longer than ``relay.MAX_LINE`` ends the relay), the
audit records of each ``tools/call`` (``mcp_tool_call``: decided when it is forwarded
or refused, ended with its answer's error flag), and the exit code (the server's; 125
when the relay failed).
Does not own: what a line becomes (``relay``), the profile, workspace and fork server
(``box.Box``), any decision about the launch (``runner``). Our stdout is the protocol:
nothing else is written there.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, BinaryIO

from orchestrator.audit import records
from orchestrator.core.errors import EXIT_SETUP, UsageError
from orchestrator.runner.context import new_id

from .box import Box
from .relay import MAX_LINE, Relay, ToolFilter

DRAIN_S = 2.0  # the server's stdout, after it ended (a leftover process may hold it)


class TooLong(Exception):
    pass


def tool_filter(box: Box, allow: Sequence[str], deny: Sequence[str]) -> ToolFilter:
    """The flags' and the profile's lists, the narrowest of them."""
    for name in (*allow, *deny):
        if not name or name != name.strip():
            raise UsageError(
                f"tool name {name!r} is empty or has spaces around it",
                hint="give a tool's name or an fnmatch pattern, e.g. --deny-tool 'delete_*'",
            )
    return ToolFilter.of((allow, box.base.mcp_allow_tools), (deny, box.base.mcp_deny_tools))


class Audit:
    """``relay.Calls``: each call's records, the two of one call under one run id."""

    def __init__(self, box: Box) -> None:
        self.box = box
        self._open: dict[str, tuple[str, str, Any]] = {}  # key → (run_id, tool, arguments)
        self._lock = threading.Lock()

    def called(self, key: str, name: str, arguments: Any, *, allowed: bool, why: str) -> None:
        run_id = new_id()
        if allowed:
            with self._lock:
                self._open[key] = (run_id, name, arguments)
        record = records.mcp_tool_called(
            tool=name,
            arguments=arguments,
            profile=self.box.profile,
            workspace=self.box.workspace,
            allowed=allowed,
            reason=why,
        )
        self.box.write({**record, "run_id": run_id})  # before the call goes anywhere

    def answered(self, key: str, *, is_error: bool | None) -> None:
        with self._lock:
            opened = self._open.pop(key, None)
        if opened is None:
            return
        run_id, name, arguments = opened
        record = records.mcp_tool_answered(
            tool=name,
            arguments=arguments,
            profile=self.box.profile,
            workspace=self.box.workspace,
            is_error=is_error,
        )
        self.box.write({**record, "run_id": run_id})


class _Out:
    """Our stdout, one whole line at a time from either thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]


def lines(stream: BinaryIO) -> Any:
    """Each line of ``stream`` (its newline kept); ``TooLong`` past ``MAX_LINE``."""
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            raise TooLong(f"a message longer than {MAX_LINE} bytes")
        yield line


class Wrapped:
    """One wrapped server: launched, relayed, waited for."""

    def __init__(
        self,
        box: Box,
        argv: Sequence[str],
        tools: ToolFilter,
        *,
        env: Sequence[str] = (),
        stdin_fd: int = 0,
        stdout_fd: int = 1,
    ) -> None:
        self.box, self.argv, self.env = box, tuple(argv), tuple(env)
        self.audit = Audit(box)
        self.relay = Relay(tools, self.audit)
        self.stdin_fd, self.out = stdin_fd, _Out(stdout_fd)
        self.failed: str | None = None  # why the relay ended early

    def run(self) -> int:
        """The server's exit code (125 when the relay failed); raises the launch's
        refusal or error (``CodexBoxError``)."""
        to_r, to_w = os.pipe2(os.O_CLOEXEC)
        from_r, from_w = os.pipe2(os.O_CLOEXEC)
        request = {
            "argv": list(self.argv),
            "profile": self.box.flag,
            "workspace": self.box.workspace,
            "env": list(self.env),
            "approve": self.box.approve,
            "policy_mode": self.box.policy_mode,
            "trust": self.box.trust,
        }
        try:
            channel = self.box.forkserver().launch(
                {k: v for k, v in request.items() if v is not None},
                (to_r, from_w, 2),
                cwd=self.box.workspace,
            )
        except BaseException:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise
        os.close(to_r)
        os.close(from_w)
        to_server = open(to_w, "wb", buffering=0)  # noqa: SIM115 -- the thread closes it
        from_server = open(from_r, "rb")  # noqa: SIM115
        try:
            channel.started()
        except BaseException:
            to_server.close()
            from_server.close()
            channel.close()
            raise
        up = threading.Thread(
            target=self._client_to_server, args=(to_server, channel.cancel), daemon=True
        )
        down = threading.Thread(
            target=self._server_to_client, args=(from_server, channel.cancel), daemon=True
        )
        up.start()
        down.start()
        try:
            try:
                result = channel.wait()
            except KeyboardInterrupt:
                channel.cancel()
                result = channel.wait()
        finally:
            channel.close()
        down.join(timeout=DRAIN_S)
        for key in self.relay.unanswered():
            self.audit.answered(key, is_error=None)
        if self.failed:
            print(f"codex-box: mcp wrap: {self.failed}", file=sys.stderr, flush=True)
            return EXIT_SETUP
        detail = result.get("detail")
        if detail and result.get("exit_code") in (124, 126, 127):
            print(f"codex-box: {detail}", file=sys.stderr, flush=True)
        code = result.get("exit_code")
        return int(code) if isinstance(code, int) else EXIT_SETUP

    def _client_to_server(self, to_server: BinaryIO, cancel: Any) -> None:
        try:
            with open(self.stdin_fd, "rb", closefd=False) as stdin:
                for line in lines(stdin):
                    forward, answer = self.relay.from_client(line)
                    if answer is not None:
                        self.out.write(answer)
                    if forward is not None:
                        to_server.write(forward)
        except BrokenPipeError:
            pass  # the server ended: its end is the run's
        except Exception as exc:  # an oversized line, an audit log we cannot write
            self._fail(f"client → server: {exc}", cancel)
        finally:
            with contextlib.suppress(OSError):
                to_server.close()  # the server sees EOF: a stdio MCP server's cue to end

    def _server_to_client(self, from_server: BinaryIO, cancel: Any) -> None:
        try:
            with from_server:
                for line in lines(from_server):
                    self.out.write(self.relay.from_server(line))
        except BrokenPipeError:
            self._fail("the client went away", cancel)
        except Exception as exc:
            self._fail(f"server → client: {exc}", cancel)

    def _fail(self, why: str, cancel: Any) -> None:
        if self.failed is None:
            self.failed = why
        cancel()
