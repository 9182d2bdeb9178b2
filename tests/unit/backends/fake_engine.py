"""A container engine's API socket for unit tests: canned answers, every request kept.

``FakeEngine(path, routes)`` listens on a unix socket; ``routes`` maps "METHOD /path"
(the query left out) to (status, JSON body, extra headers). Anything else is a 404.
``dead_socket(path)`` is a socket file nothing listens on (connect: ECONNREFUSED).
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

Route = tuple[int, Any, dict[str, str]]


def dead_socket(path: Path) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # bound, never listening: connect is refused
    return f"unix://{path}"


class FakeEngine:
    def __init__(self, path: Path, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.seen: list[str] = []
        self.url = f"unix://{path}"
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(path))
        self._server.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = conn.recv(65536)
            if not chunk:
                return
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        sizes = [int(v) for k, _, v in (line.partition(":") for line in lines)
                 if k.lower() == "content-length"]
        length = sizes[0] if sizes else 0
        while len(body) < length:
            body += conn.recv(65536)
        method, target, _ = lines[0].split(" ", 2)
        key = f"{method} {target.split('?')[0]}"
        self.seen.append(key)
        status, data, headers = self.routes.get(key, (404, {"message": f"no route {key}"}, {}))
        payload = json.dumps(data).encode() if data is not None else b""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n{extra}"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
