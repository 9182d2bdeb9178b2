"""A minimal Docker Engine API client over the engine's socket (stdlib only).

Owns: HTTP/1.1 requests to a Docker-API endpoint (unix socket or tcp) with a timeout
on every call, the engine's JSON error messages, and hijacking a connection for
attach. Does not own: which calls to make (``docker.py``).

Why not docker-py on this path: importing it (and requests) costs ~100 ms per launch,
more than the engine needs to start a container here; the handful of calls a run makes
are the same ones the docker CLI makes, and are specified by the Engine API.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

API_TIMEOUT_S = 60.0  # any single call; waiting for the command passes its own


class EngineError(OSError):
    """The engine answered with an error status; ``message`` is the engine's own text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # unix:///path or tcp://host:port (plain http)
    api: str = ""  # e.g. "/v1.41"; empty: the engine's default

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme == "unix":
            return _UnixConnection(parsed.path, timeout)
        if parsed.scheme in ("tcp", "http"):
            return http.client.HTTPConnection(
                parsed.hostname or "localhost", parsed.port or 2375, timeout=timeout
            )
        raise OSError(f"unsupported engine endpoint {self.url!r}")

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = API_TIMEOUT_S
    ) -> tuple[int, Any]:
        """(status, decoded JSON or text). Raises OSError when nothing answers in time."""
        conn = self._connection(timeout)
        headers = {"Host": "localhost"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self.api + path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read(8 << 20)
        except (http.client.HTTPException, ValueError) as exc:
            raise OSError(str(exc)) from exc
        finally:
            conn.close()
        text = raw.decode(errors="replace")
        try:
            return response.status, json.loads(text) if text else None
        except ValueError:
            return response.status, text

    def call(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = API_TIMEOUT_S
    ) -> Any:
        status, data = self.request(method, path, body, timeout=timeout)
        if status >= 400:
            message = data.get("message") if isinstance(data, dict) else str(data)
            raise EngineError(status, str(message or "").strip())
        return data

    def hijack(self, path: str) -> socket.socket:
        """POST ``path`` asking to upgrade the connection to a raw stream (attach)."""
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme != "unix":
            raise OSError("attach needs a unix socket endpoint")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(API_TIMEOUT_S)
        sock.connect(parsed.path)
        sock.sendall(
            f"POST {self.api}{path} HTTP/1.1\r\nHost: localhost\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: nothing of the stream may be consumed
            if not chunk:
                raise OSError("engine closed the attach connection")
            head += chunk
        status = int(head.split(b" ", 2)[1])
        if status not in (101, 200):
            sock.close()
            raise EngineError(status, head.decode(errors="replace").splitlines()[0])
        sock.settimeout(None)
        return sock

    def version(self) -> dict[str, Any]:
        status, data = self.request("GET", "/version", timeout=1.5)
        if status != 200 or not isinstance(data, dict):
            raise OSError(f"engine at {self.url} answered HTTP {status} to /version")
        return data

    def has_image(self, image: str) -> bool:
        status, _ = self.request(
            "GET", f"/images/{urllib.parse.quote(image, safe='')}/json", timeout=1.5
        )
        return status == 200
