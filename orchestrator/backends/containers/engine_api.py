"""A minimal Docker Engine API client over the engine's socket (stdlib ``socket`` only).

Owns: HTTP/1.1 requests to a Docker-API endpoint (unix socket or tcp) with a timeout on
every call, a request sent now whose answer is read later (``Pending``: a wait the
engine holds while the run goes on), the engine's JSON error messages, and hijacking a
connection for attach.
Does not own: which calls to make (``docker``, ``podman.ops``, ``lifecycle``).

Why not docker-py (or even ``http.client``) on this path: a run makes the same handful
of calls the docker CLI makes, and importing docker-py and requests cost ~100 ms per
launch — half of what the engine needs to start a container here.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from typing import Any

API_TIMEOUT_S = 60.0  # any single call; waiting for the command passes its own
PROBE_TIMEOUT_S = 1.5  # `auto` must decide quickly even when an engine hangs


class EngineError(OSError):
    """The engine answered with an error status; ``message`` is the engine's own text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Response:
    """One answer: status, headers (names lower-cased) and body. A plain class, as is
    ``Endpoint``: a dataclass costs ~0.5 ms to define, on every launch."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def data(self) -> Any:
        text = self.body.decode(errors="replace")
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return text


class Endpoint:
    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url  # unix:///path or tcp://host:port (plain http)

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r})"

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

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = API_TIMEOUT_S,
        upgrade: bool = False,
    ) -> Pending:
        """Send one request on a connection of its own and return without reading the
        answer: a run can have the engine work on it (a wait) while it sends the next.
        Every request a backend makes goes through here (benchmarks count them here).
        ``upgrade``: ask for the connection as a raw stream (attach)."""
        payload = json.dumps(body).encode() if body is not None else b""
        sock = self._connect(timeout)
        extra = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "Connection: close\r\n"
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {len(payload)}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n"
        )
        try:
            sock.sendall(head.encode() + payload)
        except BaseException:
            sock.close()
            raise
        return Pending(sock)

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = API_TIMEOUT_S
    ) -> Response:
        """One request on its own connection. Raises OSError (TimeoutError included)
        when nothing answers in time."""
        return self.send(method, path, body, timeout=timeout).response()

    def call(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = API_TIMEOUT_S
    ) -> Any:
        return checked(self.request(method, path, body, timeout=timeout))

    def hijack(self, path: str) -> socket.socket:
        """POST ``path`` asking to upgrade the connection to a raw stream (attach)."""
        pending = self.send("POST", path, timeout=API_TIMEOUT_S, upgrade=True)
        try:
            status = pending.status()
            if status not in (101, 200):
                raise EngineError(status, pending.head.decode(errors="replace").splitlines()[0])
        except BaseException:
            pending.close()
            raise
        pending.sock.settimeout(None)
        return pending.sock

    def ping(self) -> str:
        """The engine's server string (e.g. ``Docker/20.10.24 (linux)``), cheaply."""
        response = self.request("GET", "/_ping", timeout=PROBE_TIMEOUT_S)
        if response.status != 200:
            raise OSError(f"engine at {self.url} answered HTTP {response.status} to /_ping")
        return response.headers.get("server", "engine")

    def has_image(self, image: str) -> bool:
        quoted = urllib.parse.quote(image, safe="")
        return self.request("GET", f"/images/{quoted}/json", timeout=PROBE_TIMEOUT_S).status == 200


class Pending:
    """A request sent and its answer not read yet (``Endpoint.send``). Reading it
    again after a ``TimeoutError`` goes on where it stopped: nothing is lost."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.head = b""  # the status line and headers, once read
        self._raw = b""

    def status(self) -> int:
        """Read up to the end of the headers (byte by byte: a hijacked stream's first
        bytes stay in the socket) and return the status. Docker sends a wait's headers
        as soon as the wait is registered: after this, no exit can be missed."""
        while not self.head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise OSError("engine closed the connection before answering")
            self._raw += chunk
            if self._raw.endswith(b"\r\n\r\n"):
                self.head, self._raw = self._raw, b""
        try:
            return int(self.head.split(b" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise OSError(f"malformed status line from the engine: {self.head[:80]!r}") from exc

    def response(self, timeout: float | None = None) -> Response:
        """The whole answer (the engine closes the connection after it). ``timeout``:
        for this read, instead of the connection's own."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while chunk := self.sock.recv(65536):
                self._raw += chunk
                if len(self._raw) > 16 << 20:
                    raise OSError("engine answer larger than 16 MiB")
        except (TimeoutError, KeyboardInterrupt):
            raise  # the connection stays open: read again to go on waiting
        except BaseException:
            self.close()
            raise
        self.close()
        return _parse(self.head + self._raw)

    def close(self) -> None:
        self.sock.close()


def checked(response: Response) -> Any:
    """The answer's JSON, or ``EngineError`` with the engine's own message."""
    data = response.data()
    if response.status >= 400:
        message = data.get("message") if isinstance(data, dict) else str(data)
        raise EngineError(response.status, str(message or "").strip())
    return data


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
