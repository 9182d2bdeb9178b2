"""One run's egress rules, as decisions: may this host and port be reached, may this
method be sent, may this address be connected to.

Owns: the order of the checks — deny wins over allow; an IP literal is refused unless
the allow list names it (no reaching a LAN address by number when only names were
granted); without an allow list only ports 80 and 443; read-only methods.
Does not own: resolving (``resolver``) or the wire (``server``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import domains
from ..spec import Egress
from .addresses import IPAddress, local_reason


@dataclass(frozen=True, slots=True)
class Rules:
    allow: tuple[domains.DomainPattern, ...]
    deny: tuple[domains.DomainPattern, ...]
    methods: tuple[str, ...] | None
    allow_local_hosts: bool

    @classmethod
    def of(cls, egress: Egress) -> Rules:
        return cls(
            allow=tuple(domains.parse(p) for p in egress.allow),
            deny=tuple(domains.parse(p, any_port=True) for p in egress.deny),
            methods=egress.methods,
            allow_local_hosts=egress.allow_local_hosts,
        )

    def check_target(self, host: str, port: int) -> tuple[str, str | None]:
        """(normalised host, refusal reason or None)."""
        try:
            host = domains.normalise_host(host)
        except domains.PatternError as exc:
            return host, str(exc)
        if not 0 < port < 65536:
            return host, f"port {port} is not a TCP port"
        for pattern in self.deny:
            if pattern.admits(host, port):
                return host, f"{host} is denied by network.deny '{pattern.text}'"
        if domains.is_ip_literal(host) and not any(
            p.host == host and not p.wildcard for p in self.allow
        ):
            return (
                host,
                f"{host} is an IP address; only names are allowed unless network.allow lists it",
            )
        if self.allow:
            if not any(p.admits(host, port) for p in self.allow):
                return host, f"{host}:{port} is not in network.allow"
        elif port not in domains.DEFAULT_PORTS:
            return host, (
                f"port {port} is not allowed: without network.allow only ports 80 and 443 are"
            )
        return host, None

    def check_method(self, method: str) -> str | None:
        if self.methods is None or method in self.methods:
            return None
        return f"method {method} is not allowed (read-only network: {', '.join(self.methods)})"

    def check_address(self, host: str, ip: IPAddress) -> str | None:
        if self.allow_local_hosts:
            return None
        reason = local_reason(ip)
        return f"{host} resolves to {reason}" if reason else None

    @property
    def read_only(self) -> bool:
        return self.methods is not None
