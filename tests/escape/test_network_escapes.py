"""Network attacks, every sandboxed profile x every backend, judged by what the test's own
listener saw — not by the attacker's exit code.

The listener is the test's own: a process on the host's loopback for the native backend,
a container on the engine's own bridge network for Docker and Podman. It records every
TCP connection's first bytes and every UDP datagram. Each attack carries a fresh nonce, so
"the listener saw it" cannot be satisfied by another test. Where the profile allows
network (workspace-net), the same attack must *reach* the listener: a sandbox that breaks
everything cannot pass, and a broken client cannot pass for a working sandbox. net-read-only
goes out through the egress proxy only (tests/integration/test_egress.py): its raw traffic
must run and reach nothing. Every attack also runs once unsandboxed (the control) and must
reach it.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REQUIRE, SANDBOX_PYTHON

SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
NETWORK = ("workspace-net",)
# Their only way out is the egress proxy on their own loopback: a datagram "sent" lands
# there (the kernel does not refuse it), so the verdict is what the listener saw.
PROXIED = ("net-read-only",)
LISTENER_IMAGE = "codex-box/base"

# Bounded: at most 400 events, and the process ends after 15 minutes whatever happens.
LISTENER = r"""
import select, socket, sys, time
bind = sys.argv[1]
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((bind, int(sys.argv[2]))); tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind((bind, int(sys.argv[2])))
print("ready", tcp.getsockname()[1], udp.getsockname()[1], flush=True)
deadline, events = time.monotonic() + 900, 0
while events < 400 and time.monotonic() < deadline:
    ready, _, _ = select.select([tcp, udp], [], [], 1)
    for sock in ready:
        events += 1
        if sock is tcp:
            conn, _ = tcp.accept()
            conn.settimeout(1)
            try:
                data = conn.recv(512)
                conn.sendall(b"pong")
            except OSError:
                data = b""
            conn.close()
            print("tcp", data.decode("latin-1").encode("unicode_escape").decode(), flush=True)
        else:
            data = udp.recvfrom(2048)[0]
            print("udp", data.decode("latin-1").encode("unicode_escape").decode(), flush=True)
