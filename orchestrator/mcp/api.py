"""``codex-box mcp --server URL``: the launches of the run and session tools made
through a running ``codex-box serve`` (``orchestrator.client``) instead of here.

Owns: ``Runs``'s four launches as API requests, the output streamed back into the same
capped streams a local run fills (``capture.Stream``: the first ``CAP`` bytes kept,
every byte counted), and a stopped call's stream closed (the server then cancels the
run or exec). A refusal is the server's problem document, a ``ServerError`` (a
``CodexBoxError``: the same tool error). Does not own: narrowing, approvals or which
sessions an agent reaches (``box`` and ``sessions`` decide before anything is sent),
any decision of the run (the server's runner and keepers).
The differences, by necessity: the command's environment and backend are the server's;
the workspace is a path the server must see (the same host, for ``unix:``); the
server's records carry its own session id, not the MCP session's.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.client import Client, Result

from .capture import Stop, Stream
from .runs import given, shut

# What the API's result has that ``Stream`` gives in its own shape.
OUTPUT_KEYS = ("event", "stdout", "stderr", "stdout_bytes", "stderr_bytes", "truncated")


class Remote:
    def __init__(self, address: str, environ: Mapping[str, str]) -> None:
        self.address, self.environ = address, dict(environ)
        Client(address, environ=self.environ)  # a malformed address: refused at start

    def client(self, stop: Stop | None = None) -> Client:
        """A client; with ``stop``, armed to close the connection it opens."""
        api = Client(self.address, environ=self.environ)
        if stop is not None:  # the client has no cancel of its own: its connection's
            connect = api._connect

            def tracked() -> http.client.HTTPConnection:
                connection = connect()
                stop.arm(lambda: shut(connection.sock, socket.SHUT_RDWR))
                return connection

            api._connect = tracked
        return api

    def run(self, request: Mapping[str, Any], stop: Stop | None) -> dict[str, Any]:
        return self._captured(lambda api, out: api.run(on_output=out, **given(request)), stop)

    def start(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return self.client().start_session(**given(request))

    def exec(self, session: str, request: Mapping[str, Any], stop: Stop | None) -> dict[str, Any]:
        return self._captured(
            lambda api, out: api.exec(session, on_output=out, **given(request)), stop
        )

    def stop(self, session: str) -> bool:
        self.client().stop_session(session)
        return True

    def _captured(
        self, launch: Callable[[Client, Callable[[str, bytes], None]], Result], stop: Stop | None
    ) -> dict[str, Any]:
        streams = {"stdout": Stream(), "stderr": Stream()}
        result = launch(self.client(stop), lambda name, data: streams[name].add(data))
        kept = {k: v for k, v in result.raw.items() if k not in OUTPUT_KEYS}
        return {**kept, **{name: stream.as_dict() for name, stream in streams.items()}}
