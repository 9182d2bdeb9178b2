"""The credential broker: swap a run's placeholders for real secrets, in request headers
to the hosts each secret is bound to, over verified TLS only — and treat a placeholder
anywhere else as an exfiltration attempt.

Owns: finding placeholders in what the sandbox sends (the CONNECT or SOCKS target, the
request target, every header value and the password of ``Authorization: Basic``, the
body as it streams), the substitution, the per-run count of uses, and cutting off a
response in which an origin reflects a real value back (the sandbox must never read it).
Does not own: the decision to inspect (a run with secrets always terminates TLS:
``compile.spec``), the audit record (``Leak`` goes to ``server``'s refusal path), or
where the values come from (``runner.credentials``).

Security reasons, in short:
- The real value exists only here and in the upstream TLS connection to an origin whose
  certificate was verified for the bound name: plain HTTP, another host, a URL or a body
  never gets it, so the sandbox can neither read it nor send it somewhere it can read.
- A placeholder in the wrong place is refused (403) rather than passed on: it means the
  sandbox tried to send its credential somewhere, and the audit log should say so.
- An origin that echoes request headers (httpbin's /headers, a debug endpoint) would
  hand the value to the sandbox: the response is scanned while it streams and cut off
  before the value's first byte reaches the client.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import unquote_to_bytes

from orchestrator.core import domains
from orchestrator.core.brokered import BrokeredSecret

from .http import CHUNK_SIZE, HOP_BY_HOP, RequestHead

_UNCHECKABLE = frozenset({"accept-encoding", "range", "if-range"})
# Each injected secret's name → the byte strings that carried its value upstream.
Sent = dict[str, set[bytes]]


class Leak(Exception):
    """A placeholder where its secret may not go (or a value an origin reflected)."""

    def __init__(self, name: str, host: str, where: str, *, what: str = "placeholder") -> None:
        # Worded so the audit log's redactor keeps it: "NAME: text" would read as a
        # secret's value and be replaced by [REDACTED].
        self.name, self.host = name, host
        self.reason = f"the {what} of secret {name} {where}"
        super().__init__(self.reason)


@dataclass(slots=True)
class _Bound:
    secret: BrokeredSecret
    value: bytes = field(repr=False)  # never in a log line or a traceback's locals
    patterns: tuple[domains.DomainPattern, ...]

    def admits(self, host: str, port: int) -> bool:
        return any(p.admits(host, port) for p in self.patterns)


@dataclass(slots=True)
class Broker:
    """One run's secrets: ``values`` maps each secret's name to its real value."""

    secrets: tuple[BrokeredSecret, ...]
    values: Mapping[str, str] = field(repr=False)
    uses: dict[tuple[str, str], int] = field(default_factory=dict)
    _bound: tuple[_Bound, ...] = ()
    _longest: int = 0

    def __post_init__(self) -> None:
        self._bound = tuple(
            _Bound(s, self.values[s.name].encode("latin-1"), tuple(map(domains.parse, s.hosts)))
            for s in self.secrets
        )
        self._longest = max(
            (max(len(b.value), len(b.secret.placeholder)) for b in self._bound), default=0
        )

    # -- what the sandbox sends --------------------------------------------------------

    def check_target(self, host: str, target: str) -> None:
        """A CONNECT/SOCKS host or a request target (raw and percent-decoded) holding a
        placeholder: a URL is logged, cached and forwarded everywhere — never injected."""
        raw = target.encode("latin-1", "replace")
        for text in (raw, unquote_to_bytes(raw)):
            if found := self._placeholder_in(text):
                raise Leak(found.secret.name, host, "was sent in a URL or host name")

    def rewrite(
        self, req: RequestHead, host: str, port: int, *, tls: bool
    ) -> tuple[RequestHead, Sent]:
        """``req`` with each placeholder in an injectable header swapped for its value,
        when ``tls`` (a terminated, origin-verified tunnel) and ``host`` is bound; and
        what was sent (each secret's forms on the wire, for ``response_guard``).
        Raises Leak for a placeholder anywhere it may not be replaced."""
        self.check_target(host, req.target)
        for text in (req.method, *(name for name, _ in req.headers)):  # forwarded as sent
            if found := self._placeholder_in(text.encode("latin-1")):
                raise Leak(found.secret.name, host, "was sent as a method or header name")
        headers = list(req.headers)
        sent: Sent = {}
        for i, (name, value) in enumerate(req.headers):
            if req.names[i] in HOP_BY_HOP:
                continue  # never forwarded (Proxy-Authorization…): nothing to inject
            new = self._header(req.names[i], value, host, port, tls=tls, sent=sent)
            if new is not value:
                headers[i] = (name, new)
        if not sent:
            return req, sent
        for name in sent:
            self.uses[(name, host)] = self.uses.get((name, host), 0) + 1
        # What comes back must be checkable for the value, whole: no content coding
        # (gzip would hide it from the response guard) and no range (a slice of a
        # reflection is a slice of the value).
        names = [n for n in req.names if n not in _UNCHECKABLE]
        headers = [h for n, h in zip(req.names, headers, strict=True) if n not in _UNCHECKABLE]
        names.append("accept-encoding")
        headers.append(("Accept-Encoding", "identity"))
        rewritten = RequestHead(req.method, req.target, req.version, tuple(headers), tuple(names))
        return rewritten, sent

    def _header(
        self, lower: str, value: str, host: str, port: int, *, tls: bool, sent: Sent
    ) -> str:
        raw = value.encode("latin-1")
        basic = lower == "authorization" and value[:6].lower() == "basic "
        if basic:
            decoded = _b64(value[6:].strip())
            if decoded is not None and self._placeholder_in(decoded):
                user, colon, password = decoded.partition(b":")
                injected: list[_Bound] = []
                for bound in self._bound:  # each placeholder in it, not only the first
                    place = bound.secret.placeholder.encode()
                    if place not in decoded:
                        continue
                    if not (
                        colon
                        and place not in user
                        and self._may(bound, host, port, "basic-auth", tls)
                    ):
                        raise Leak(bound.secret.name, host, self._where(bound, host, port, tls))
                    password = password.replace(place, bound.value)
                    injected.append(bound)
                encoded = base64.b64encode(user + b":" + password)
                for bound in injected:
                    # An origin that echoes the header back would hand over this form too.
                    sent.setdefault(bound.secret.name, {bound.value}).add(encoded)
                return "Basic " + encoded.decode("ascii")
        if not self._placeholder_in(raw):
            return value
        for bound in self._bound:
            place = bound.secret.placeholder.encode()
            if place not in raw:
                continue
            if not self._may(bound, host, port, "header", tls):
                raise Leak(bound.secret.name, host, self._where(bound, host, port, tls))
            raw = raw.replace(place, bound.value)
            sent.setdefault(bound.secret.name, set()).add(bound.value)
        return raw.decode("latin-1")

    @staticmethod
    def _may(bound: _Bound, host: str, port: int, mode: str, tls: bool) -> bool:
        return tls and mode in bound.secret.inject and bound.admits(host, port)

    @staticmethod
    def _where(bound: _Bound, host: str, port: int, tls: bool) -> str:
        if not bound.admits(host, port):
            return f"was sent to {host}:{port}, which it is not bound to"
        if not tls:
            return f"was sent to {host} over plain HTTP (it is injected over TLS only)"
        return f"was sent to {host} in a header it is not injected into"

    def _placeholder_in(self, data: bytes) -> _Bound | None:
        for bound in self._bound:
            if bound.secret.placeholder.encode() in data:
                return bound
        return None

    def body_scanner(self, host: str) -> BodyScanner:
        return BodyScanner(self, host)

    @staticmethod
    def response_guard(sent: Sent, host: str) -> ResponseGuard:
        return ResponseGuard(sent, host)

    @property
    def overlap(self) -> int:
        """Bytes kept between two chunks so a string split across them is still seen."""
        return max(0, self._longest - 1)


class BodyScanner:
    """A request body, chunk by chunk: a placeholder in it (even split across two
    chunks) is refused — a body is never injected."""

    def __init__(self, broker: Broker, host: str) -> None:
        self.broker, self.host, self.tail = broker, host, b""

    def __call__(self, chunk: bytes) -> None:
        window = self.tail + chunk
        if found := self.broker._placeholder_in(window):
            raise Leak(found.secret.name, self.host, "was sent in a request body")
        keep = self.broker.overlap
        self.tail = window[-keep:] if keep else b""


class ResponseGuard:
    """An origin's response after an injected request, on its way to the sandbox.

    The body is checked as the client will read it: a chunked body is decoded here and
    passed on close-delimited (Transfer-Encoding dropped; the proxy's connections end
    with the response anyway), so a value split by chunk framing is still seen whole.
    The last ``len(form) - 1`` bytes are held back, so a reflected value is found
    before any of it reaches the sandbox; then the response is cut off (Leak). A body
    in a content coding (gzip…) cannot be checked: the request asked for identity, and
    an origin that encodes anyway is cut off too."""

    def __init__(self, sent: Sent, host: str) -> None:
        self.forms = [(name, form) for name, forms in sent.items() for form in forms]
        self.name = next(iter(sent), "")
        self.host = host
        self.hold = max((len(form) for _, form in self.forms), default=1) - 1
        self.tail = b""
        self.chunks: _Dechunker | None = None

    def head(self, head: bytes) -> bytes:
        """The response head, checked whole; returned as the client gets it."""
        self.check(head)
        lines = head.split(b"\r\n")
        kept = [lines[0]]
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-encoding" and value not in (b"", b"identity"):
                self._cut(
                    f"got a response encoded as {value.decode('latin-1')[:40]}, which "
                    "cannot be checked for the value; it was cut off"
                )
            if name == b"transfer-encoding":
                if value != b"chunked":
                    self._cut(
                        "got a response in a transfer coding other than chunked, "
                        "which cannot be checked for the value; it was cut off"
                    )
                self.chunks = _Dechunker()
                continue  # passed on close-delimited
            kept.append(line)
        if self.chunks is not None:
            kept = [ln for ln in kept if ln.partition(b":")[0].strip().lower() != b"content-length"]
        return b"\r\n".join(kept)

    def check(self, whole: bytes) -> None:
        """A piece seen whole (the response head): no bytes held back."""
        for name, form in self.forms:
            if form in whole:
                raise Leak(
                    name,
                    self.host,
                    "came back in the origin's response; the response was cut off",
                    what="value",
                )

    def feed(self, chunk: bytes) -> bytes:
        if self.chunks is not None:
            try:
                chunk = self.chunks.feed(chunk)
            except ValueError as exc:
                self._cut(f"got a malformed chunked response ({exc}); it was cut off")
        window = self.tail + chunk
        self.check(window)
        if not self.hold:
            self.tail = b""
            return window
        self.tail = window[-self.hold :]
        return window[: -self.hold]

    def flush(self) -> bytes:
        out, self.tail = self.tail, b""
        return out

    def _cut(self, where: str) -> NoReturn:
        raise Leak(self.name, self.host, where, what="injected request")


class _Dechunker:
    """Chunked transfer coding → the payload, incrementally (trailers dropped)."""

    MAX_LINE = 8192

    def __init__(self) -> None:
        self.state, self.left, self.pending = "size", 0, b""

    def feed(self, data: bytes) -> bytes:
        buf, i, out = self.pending + data, 0, bytearray()
        while i < len(buf) and self.state != "done":
            if self.state == "data":
                take = min(self.left, len(buf) - i)
                out += buf[i : i + take]
                i += take
                self.left -= take
                if not self.left:
                    self.state = "data-end"
                continue
            end = buf.find(b"\r\n", i)
            if end < 0:
                if len(buf) - i > self.MAX_LINE:
                    raise ValueError("a chunk line too long")
                break
            line, i = buf[i:end], end + 2
            if self.state == "data-end":
                if line:
                    raise ValueError("chunk data not followed by CRLF")
                self.state = "size"
            elif self.state == "size":
                digits = line.partition(b";")[0].strip()
                if not CHUNK_SIZE.fullmatch(digits):
                    raise ValueError("a bad chunk size")
                self.left = int(digits, 16)
                self.state = "data" if self.left else "trailer"
            elif not line:  # the empty line after the trailers
                self.state = "done"
        self.pending = buf[i:] if self.state != "done" else b""
        return bytes(out)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
