"""A minimal Docker Engine API client over the engine's socket (stdlib ``socket`` only).

Owns: HTTP/1.1 requests to a Docker-API endpoint (unix socket or tcp) with a timeout on
every call, the engine's JSON error messages, and hijacking a connection for attach.
Does not own: which calls to make (``docker``, ``podman.ops``, ``lifecycle``).

Why not docker-py (or even ``http.client``) on this path: a run makes the same handful
of calls the docker CLI makes, and importing docker-py and requests cost ~100 ms per
launch — half of what the engine needs to start a container here.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

API_TIMEOUT_S = 60.0  # any single call; waiting for the command passes its own
PROBE_TIMEOUT_S = 1.5  # `auto` must decide quickly even when an engine hangs


class EngineError(OSError):
    """The engine answered with an error status; ``message`` is the engine's own text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def data(self) -> Any:
        text = self.body.decode(errors="replace")
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return text


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # unix:///path or tcp://host:port (plain http)

    def _connect(self, timeout: float | None) -> socket.socket:
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(parsed.path)
            except OSError:
                sock.close()
                raise
            return sock
        if parsed.scheme in ("tcp", "http"):
            return socket.create_connection(
                (parsed.hostname or "localhost", parsed.port or 2375), timeout=timeout
            )
        raise OSError(f"unsupported engine endpoint {self.url!r}")

    def _send(
        self, sock: socket.socket, method: str, path: str, body: bytes, extra: str = ""
    ) -> None:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n"
        )
        sock.sendall(head.encode() + body)

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = API_TIMEOUT_S
    ) -> Response:
        """One request on its own connection. Raises OSError (TimeoutError included)
        when nothing answers in time."""
        payload = json.dumps(body).encode() if body is not None else b""
        sock = self._connect(timeout)
        try:
            self._send(sock, method, path, payload, "Connection: close\r\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
                if len(raw) > 16 << 20:
                    raise OSError("engine answer larger than 16 MiB")
        finally:
            sock.close()
        return _parse(raw)

    def call(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = API_TIMEOUT_S
    ) -> Any:
        response = self.request(method, path, body, timeout=timeout)
        data = response.data()
        if response.status >= 400:
            message = data.get("message") if isinstance(data, dict) else str(data)
            raise EngineError(response.status, str(message or "").strip())
        return data

    def hijack(self, path: str) -> socket.socket:
        """POST ``path`` asking to upgrade the connection to a raw stream (attach)."""
        sock = self._connect(API_TIMEOUT_S)
        try:
            self._send(sock, "POST", path, b"", "Connection: Upgrade\r\nUpgrade: tcp\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(1)  # byte by byte: nothing of the stream may be consumed
                if not chunk:
                    raise OSError("engine closed the attach connection")
                head += chunk
            status = int(head.split(b" ", 2)[1])
            if status not in (101, 200):
                raise EngineError(status, head.decode(errors="replace").splitlines()[0])
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock

    def ping(self) -> str:
        """The engine's server string (e.g. ``Docker/20.10.24 (linux)``), cheaply."""
        response = self.request("GET", "/_ping", timeout=PROBE_TIMEOUT_S)
        if response.status != 200:
            raise OSError(f"engine at {self.url} answered HTTP {response.status} to /_ping")
        return response.headers.get("server", "engine")

    def has_image(self, image: str) -> bool:
        quoted = urllib.parse.quote(image, safe="")
        return self.request("GET", f"/images/{quoted}/json", timeout=PROBE_TIMEOUT_S).status == 200


def _parse(raw: bytes) -> Response:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise OSError("malformed answer from the engine")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise OSError(f"malformed status line from the engine: {lines[0]!r}") from exc
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return Response(status, headers, body)


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out
