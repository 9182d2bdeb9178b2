"""Network promises of the native backend, against servers this test runs on 127.0.0.1.

Every negative assertion has a positive control: the same client, the same server,
a profile that allows network — so a broken client cannot pass for a working sandbox.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import SANDBOX_PYTHON
from tests.servers import http_server, tcp_server, udp_server

NO_NETWORK = ("offline", "workspace")
NETWORK = ("workspace-net",)

TCP_CLIENT = """
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
    s.sendall(b"ping")
    print("reply", s.recv(16))
except OSError as exc:
    print("blocked", exc.errno, exc)
    sys.exit(3)
"""

UDP_CLIENT = """
import socket, sys
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        s.sendto(b"udp-ping", ("127.0.0.1", {port}))
    print("sent")
except OSError as exc:
    print("blocked", exc.errno, exc)
    sys.exit(3)
"""


@pytest.mark.parametrize("profile", NO_NETWORK)
def test_no_network_profiles_cannot_reach_a_tcp_server_on_host_loopback(sandbox, profile):
    with tcp_server() as server:
        ran = sandbox(profile, SANDBOX_PYTHON, "-c", TCP_CLIENT.format(port=server.port))
        time.sleep(0.2)
    assert ran.returncode == 3, ran.stdout + ran.stderr
    assert "blocked" in ran.stdout
    assert server.hits == []


@pytest.mark.parametrize("profile", NO_NETWORK)
def test_no_network_profiles_cannot_send_udp_to_host_loopback(sandbox, profile):
    with udp_server() as server:
        ran = sandbox(profile, SANDBOX_PYTHON, "-c", UDP_CLIENT.format(port=server.port))
        time.sleep(0.3)
    assert "sent" not in ran.stdout
    assert server.hits == []


@pytest.mark.parametrize("profile", NETWORK)
def test_network_profiles_reach_the_test_tcp_server(sandbox, profile):
    with tcp_server() as server:
        ran = sandbox(profile, SANDBOX_PYTHON, "-c", TCP_CLIENT.format(port=server.port))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "pong" in ran.stdout
    assert server.hits == [b"ping"]


def test_net_read_only_cannot_reach_the_hosts_loopback_around_or_through_the_proxy(sandbox):
    with tcp_server() as server:
        raw = sandbox("net-read-only", SANDBOX_PYTHON, "-c", TCP_CLIENT.format(port=server.port))
        proxied = sandbox(
            "net-read-only", "curl", "-s", "-i", "--max-time", "5",
            f"http://127.0.0.1:{server.port}/",
        )
        time.sleep(0.2)
    assert raw.returncode == 3 and "blocked" in raw.stdout, raw.stdout + raw.stderr
    # NO_PROXY keeps 127.0.0.1 local to the sandbox, whose loopback has nothing there.
    assert proxied.returncode != 0
    assert server.hits == []


def test_workspace_net_sends_udp_to_the_test_server(sandbox):
    with udp_server() as server:
        ran = sandbox("workspace-net", SANDBOX_PYTHON, "-c", UDP_CLIENT.format(port=server.port))
        deadline = time.monotonic() + 2
        while not server.hits and time.monotonic() < deadline:
            time.sleep(0.05)
    assert ran.returncode == 0, ran.stderr
    assert b"udp-ping" in server.hits


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_seed_escape_network_via_curl_or_wget_is_blocked_offline(sandbox, tool):
    """Seed: test_sandbox_blocks_network_curl — with a positive control."""
    with http_server() as server:
        url = f"http://127.0.0.1:{server.port}/escape"
        argv = (["curl", "-sS", "--max-time", "3", url] if tool == "curl"
                else ["wget", "-q", "-O", "-", "--timeout=3", "--tries=1", url])
        blocked = sandbox("offline", *argv)
        allowed = sandbox("workspace-net", *argv)
    assert blocked.returncode != 0
    assert "hello from the test server" not in blocked.stdout
    assert allowed.returncode == 0, allowed.stderr
    assert "hello from the test server" in allowed.stdout
    assert server.hits == [b"/escape"], "only the allowed run may reach the server"


@pytest.mark.parametrize("profile", NO_NETWORK)
def test_no_network_profiles_see_only_a_down_loopback(sandbox, profile):
    ran = sandbox(profile, "cat", "/proc/net/dev")
    assert ran.returncode == 0, ran.stderr
    interfaces = [ln.split(":")[0].strip() for ln in ran.stdout.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_net_read_only_has_its_own_namespace_with_only_the_proxy_on_its_loopback(sandbox):
    ran = sandbox("net-read-only", "sh", "-c", "cat /proc/net/dev; echo $HTTP_PROXY")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    interfaces = [ln.split(":")[0].strip() for ln in lines[2:-1]]
    assert interfaces == ["lo"]
    assert lines[-1] == "http://127.0.0.1:3128"


