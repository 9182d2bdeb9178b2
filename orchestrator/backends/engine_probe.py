"""Cheap, bounded probes of a Docker-API engine socket, without importing an engine SDK.

Owns: "does an engine answer at this endpoint, which version, is this image there?"
with a hard timeout on every call. Does not own: running containers (docker-py does).

Why not docker-py here: ``--backend auto`` probes on every launch, and importing
docker-py costs ~100 ms even when no engine is installed.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # unix:///path or tcp://host:port (http)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme == "unix":
            return _UnixConnection(parsed.path, timeout)
        if parsed.scheme in ("tcp", "http"):
            return http.client.HTTPConnection(
                parsed.hostname or "localhost", parsed.port or 2375, timeout=timeout
            )
        raise OSError(f"unsupported engine endpoint {self.url!r}")

    def get(self, path: str, *, timeout: float = 1.5) -> tuple[int, Any]:
        """(HTTP status, decoded JSON or text) — raises OSError when nothing answers."""
        conn = self._connection(timeout)
        try:
            conn.request("GET", path, headers={"Host": "localhost"})
            response = conn.getresponse()
            body = response.read(1 << 20)
        except (http.client.HTTPException, ValueError) as exc:
            raise OSError(str(exc)) from exc
        finally:
            conn.close()
        text = body.decode(errors="replace")
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text

    def version(self) -> dict[str, Any]:
        status, data = self.get("/version")
        if status != 200 or not isinstance(data, dict):
            raise OSError(f"engine at {self.url} answered HTTP {status} to /version")
        return data

    def has_image(self, image: str) -> bool:
        status, _ = self.get(f"/images/{urllib.parse.quote(image, safe='')}/json")
        return status == 200
