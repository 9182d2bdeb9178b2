"""Connecting to the addresses the proxy has checked.

Owns: one connection to the first of a name's checked addresses that answers, each
attempt bounded by CONNECT_TIMEOUT_S (on one timer shared by all attempts: ``deadlines``),
TLS to the origin when the proxy terminates the client's, and the stream pair that
``server.Proxy``'s stream-based paths read and write. It never looks a name up: the
addresses are the ones ``server.Proxy.decide`` resolved and checked, and a second lookup
would let DNS rebinding swap in 127.0.0.1 between the check and the connect.
Does not own: which addresses may be connected to (``rules``, ``server``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from . import http
from .addresses import IPAddress
from .deadlines import Deadlines
from .rules import Refused

CONNECT_TIMEOUT_S = 10.0  # per address tried
P = TypeVar("P", bound=asyncio.BaseProtocol)


class Dialer:
    def __init__(self, upstream_tls: ssl.SSLContext) -> None:
        self.upstream_tls = upstream_tls
        self._deadlines = Deadlines(CONNECT_TIMEOUT_S)

    async def open(
        self,
        host: str,
        ips: list[IPAddress],
        port: int,
        factory: Callable[[], P],
        *,
        tls: bool,
        loop: asyncio.AbstractEventLoop | None = None,
        task: asyncio.Task[Any] | None = None,
    ) -> tuple[asyncio.Transport, P]:
        """A connection to the first of ``ips`` that answers, each tried for at most
        CONNECT_TIMEOUT_S; Refused (502) when none does. ``loop`` and ``task``: the
        running ones, when the caller has them at hand (asking costs a system call)."""
        loop = loop or asyncio.get_running_loop()
        task = task or asyncio.current_task()
        if task is None:
            raise RuntimeError("Dialer.open is awaited in a task")
        last: Exception | None = None
        for ip in ips:  # the checked addresses only: never a second lookup of the name
            # What asyncio.timeout(CONNECT_TIMEOUT_S) does, on the shared timer: past
            # it, the attempt is cancelled and the next address is tried.
            expired = False

            def expire(task: asyncio.Task[Any] = task) -> None:
                nonlocal expired
                expired = True
                task.cancel()

            key = self._deadlines.add(loop, expire)
            try:
                transport, protocol = await loop.create_connection(
                    factory,
                    str(ip),
                    port,
                    ssl=self.upstream_tls if tls else None,
                    server_hostname=host if tls else None,
                )
                return transport, protocol
            except asyncio.CancelledError:
                if not expired or task.uncancel() > 0:
                    raise  # the run ended, not this attempt's time
                last = TimeoutError()  # worded as asyncio.timeout's was
            except (OSError, ssl.SSLError) as exc:
                last = exc
            finally:
                self._deadlines.clear(key)
        raise Refused(host, port, f"cannot connect to {host}:{port}: {last}", status=502)

    async def streams(
        self, host: str, ips: list[IPAddress], port: int, *, tls: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``open``, as asyncio.open_connection gives it: a reader and a writer."""
        loop = asyncio.get_running_loop()
        readers: list[asyncio.StreamReader] = []

        def protocol() -> asyncio.StreamReaderProtocol:  # a fresh reader for each attempt
            readers.append(asyncio.StreamReader(limit=http.MAX_HEAD, loop=loop))
            return asyncio.StreamReaderProtocol(readers[-1], loop=loop)

        transport, made = await self.open(host, ips, port, protocol, tls=tls)
        return readers[-1], asyncio.StreamWriter(transport, made, readers[-1], loop)
