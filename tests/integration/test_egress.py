"""The egress proxy on every backend: what a sandboxed client can reach, and what it
cannot — however it asks.

"The internet" is the test's own origin server in a network namespace the test creates
(tests/origin.py), reached by name through the proxy's resolver (config.toml
``[network.hosts]``). 169.254.169.254 is routed into that namespace for the module's
duration, so a proxy that wrongly connected there would hit *our* server (and the test
would see it), never a real metadata service. Each test judges by effect: the status
the client got, the audit record written, and what the origin's log saw.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import AUDIT_ONLY_CONFIG, REQUIRE, Ran
from tests.origin import Origin, origin_namespace
from tests.servers import tcp_server

PY = "/usr/bin/python3"
CURL = ("curl", "-s", "-S", "-m", "10")
PROFILES = {
    # Read-only network, two names allowed (one by wildcard).
    "ro-allowed": "extends: net-read-only\nnetwork:\n  allow: [allowed.test, '*.allowed.test']\n",
    "ro-inspect": (
        "extends: net-read-only\nnetwork:\n  allow: [allowed.test]\n  inspect_tls: true\n"
    ),
    "ro-any-port": "extends: net-read-only\nnetwork:\n  allow: ['loop.test:*', 'meta.test:*']\n",
    "net-allowed": "extends: workspace-net\nnetwork:\n  allow: [allowed.test]\n",
}


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    if os.geteuid() != 0:
        # Root's alone, also where every engine is required: the origin lives in a network
        # namespace of its own joined to the host's by a veth pair, which needs
        # CAP_NET_ADMIN in the host's namespace. (The non-root CI leg counts these skips;
        # the root leg runs them.)
        pytest.skip("needs root: the test's origin server is a network namespace joined "
                    "to the host's by a veth pair")
    problem = None
    if not shutil.which("ip"):
        problem = "needs iproute2's ip"
    if problem:
        if REQUIRE:
            pytest.fail(f"egress tests required (CODEX_BOX_REQUIRE_ENGINES=1) but: {problem}")
        pytest.skip(problem)
    with origin_namespace(
        tmp_path_factory.mktemp("origin"), extra_addresses=("169.254.169.254",)
    ) as server:
        yield server


@pytest.fixture
def net(origin: Origin, codex_home: Path, workspace: Path) -> Origin:
    hosts = {**origin.hosts(), "meta.test": "169.254.169.254", "loop.test": "127.0.0.1"}
    table = "".join(f'"{name}" = "{ip}"\n' for name, ip in hosts.items())
    (codex_home / "config.toml").write_text(
        f'{AUDIT_ONLY_CONFIG}[network]\nca_bundle = "{origin.ca.ca}"\n[network.hosts]\n{table}'
    )
    (codex_home / "profiles").mkdir()
    for name, text in PROFILES.items():
        (codex_home / "profiles" / f"{name}.yaml").write_text(text)
    # The origin's CA inside the workspace: every backend can read it there.
    shutil.copy(origin.ca.ca, workspace / "origin-ca.pem")
    return origin


def sh(box: Callable[..., Ran], profile: str, script: str) -> Ran:
    return box(profile, "sh", "-c", script)


def denials(codex_home: Path) -> list[dict[str, object]]:
    lines = (codex_home / "audit.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r for r in records if r["operation"] == "network_connect"]


def seen(origin: Origin, **match: object) -> list[dict[str, object]]:
    return [r for r in origin.requests() if all(r.get(k) == v for k, v in match.items())]


def test_an_allowed_name_is_fetched_through_the_proxy(box, net, codex_home):
    ran = sh(box, "ro-allowed", "curl -s -S -m 10 http://allowed.test/get-ok")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("origin:GET:allowed.test:/get-ok\n")
    assert seen(net, path="/get-ok", method="GET")
    assert denials(codex_home) == []


def test_a_wildcard_admits_names_below_the_domain(box, net):
    ran = sh(box, "ro-allowed", "curl -s -S -m 10 http://inner.allowed.test/below")
    assert ran.stdout.startswith("origin:GET:inner.allowed.test:/below\n"), ran.stderr


def test_a_name_not_allowed_gets_403_with_the_reason_and_an_audit_record(box, net, codex_home):
    ran = sh(box, "ro-allowed", "curl -s -S -m 10 -i http://other.test/not-here")
    assert ran.stdout.startswith("HTTP/1.1 403"), ran.stdout + ran.stderr
    assert "X-Codex-Box-Denied: other.test:80 is not in network.allow" in ran.stdout
    assert not seen(net, path="/not-here")
    [record] = denials(codex_home)
    assert record["decision"] == "denied"
    assert record["domain"] == "other.test"
    assert record["target"] == "other.test:80"
    assert record["method"] == "GET"
    assert record["profile"] == "ro-allowed"
    assert "not in network.allow" in str(record["reason"])


def test_post_under_net_read_only_is_refused_and_never_reaches_the_origin(box, net, codex_home):
    script = (
        "curl -s -m 10 -o /dev/null -w '%{http_code} ' -X POST -d secret http://allowed.test/post;"
        "curl -s -m 10 -o /dev/null -w '%{http_code} ' -X PUT -d x http://allowed.test/put;"
        "curl -s -m 10 -o /dev/null -w '%{http_code} ' -X DELETE http://allowed.test/delete;"
        "curl -s -m 10 -o /dev/null -w '%{http_code} ' -I http://allowed.test/head;"
        "curl -s -m 10 -o /dev/null -w '%{http_code}' -X OPTIONS http://allowed.test/options"
    )
    ran = sh(box, "ro-allowed", script)
    assert ran.stdout.split() == ["403", "403", "403", "200", "200"], ran.stderr
    assert not seen(net, path="/post") and not seen(net, path="/put")
    assert not seen(net, path="/delete")
    assert [r["method"] for r in denials(codex_home)] == ["POST", "PUT", "DELETE"]


def test_a_connect_tunnel_cannot_carry_a_plain_http_post(box, net):
    # CONNECT to port 80 and speak plain HTTP inside: the proxy sniffs the tunnel.
    ran = sh(
        box,
        "ro-allowed",
        "curl -s -m 10 -o /dev/null -w '%{http_code}' -p -X POST -d x http://allowed.test/tunnel",
    )
    assert ran.stdout.strip().endswith("403"), ran.stdout + ran.stderr
    assert not seen(net, path="/tunnel")


def test_https_to_an_allowed_name_is_tunnelled_and_verified_end_to_end(box, net, codex_home):
    ran = sh(box, "ro-allowed", "curl -s -S -m 10 --cacert origin-ca.pem https://allowed.test/tls")
    assert ran.stdout.startswith("origin:GET:allowed.test:/tls\n"), ran.stderr
    refused = sh(box, "ro-allowed", "curl -s -S -m 10 --cacert origin-ca.pem https://other.test/x")
    assert refused.returncode != 0
    assert "403" in refused.stderr  # curl: "CONNECT tunnel failed, response 403"
    assert [r["method"] for r in denials(codex_home)] == ["CONNECT"]


def test_inspect_tls_enforces_methods_inside_https(box, net, codex_home):
    script = (
        'test -s "$SSL_CERT_FILE" && test "$CURL_CA_BUNDLE" = "$SSL_CERT_FILE" && echo ca-ok;'
        "curl -s -S -m 10 https://allowed.test/inspected-get | head -c 40; echo;"
        "curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -d x https://allowed.test/inspected-post"
    )
    ran = sh(box, "ro-inspect", script)
    lines = ran.stdout.splitlines()
    assert lines[0] == "ca-ok", ran.stdout + ran.stderr
    assert lines[1] == "origin:GET:allowed.test:/inspected-get", ran.stderr
    assert lines[-1] == "403", ran.stdout
    assert seen(net, path="/inspected-get", tls=True)
    assert not seen(net, path="/inspected-post")
    [record] = denials(codex_home)
    assert record["method"] == "POST" and record["domain"] == "allowed.test"
    # The session CA is gone once the run ends: nothing else may trust it.
    assert not list((codex_home / "run").glob("*/egress-ca.pem"))


def test_names_resolving_to_loopback_or_metadata_are_refused(box, net, codex_home):
    with tcp_server() as loopback:
        ran = sh(
            box,
            "ro-any-port",
            f"curl -s -m 10 -i http://loop.test:{loopback.port}/ | head -2;"
            "curl -s -m 10 -i http://meta.test/latest/meta-data | head -2",
        )
    assert ran.stdout.count("HTTP/1.1 403") == 2, ran.stdout + ran.stderr
    assert "127.0.0.1, a loopback address" in ran.stdout
    assert "169.254.169.254, a link-local address" in ran.stdout
    assert loopback.hits == []
    assert not [r for r in net.requests() if r.get("bind") == "169.254.169.254"]
    assert len(denials(codex_home)) == 2


def test_ip_literals_are_refused_unless_listed(box, net, codex_home):
    ran = sh(box, "ro-allowed", f"curl -s -m 10 -i http://{net.address}/by-ip | head -2")
    assert "403" in ran.stdout and "is an IP address" in ran.stdout, ran.stdout + ran.stderr
    assert not seen(net, path="/by-ip")


RAW = """
import socket, sys
for host in sys.argv[1:]:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, 80))
        print(host, "connected")
    except OSError as exc:
        print(host, "failed", exc.errno)
    finally:
        s.close()
