"""HTTP/1.x on the wire, as strictly as a proxy that enforces rules must read it.

Owns: reading and parsing a request head, the framing of its body, the head sent
upstream, and relaying the response. Anything ambiguous — both Transfer-Encoding and
Content-Length, a folded header, two Host headers, a transfer coding other than
chunked — is refused with 400/501, because a proxy and an origin that frame a request
differently let a second, unchecked request ride inside the first (request smuggling).
Each client connection carries one request: the proxy asks for ``Connection: close``
on both sides, so every request on the wire is one the proxy parsed and judged.
Does not own: deciding (``rules``) or connecting (``server``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import SplitResult, urlsplit

MAX_HEAD = 64 * 1024
BODY_IDLE_S = 60.0
T = TypeVar("T")
CHUNK = 64 * 1024
# ASCII only: str.isdigit() also admits "²"; at most 19 digits, so int() never meets a
# 4300-digit number (a ValueError past every refusal: no answer, no audit record).
_DIGITS = re.compile(r"[0-9]{1,19}")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")  # strictly hex: see relay_body
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Per-hop headers: they describe the client↔proxy connection, never the origin's.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


# Sees each piece of a request body before it goes upstream; may raise to stop it.
Scan = Callable[[bytes], None]


class Guard(Protocol):
    """Filters a response on its way to the client (``netproxy.broker.ResponseGuard``)."""

    def head(self, head: bytes) -> bytes: ...
    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    names: tuple[str, ...]  # each header's name, lower-cased, in the same order

    def values(self, name: str) -> list[str]:
        """Every value of the header ``name`` (lower case), in order."""
        if name not in self.names:  # the usual answer, found without a loop in Python
            return []
        return [h[1] for n, h in zip(self.names, self.headers, strict=True) if n == name]

    def one(self, name: str) -> str | None:
        found = self.values(name)
        if len(found) > 1:
            raise BadRequest(400, f"more than one {name} header")
        return found[0] if found else None

    @property
    def expects_continue(self) -> bool:
        if "expect" not in self.names:
            return False
        return any(v.strip().lower() == "100-continue" for v in self.values("expect"))


async def read_head(reader: asyncio.StreamReader, prefix: bytes = b"") -> bytes:
    try:
        return prefix + await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise BadRequest(431, f"request head larger than {MAX_HEAD} bytes") from exc


def parse_request(head: bytes) -> RequestHead:
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    ends = len(lines) - 1  # each CRLF holds one CR and one LF: any other is bare
    if text.count("\r") != ends or text.count("\n") != ends or "\0" in text:
        # A bare CR or LF is a line end to some origins: a header the proxy never saw.
        raise BadRequest(400, "a bare CR, LF or NUL in the request head")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, f"malformed request line {lines[0][:80]!r}")
    headers = []
    names = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise BadRequest(400, f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
        names.append(name.lower())
    return RequestHead(
        method=parts[0],
        target=parts[1],
        version=parts[2],
        headers=tuple(headers),
        names=tuple(names),
    )


def split_authority(authority: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of CONNECT, or a Host header."""
    host, port = authority, ""
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[1:end], authority[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, port = authority.split(":")
    if not port:
        if default_port is None:
            raise BadRequest(400, f"{authority!r} names no port")
        return host, default_port
    if not _DIGITS.fullmatch(port):
        raise BadRequest(400, f"{authority!r}: bad port")
    return host, int(port)


def origin_form(target: str, host: str, port: int) -> str:
    """The path of a request inside a tunnel to ``host:port``. An absolute URL there
    must name that same site: origins follow the URL over Host (RFC 9112 §3.2.2), so
    another name would reach another site behind the same front end."""
    if target.startswith("/") or target == "*":
        return target
    parts = _split(target)
    scheme = parts.scheme.lower()
    try:
        named_port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise BadRequest(400, f"bad port in {target[:80]!r}") from exc
    named = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or named != host or named_port != port:
        raise BadRequest(400, f"{target[:80]!r} names another site than the tunnel's {host}")
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def split_absolute(target: str) -> tuple[str, int, str]:
    """(host, port, origin-form path) of an absolute-form ``http://`` request target."""
    parts = _split(target)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise BadRequest(
            400, f"expected an http:// URL, got {target[:80]!r} (HTTPS goes through CONNECT)"
        )
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise BadRequest(400, f"bad port in {target[:80]!r}") from exc
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, path


def _split(target: str) -> SplitResult:
    """``urlsplit``, whose ValueError (``http://[::1/``: "Invalid IPv6 URL") would reach
    the proxy's catch-all: the connection closed unanswered and unrecorded."""
    try:
        return urlsplit(target)
    except ValueError as exc:
        raise BadRequest(400, f"malformed URL {target[:80]!r}") from exc


def body_length(req: RequestHead) -> int | None:
    """Bytes of body, or None for chunked."""
    coding = req.values("transfer-encoding")
    length = req.values("content-length")
    if coding:
        if length:
            raise BadRequest(400, "both Transfer-Encoding and Content-Length")
        if len(coding) != 1 or coding[0].lower() != "chunked":
            raise BadRequest(501, f"transfer coding {', '.join(coding)!r} is not supported")
        return None
    if not length:
        return 0
    if len(set(length)) != 1 or not _DIGITS.fullmatch(length[0]):
        raise BadRequest(400, f"bad Content-Length {', '.join(length)!r}")
    return int(length[0])


def check_host_header(req: RequestHead, host: str, port: int) -> None:
    """The origin picks its site by Host: it must name the host the proxy judged."""
    given = req.one("host")
    if given is None:
        return
    name, given_port = split_authority(given, default_port=port)
    if name.lower().rstrip(".") != host or given_port != port:
        raise BadRequest(400, f"Host header {given!r} does not match the request's {host}")


def upstream_head(req: RequestHead, path: str, host: str, port: int) -> bytes:
    default = port in (80, 443)
    authority = host if default else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        authority = f"[{host}]" if default else f"[{host}]:{port}"
    lines = [f"{req.method} {path} HTTP/1.1", f"Host: {authority}"]
    lines += [
        f"{k}: {v}"
        for n, (k, v) in zip(req.names, req.headers, strict=True)
        if n not in HOP_BY_HOP and n != "host"
    ]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def relay_body(
    length: int | None,
    reader: asyncio.StreamReader,
    out: asyncio.StreamWriter,
    scan: Scan | None = None,
) -> None:
    if length is not None:
        await _relay_exactly(length, reader, out, scan)
        return
    while True:  # chunked: relay chunk by chunk, so the proxy knows where the body ends
        line = await _idle(reader.readuntil(b"\r\n"))
        # Strictly hex digits: int(…, 16) would also take 0x5, 1_0 or +5, which an
        # origin may read as another length — and another place where the body ends.
        # Extensions and trailers may hold no bare CR or LF: to an origin that ends a
        # line at a lone LF, what follows would be a request the proxy never judged.
        digits, _, extension = line[:-2].partition(b";")
        if not CHUNK_SIZE.fullmatch(digits) or not _clean(extension):
            raise BadRequest(400, "malformed chunk size line")
        size = int(digits, 16)
        if scan is not None:
            scan(line)  # a chunk extension is the sandbox's text too
        out.write(line)
        if size == 0:
            while (trailer := await _idle(reader.readuntil(b"\r\n"))) != b"\r\n":
                name, colon, _value = trailer[:-2].partition(b":")
                if (
                    not colon
                    or not _TOKEN.match(name.decode("latin-1"))
                    or not _clean(trailer[:-2])
                ):
                    raise BadRequest(400, "malformed trailer line")
                if scan is not None:
                    scan(trailer)
                out.write(trailer)
                await out.drain()
            out.write(b"\r\n")
            await out.drain()
            return
        await _relay_exactly(size, reader, out, scan)  # a chunk may claim any size
        if await _idle(reader.readexactly(2)) != b"\r\n":
            raise BadRequest(400, "chunk data not followed by CRLF")
        out.write(b"\r\n")


async def _relay_exactly(
    length: int, reader: asyncio.StreamReader, out: asyncio.StreamWriter, scan: Scan | None
) -> None:
    """``length`` bytes, streamed with backpressure: never buffered whole."""
    left = length
    while left:
        data = await _idle(reader.read(min(CHUNK, left)))
        if not data:
            raise asyncio.IncompleteReadError(b"", left)
        if scan is not None:
            scan(data)
        out.write(data)
        await out.drain()
        left -= len(data)


def _clean(part: bytes) -> bool:
    return not any(c in part for c in b"\r\n\0")


async def _idle(step: Awaitable[T]) -> T:
    """One read of a request body: a client that stalls mid-upload for longer than
    ``BODY_IDLE_S`` loses the connection (and frees its slot)."""
    return await asyncio.wait_for(step, BODY_IDLE_S)


async def relay_response(
    upstream: asyncio.StreamReader, client: asyncio.StreamWriter, guard: Guard | None = None
) -> None:
    """The origin's response with its connection headers replaced by ``close``, then
    the rest of the stream until the origin closes (it was asked to).

    The head goes out in one write with whatever body bytes arrived with it (one send
    instead of two for a small response); nothing waits for body bytes that have not
    arrived, so a slow or streaming body still gets its head at once. No shutdown at
    the end: the caller closes the client connection next, which sends the FIN."""
    data, start = bytearray(), 0
    while (end := data.find(b"\r\n\r\n", start)) < 0:
        if len(data) > MAX_HEAD:
            raise asyncio.LimitOverrunError(f"origin response head over {MAX_HEAD} bytes", 0)
        start = max(0, len(data) - 3)  # the CRLFCRLF may straddle two reads
        more = await upstream.read(CHUNK)
        if not more:
            raise asyncio.IncompleteReadError(bytes(data), None)
        data += more
    head, body = response_head(data, end), bytes(data[end + 4 :])
    if guard is not None:  # the head too: an origin may echo a header in a header
        head = guard.head(head)
        body = guard.feed(body)
        if upstream.at_eof():  # all of it is here: what is held back goes in this send
            body += guard.flush()
    client.write(head + body)  # one write is one send
    await client.drain()
    while more := await upstream.read(CHUNK):
        client.write(guard.feed(more) if guard is not None else more)
        await client.drain()
    if guard is not None:
        client.write(guard.flush())


def response_head(data: bytes | bytearray, end: int) -> bytes:
    """The origin's response head (``data[:end]``, CRLFCRLF at ``end``) as the client
    gets it: its connection headers replaced by ``Connection: close``. Raises
    LimitOverrunError for a head over MAX_HEAD bytes."""
    if end + 4 > MAX_HEAD:
        raise asyncio.LimitOverrunError(f"origin response head over {MAX_HEAD} bytes", 0)
    lines = data[:end].decode("latin-1").split("\r\n")
    kept = [lines[0]] + [
        ln
        for ln in lines[1:]
        if ln and ln.partition(":")[0].strip().lower() not in ("connection", "keep-alive")
    ]
    return ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction of a tunnel, passing the end of the stream on (a half-close)."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


def refusal(status: int, reason: str) -> bytes:
    phrase = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large"}
    phrase |= {501: "Not Implemented", 502: "Bad Gateway"}
    text = reason.replace("\r", " ").replace("\n", " ")
    body = f"codex-box egress proxy: {text}\n".encode()
    head = (
        f"HTTP/1.1 {status} {phrase.get(status, 'Error')}\r\n"
        f"X-Codex-Box-Denied: {text}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("utf-8") + body
