"""Network attacks against the harness's own servers — the host's loopback (TCP, UDP,
through the egress proxy), a Unix socket daemon, an abstract socket — judged by what
those servers received. Never any other address: a selftest runs on a CI runner.

Owns: these catalogue entries and the host-side control that the servers answer at all.
Does not own: the servers (``site.Listeners``), the catalogue's order (``attacks``).
"""

from __future__ import annotations

import socket

from .model import FULL_NETWORK, TRUSTED, Attack, Effect, Expect, Plan, Ran, contained_everywhere
from .site import Listeners, Site

# Each step's own try: one refused step must not hide the next one's attempt.
LOOPBACK = r"""
import socket, sys
port, nonce = int(sys.argv[1]), sys.argv[2]
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(("tcp " + nonce).encode()); s.close(); print("tcp sent")
except OSError as exc:
    print("tcp refused", exc)
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(("udp " + nonce).encode(), ("127.0.0.1", port)); s.close(); print("udp sent")
except OSError as exc:
    print("udp refused", exc)
print("done-" + nonce)
"""

THROUGH_PROXY = r"""
import http.client, os, sys, urllib.parse
port, nonce = int(sys.argv[1]), sys.argv[2]
proxy = next((os.environ[k] for k in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY",
              "https_proxy") if os.environ.get(k)), None)
print("proxy", proxy)
if proxy:
    url = urllib.parse.urlsplit(proxy)
    for host in ("127.0.0.1", "localhost"):
        try:
            c = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
            c.request("GET", f"http://{host}:{port}/get-{nonce}")
            print("GET", host, c.getresponse().status)
        except OSError as exc:
            print("GET", host, "refused", exc)
        try:
            c = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
            c.set_tunnel(host, port); c.connect(); c.sock.sendall(("tunnel " + nonce).encode())
            print("CONNECT", host, "open")
        except OSError as exc:
            print("CONNECT", host, "refused", exc)
print("done-" + nonce)
"""

UNIX = r"""
import socket, sys
address, nonce = sys.argv[1], sys.argv[2]
if address.startswith("@"):
    address = "\0" + address[1:]
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3); s.connect(address); s.sendall(nonce.encode()); print("connected")
except OSError as exc:
    print("refused", exc)
print("done-" + nonce)
"""


def _python(script: str, *args: str) -> tuple[str, ...]:
    return ("python3", "-I", "-c", script, *args)


def _servers(site: Site) -> Listeners:
    if site.listeners is None:
        raise RuntimeError("a network attack needs the harness's servers")  # a harness bug
    return site.listeners


def _port(site: Site) -> str:
    return str(_servers(site).port)


def listener_effect(site: Site, ran: Ran) -> Effect:
    """Seen when any server heard from anyone while this case ran."""
    events = site.heard()
    if events:
        return Effect(True, f"the harness's server received: {'; '.join(events)[:300]}")
    return Effect(False, "the harness's servers received nothing", ran=site.done in ran.stdout)


def _loopback_plan(profile: str, backend: str) -> Plan:
    if profile in FULL_NETWORK:
        if backend == "native":  # the host's own network: reaching it is the control
            return Plan(Expect.REACHES)
        return Plan(
            Expect.SKIP,
            f"{profile} allows the network; a container's loopback is its own, so the "
            "host's is no target here",
        )
    return contained_everywhere(profile, backend)


def _proxy_plan(profile: str, backend: str) -> Plan:
    if profile in FULL_NETWORK and profile != TRUSTED:
        return Plan(Expect.SKIP, f"{profile} allows the network without a proxy")
    return contained_everywhere(profile, backend)


LOOPBACK_ATTACK = Attack(
    name="net.host-loopback",
    summary="send TCP and UDP to a server on the host's loopback",
    command=lambda site: _python(LOOPBACK, _port(site), site.nonce),
    judge=listener_effect,
    plan=_loopback_plan,
    control=True,  # under workspace-net on native
)

PROXY_ATTACK = Attack(
    name="net.proxy-to-loopback",
    summary="ask the egress proxy for the host's loopback (GET and CONNECT, by IP and name)",
    command=lambda site: _python(THROUGH_PROXY, _port(site), site.nonce),
    judge=listener_effect,
    plan=_proxy_plan,
)


def _unix_address(site: Site) -> str:
    return _servers(site).unix_path


def _abstract_address(site: Site) -> str:
    return "@" + _servers(site).abstract


UNIX_ATTACK = Attack(
    name="net.unix-socket",
    summary="connect to a daemon's Unix socket on the host (as the Docker socket or an agent)",
    command=lambda site: _python(UNIX, _unix_address(site), site.nonce),
    judge=listener_effect,
)

ABSTRACT_ATTACK = Attack(
    name="net.abstract-socket",
    summary="connect to an abstract Unix socket of the host's",
    command=lambda site: _python(UNIX, _abstract_address(site), site.nonce),
    judge=listener_effect,
)


def _reach_from_host(site: Site) -> None:
    """The harness itself talks to each of its servers: they answer and record."""
    listeners = _servers(site)
    tagged = site.nonce.encode()
    with socket.create_connection(("127.0.0.1", listeners.port), timeout=3) as tcp:
        tcp.sendall(b"tcp " + tagged)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"udp " + tagged, ("127.0.0.1", listeners.port))
    for address in (listeners.unix_path, "\0" + listeners.abstract):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
            unix.settimeout(3)
            unix.connect(address)
            unix.sendall(b"unix " + tagged)


def _all_four(site: Site, ran: Ran) -> Effect:
    del ran
    events = site.heard()
    kinds = sorted({event.split()[0] for event in events})
    seen = kinds == ["abstract", "tcp", "udp", "unix"]
    return Effect(seen, f"from the host, the servers recorded: {', '.join(kinds) or 'nothing'}")


LISTENERS_CONTROL = Attack(
    name="control.listeners-reachable",
    summary="the harness's own servers record a connection from the host (no sandbox)",
    command=lambda site: (),
    setup=_reach_from_host,
    judge=_all_four,
    plan=lambda profile, backend: Plan(Expect.REACHES),
    control=True,
)

ATTACKS = (LISTENERS_CONTROL, LOOPBACK_ATTACK, PROXY_ATTACK, UNIX_ATTACK, ABSTRACT_ATTACK)