"""


@dataclass
class Listener:
    host: str
    tcp_port: int
    udp_port: int
    log: Callable[[], str]

    def saw(self, nonce: str, settle: float = 0.3) -> bool:
        """Whether any event carried the nonce (waits a little for UDP to land)."""
        deadline = time.monotonic() + settle
        while True:
            if nonce in self.log():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _host_listener(tmp: Path) -> Iterator[Listener]:
    log = tmp / "listener.log"
    with log.open("w") as out:
        proc = subprocess.Popen([SANDBOX_PYTHON, "-I", "-c", LISTENER, "127.0.0.1", "0"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while "ready" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        _, tcp_port, udp_port = log.read_text().split()[:3]
        yield Listener("127.0.0.1", int(tcp_port), int(udp_port), log.read_text)
    finally:
        proc.kill()
        proc.wait()


def _engine_listener(engine: str) -> Iterator[Listener]:
    name = f"codex-box-test-listener-{uuid.uuid4().hex[:8]}"
    limits = (["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
              if engine == "podman" else [])
    subprocess.run([engine, "run", "-d", "--rm", "--name", name, "--label", "codex-box.test=1",
                    *limits, LISTENER_IMAGE, "python3", "-c", LISTENER, "0.0.0.0", "7000"],
                   capture_output=True, text=True, check=True, timeout=60)

    def log() -> str:
        return subprocess.run([engine, "logs", name], capture_output=True, text=True,
                              check=False, timeout=30).stdout

    try:
        deadline = time.monotonic() + 10
        while "ready" not in log() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = subprocess.run([engine, "inspect", "-f", "{{.NetworkSettings.IPAddress}}",
                                  name], capture_output=True, text=True, check=True,
                                 timeout=30).stdout.strip()
        assert address, f"the {engine} listener has no address"
        yield Listener(address, 7000, 7000, log)
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def listeners(tmp_path_factory) -> Iterator[Callable[[str], Listener]]:
    """One listener per backend for the whole module, started on first use."""
    started: dict[str, Listener] = {}
    contexts: list[Iterator[Listener]] = []

    def get(backend: str) -> Listener:
        if backend not in started:
            context = (_host_listener(tmp_path_factory.mktemp("listener"))
                       if backend == "native" else _engine_listener(backend))
            contexts.append(context)
            started[backend] = next(context)
        return started[backend]

    yield get
    for context in contexts:
        next(context, None)


@pytest.fixture
def listener(box, listeners) -> Listener:
    return listeners(box.backend)


def _control(script: str, *args: str) -> str:
    """The attack with no sandbox at all."""
    return subprocess.run([SANDBOX_PYTHON, "-I", "-c", script, *args], capture_output=True,
                          text=True, check=False, timeout=30).stdout


# How long a "nothing arrived" verdict waits for late packets (UDP, a slow engine log).
SETTLE = 2.0


def _judge(profile: str, listener: Listener, nonce: str, ran, *, sent: str) -> None:
    """``sent``: what the attack prints once its traffic is out; every attack prints
    "blocked" when the kernel refuses it. Either way the script must have run to its
    verdict, so a sandbox that kills the attacker (or a script that never starts) is
    not mistaken for a blocked network."""
    if profile in NETWORK:
        assert sent in ran.stdout, f"{profile}: the attack did not get its traffic out\n" \
            f"{ran.stdout}{ran.stderr}"
        assert listener.saw(nonce, settle=SETTLE), f"positive control: {profile} must " \
            f"reach the test's listener\n{ran.stdout}{ran.stderr}"
    elif profile in PROXIED:
        assert "blocked" in ran.stdout or sent in ran.stdout, \
            f"{profile}: the attack did not run to a verdict\n{ran.stdout}{ran.stderr}"
        assert not listener.saw(nonce, settle=SETTLE), \
            f"{profile} reached the listener around the egress proxy\n{ran.stdout}"
    else:
        assert "blocked" in ran.stdout and sent not in ran.stdout, \
            f"{profile}: the attack did not run to a refusal\n{ran.stdout}{ran.stderr}"
        assert not listener.saw(nonce, settle=SETTLE), \
            f"{profile} reached the listener\n{ran.stdout}"


TCP = r"""
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.sendall(sys.argv[3].encode())
    print("reply", s.recv(16))
except OSError as exc:
    print("blocked", exc.errno)
"""

UDP = r"""
import socket, sys
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
    print("sent")
except OSError as exc:
    print("blocked", exc.errno)
"""

# A DNS query (RFC 1035, type A) for an external-looking name, sent to the test's own
# listener: the lookup an exfiltrating tool would make, never sent to a real resolver.
DNS = r"""
import socket, struct, sys
name = sys.argv[3] + ".example.com"
question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(query, (sys.argv[1], int(sys.argv[2])))
    print("asked")
except OSError as exc:
    print("blocked", exc.errno)
"""

# Hand-built UDP datagram on a raw socket (the kernel adds the IP header), then a packet
# socket: both need CAP_NET_RAW, which no sandboxed profile has.
RAW = r"""
import socket, struct, sys
host, port, nonce = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
out = []
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    s.sendto(struct.pack("!HHHH", 40000, port, 8 + len(nonce), 0) + nonce, (host, 0))
    out.append("raw-sent")
except OSError as exc:
    out.append(f"raw-refused-{exc.errno}")
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()
    out.append("packet-opened")
except OSError as exc:
    out.append(f"packet-refused-{exc.errno}")
