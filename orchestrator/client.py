"""A small typed client of ``codex-box serve`` (API v1), for Python callers, the CLI's
``--server`` and the MCP server.

    from orchestrator.client import Client
    with Client() as api:                          # $CODEX_BOX_SERVER or the default socket
        result = api.run(["pytest", "-q"], profile="workspace", workspace="/src/app")
        print(result.exit_code, result.stdout)

Owns: addressing (``unix:/path`` or ``http://127.0.0.1:PORT`` with a bearer token),
requests and their JSON, NDJSON streams (each output chunk handed to a callback as it
comes), and a server's problem documents raised as ``ServerError`` carrying the exit
code the CLI would leave with.
Why the standard library's ``http.client`` and not httpx: it speaks HTTP over a Unix
socket with one subclass, and the CLI's ``--server`` path pays no import for it.
Imports nothing of codex-box but its errors: a client loads no runner.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from orchestrator.core.errors import EXIT_SETUP, CodexBoxError
from orchestrator.core.paths import codex_home

SERVER_ENV = "CODEX_BOX_SERVER"
TOKEN_ENV = "CODEX_BOX_SERVER_TOKEN"  # noqa: S105 -- the variable's name, not a token
Output = Callable[[str, bytes], None]  # ("stdout" | "stderr", the bytes, exactly)


class ServerError(CodexBoxError):
    """The server answered with a problem document (or could not be reached)."""

    def __init__(
        self, message: str, *, hint: str = "", status: int = 0, exit_code: int = EXIT_SETUP
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Result:
    """A finished run or exec (the server's ``Result``)."""

    exit_code: int
    backend: str
    run_id: str
    duration_ms: int
    stdout: str = ""
    stderr: str = ""
    detail: str = ""
    cancelled: bool = False
    pooled: bool = False
    warnings: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Result:
        return cls(
            exit_code=int(data["exit_code"]),
            backend=str(data.get("backend", "")),
            run_id=str(data.get("run_id", "")),
            duration_ms=int(data.get("duration_ms", 0)),
            stdout=str(data.get("stdout", "")),
            stderr=str(data.get("stderr", "")),
            detail=str(data.get("detail") or ""),
            cancelled=bool(data.get("cancelled")),
            pooled=bool(data.get("pooled")),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
            raw=dict(data),
        )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def default_address(environ: Mapping[str, str]) -> str:
    return environ.get(SERVER_ENV) or f"unix:{codex_home(environ) / 'serve.sock'}"


class Client:
    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.address = address or default_address(env)
        self.token = token if token is not None else env.get(TOKEN_ENV)
        self.timeout = timeout
        if self.address.startswith("unix:"):
            self._connect: Callable[[], http.client.HTTPConnection] = lambda: _UnixConnection(
                self.address[5:], timeout
            )
        else:
            parsed = urllib.parse.urlsplit(self.address)
            if parsed.scheme != "http" or not parsed.hostname:
                raise ServerError(
                    f"server address {self.address!r} is neither unix:PATH nor http://HOST:PORT",
                    hint=f"e.g. {SERVER_ENV}=unix:$CODEX_HOME/serve.sock",
                    exit_code=2,
                )
            host, port = parsed.hostname, parsed.port or 80
            self._connect = lambda: http.client.HTTPConnection(host, port, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    # --- runs and execs --------------------------------------------------------------

    def run(self, argv: Sequence[str], *, on_output: Output | None = None, **fields: Any) -> Result:
        """One run (``RunBody``'s fields: profile, backend, image, workspace, env, timeout,
        memory, pids, cpus, approve, policy_mode, trust, stdin). With ``on_output``, the
        output streams to it as it comes (and the result's stdout/stderr are empty)."""
        return self._launch("/v1/runs", {"argv": list(argv), **_given(fields)}, on_output)

    def exec(
        self, session: str, argv: Sequence[str], *, on_output: Output | None = None, **fields: Any
    ) -> Result:
        path = f"/v1/sessions/{urllib.parse.quote(session, safe='')}/exec"
        return self._launch(path, {"argv": list(argv), **_given(fields)}, on_output)

    def _launch(self, path: str, body: dict[str, Any], on_output: Output | None) -> Result:
        if on_output is None:
            return Result.of(self._json("POST", path, body))
        for event in self._stream("POST", path + "?stream=1", body):
            kind = event.get("event")
            if kind in ("stdout", "stderr"):
                if "data_b64" in event:
                    on_output(str(kind), base64.b64decode(str(event["data_b64"])))
                else:
                    on_output(str(kind), str(event.get("data", "")).encode())
            elif kind == "exit":
                return Result.of(event)
            elif kind == "error":
                raise _problem(event)
        raise ServerError("the server's stream ended without a result", hint="see the server's log")

    # --- sessions ---------------------------------------------------------------------

    def start_session(self, **fields: Any) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/sessions", _given(fields)))

    def sessions(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/sessions"))

    def session(self, ref: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/sessions/{urllib.parse.quote(ref, safe='')}"))

    def stop_session(self, ref: str) -> None:
        self._json("DELETE", f"/v1/sessions/{urllib.parse.quote(ref, safe='')}")

    # --- questions --------------------------------------------------------------------

    def check(self, argv: Sequence[str], **fields: Any) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/check", {"argv": list(argv), **_given(fields)}))

    def profiles(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/profiles"))

    def audit(self, **filters: Any) -> dict[str, Any]:
        query = urllib.parse.urlencode(_given(filters))
        return dict(self._json("GET", "/v1/audit" + (f"?{query}" if query else "")))

    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/healthz"))

    def metrics(self) -> str:
        response, connection = self._request("GET", "/metrics", None)
        with contextlib.closing(connection):
            return response.read().decode()

    # --- HTTP -------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        connection = self._connect()
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
        except OSError as exc:
            connection.close()
            raise ServerError(
                f"codex-box serve at {self.address} does not answer ({exc})",
                hint="start it with `codex-box serve`, or unset CODEX_BOX_SERVER",
            ) from exc
        if response.status >= 400:
            with contextlib.closing(connection):
                raise _problem(_decoded(response.read()), status=response.status)
        return response, connection

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response, connection = self._request(method, path, body)
        with contextlib.closing(connection):
            raw = response.read()
        return _decoded(raw) if raw else None

    def _stream(self, method: str, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        response, connection = self._request(method, path, body)
        with contextlib.closing(connection):
            for line in response:
                if line.strip():
                    yield _decoded(line)


def _given(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ServerError(f"the server sent something that is not JSON: {raw[:80]!r}") from exc


def _problem(data: Any, *, status: int = 0) -> ServerError:
    if not isinstance(data, dict):
        return ServerError(f"the server answered {status}", status=status)
    return ServerError(
        str(data.get("detail") or data.get("title") or f"the server answered {status}"),
        hint=str(data.get("hint") or ""),
        status=int(data.get("status") or status),
        exit_code=int(data.get("exit_code") or EXIT_SETUP),
    )