"""


def test_clients_that_ignore_the_proxy_have_no_network_at_all(box, net):
    ran = sh(
        box,
        "ro-allowed",
        f"curl -s -m 5 --noproxy '*' http://allowed.test/noproxy; echo curl=$?;"
        f"{PY} -c '{RAW}' {net.address} {net.host_address} 169.254.169.254",
    )
    lines = ran.stdout.splitlines()
    assert lines[0] in ("curl=6", "curl=7"), ran.stdout + ran.stderr  # no resolver, no route
    assert [ln.split()[1] for ln in lines[1:]] == ["failed"] * 3, ran.stdout
    assert not seen(net, path="/noproxy")
    assert not [r for r in net.requests() if r.get("raw")]


def test_socks5_follows_the_same_rules(box, net, codex_home):
    ran = sh(
        box,
        "ro-allowed",
        "curl -s -S -m 10 --socks5-hostname 127.0.0.1:3128 http://allowed.test/socks; echo;"
        "curl -s -m 10 --socks5-hostname 127.0.0.1:3128 http://other.test/socks; echo rc=$?",
    )
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("origin:GET:allowed.test:/socks"), ran.stdout + ran.stderr
    assert lines[-1] != "rc=0", ran.stdout  # SOCKS reply 2: not allowed by the ruleset
    assert [r["domain"] for r in denials(codex_home)] == ["other.test"]


def test_an_allow_list_on_workspace_net_filters_names_but_not_methods(box, net, codex_home):
    script = (
        "curl -s -m 10 -o /dev/null -w '%{http_code} ' -X POST -d x http://allowed.test/wpost;"
        "curl -s -m 10 -o /dev/null -w '%{http_code}' http://other.test/wget"
    )
    ran = sh(box, "net-allowed", script)
    assert ran.stdout.split() == ["200", "403"], ran.stdout + ran.stderr
    assert seen(net, path="/wpost", method="POST")
    assert not seen(net, path="/wget")