print(" ".join(out))
"""

# attack -> (script, listener port, what the script prints once its traffic is out)
ATTACKS = {"tcp": (TCP, "tcp_port", "reply"), "udp": (UDP, "udp_port", "sent"),
           "dns": (DNS, "udp_port", "asked")}


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("profile", SANDBOXED)
def test_ip_traffic_reaches_the_test_listener_only_under_network_profiles(
        box, listener, profile, attack):
    script, port_field, sent = ATTACKS[attack]
    port = str(getattr(listener, port_field))
    control = uuid.uuid4().hex
    control_out = _control(script, listener.host, port, control)
    assert sent in control_out, f"control: unsandboxed {attack} runs\n{control_out}"
    assert listener.saw(control, settle=SETTLE), \
        f"control: unsandboxed {attack} must get through"
    nonce = uuid.uuid4().hex
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", script, listener.host, port, nonce)
    _judge(profile, listener, nonce, ran, sent=sent)


@pytest.mark.parametrize("profile", SANDBOXED)
def test_bash_dev_tcp_reaches_the_test_listener_only_under_network_profiles(
        box, listener, profile):
    nonce = uuid.uuid4().hex
    # bash does not exit when exec's redirection fails: the `|| echo blocked` runs.
    ran = box(profile, "bash", "-c", f"exec 3<>/dev/tcp/{listener.host}/{listener.tcp_port} "
              f"&& echo {nonce} >&3 && echo SENT || echo blocked; echo end")
    assert "end" in ran.stdout, ran.stderr
    _judge(profile, listener, nonce, ran, sent="SENT")


@pytest.mark.parametrize("profile", SANDBOXED)
def test_raw_and_packet_sockets_are_refused_and_send_nothing(box, listener, profile):
    control_nonce = uuid.uuid4().hex
    control = _control(RAW, listener.host, str(listener.udp_port), control_nonce)
    if os.geteuid() == 0:
        assert "raw-sent" in control and "packet-opened" in control, control
        assert listener.saw(control_nonce, settle=SETTLE), \
            "control: a raw UDP datagram gets through"
    else:
        # Raw and packet sockets need CAP_NET_RAW, which a normal user lacks on the host
        # too: the control can only show that (the non-root leg); the attack still runs,
        # from inside the sandbox's own user namespace.
        assert "raw-refused" in control and "packet-refused" in control, control
    nonce = uuid.uuid4().hex
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", RAW, listener.host,
              str(listener.udp_port), nonce)
    assert "raw-refused" in ran.stdout and "packet-refused" in ran.stdout, \
        ran.stdout + ran.stderr
    assert not listener.saw(nonce, settle=SETTLE), "a raw datagram left the sandbox"


PING_ENGINE = r"""
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(path)
    except OSError as exc:
        print(path, "refused", exc.errno)
        continue
    try:  # an engine's HTTP API answers its ping; containerd (gRPC) may just hang up
        s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
        reply = s.recv(64)
    except OSError:
        reply = b""
    print(path, "CONNECTED", reply[:12])
"""


def _engine_sockets() -> list[str]:
    """Every well-known engine socket path (each one is root on the host), with the
    rootless Podman one where this session has a runtime directory."""
    paths = ["/run/docker.sock", "/var/run/docker.sock", "/run/podman/podman.sock",
             "/run/containerd/containerd.sock"]
    if runtime_dir := os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(f"{runtime_dir}/podman/podman.sock")
    return paths


def _is_socket(path: str) -> bool:
    """A socket this user can see. /run/containerd is root's (0700): a normal user
    cannot even stat what is inside (so cannot reach it either)."""
    try:
        return Path(path).is_socket()
    except PermissionError:
        return False


@pytest.mark.parametrize("profile", SANDBOXED)
def test_the_docker_and_podman_sockets_are_unreachable(box, profile):
    """Any engine socket is root on the host. The control connects to every one that
    exists here; the sandbox is handed exactly those, and each must be refused."""
    existing = [p for p in _engine_sockets() if _is_socket(p)]
    control = _control(PING_ENGINE, *existing)
    reached = [p for p in existing if f"{p} CONNECTED" in control]
    answered = [p for p in reached if f"{p} CONNECTED b'HTTP/1." in control]
    if not answered and box.backend == "native" and not REQUIRE:
        pytest.skip(f"no engine socket answers on this host: nothing to reach\n{control}")
    assert answered, f"control: an engine socket answers on the host\n{control}"
    assert all(_is_socket(p) for p in reached), reached
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", PING_ENGINE, *reached)
    assert "CONNECTED" not in ran.stdout, ran.stdout
    for path in reached:  # each one tried, each one refused
        assert f"{path} refused" in ran.stdout, ran.stdout + ran.stderr
