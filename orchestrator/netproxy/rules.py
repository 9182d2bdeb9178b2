"""One run's egress rules, as decisions: may this host and port be reached, may this
method be sent, may this address be connected to.

Owns: the order of the checks — deny wins over allow; an IP literal is refused unless
the allow list names it (no reaching a LAN address by number when only names were
granted); without an allow list only ports 80 and 443; read-only methods.
Does not own: resolving (``resolver``) or the wire (``server``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.core import domains
from orchestrator.core.spec import Egress

from .addresses import IPAddress, local_reason

TARGET_CACHE_SIZE = 4096  # (host, port) -> decision; then the oldest entry goes
_CACHEABLE_HOST = 255  # longer "hosts" (a DNS name is at most 253) are judged, not kept


class Refused(Exception):
    """A refusal as the wire gives it: 403 for a rule's, 502 for a name that does not
    resolve or an origin that does not answer."""

    def __init__(
        self, host: str, port: int, reason: str, *, status: int = 403, recorded: bool = False
    ) -> None:
        super().__init__(reason)
        self.host, self.port, self.reason, self.status = host, port, reason, status
        self.recorded = recorded  # its audit record is written already


@dataclass(frozen=True, slots=True)
class Rules:
    allow: tuple[domains.DomainPattern, ...]
    deny: tuple[domains.DomainPattern, ...]
    methods: tuple[str, ...] | None
    allow_local_hosts: bool
    # check_target is a pure function of (host, port) and the fields above, so its
    # answers are kept: normalising (IDNA) and matching every pattern runs once per name.
    # Only the name's verdict is kept — every resolved address is still checked on each
    # connection (check_address), as the addresses may change.
    _targets: dict[tuple[str, int], tuple[str, str | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

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
        key = (host, port)
        found = self._targets.get(key)
        if found is None:
            found = self._judge_target(host, port)
            if len(host) <= _CACHEABLE_HOST:
                if len(self._targets) >= TARGET_CACHE_SIZE:
                    del self._targets[next(iter(self._targets))]
                self._targets[key] = found
        return found

    def _judge_target(self, host: str, port: int) -> tuple[str, str | None]:
        try:
            host = domains.normalise_host(host)
        except domains.PatternError:
            # The sandbox chose these bytes: the record gets an escaped, bounded copy.
            shown = ascii(host[:253])
            return shown, f"{shown} is not a valid host name"
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
