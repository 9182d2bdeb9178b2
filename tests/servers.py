"""Servers the tests run themselves, on the host's loopback only.

Every server binds 127.0.0.1 on a free port, serves a bounded number of requests
and stops with its test. Tests never send traffic anywhere else.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Seen:
    port: int
    hits: list[bytes] = field(default_factory=list)


@contextlib.contextmanager
def tcp_server(max_connections: int = 20) -> Iterator[Seen]:
    """Accepts connections, records the first bytes of each, replies 'pong'."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    seen = Seen(port=sock.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set() and len(seen.hits) < max_connections:
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    seen.hits.append(conn.recv(64) or b"<connected>")
                    conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(2)
        sock.close()


@contextlib.contextmanager
def udp_server() -> Iterator[Seen]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    seen = Seen(port=sock.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set() and len(seen.hits) < 100:
            with contextlib.suppress(TimeoutError, OSError):
                seen.hits.append(sock.recvfrom(512)[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(2)
        sock.close()


@contextlib.contextmanager
def http_server() -> Iterator[Seen]:
    seen = Seen(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.hits.append(self.path.encode())
            body = b"hello from the test server\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    seen.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


@contextlib.contextmanager
def unix_server(path: str) -> Iterator[Seen]:
    """A pathname Unix socket server (like a host daemon's) that records connections."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o777)  # noqa: S103 -- a daemon socket anyone may use: the worst case
    sock.listen(4)
    sock.settimeout(0.2)
    seen = Seen(port=0)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set() and len(seen.hits) < 20:
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                seen.hits.append(b"<connected>")
                with contextlib.suppress(OSError):
                    conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(2)
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
