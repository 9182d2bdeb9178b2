"""One client connection through the egress proxy: sniff the protocol, judge, connect.

Owns: the order of every decision for a connection — target (deny, allow, IP literals,
ports), method, resolution, each resolved address — and refusing with 403 (HTTP) or
SOCKS reply 2 plus an audit record. The first byte picks the protocol: 0x05 is SOCKS5,
anything else HTTP (absolute-form requests and CONNECT). A request without a body is
read and relayed by ``connection``'s callbacks, with this class's ``decide``; every
other connection comes to ``handle`` with its first byte still unread.

Tunnels (CONNECT, SOCKS) are opaque unless the rules need to see inside: with
``inspect_tls`` the proxy terminates TLS with the session CA and judges every request;
under a read-only network without it, a tunnel whose first byte is not a TLS handshake
is plain HTTP and is parsed and judged too (so CONNECT to port 80 cannot carry a POST),
while TLS stays domain-level control, as documented.

Deadlines: one per connection (an ``asyncio.timeout`` moved from phase to phase; on the
callback path, ``head_deadlines``, and the same instant is handed over here). The
request head — or the whole SOCKS greeting and request — must arrive within
HEAD_TIMEOUT_S of the accept, so a client that trickles bytes cannot hold one of the
session's connection slots; resolving (10 s) and each connect attempt (``dial``:
CONNECT_TIMEOUT_S, then the next checked address) have their own; relaying has none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from typing import Any

from orchestrator.core.log import debug
from orchestrator.core.spec import Egress

from . import http
from .addresses import IPAddress
from .broker import Broker, Leak, Sent
from .deadlines import Deadlines
from .dial import Dialer
from .resolver import ResolveError, Resolver
from .rules import Refused, Rules
from .tls import SessionCA

HEAD_TIMEOUT_S = 30.0  # accept -> the whole request head (or SOCKS request) read
SNIFF_TIMEOUT_S = 10.0  # a tunnel's first byte, when the rules must know if it is TLS
TLS_HANDSHAKE = 0x16
Audit = Callable[[dict[str, Any]], None]


class Proxy:
    def __init__(
        self,
        egress: Egress,
        *,
        audit: Audit,
        ca: SessionCA | None,
        broker: Broker | None = None,
    ) -> None:
        self.rules = Rules.of(egress)
        # Brokered secrets (compile.spec turns inspect_tls on whenever there are any, so
        # no tunnel is opaque to the broker).
        self.broker = broker
        self.resolver = Resolver(dict(egress.hosts))
        self.audit = audit
        self.ca = ca if egress.inspect_tls else None
        upstream_tls = ssl.create_default_context()
        if egress.upstream_ca:
            upstream_tls.load_verify_locations(cafile=egress.upstream_ca)
        self.dialer = Dialer(upstream_tls)  # to a checked address, never a second lookup
        self.head_deadlines = Deadlines(HEAD_TIMEOUT_S)  # connection.Connection's

    async def handle(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        head_by: float | None = None,
    ) -> None:
        """One connection, from its first byte. ``head_by``: the loop time its head
        must have arrived by (HEAD_TIMEOUT_S after the accept; default: from now)."""
        if head_by is None:
            head_by = asyncio.get_running_loop().time() + HEAD_TIMEOUT_S
        try:
            # One deadline for the connection, moved from phase to phase (_within): the
            # head must be read within HEAD_TIMEOUT_S of the accept; relaying a body, a
            # response or a tunnel has none (a download may take as long as it takes).
            async with asyncio.timeout_at(head_by) as deadline:
                first = await reader.read(1)
                if first == b"\x05":
                    await self._socks(reader, writer, deadline)
                elif first:
                    await self._http(first, reader, writer, deadline)
        except http.BadRequest as exc:
            writer.write(self.bad_request(exc))
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client or origin went away: nothing to answer
        except Exception as exc:  # an oversized origin head, a bug: end this connection only
            debug("egress connection failed", error=repr(exc))
        finally:
            writer.close()

    # -- HTTP: absolute-form requests and CONNECT ------------------------------------

    async def _http(
        self,
        first: bytes,
        reader: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        deadline: asyncio.Timeout,
    ) -> None:
        req = http.parse_request(await http.read_head(reader, first))
        _within(deadline, None)  # resolving and connecting have their own timeouts
        if req.method == "CONNECT":
            host, port = http.split_authority(req.target)
            try:
                host, ips = await self.decide(host, port, None)
            except Refused as exc:
                w.write(http.refusal(exc.status, exc.reason))
                return
            w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await w.drain()
            await self._tunnel(host, port, ips, reader, w, deadline)
            return
        host, port, path = http.split_absolute(req.target)
        length = http.body_length(req)  # framing errors are refused before anything connects
        try:
            host, ips = await self.decide(host, port, req.method)
            http.check_host_header(req, host, port)
            req, sent = self._inject(req, host, port, tls=False)  # plain HTTP: never injected
            up_r, up_w = await self._connect(host, ips, port, tls=False)
        except Refused as exc:
            w.write(http.refusal(exc.status, exc.reason))
            return
        await self._exchange(req, length, path, host, port, reader, w, up_r, up_w, sent)

    async def _exchange(
        self,
        req: http.RequestHead,
        length: int | None,
        path: str,
        host: str,
        port: int,
        reader: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
        sent: Sent | None = None,
    ) -> None:
        """One judged request to an already connected origin, and its response.
        ``sent``: the secrets injected into it (its response is guarded)."""
        broker = self.broker
        try:
            up_w.write(http.upstream_head(req, path, host, port))
            if req.expects_continue:  # Expect is not forwarded: answer it here
                w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            scan = broker.body_scanner(host) if broker is not None else None
            try:
                await http.relay_body(length, reader, up_w, scan)
            except Leak as leak:
                # The origin gets an incomplete request (aborted, not ended), which it
                # never acts on; the sandbox gets the refusal.
                up_w.transport.abort()
                self._record(host, port, req.method, leak.reason, secret=leak.name)
                w.write(http.refusal(403, leak.reason))
                return
            await up_w.drain()
            guard = broker.response_guard(sent, host) if broker is not None and sent else None
            try:
                await http.relay_response(up_r, w, guard)
            except Leak as leak:
                self._record(host, port, req.method, leak.reason, secret=leak.name)
                w.transport.abort()  # cut off: what was held back never reaches the client
        finally:
            up_w.close()

    # -- tunnels -----------------------------------------------------------------------

    async def _tunnel(
        self,
        host: str,
        port: int,
        ips: list[IPAddress],
        reader: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        deadline: asyncio.Timeout,
    ) -> None:
        if self.ca is not None:
            await w.start_tls(self.ca.context_for(host))  # asyncio's handshake timeout
            await self._inner_request(host, port, ips, reader, w, deadline, prefix=b"", tls=True)
            return
        prefix = b""
        if self.rules.read_only:
            _within(deadline, SNIFF_TIMEOUT_S)
            prefix = await reader.read(1)
            _within(deadline, None)
            if not prefix:
                return
            if prefix[0] != TLS_HANDSHAKE:  # plain HTTP inside a tunnel: judge it
                await self._inner_request(
                    host, port, ips, reader, w, deadline, prefix=prefix, tls=False
                )
                return
            # Domain-level control holds for TLS only: the rest of a ClientHello's record
            # header must follow, not any bytes behind a lone 0x16 (a line protocol that
            # skips a bad first line would then take the rest unjudged).
            _within(deadline, SNIFF_TIMEOUT_S)
            prefix += await reader.readexactly(5)
            _within(deadline, None)
            if not _client_hello(prefix):
                self._record(
                    host,
                    port,
                    None,
                    "a tunnel under a read-only network carried neither TLS nor HTTP",
                )
                return
        try:
            up_r, up_w = await self._connect(host, ips, port, tls=False)
        except Refused:
            return  # the 200 is already sent: closing is the only answer left
        up_w.write(prefix)
        try:
            await asyncio.gather(http.pipe(reader, up_w), http.pipe(up_r, w))
        finally:
            up_w.close()

    async def _inner_request(
        self,
        host: str,
        port: int,
        ips: list[IPAddress],
        reader: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        deadline: asyncio.Timeout,
        *,
        prefix: bytes,
        tls: bool,
    ) -> None:
        _within(deadline, HEAD_TIMEOUT_S)
        req = http.parse_request(await http.read_head(reader, prefix))
        _within(deadline, None)
        path = http.origin_form(req.target, host, port)
        length = http.body_length(req)
        try:
            reason = self.rules.check_method(req.method)
            if reason:
                raise Refused(host, port, reason)
            http.check_host_header(req, host, port)
            req, sent = self._inject(req, host, port, tls=tls)
            up_r, up_w = await self._connect(host, ips, port, tls=tls)
        except Refused as exc:
            if exc.status == 403 and not exc.recorded:  # a connect failure (502) is not
                self._record(host, port, req.method, exc.reason)  # a rule's refusal
            w.write(http.refusal(exc.status, exc.reason))
            return
        await self._exchange(req, length, path, host, port, reader, w, up_r, up_w, sent)

    # -- SOCKS5 (RFC 1928), CONNECT only, no authentication -----------------------------

    async def _socks(
        self, reader: asyncio.StreamReader, w: asyncio.StreamWriter, deadline: asyncio.Timeout
    ) -> None:
        methods = await reader.readexactly((await reader.readexactly(1))[0])
        if 0 not in methods:
            w.write(b"\x05\xff")
            return
        w.write(b"\x05\x00")
        version, command, _reserved, kind = await reader.readexactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        elif kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("latin-1")
        else:
            w.write(_socks_reply(8))
            return
        port = int.from_bytes(await reader.readexactly(2), "big")
        _within(deadline, None)  # the greeting and request arrived in time
        if version != 5 or command != 1:  # BIND and UDP ASSOCIATE would open other paths
            self._record(host, port, None, f"SOCKS command {command} is not supported")
            w.write(_socks_reply(7))
            return
        try:
            host, ips = await self.decide(host, port, None)
        except Refused as exc:
            w.write(_socks_reply(2 if exc.status == 403 else 4))
            return
        w.write(_socks_reply(0))
        await w.drain()
        await self._tunnel(host, port, ips, reader, w, deadline)

    # -- deciding and connecting --------------------------------------------------------

    async def decide(self, host: str, port: int, method: str | None) -> tuple[str, list[IPAddress]]:
        if self.broker is not None:  # a placeholder as a name: sent to DNS, logged
            try:
                self.broker.check_target(host, host)
            except Leak as leak:
                self._record(host, port, method, leak.reason, secret=leak.name)
                raise Refused(host, port, leak.reason, recorded=True) from leak
        host, reason = self.rules.check_target(host, port)
        reason = reason or (self.rules.check_method(method) if method else None)
        if reason is None:
            try:
                ips = await self.resolver.resolve(host, port)
            except ResolveError as exc:
                self._record(host, port, method, str(exc))
                raise Refused(host, port, str(exc), status=502) from exc
            # Every address, not just the first: a name that resolves to a public
            # address and 127.0.0.1 is refused, whichever the connect would pick.
            for ip in ips:
                if reason := self.rules.check_address(host, ip):
                    break
            else:
                return host, ips
        self._record(host, port, method, reason)
        raise Refused(host, port, reason)

    async def _connect(
        self, host: str, ips: list[IPAddress], port: int, *, tls: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await self.dialer.streams(host, ips, port, tls=tls)

    def _inject(
        self, req: http.RequestHead, host: str, port: int, *, tls: bool
    ) -> tuple[http.RequestHead, Sent | None]:
        """The request with its placeholders swapped for the real values where bound
        (``broker``); a placeholder anywhere else is refused and recorded."""
        if self.broker is None:
            return req, None
        try:
            return self.broker.rewrite(req, host, port, tls=tls)
        except Leak as leak:
            self._record(host, port, req.method, leak.reason, secret=leak.name)
            raise Refused(host, port, leak.reason, recorded=True) from leak

    def bad_request(self, exc: http.BadRequest) -> bytes:
        """Record a request head the proxy cannot judge; the answer to send."""
        self._record(None, 0, None, exc.reason)
        return http.refusal(exc.status, exc.reason)

    def _record(
        self,
        host: str | None,
        port: int,
        method: str | None,
        reason: str,
        *,
        secret: str | None = None,
    ) -> None:
        fields = {
            "target": f"{host}:{port}" if host else "(unparsed request)",
            "domain": host or "",
            "method": method or ("CONNECT" if host else ""),
            "reason": reason,
        }
        if secret is not None:  # a credential_use record: the secret's name, never its value
            fields["secret"] = secret
        self.audit(fields)


def _within(deadline: asyncio.Timeout, seconds: float | None) -> None:
    """Move the connection's deadline to ``seconds`` from now (None: no deadline)."""
    when = None if seconds is None else asyncio.get_running_loop().time() + seconds
    deadline.reschedule(when)


def _client_hello(head: bytes) -> bool:
    """A TLS record header (handshake, version 3.x, a length) and a ClientHello."""
    return (
        len(head) == 6
        and head[0] == TLS_HANDSHAKE
        and head[1] == 3
        and head[2] <= 4
        and int.from_bytes(head[3:5], "big") > 0
        and head[5] == 1
    )


def _socks_reply(code: int) -> bytes:
    return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])
