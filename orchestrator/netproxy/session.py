"""The egress proxy for one run, in a thread of codex-box with its own event loop.

Owns: the session CA's lifetime (made at start, its certificate deleted at close), the
listening sockets a backend hands over (``serve``: each was created inside the
sandbox's network namespace, so it is the only thing listening there that leads out),
and ending every connection when the run ends.
Does not own: how a listener gets into the sandbox (each backend) or the audit record
of a refusal: each ``Refusal`` goes to the runner's callback (called from the proxy
thread under a lock), which writes ``audit.records.network_refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, NotRequired, TypedDict

from orchestrator.core.log import debug
from orchestrator.core.spec import Egress

from .broker import Broker
from .connection import Connection
from .server import Proxy
from .tls import SessionCA

# One sandbox's connections at once. Beyond it a connection is closed at once: every
# accepted one holds two descriptors of codex-box's own, and running out of them would
# stop the proxy from writing its audit records.
MAX_CLIENTS = 256
# Refusals recorded one by one per run; past it they are counted, and one record at the
# end says how many: a sandbox must not be able to rotate the audit history away.
MAX_AUDITED = 200
# The accept queue: asyncio listens again with its own backlog (default 100) on the
# socket a backend hands over. A burst past it would wait a SYN retransmit (1 s) in the
# kernel; up to MAX_CLIENTS are served, the rest closed once accepted.
BACKLOG = MAX_CLIENTS


class Refusal(TypedDict):
    """One refused request, as the proxy words it (the network_connect record's fields)."""

    target: str  # host:port, or what stood in for it
    domain: str
    method: str
    reason: str
    secret: NotRequired[str]  # a brokered secret's placeholder where it may not go


class CredentialUse(TypedDict):
    """How often one brokered secret was injected for one host (never its value)."""

    secret: str
    host: str
    count: int


def new_loop() -> asyncio.AbstractEventLoop:
    """The proxy thread's event loop: uvloop's when it is installed (libuv: the loop's
    own work per request in C, not Python; bench/proxy_bench.py --proxy-loop compares),
    else asyncio's. The proxy's code is the same on both, and so is every decision."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _refusal(fields: Mapping[str, Any]) -> Refusal:
    refusal = Refusal(
        target=str(fields["target"]),
        domain=str(fields["domain"]),
        method=str(fields["method"]),
        reason=str(fields["reason"]),
    )
    if "secret" in fields:
        refusal["secret"] = str(fields["secret"])
    return refusal


class ProxySession:
    def __init__(
        self,
        egress: Egress,
        *,
        run_id: str,
        audit: Callable[[Refusal], None],
        secret_values: Mapping[str, str] | None = None,
    ) -> None:
        """``secret_values``: each brokered secret's real value (``runner.credentials``);
        held by the broker in this process's memory only."""
        self.egress = egress
        self._audit = audit
        self._lock = threading.Lock()
        self.refused = 0  # every refusal, recorded or not
        self.audit_failures = 0  # refusals whose record could not be written

        def locked_audit(record: dict[str, Any]) -> None:
            with self._lock:
                self.refused += 1
                if self.refused <= MAX_AUDITED:
                    self._write(record)

        self.ca = SessionCA(run_id) if egress.inspect_tls else None
        self.broker = None
        if egress.secrets:
            if self.ca is None or secret_values is None:
                # compile.spec turns inspect_tls on for secrets; the runner reads values.
                raise ValueError("brokered secrets need inspect_tls and their values")
            self.broker = Broker(egress.secrets, secret_values)
        self.proxy = Proxy(egress, audit=locked_audit, ca=self.ca, broker=self.broker)
        self._loop = new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="egress", daemon=True)
        self._servers: list[asyncio.AbstractServer] = []
        self._live: set[Connection] = set()  # every admitted connection not yet ended

    def __enter__(self) -> ProxySession:
        if self.ca is not None and self.egress.ca_file:
            self.ca.write(self.egress.ca_file)
        # The loop's thread starts in ``serve``: until the backend hands over the
        # sandbox's listener there is nothing to serve, and a process with one thread
        # may still fork its native launcher (``backends.native.forking``).
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve(self, listener: socket.socket) -> None:
        """Accept the sandbox's connections on ``listener`` from now on."""
        listener.setblocking(False)
        loop = self._loop
        if not self._thread.is_alive():
            self._thread.start()

        def accepted() -> Connection:
            return Connection(self.proxy, loop, self._admit, self._live.discard)

        future: Future[asyncio.AbstractServer] = asyncio.run_coroutine_threadsafe(
            _create_server(loop, accepted, listener), loop
        )
        self._servers.append(future.result(timeout=10))

    def credential_uses(self) -> list[CredentialUse]:
        """Each (secret, host) injected so far and how often: for the run's end record."""
        if self.broker is None:
            return []
        uses = dict(self.broker.uses)  # a copy: the proxy's thread may be adding to it
        return [
            CredentialUse(secret=name, host=host, count=count)
            for (name, host), count in sorted(uses.items())
        ]

    def _write(self, fields: Mapping[str, Any]) -> None:
        try:
            self._audit(_refusal(fields))
        except Exception as exc:  # the refusal stands; the runner reports the gap
            self.audit_failures += 1
            debug("egress audit record not written", error=str(exc))

    def _admit(self, conn: Connection) -> bool:
        if len(self._live) >= MAX_CLIENTS:
            return False
        self._live.add(conn)
        return True

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        with self._lock:
            unrecorded = self.refused - MAX_AUDITED
            if unrecorded > 0:
                self._write(
                    Refusal(
                        target="(further refusals)",
                        domain="",
                        method="",
                        reason=f"{unrecorded} more requests were refused in this run; "
                        f"only the first {MAX_AUDITED} are recorded one by one",
                    )
                )
        if not self._loop.is_running():
            self._loop.close()
        if self.ca is not None and self.egress.ca_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.egress.ca_file)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.egress.ca_file))

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        live = list(self._live)
        for conn in live:
            conn.end()
        await asyncio.gather(*(c.task for c in live if c.task), return_exceptions=True)


async def _create_server(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], Connection], listener: socket.socket
) -> asyncio.AbstractServer:
    return await loop.create_server(factory, sock=listener, backlog=BACKLOG)
