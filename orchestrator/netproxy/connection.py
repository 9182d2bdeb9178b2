"""One client connection of the egress proxy, read by callbacks.

Owns: reading the request head (within HEAD_TIMEOUT_S of the accept, at most MAX_HEAD
bytes), and relaying the request a sandbox sends most in the clear — one without a body
(GET, HEAD, OPTIONS) — without a stream object or a wake-up per step: the head is parsed
when its last byte arrives, one task decides and connects, and the origin's answer goes
to the client from the upstream connection's own callback, with flow control. The
decisions are ``server.Proxy``'s own (``decide``, then ``open`` to a checked address),
made in the same order as for any other request.

Everything else — SOCKS, CONNECT, a request with a body or Expect, a head the proxy
refuses or cannot read — is handed over whole: the bytes read so far go into a
StreamReader, and ``Proxy.handle`` reads the connection from its first byte, as it
reads every connection that is not this simple. So a refusal, its status and its audit
record come from one place, whichever path a connection starts on.
Does not own: any decision (``server``, ``rules``) or the wire format (``http``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from orchestrator.core import failpoints
from orchestrator.core.log import debug

from . import http
from .rules import Refused
from .server import Proxy

_END = b"\r\n\r\n"
_SOCKS = 5
HEAD, REQUEST, STREAMS = "head", "request", "streams"
# After a head without a body, what else the client sends is never relayed (a
# pipelined request reaches no origin). It is read and dropped up to this much, as a
# StreamReader would buffer it, then reading pauses.
_DROP_LIMIT = 2 * http.MAX_HEAD


class Connection(asyncio.Protocol):
    """The client's side. ``admit`` may refuse the connection (the session's cap);
    ``release`` is called once when it has ended on every side."""

    def __init__(
        self,
        proxy: Proxy,
        loop: asyncio.AbstractEventLoop,
        admit: Callable[[Connection], bool],
        release: Callable[[Connection], None],
    ) -> None:
        self.proxy, self.loop, self.admit, self.release = proxy, loop, admit, release
        self.phase = HEAD
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.deadline: int | None = None  # the head's, in proxy.head_deadlines
        self.head_by = 0.0  # the loop time the whole head must have arrived by
        self.buf = bytearray()
        self.scanned = 1  # the head's end is searched for from here on
        self.dropped = 0
        self.admitted = self.client_lost = self.upstream_lost = self.released = False

    # -- the client's transport ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client = cast(asyncio.Transport, transport)
        failpoints.reach("proxy")
        if not self.admit(self):  # over the session's cap: closed without a word
            self.client.close()
            return
        self.admitted = True
        # The head must be read within HEAD_TIMEOUT_S of the accept, so a client that
        # trickles bytes cannot hold one of the session's connection slots; a connection
        # handed over keeps the same deadline.
        deadlines = self.proxy.head_deadlines
        self.head_by = self.loop.time() + deadlines.seconds
        self.deadline = deadlines.add(self.loop, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        if self.phase is not HEAD:
            self.dropped += len(data)
            if self.dropped > _DROP_LIMIT and self.client and not self.client.is_closing():
                self.client.pause_reading()
            return
        try:
            self._more_head(data)
        except Exception as exc:  # a bug: end this connection only, as Proxy.handle does
            debug("egress connection failed", error=repr(exc))
            self._finish(b"")

    def eof_received(self) -> bool:
        # Before a whole head: nothing to answer, close. After it: a half-close, and
        # the answer still goes out.
        return self.phase is not HEAD

    def connection_lost(self, exc: Exception | None) -> None:
        self.client_lost = True
        self._clear_deadline()
        if self.upstream is not None:
            self.upstream.close()  # nobody is left to read the answer
        self._maybe_release()

    def pause_writing(self) -> None:  # the client reads slower than the origin sends
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.resume_reading()

    # -- the head -------------------------------------------------------------------------

    def _more_head(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if buf[0] == _SOCKS:
            self._hand_over()
            return
        # The limits of Proxy.handle's reads: one byte, then up to CRLFCRLF with the
        # separator starting within MAX_HEAD bytes. Past them the head goes to
        # Proxy.handle too, which refuses it with 431 and an audit record.
        end = buf.find(_END, self.scanned)
        if end < 0:
            if len(buf) - 1 > http.MAX_HEAD + len(_END) - 1:
                self._hand_over()
            else:
                self.scanned = max(1, len(buf) - len(_END) + 1)
            return
        if end - 1 > http.MAX_HEAD:
            self._hand_over()
            return
        self._clear_deadline()
        try:
            req = http.parse_request(bytes(buf[: end + 4]))
            host, port, path = http.split_absolute(req.target)
            simple = (
                req.method != "CONNECT" and http.body_length(req) == 0 and not req.expects_continue
            )
        except Exception:  # a refusal (400, 501), or worse: Proxy.handle answers it
            simple = False
        if not simple or self.proxy.broker is not None:
            # With brokered secrets every request is read whole by Proxy.handle, whose
            # broker looks for placeholders in it: this path relays heads unseen.
            self._hand_over()
            return
        self.phase = REQUEST
        self.dropped = len(buf) - end - 4
        self.buf = bytearray()
        self.task = self.loop.create_task(self._relay(req, host, port, path))
        self.task.add_done_callback(lambda _task: self._maybe_release())

    def _head_timeout(self) -> None:
        self.deadline = None
        if self.phase is HEAD and self.client is not None:
            self.client.close()

    def _hand_over(self) -> None:
        """From here on the connection is Proxy.handle's, read from its first byte."""
        if self.client is None:  # data comes only after connection_made
            return
        self._clear_deadline()
        self.phase = STREAMS
        reader = asyncio.StreamReader(limit=http.MAX_HEAD, loop=self.loop)
        # As asyncio.start_server builds it: a server side (start_tls depends on that),
        # whose writer is made by connection_made and handed to the callback.
        protocol = asyncio.StreamReaderProtocol(reader, self._start_streams, loop=self.loop)
        self.client.set_protocol(protocol)
        protocol.connection_made(self.client)
        reader.feed_data(bytes(self.buf))
        self.buf = bytearray()

    def _start_streams(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.task = self.loop.create_task(self._streams(reader, writer))

    async def _streams(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.proxy.handle(reader, writer, head_by=self.head_by)
        except asyncio.CancelledError:
            writer.close()  # the run ended: connections end with it, quietly
        finally:
            self.released = True
            if self.admitted:
                self.release(self)

    # -- a request without a body ---------------------------------------------------------

    async def _relay(self, req: http.RequestHead, host: str, port: int, path: str) -> None:
        """Proxy._http's order: decide (target, method, resolution, every address), the
        Host header, connect to a checked address; then the head goes upstream and the
        answer comes back through Upstream's callbacks."""
        try:
            try:
                host, ips = await self.proxy.decide(host, port, req.method)
                http.check_host_header(req, host, port)
                upstream, _ = await self.proxy.dialer.open(
                    host,
                    ips,
                    port,
                    lambda: Upstream(self),
                    tls=False,
                    loop=self.loop,
                    task=self.task,
                )
            except Refused as exc:
                self._finish(http.refusal(exc.status, exc.reason))
                return
            if self.client_lost:  # the client left while the proxy connected
                upstream.close()
                return
            self.upstream = upstream
            upstream.write(http.upstream_head(req, path, host, port))
        except http.BadRequest as exc:
            self._finish(self.proxy.bad_request(exc))
        except Exception as exc:  # a bug: end this connection only, as Proxy.handle does
            debug("egress connection failed", error=repr(exc))
            self._finish(b"")
            if self.upstream is not None:
                self.upstream.close()

    def send(self, data: bytes) -> None:
        """Part of the origin's answer, to the client."""
        if self.client is not None and not self.client_lost and not self.client.is_closing():
            self.client.write(data)

    def upstream_closed(self) -> None:
        self.upstream_lost = True
        self._finish(b"")  # what was written goes out first, then the FIN
        self._maybe_release()

    def end(self) -> None:
        """The run ended: the connection ends with it, quietly."""
        self._clear_deadline()
        if self.task is not None:
            self.task.cancel()  # Proxy.handle's streams are closed by _streams
        if self.phase is not STREAMS:
            if self.upstream is not None:
                self.upstream.close()
            if self.client is not None:
                self.client.close()

    # -- helpers --------------------------------------------------------------------------

    def _finish(self, data: bytes) -> None:
        if self.client is not None and not self.client_lost and not self.client.is_closing():
            if data:
                self.client.write(data)
            self.client.close()

    def _clear_deadline(self) -> None:
        if self.deadline is not None:
            self.proxy.head_deadlines.clear(self.deadline)
            self.deadline = None

    def _maybe_release(self) -> None:
        if (
            self.released
            or not self.admitted
            or self.phase is STREAMS
            or not self.client_lost
            or (self.upstream is not None and not self.upstream_lost)
            or (self.task is not None and not self.task.done())
        ):
            return
        self.released = True
        self.task = self.upstream = None  # no cycles left for the garbage collector
        self.release(self)


class Upstream(asyncio.Protocol):
    """The origin's side of a request without a body: its answer, with the head
    rewritten (``http.response_head``), goes to the client as it arrives."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.head = bytearray()
        self.scanned = 0
        self.relaying = False

    def data_received(self, data: bytes) -> None:
        if self.relaying:
            self.conn.send(data)
            return
        head = self.head
        head += data
        end = head.find(_END, self.scanned)
        try:
            if end < 0:
                if len(head) > http.MAX_HEAD:
                    raise asyncio.LimitOverrunError(
                        f"origin response head over {http.MAX_HEAD} bytes", 0
                    )
                self.scanned = max(0, len(head) - len(_END) + 1)
                return
            answer = http.response_head(head, end)
        except Exception as exc:  # an oversized origin head: end this connection only
            debug("egress connection failed", error=repr(exc))
            self.head = bytearray()
            self.conn.end()
            return
        self.relaying = True
        self.conn.send(answer + head[end + 4 :])  # one write is one send
        self.head = bytearray()

    def eof_received(self) -> bool:
        return False  # the origin was asked to close: its FIN ends the answer

    def connection_lost(self, exc: Exception | None) -> None:
        # Before a whole head: the client's connection closes without an answer.
        self.conn.upstream_closed()
