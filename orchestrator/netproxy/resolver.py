"""Names → addresses, by the proxy alone.

Owns: resolving each requested name once, from config.toml ``[network] hosts`` first
and then the host's resolver, and handing back every address so the caller can refuse
the name if *any* of them is local. The connection then goes to an address checked
here, never to a second lookup of the name (that would let DNS rebinding swap in
127.0.0.1 between the check and the connect).
Does not own: the checks themselves (``rules``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping

from .addresses import IPAddress

RESOLVE_TIMEOUT_S = 10.0


class ResolveError(Exception):
    pass


class Resolver:
    def __init__(self, hosts: Mapping[str, str]) -> None:
        # An IP literal is its own address and never looked up in ``hosts``: drop such
        # keys, so that asking ``hosts`` first (one dict lookup, cheaper than a failed
        # IP parse) gives the same answers as trying the literal first.
        self._hosts = {
            name: ipaddress.ip_address(ip) for name, ip in hosts.items() if not _is_ip(name)
        }

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        named = self._hosts.get(host)
        if named is not None:
            return [named]
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise ResolveError(f"cannot resolve {host}: {exc}") from exc
        out: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if ip not in out:
                out.append(ip)
        if not out:
            raise ResolveError(f"cannot resolve {host}: no address")
        return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
