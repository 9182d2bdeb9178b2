"""Who may talk to the server: on the Unix socket, the same uid or root (the kernel's word,
SO_PEERCRED, checked when the connection is made — before a byte of it is parsed); on
TCP, loopback only, and only with the bearer token.

Owns: the peer check (a uvicorn protocol that refuses a stranger's connection with a
403 problem and closes it), the token check (an ASGI middleware; constant-time
compare; fails closed: any connection not known to be the Unix socket needs the token),
the listen address check (loopback or refused) and reading the token file (ours, not
readable by others, long enough).
Does not own: serving (``server``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from loguru import logger
from uvicorn.protocols.http.h11_impl import H11Protocol

from orchestrator.core.errors import EXIT_USAGE, ConfigError, UsageError
from orchestrator.runner.sessions.control import refused_peer

from .problems import BASE, MEDIA_TYPE

MIN_TOKEN = 16
FIRST_REQUEST_S = 10.0  # from connecting to a request's whole head

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def _refusal(status: int, reason: str, detail: str, extra: str = "") -> bytes:
    body = json.dumps(
        {
            "type": BASE + ("forbidden" if status == 403 else "unauthorized"),
            "title": reason.lower(),
            "status": status,
            "detail": detail,
            "exit_code": EXIT_USAGE,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {MEDIA_TYPE}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


class PeerCheckedProtocol(H11Protocol):
    """uvicorn's h11 protocol, refusing a Unix-socket peer of another uid at once."""

    def connection_made(self, transport: Any) -> None:
        sock: socket.socket | None = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            # asyncio's TransportSocket: the kernel's answers through the real socket.
            real = socket.socket(fileno=os.dup(sock.fileno()))
            try:
                refusal = refused_peer(real, allow_root=True, what="this server")
            finally:
                real.close()
            if refusal:
                logger.warning("refused a connection: {}", refusal)
                transport.write(_refusal(403, "Forbidden", refusal))
                transport.close()
                return
        super().connection_made(transport)
        # A connection that never sends a whole request (or sends it a byte at a time)
        # must not hold a descriptor for ever: anyone on the host can open one on TCP.
        self.loop.call_later(FIRST_REQUEST_S, self._first_request_overdue)

    def _first_request_overdue(self) -> None:
        if self.cycle is None and self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if getattr(self, "transport", None) is None:  # refused above
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "transport", None) is None:
            return
        super().connection_lost(exc)


class TokenGate:
    """ASGI middleware: a TCP request needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "websocket" and not self._unix(scope) and not self._authorized(scope):
            await send({"type": "websocket.close", "code": 1008})  # no route has one; still
            return
        if scope["type"] == "http" and not self._unix(scope) and not self._authorized(scope):
            body = json.loads(_refusal(401, "Unauthorized", "").split(b"\r\n\r\n", 1)[1])
            body["detail"] = "a bearer token is required on TCP (Authorization: Bearer …)"
            data = json.dumps(body).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", MEDIA_TYPE.encode()),
                        (b"www-authenticate", b'Bearer realm="codex-box"'),
                        (b"content-length", str(len(data)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _unix(scope: Scope) -> bool:
        server = scope.get("server")
        return isinstance(server, list | tuple) and len(server) == 2 and server[1] is None

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None:
            return False  # TCP without a token is never served
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return hmac.compare_digest(value[7:].strip(), self.token)
        return False


def loopback(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` with a loopback HOST (``localhost``, 127.0.0.0/8, ``[::1]``)."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
        if not sep or not 0 <= port <= 65535:
            raise ValueError(port_text)
    except ValueError:
        raise UsageError(
            f"--listen {listen!r} is not HOST:PORT", hint="e.g. --listen 127.0.0.1:8765"
        ) from None
    if host == "localhost":
        host = "127.0.0.1"
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if not is_loopback:
        raise UsageError(
            f"--listen {listen!r}: the API listens on loopback only (127.0.0.1 or [::1])",
            hint="anyone who can reach it can run commands as you; use the Unix socket, "
            "or loopback with --token-file and an SSH tunnel",
        )
    return host, port


def read_token(path: str) -> str:
    """The bearer token: a file of ours, readable by nobody else, of ≥ 16 characters."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(
            f"--token-file {path}: {exc.strerror}",
            hint="e.g. head -c 32 /dev/urandom | base64 > F; chmod 600 F",
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ConfigError(
                f"--token-file {path} must be a regular file of yours that only you can read",
                hint=f"chmod 600 {path}",
            )
        if info.st_nlink != 1:  # another name for it may lie where sandboxes can read
            raise ConfigError(
                f"--token-file {path} has {info.st_nlink} names (hard links)",
                hint="write a new token file; do not link it",
            )
        token = os.read(fd, 4096).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise ConfigError(
            f"--token-file {path}: the token must be at least {MIN_TOKEN} characters, no spaces",
            hint="e.g. head -c 32 /dev/urandom | base64 > F",
        )
    return token
