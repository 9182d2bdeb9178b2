"""``codex-box serve`` for real: the server started as a user starts it, runs on the native
sandbox and Docker, sessions shared with the CLI, pools, the queue, cancellation on a
client that goes away, and an orderly stop that leaves nothing."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.client import Client, ServerError
from tests.conftest import CODEX_BOX
from tests.integration.session_helpers import audit_records
from tests.serve_helpers import leftovers, wait_for

pytestmark = pytest.mark.usefixtures("native_available")


def _raw(served, method: str, path: str, body: dict | None = None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("localhost", timeout=60)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(served.socket))
    connection.sock = sock
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_a_run_through_the_server_is_the_run_the_cli_would_make(serve_factory, workspace):
    (workspace / "in.txt").write_text("from the host\n")
    with serve_factory() as served:
        api = served.client()
        result = api.run(
            ["sh", "-c", "cat in.txt; echo out; echo err >&2; echo made > new.txt; exit 3"],
            profile="workspace",
            backend="native",
            workspace=str(workspace),
        )
        assert (result.exit_code, result.backend, result.pooled) == (3, "native", False)
        assert (result.stdout, result.stderr) == ("from the host\nout\n", "err\n")
        assert (workspace / "new.txt").read_text() == "made\n"
        offline = api.run(
            ["sh", "-c", "echo x > /etc/y"],
            profile="offline",
            backend="native",
            workspace=str(workspace),
        )
        assert offline.exit_code != 0, offline
        ended = [
            r
            for r in audit_records(served.codex_home)
            if r.get("run_id") == result.run_id and r.get("phase") == "ended"
        ]
        assert [r["exit_code"] for r in ended] == [3]
    assert leftovers(served) == []


def test_a_refusal_is_a_problem_document_with_the_cli_exit_code(serve_factory, workspace):
    with serve_factory(extra_config="") as served:
        (served.codex_home / "config.toml").write_text(
            (served.codex_home / "config.toml").read_text().replace("audit-only", "enforce")
        )
        status, headers, body = _raw(
            served,
            "POST",
            "/v1/runs",
            {
                "argv": ["rm", "-rf", "/"],
                "profile": "offline",
                "backend": "native",
                "workspace": str(workspace),
            },
        )
        problem = json.loads(body)
        assert status == 403 and headers["content-type"] == "application/problem+json"
        assert problem["exit_code"] == 126 and "forbids" in problem["detail"]
        status, headers, body = _raw(served, "POST", "/v1/runs", {"argv": []})
        assert status == 422 and headers["content-type"] == "application/problem+json"
        assert json.loads(body)["exit_code"] == 2
        status, _, body = _raw(served, "POST", "/v1/runs", {"argv": ["true"], "profile": "ofline"})
        assert status == 422 and "ofline" in json.loads(body)["detail"]
        status, _, body = _raw(served, "GET", "/v1/sessions/nosuch")
        assert status == 404 and json.loads(body)["type"].endswith("unknown-session")
        status, _, body = _raw(
            served,
            "POST",
            "/v1/runs",
            {"argv": ["true"], "env": ["HOME"], "workspace": str(workspace)},
        )
        assert status == 422 and "NAME=VALUE" in json.loads(body)["detail"]


def test_the_stream_is_byte_exact_and_ends_with_the_exit_event(serve_factory, workspace):
    with serve_factory() as served:
        chunks: list[tuple[str, bytes]] = []
        result = served.client().run(
            ["sh", "-c", r"printf 'a\n'; sleep 0.2; printf '\377\376' >&2; printf 'é'"],
            profile="offline",
            backend="native",
            workspace=str(workspace),
            on_output=lambda name, data: chunks.append((name, data)),
        )
        assert result.exit_code == 0
        out = b"".join(d for n, d in chunks if n == "stdout")
        err = b"".join(d for n, d in chunks if n == "stderr")
        assert (out, err) == (b"a\n\xc3\xa9", b"\xff\xfe")


def test_stdin_env_and_timeout_reach_the_command(serve_factory, workspace):
    with serve_factory() as served:
        api = served.client()
        result = api.run(
            ["sh", "-c", "cat; echo $GREETING"],
            profile="offline",
            backend="native",
            workspace=str(workspace),
            stdin="piped\n",
            env=["GREETING=hello"],
        )
        assert result.stdout == "piped\nhello\n"
        slow = api.run(
            ["sleep", "30"],
            profile="offline",
            backend="native",
            workspace=str(workspace),
            timeout="1",
        )
        assert slow.exit_code == 124 and slow.duration_ms < 10_000


@pytest.mark.parametrize("stream", [False, True], ids=["collected", "streamed"])
def test_a_client_that_goes_away_cancels_its_run(serve_factory, workspace, stream):
    seconds = 4000 + int(stream)
    with serve_factory() as served:
        body = {
            "argv": ["sleep", str(seconds)],
            "profile": "offline",
            "backend": "native",
            "workspace": str(workspace),
        }
        sock = _sent(served, body, "/v1/runs?stream=1" if stream else "/v1/runs")
        assert wait_for(lambda: bool(_sleepers(seconds)), 20), served.output()
        sock.close()  # the client goes away
        assert wait_for(lambda: not _sleepers(seconds), 10), "the run outlived its client"

        def cancelled() -> list[dict]:
            return [
                r
                for r in audit_records(served.codex_home)
                if r.get("phase") == "ended" and r.get("cancelled")
            ]

        assert wait_for(lambda: bool(cancelled()), 10)
        assert cancelled()[0]["target"] == f"sleep {seconds}"
        assert wait_for(lambda: served.client().health()["running"] == 0, 10)


def _sent(served, body: dict, path: str = "/v1/runs") -> socket.socket:
    """A request sent on a connection of its own, its answer not read (yet)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(served.socket))
    data = json.dumps(body).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def _audit_verifies(served) -> None:
    check = subprocess.run(
        [CODEX_BOX, "audit", "verify"],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _sleepers(seconds: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == f"sleep\0{seconds}\0".encode():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_beyond_the_queue_the_answer_is_429_with_retry_after(serve_factory, workspace):
    extra = "max_concurrent = 1\nmax_queue = 1"
    with serve_factory(extra_config=extra) as served:
        body = {
            "argv": ["sleep", "3"],
            "profile": "offline",
            "backend": "native",
            "workspace": str(workspace),
        }
        socks = []
        for _ in range(2):  # one runs, one waits
            socks.append(_sent(served, body))
        assert wait_for(lambda: served.client().health()["queued"] == 1, 20)
        status, headers, raw = _raw(served, "POST", "/v1/runs", body)
        assert status == 429 and headers["retry-after"] == "1"
        assert json.loads(raw)["type"].endswith("queue-full")
        for sock in socks:  # both queued ones still end with their result
            sock.settimeout(30)
            answer = b""
            while b'"exit_code"' not in answer:
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            assert b"200 OK" in answer and b'"exit_code":0' in answer
            sock.close()
        assert "codex_box_queue_rejected_total 1.0" in served.client().metrics()


def test_pools_hand_out_fresh_sandboxes_once_and_refill(serve_factory):
    with serve_factory(pools={"offline/native": 2}) as served:
        api = served.client()
        first = api.run(
            ["sh", "-c", "pwd; ls -A; echo mine > left.txt; echo $$"],
            profile="offline",
            backend="native",
        )
        second = api.run(["sh", "-c", "pwd; ls -A"], profile="offline", backend="native")
        assert first.pooled and second.pooled and first.exit_code == second.exit_code == 0
        first_dir, second_dir = first.stdout.split()[0], second.stdout.split()[0]
        assert first_dir != second_dir, "a pooled sandbox was handed out twice"
        assert second.stdout.split()[1:] == [], "the next claim saw what the last one left"
        assert wait_for(lambda: not Path(first_dir).exists(), 20), "a used sandbox was kept"
        served.wait_ready()  # refilled
        metrics = api.metrics()
        assert 'codex_box_pool_hits_total{pool="offline/native"} 2.0' in metrics
        assert 'codex_box_pool_claim_seconds_count{pool="offline/native"} 2.0' in metrics
        # A request naming a workspace, or options a pool was not started with: cold.
        cold = api.run(["true"], profile="offline", backend="native", policy_mode="enforce")
        assert not cold.pooled and cold.exit_code == 0
    assert leftovers(served) == []


def test_sessions_are_shared_with_the_cli_both_ways(serve_factory, cli, workspace):
    with serve_factory() as served:
        api = served.client()
        started = api.start_session(profile="workspace", backend="native", workspace=str(workspace))
        listed = cli("session", "ls", "--json")
        assert started["id"] in {s["id"] for s in json.loads(listed.stdout)}
        ran = cli("exec", "-s", started["id"], "--", "sh", "-c", "echo via-cli > f.txt")
        assert ran.returncode == 0, ran.stderr
        result = api.exec(started["id"], ["cat", "f.txt"])
        assert result.stdout == "via-cli\n"
        by_cli = cli("session", "start", "-p", "offline", "--backend", "native").stdout.strip()
        assert api.session(by_cli)["profile"] == "offline"
        assert api.exec(by_cli, ["sh", "-c", "echo hi"]).stdout == "hi\n"
        api.stop_session(by_cli)
        assert by_cli not in {s["id"] for s in api.sessions()}
        via_server = cli(
            "run",
            "--server",
            served.address,
            "-p",
            "offline",
            "--backend",
            "native",
            "--",
            "sh",
            "-c",
            "echo through; exit 7",
        )
        assert (via_server.returncode, via_server.stdout) == (7, "through\n")
        api.stop_session(started["id"])
        with pytest.raises(ServerError) as gone:
            api.session(started["id"])
        assert gone.value.status == 404


def test_questions_answer_as_their_verbs(serve_factory, cli, workspace):
    with serve_factory() as served:
        api = served.client()
        decision = api.check(["rm", "-rf", "/"], profile="offline", workspace=str(workspace))
        assert decision["decision"] == "forbidden" and decision["profile"] == "offline"
        names = {p["name"] for p in api.profiles()}
        assert {"offline", "workspace", "trusted"} <= names
        api.run(["true"], profile="offline", backend="native", workspace=str(workspace))
        ours = api.audit(operation="command_exec", profile="offline")
        verb = json.loads(
            cli("audit", "--operation", "command_exec", "--profile", "offline", "--json").stdout
        )
        assert ours["records"] == verb and not ours["truncated"]
        assert api.audit(limit=1)["truncated"]


def test_sigterm_ends_runs_pools_and_sessions_within_ten_seconds(serve_factory, workspace):
    with serve_factory(pools={"offline/native": 2}) as served:
        api = served.client()
        session = api.start_session(profile="offline", backend="native")
        body = {
            "argv": ["sh", "-c", "trap '' TERM; sleep 4100"],
            "profile": "offline",
            "backend": "native",
            "workspace": str(workspace),
        }
        sock = _sent(served, body)
        assert wait_for(lambda: bool(_sleepers(4100)), 20)
        began = time.monotonic()
        assert served.stop(signal.SIGTERM, timeout_s=30) == 0
        assert time.monotonic() - began < 10.0
        sock.settimeout(5)
        assert b'"cancelled":true' in sock.recv(65536)  # it still got its answer
    assert not _sleepers(4100)
    assert leftovers(served) == []
    ended = {
        r.get("session_id")
        for r in audit_records(served.codex_home)
        if r.get("operation") == "session_stop"
    }
    assert session["id"] in ended
    _audit_verifies(served)


def test_sigkill_mid_load_leaves_nothing_the_next_server_does_not_remove(serve_factory, workspace):
    with serve_factory(pools={"offline/native": 2}) as served:
        api = served.client()
        api.start_session(profile="offline", backend="native")
        socks = []
        for i in range(3):
            body = {"argv": ["sleep", str(4200 + i)], "profile": "offline", "backend": "native"}
            socks.append(_sent(served, body))
        assert wait_for(lambda: all(_sleepers(4200 + i) for i in range(3)), 30)
        served.stop(signal.SIGKILL)
        assert wait_for(lambda: not any(_sleepers(4200 + i) for i in range(3)), 15), (
            "a run outlived its server (the fork server cancels them)"
        )
        left = leftovers(served)
        assert any(item.startswith("record") for item in left)  # pools, the session
    with serve_factory(pools={}) as again:  # the next server sweeps what the last left
        assert again.client().sessions() == []
    assert leftovers(again) == []
    _audit_verifies(served)


def test_a_second_server_and_a_bad_config_do_not_start(serve_factory, base_env, codex_home):
    with serve_factory() as served:
        second = subprocess.run(
            [CODEX_BOX, "serve", "--socket", str(served.socket) + "2"],
            env=base_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 125 and "already serves" in second.stderr
    (codex_home / "config.toml").write_text('[serve.pools]\n"offline/nope" = 2\n')
    bad = subprocess.run(
        [CODEX_BOX, "serve"], env=base_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 125 and "offline/nope" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    (codex_home / "config.toml").write_text('[serve.pools]\n"ofline/native" = 2\n')
    bad = subprocess.run(
        [CODEX_BOX, "serve"], env=base_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 125 and "ofline" in bad.stderr


@pytest.mark.usefixtures("docker_available")
def test_docker_runs_cold_and_from_a_pool(serve_factory, workspace):
    before = _containers()
    with serve_factory(pools={"workspace/docker": 1}) as served:
        api = served.client()
        pooled = api.run(
            ["sh", "-c", "echo in-a-container; exit 5"], profile="workspace", backend="docker"
        )
        assert (pooled.exit_code, pooled.stdout, pooled.pooled) == (5, "in-a-container\n", True)
        cold = api.run(
            ["sh", "-c", "cat /proc/1/cgroup >/dev/null; echo cold"],
            profile="offline",
            backend="docker",
            workspace=str(workspace),
        )
        assert (cold.exit_code, cold.stdout, cold.backend) == (0, "cold\n", "docker")
    assert leftovers(served) == []
    assert wait_for(lambda: _containers() <= before, 30), _containers() - before


def _containers() -> set[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    return set(listed.split())


def test_unknown_client_of_another_server_is_refused_cleanly(tmp_path):
    with pytest.raises(ServerError) as refused:
        Client(f"unix:{tmp_path}/none.sock").health()
    assert "does not answer" in refused.value.message
