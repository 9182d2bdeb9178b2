"""Attacks on ``codex-box serve`` (the local HTTP API): from inside its sandboxes and the
CLI's, from another uid, over loopback TCP without the token, on its pools, its paths,
its resources and its end. Each is judged by what happened on the host (a marker file a
widened run would have written, the processes left, the audit log), not by what the
attacker printed; each has a control showing the same request *does* work where it is
allowed, so a broken client cannot pass for a defence.

Every server here is the test's own (``serve_factory``), on its Unix socket or on
127.0.0.1; every loop of requests is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CODEX_BOX, SANDBOX_PYTHON
from tests.escape.conftest import scratch_root, scratch_workspace
from tests.integration.session_helpers import audit_records
from tests.serve_helpers import leftovers, processes_under, wait_for

pytestmark = pytest.mark.usefixtures("native_available")

OTHER_UID = 54321  # no account needed: the kernel reports the uid, not a name


@pytest.fixture
def root() -> Iterator[Path]:
    yield from scratch_root("codex-box-serve-escape")


@pytest.fixture
def home(root: Path) -> Path:  # overrides conftest's: under /var/tmp, seen by sandboxes
    (root / "home").mkdir()
    return root / "home"


@pytest.fixture
def workspace(root: Path) -> Path:
    return scratch_workspace(root)


@pytest.fixture
def markers(root: Path) -> Path:
    """Where a widened (trusted) run would write: outside every sandbox's write roots."""
    path = root / "markers"
    path.mkdir()
    return path


# --- helpers ------------------------------------------------------------------------


def _port(served) -> int:  # type: ignore[no-untyped-def]
    found = re.search(r"http://127\.0\.0\.1:(\d+)", served.output())
    assert found, served.output()
    return int(found.group(1))


def _exchange(
    sock: socket.socket,
    data: bytes,
    *,
    wait_s: float = 10.0,
    first_s: float = 0.0,
    early: bool = True,
) -> bytes:
    """Send ``data`` (after waiting ``first_s`` for anything the server says first) and
    read until the server closes or ``wait_s`` passes (``early``: or the first document
    with an exit code is complete); bounded either way."""
    answer = b""
    if first_s:
        sock.settimeout(first_s)
        with contextlib.suppress(TimeoutError):
            answer += sock.recv(65536)
    if data:
        with contextlib.suppress(OSError):  # refused and closed before we spoke
            sock.sendall(data)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            break
        if not chunk:
            break
        answer += chunk
        if early and b'"exit_code"' in answer and answer.rstrip().endswith(b"}"):
            break
    sock.close()
    return answer


def _unix(path: Path | str, data: bytes, **kw: float | bool) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return _exchange(sock, data, **kw)


def _tcp(port: int, data: bytes, **kw: float | bool) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return _exchange(sock, data, **kw)


def _post(path: str, body: dict, headers: str = "") -> bytes:  # type: ignore[type-arg]
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{headers}"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data


def _statuses(answer: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


def _trusted_touch(marker: Path, workspace: Path) -> dict:  # type: ignore[type-arg]
    """A run that could only write ``marker`` with no sandbox at all."""
    return {
        "argv": ["sh", "-c", f"touch {marker}"],
        "profile": "trusted",
        "trust": True,
        "workspace": str(workspace),
    }


def _records(codex_home: Path) -> list[dict]:  # type: ignore[type-arg]
    return audit_records(codex_home) if (codex_home / "audit.log").exists() else []


def _cmdlines(prefix: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(prefix):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _nonce() -> int:
    return 40000 + int.from_bytes(os.urandom(2), "big") % 20000


# The attack a sandboxed command makes on the server: read the token, connect by every
# path it can find, and ask for a trusted run that writes a marker on the host. Prints
# one JSON line: what each attempt got. Bounded: a few connections, 10 s each at most.
PROBE = r"""
import json, os, socket, sys, time
codex_home, alias, port, markers, label = sys.argv[1:6]
out = {}
try:
    with open(os.path.join(codex_home, "serve", "token")) as f:
        token = f.read().strip()
    out["token"] = "read"
except OSError as exc:
    token = "0" * 64
    out["token"] = type(exc).__name__

def body(name):
    data = json.dumps({"argv": ["sh", "-c", "touch " + os.path.join(markers, name)],
                       "profile": "trusted", "trust": True, "workspace": markers}).encode()
    return (b"POST /v1/runs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + token.encode() + b"\r\n"
            b"content-length: " + str(len(data)).encode() + b"\r\n\r\n" + data)

def attempt(family, address, name):
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # seccomp: no such socket at all
        return "connect:" + type(exc).__name__
    sock.settimeout(5)
    try:
        sock.connect(address)
    except OSError as exc:
        sock.close()
        return "connect:" + type(exc).__name__
    answer = b""
    try:
        sock.settimeout(1)
        try:
            answer += sock.recv(4096)
        except socket.timeout:
            pass
        try:
            sock.sendall(body(name))
        except OSError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sock.settimeout(1)
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
            if b"exit_code" in answer:
                break
    finally:
        sock.close()
    return answer.decode("latin-1")[:400]

out["socket"] = attempt(socket.AF_UNIX, os.path.join(codex_home, "serve.sock"), label + "-sock")
if alias != "-":
    out["alias"] = attempt(socket.AF_UNIX, alias, label + "-alias")
if port != "0":
    out["tcp"] = attempt(socket.AF_INET, ("127.0.0.1", int(port)), label + "-tcp")
print(json.dumps(out))
"""


def _probe_result(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    assert lines, stdout
    return dict(json.loads(lines[-1]))


# --- 1. from inside a sandbox ---------------------------------------------------------


@pytest.mark.parametrize("profile", ["workspace", "workspace-net"])
def test_a_sandboxed_command_cannot_get_the_server_to_run_anything(
    serve_factory, cli, codex_home, workspace, markers, token, profile
):
    """Defences: the Unix socket's peer check refuses a process in another pid namespace
    (reached here by a second name of the socket, which the sandbox's socket masking does
    not know); $CODEX_HOME/serve/ (the token) is hidden from every sandbox; TCP needs the
    token. Without any one of them a sandboxed command writes a marker through a trusted
    run. Tried from a run made by the server (cold and pooled) and one made by the CLI."""
    pools = {f"{profile}/native": 1}
    args = ("--listen", "127.0.0.1:0", "--token-file", str(token))
    with serve_factory(pools=pools, args=args) as served:
        port = _port(served)
        alias = workspace / "api.sock"
        os.link(served.socket, alias)  # the same socket by another name
        (workspace / "probe.py").write_text(PROBE)
        api = served.client()

        def argv(label: str, alias_path: str) -> list[str]:
            return [SANDBOX_PYTHON, "probe.py", str(codex_home), alias_path, str(port),
                    str(markers), label]  # fmt: skip

        cold = api.run(
            argv("cold", str(alias)), profile=profile, backend="native", workspace=str(workspace)
        )
        # A pooled sandbox has its own empty workspace: the probe comes on stdin.
        pooled = api.run(
            [SANDBOX_PYTHON, "-", str(codex_home), "-", str(port), str(markers), "pooled"],
            profile=profile,
            backend="native",
            stdin=PROBE,
        )
        assert pooled.pooled, pooled
        by_cli = cli("run", "--backend", "native", "--profile", profile, "--",
                     *argv("cli", str(alias)))  # fmt: skip
        results = {
            "server-cold": cold.stdout + cold.stderr,
            "server-pooled": pooled.stdout + pooled.stderr,
            "cli": by_cli.stdout + by_cli.stderr,
        }
        assert sorted(p.name for p in markers.iterdir()) == [], "a sandbox escaped to trusted"
        for where, stdout in results.items():
            report = _probe_result(stdout)
            assert report["token"] != "read", (where, report)  # noqa: S105
            # The socket's own path is masked in a sandbox made after it was bound (a
            # pooled one may be older than the socket: then the peer check answers).
            assert report["socket"].startswith("connect:") or (
                "403 Forbidden" in report["socket"] and "inside a sandbox" in report["socket"]
            ), (where, report)
            if "alias" in report:
                assert "403 Forbidden" in report["alias"], (where, report)
                assert "inside a sandbox" in report["alias"], (where, report)
            if profile == "workspace-net":  # loopback reached: only the token stands
                assert "401 Unauthorized" in report["tcp"], (where, report)
            else:
                assert report["tcp"].startswith("connect:"), (where, report)
        assert "a process inside a sandbox may not use this server" in served.output()
        # Control: the same request from outside every sandbox is served.
        alias_answer = _unix(alias, _post("/v1/runs", _trusted_touch(markers / "ok", workspace)))
        assert _statuses(alias_answer) == [200], alias_answer[:300]
        assert (markers / "ok").exists()
        trusted = [r for r in _records(codex_home) if r.get("profile") == "trusted"]
        assert {r.get("workspace") for r in trusted} <= {str(workspace)}


def test_a_session_started_before_the_server_is_refused_by_the_peer_check(
    serve_factory, cli, codex_home, workspace, markers
):
    """A sandbox that existed before ``serve`` bound its socket has nothing masked over
    it: the socket's own path reaches the server, and only the pid-namespace check
    refuses it (without it the trusted run writes its marker)."""
    started = cli("session", "start", "--backend", "native", "--profile", "workspace")
    assert started.returncode == 0, started.stderr
    session = started.stdout.strip()
    try:
        (workspace / "probe.py").write_text(PROBE)
        with serve_factory() as served:
            ran = cli(
                "exec", "--session", session, "--",
                SANDBOX_PYTHON, "probe.py", str(codex_home), "-", "0", str(markers), "early",
            )  # fmt: skip
            report = _probe_result(ran.stdout)
            assert "403 Forbidden" in report["socket"], report
            assert "inside a sandbox" in report["socket"], report
            assert list(markers.iterdir()) == []
            assert "a process inside a sandbox may not use this server" in served.output()
    finally:
        cli("session", "stop", session)


# --- 2. another uid -------------------------------------------------------------------

OTHER_CLIENT = r"""
import socket, sys, time
request = sys.stdin.buffer.read()
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(2)
sock.connect(sys.argv[1])
answer = b""
try:
    answer += sock.recv(4096)  # a refusal comes before we say anything
except OSError:
    pass
sock.settimeout(5)
try:
    sock.sendall(request)
except OSError:
    pass
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        chunk = sock.recv(4096)
    except OSError:
        break
    if not chunk:
        break
    answer += chunk
sys.stdout.write(answer.decode("latin-1"))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another uid needs root")
def test_another_uid_is_refused_before_its_request_is_parsed(
    serve_factory, codex_home, workspace, markers
):
    """Defence: SO_PEERCRED checked in ``connection_made``. The socket is made
    reachable on purpose (0666): a uid that is neither ours nor root gets a 403 and its
    request — a run that would write a marker — is never parsed."""
    with serve_factory() as served:
        served.socket.chmod(0o666)
        request = _post(
            "/v1/runs",
            {"argv": ["touch", str(markers / "other-uid")], "profile": "trusted", "trust": True,
             "workspace": str(workspace)},
        )  # fmt: skip
        ran = subprocess.run(
            [SANDBOX_PYTHON, "-c", OTHER_CLIENT, str(served.socket)],
            input=request,
            capture_output=True,
            user=OTHER_UID,
            group=OTHER_UID,
            extra_groups=[],
            cwd="/",
            timeout=30,
            check=False,
        )
        answer = ran.stdout.decode()
        assert ran.returncode == 0, ran.stderr
        assert _statuses(answer.encode()) == [403], answer
        assert f"uid {OTHER_UID} may not use this server" in answer
        assert not (markers / "other-uid").exists()
        assert not any("other-uid" in str(r.get("target", "")) for r in _records(codex_home))
        # Control: the same bytes from our uid are served.
        answer_ours = _unix(served.socket, request)
        assert _statuses(answer_ours) == [200], answer_ours[:300]
        assert (markers / "other-uid").exists()


# --- 3. TCP without the token -----------------------------------------------------------


def test_tcp_serves_nothing_without_the_exact_token(serve_factory, workspace, markers, token):
    """Defence: ``TokenGate`` (a bearer token on every TCP request, compared in constant
    time, first Authorization header decides). Every refused request here is a run that
    would write its own marker; the control with the token writes one."""
    secret = token.read_text().strip()
    args = ("--listen", "127.0.0.1:0", "--token-file", str(token))
    with serve_factory(args=args) as served:
        port = _port(served)

        def run(name: str, headers: str = "", path: str = "/v1/runs") -> bytes:
            return _post(path, _trusted_touch(markers / name, workspace), headers)

        basic = __import__("base64").b64encode(f"codex:{secret}".encode()).decode()
        refused = {
            "none": run("none"),
            "wrong": run("wrong", "authorization: Bearer " + "x" * len(secret) + "\r\n"),
            "prefix": run("prefix", f"authorization: Bearer {secret[:-1]}\r\n"),
            "longer": run("longer", f"authorization: Bearer {secret}x\r\n"),
            "empty": run("empty", "authorization: Bearer \r\n"),
            "no-scheme": run("no-scheme", f"authorization: {secret}\r\n"),
            "no-space": run("no-space", f"authorization: Bearer{secret}\r\n"),
            "basic": run("basic", f"authorization: Basic {basic}\r\n"),
            "token-scheme": run("token-scheme", f"authorization: Token {secret}\r\n"),
            "wrong-first": run(
                "wrong-first",
                f"authorization: Bearer nope\r\nauthorization: Bearer {secret}\r\n",
            ),
            "other-header": run("other-header", f"x-authorization: Bearer {secret}\r\n"),
            "forwarded": run("forwarded", "x-forwarded-for: 127.0.0.1\r\nforwarded: for=unix\r\n"),
            "absolute-form": run("absolute-form", path="http://evil.example/v1/runs"),
            "websocket": run(
                "websocket", "upgrade: websocket\r\nconnection: upgrade\r\n"
                "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n",
            ),
            "http10": run("http10").replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        }  # fmt: skip
        for name, request in refused.items():
            answer = _tcp(port, request)
            assert _statuses(answer)[:1] in ([401], [400]), (name, answer[:300])
            assert not (markers / name).exists(), f"{name}: ran without the token"
        # One authorized request, then more on the same connection: each is judged alone.
        authorized = f"authorization: Bearer {secret}\r\n"
        pipelined = (
            b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + authorized.encode() + b"\r\n"
            + run("pipelined")
        )  # fmt: skip
        answer = _tcp(port, pipelined, wait_s=8, early=False)
        assert _statuses(answer) == [200, 401], answer[:600]
        smuggled = run("smuggled")
        te_cl = (
            b"POST /v1/check HTTP/1.1\r\nhost: x\r\n" + authorized.encode()
            + b"content-type: application/json\r\ntransfer-encoding: chunked\r\n"
            + f"content-length: {len(smuggled) + 5}\r\n\r\n0\r\n\r\n".encode() + smuggled
        )  # fmt: skip
        answer = _tcp(port, te_cl, wait_s=8, early=False)
        assert _statuses(answer) and 200 not in _statuses(answer)[1:], answer[:600]
        assert not (markers / "pipelined").exists() and not (markers / "smuggled").exists()
        # Controls: the token (trailing space, any case of the scheme) is served.
        for name, header in (
            ("exact", f"authorization: Bearer {secret}\r\n"),
            ("case", f"authorization: bEARER {secret}  \r\n"),
        ):
            answer = _tcp(port, run(name, header))
            assert _statuses(answer) == [200], (name, answer[:300])
            assert (markers / name).exists()
        # The Unix socket of the same server needs no token (and gets none asked).
        assert _statuses(_unix(served.socket, run("unix"))) == [200]


def test_an_unauthorized_body_is_never_held(serve_factory, token):
    """Defence: the token gate answers before the body is read, and uvicorn discards
    it: 64 MiB sent without the token leave the server's memory as it was."""
    args = ("--listen", "127.0.0.1:0", "--token-file", str(token))
    with serve_factory(args=args) as served:
        port = _port(served)
        before = _rss_kib(served.process.pid)
        size = 64 * 1024 * 1024
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(
            b"POST /v1/runs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {size}\r\n\r\n".encode()
        )
        chunk, peak = b"a" * (1 << 20), before
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
                peak = max(peak, _rss_kib(served.process.pid))
        except OSError:
            pass  # the server may close once it answered: fine
        answer = _exchange(sock, b"", wait_s=5)
        assert _statuses(answer)[:1] == [401], answer[:300]
        assert peak - before < 32 * 1024, f"server grew {peak - before} KiB"


def test_the_listen_address_and_the_token_file_are_checked_before_serving(
    base_env, codex_home, token, tmp_path
):
    """Defences: ``auth.loopback`` (TCP on loopback only) and ``auth.read_token`` (a
    file of ours, 0600, long enough): each bad one ends ``serve`` before it listens."""

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CODEX_BOX, "serve", "--socket", str(tmp_path / "s.sock"), *args],
            env=base_env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    for address in ("0.0.0.0:0", "[::]:0", "10.1.2.3:0", "127.0.0.1.example:0",
                    "example.com:0", "127.1:0"):  # fmt: skip
        ran = serve("--listen", address, "--token-file", str(token))
        assert ran.returncode == 2 and "loopback only" in ran.stderr, (address, ran.stderr)
    assert serve("--listen", "127.0.0.1:0").returncode == 2  # no token, no TCP
    loose = tmp_path / "loose.token"
    loose.write_text("a" * 40)
    loose.chmod(0o644)
    short = tmp_path / "short.token"
    short.write_text("abc")
    short.chmod(0o600)
    link = tmp_path / "link.token"
    link.symlink_to(token)
    for bad in (loose, short, link, tmp_path / "missing.token"):
        ran = serve("--listen", "127.0.0.1:0", "--token-file", str(bad))
        assert ran.returncode == 125, (bad.name, ran.returncode, ran.stderr)
    assert not (tmp_path / "s.sock").exists()


# --- 4. pools ---------------------------------------------------------------------------


def test_a_pooled_sandbox_leaves_nothing_to_the_next_claim(serve_factory):
    """Defence: a pooled sandbox serves one claim and is destroyed (never put back).
    The first claim leaves files in /tmp, /dev/shm and its workspace, a detached
    background process and one holding stdout; the next claim of the same pool sees none
    of it, and the first claim's processes and workspace are gone."""
    tag = _nonce()
    with serve_factory(pools={"workspace/native": 1}) as served:
        api = served.client()
        first = api.run(
            ["sh", "-c",
             f"pwd; echo left > /tmp/left-{tag}; echo left > /dev/shm/left-{tag}; "
             f"echo left > left-{tag}; (setsid nohup sleep {tag}1 >/dev/null 2>&1 &); "
             f"(sleep {tag}2 &); echo done"],
            profile="workspace", backend="native",
        )  # fmt: skip
        assert first.pooled and first.exit_code == 0, first
        first_dir = Path(first.stdout.split()[0])
        assert first.stdout.split()[1] == "done"
        assert wait_for(lambda: not _cmdlines(f"sleep\0{tag}".encode()), 10), "a process lived on"
        assert wait_for(lambda: not first_dir.exists(), 20), "a used workspace was kept"
        served.wait_ready()  # the pool refilled: the next claim is pooled too
        second = api.run(
            ["sh", "-c",
             f"pwd; ls -A; cat /tmp/left-{tag} /dev/shm/left-{tag} 2>&1; "
             "ps -eo args | grep -c '[s]leep'"],
            profile="workspace", backend="native",
        )  # fmt: skip
        assert second.pooled, second
        lines = second.stdout.split("\n")
        assert lines[0] != str(first_dir), "a pooled sandbox was handed out twice"
        assert "left" not in second.stdout.replace(f"left-{tag}: No such", ""), second.stdout
        assert lines[-2] == "0", f"a process of the first claim is visible: {second.stdout}"
        assert second.stdout.count("No such file") == 2, second.stdout


def test_pooled_profiles_are_not_widened(serve_factory, workspace):
    """Defences: a pool of an opt-in profile never fills (its sandboxes need the opt-in
    a pool does not give), and a run asking for ``trusted`` without ``trust`` is
    refused with exit code 126 — from the pool's key or cold."""
    with serve_factory(pools={"trusted/native": 1}, wait=False) as served:
        served.wait_ready(pools_full=False)
        api = served.client()
        assert wait_for(lambda: api.health()["pools"]["trusted/native"]["last_error"], 30)
        pool = api.health()["pools"]["trusted/native"]
        assert pool["ready"] == 0 and "opt-in" in pool["last_error"], pool
        for extra in ({}, {"workspace": str(workspace)}):
            answer = _unix(
                served.socket,
                _post("/v1/runs", {"argv": ["id"], "profile": "trusted", "backend": "native",
                                   **extra}),
            )  # fmt: skip
            assert _statuses(answer) == [403], answer[:300]
            assert b'"exit_code":126' in answer.replace(b" ", b"")
        answer = _unix(served.socket, _post("/v1/sessions", {"profile": "trusted"}))
        assert _statuses(answer) == [403], answer[:300]


# --- 5. paths ---------------------------------------------------------------------------


def test_session_ids_in_urls_never_leave_the_sessions_directory(serve_factory, codex_home):
    """Defence: a session reference is an id (hex) or a live session's name; nothing
    else reaches a path. A live session's state planted one level up, at
    ``$CODEX_HOME/state.json``, would answer ``..`` if the reference were joined as is."""
    with serve_factory() as served:
        api = served.client()
        session = api.start_session(profile="offline", backend="native")
        state_file = codex_home / "sessions" / session["id"] / "state.json"
        (codex_home / "state.json").write_text(state_file.read_text())
        refs = ["..", "%2e%2e", "..%2F..", "..%2Fsessions%2F" + session["id"], "%00",
                session["id"] + "%00", session["id"] + "%2F..%2F..", ".%2F" + session["id"],
                "a" * 4000]  # fmt: skip
        for ref in refs:
            for method, path in (("GET", f"/v1/sessions/{ref}"),
                                 ("DELETE", f"/v1/sessions/{ref}"),
                                 ("POST", f"/v1/sessions/{ref}/exec")):  # fmt: skip
                request = (
                    _post(path, {"argv": ["true"]})
                    if method == "POST"
                    else f"{method} {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()
                )
                answer = _unix(served.socket, request)
                assert _statuses(answer)[:1] in ([404], [400], [414]), (ref, answer[:300])
        assert api.session(session["id"])["live"]  # control: the id itself answers
        api.stop_session(session["id"])


def test_a_workspace_the_cli_refuses_the_server_refuses(
    serve_factory, cli, codex_home, home, workspace, root
):
    """Defence: the same write-root checks as ``codex-box run`` (system directories,
    HOME and its dot-directories, CODEX_HOME, a symlink into them): refused with the
    CLI's exit code, nothing written. The control, a real project, runs."""
    probe = f"zz-serve-probe-{uuid.uuid4().hex[:8]}"
    (root / "to-codex-home").symlink_to(codex_home)
    (root / "to-etc").symlink_to("/etc")
    with serve_factory() as served:
        api_socket = served.socket
        for target in ("/", "/etc", "/usr", str(home), str(codex_home),
                       str(codex_home / "serve"), str(root / "to-codex-home"),
                       str(root / "to-etc"), "relative", "/nonexistent-" + probe):  # fmt: skip
            answer = _unix(
                api_socket,
                _post("/v1/runs", {"argv": ["touch", probe], "profile": "workspace",
                                   "backend": "native", "workspace": target}),
            )  # fmt: skip
            assert _statuses(answer)[:1] in ([403], [400], [422]), (target, answer[:300])
            ran = cli("run", "--backend", "native", "-p", "workspace", "--workspace", target,
                      "--", "touch", probe)  # fmt: skip
            assert ran.returncode != 0, (target, ran.stdout)
            if _statuses(answer) == [403]:
                assert ran.returncode == 126, (target, ran.stderr)
        for place in (Path("/"), Path("/etc"), Path("/usr"), home, codex_home):
            assert not (place / probe).exists(), place
        ok = _unix(api_socket, _post("/v1/runs", {"argv": ["touch", probe],
                                                  "profile": "workspace", "backend": "native",
                                                  "workspace": str(workspace)}))  # fmt: skip
        assert _statuses(ok) == [200] and (workspace / probe).exists()


def test_an_exec_cwd_outside_the_workspace_writes_nothing(serve_factory, workspace):
    """Defence: a session's exec runs in its sandbox wherever its cwd points: a cwd
    outside the workspace (absolute or climbing out) is read-only or refused."""
    probe = f"zz-cwd-{uuid.uuid4().hex[:8]}"
    with serve_factory() as served:
        api = served.client()
        session = api.start_session(profile="workspace", backend="native",
                                    workspace=str(workspace))  # fmt: skip
        try:
            for cwd in ("/etc", "/", "../../..", "../../../etc", str(workspace.parent)):
                result = api.exec(session["id"], ["sh", "-c", f"touch {probe}"], cwd=cwd)
                assert result.exit_code != 0, (cwd, result)
            # Control (a session keeps the last exec's cwd: back to the workspace).
            control = api.exec(session["id"], ["touch", probe], cwd=str(workspace))
            assert control.exit_code == 0, control
        finally:
            api.stop_session(session["id"])
        for place in (Path("/etc"), Path("/"), workspace.parent):
            assert not (place / probe).exists(), place
        assert (workspace / probe).exists()


# --- 6. resources -----------------------------------------------------------------------


def test_oversized_and_malformed_requests_are_refused_before_anything_runs(
    serve_factory, codex_home, workspace
):
    """Defences: the request models' bounds (stdin ≤ 16 MiB, argv ≤ 4096, env entries
    NAME=VALUE only: the server's environment is not the client's), checked before any
    sandbox starts: a 422 and no record of a run."""
    with serve_factory() as served:
        before = len(_records(codex_home))
        base = {"profile": "offline", "backend": "native", "workspace": str(workspace)}
        bodies = {
            "stdin": {"argv": ["cat"], "stdin": "a" * (16 * 1024 * 1024 + 1), **base},
            "argc": {"argv": ["true"] * 4097, **base},
            "arg": {"argv": ["echo", "a" * 65537], **base},
            "bare-env": {"argv": ["env"], "env": ["HOME"], **base},
            "env-name": {"argv": ["env"], "env": ["1A=b"], **base},
            "env-nul": {"argv": ["env"], "env": ["A=b\u0000c"], **base},
            "argv-nul": {"argv": ["echo", "a\u0000b"], **base},
            "empty": {"argv": [""], **base},
            "extra": {"argv": ["true"], "environ": {"HOME": "/"}, **base},
            "envs": {"argv": ["true"], "env": ["A=b"] * 1025, **base},
        }
        for name, body in bodies.items():
            began = time.monotonic()
            answer = _unix(served.socket, _post("/v1/runs", body), wait_s=60)
            assert _statuses(answer) == [422], (name, answer[:300])
            assert time.monotonic() - began < 30, name
        after = len(_records(codex_home))
        assert after == before, "a refused request reached the runner"
        # Control: NAME=VALUE reaches the command; the server's own HOME does not come in.
        result = served.client().run(["sh", "-c", "echo $GREETING"], env=["GREETING=hi"], **base)
        assert result.stdout == "hi\n"


def test_a_client_that_never_reads_blocks_the_command_not_the_server(serve_factory, workspace):
    """Defence: streamed output is read from the pipe only as the client takes it
    (backpressure): the command blocks on write, the server's memory stays flat, and
    the client going away ends the command."""
    tag = uuid.uuid4().hex[:12]
    with serve_factory() as served:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(str(served.socket))
        body = {"argv": ["yes", tag * 40], "profile": "offline", "backend": "native",
                "workspace": str(workspace)}  # fmt: skip
        sock.sendall(_post("/v1/runs?stream=1", body))
        assert wait_for(lambda: bool(_cmdlines(f"yes\0{tag}".encode())), 20)
        time.sleep(2)  # the pipes and the socket buffers fill
        (pid,) = _cmdlines(f"yes\0{tag}".encode())
        rss, ticks = _rss_kib(served.process.pid), _cpu_ticks(pid)
        time.sleep(3)
        assert _cpu_ticks(pid) - ticks < 30, "the command kept writing: nothing held it back"
        assert _rss_kib(served.process.pid) - rss < 16 * 1024, "the server buffered output"
        assert served.client().health()["running"] == 1  # the server still answers
        sock.close()
        assert wait_for(lambda: not _cmdlines(f"yes\0{tag}".encode()), 10)
        assert wait_for(lambda: served.client().health()["running"] == 0, 10)


# --- 7. cancel and end --------------------------------------------------------------------


def _stubborn(tag: int) -> str:
    """A command that ignores SIGTERM and SIGINT and leaves children of every kind."""
    return (
        f"trap '' TERM INT; (trap '' TERM INT; sleep {tag}1) & "
        f"setsid sh -c \"trap '' TERM INT; sleep {tag}2\" & "
        f"(nohup sleep {tag}3 >/dev/null 2>&1 &); sleep {tag}4"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["collected", "streamed"])
def test_a_client_that_goes_away_takes_its_whole_tree_with_it(
    serve_factory, codex_home, workspace, base_env, stream
):
    """Defence: a closed connection cancels its run (cold: the fork server's child
    escalates to SIGKILL of the sandbox; pooled and exec: the keeper kills the exec's
    tree). A command that traps SIGTERM and SIGINT and forks, setsid's and nohup's
    children: all gone within 10 s, each end on record, the audit chain intact."""
    query = "?stream=1" if stream else ""
    with serve_factory(pools={"workspace/native": 1}) as served:
        api = served.client()
        session = api.start_session(profile="workspace", backend="native",
                                    workspace=str(workspace))  # fmt: skip
        kinds = {
            "cold": ("/v1/runs", {"profile": "workspace", "backend": "native",
                                  "workspace": str(workspace)}),
            "pooled": ("/v1/runs", {"profile": "workspace", "backend": "native"}),
            "exec": (f"/v1/sessions/{session['id']}/exec", {}),
        }  # fmt: skip
        for kind, (path, extra) in kinds.items():
            tag = _nonce()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(served.socket))
            sock.sendall(_post(path + query, {"argv": ["sh", "-c", _stubborn(tag)], **extra}))
            prefix = f"sleep\0{tag}".encode()
            assert wait_for(lambda p=prefix: len(_cmdlines(p)) == 4, 20), (kind, served.output())
            sock.close()
            assert wait_for(lambda p=prefix: not _cmdlines(p), 10), f"{kind}: outlived its client"
            assert wait_for(lambda t=tag: any(
                r.get("phase") == "ended" and f"sleep {t}4" in str(r.get("target"))
                for r in _records(codex_home)), 15), kind  # fmt: skip
            ended = [
                r for r in _records(codex_home)
                if r.get("phase") == "ended" and f"sleep {tag}4" in str(r.get("target"))
            ]  # fmt: skip
            assert len(ended) == 1, (kind, ended)
            if kind == "cold":
                assert ended[0].get("cancelled") is True, ended
            served.wait_ready()
        assert wait_for(lambda: api.health()["running"] == 0, 10)
        api.stop_session(session["id"])
    assert leftovers(served) == []
    verify = subprocess.run([CODEX_BOX, "audit", "verify"], env=base_env, capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_gc_removes_what_a_sigkilled_server_left(serve_factory, base_env, codex_home, workspace):
    """Defence: the server's ``owned`` record (written before each thing exists) and
    ``codex-box gc`` sweeping it when no server holds the lock: after SIGKILL mid-run,
    gc (not a next server) stops its sessions and removes its pooled and scratch
    workspaces; its runs died with their fork server."""
    tag = _nonce()
    with serve_factory(pools={"offline/native": 1}) as served:
        api = served.client()
        api.start_session(profile="offline", backend="native")
        socks = []
        for i, extra in enumerate(({}, {"workspace": str(workspace)})):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(served.socket))
            body = {"argv": ["sh", "-c", f"trap '' TERM; echo x > f; sleep {tag}{i}"],
                    "profile": "workspace", "backend": "native", **extra}  # fmt: skip
            sock.sendall(_post("/v1/runs", body))
            socks.append(sock)
        assert wait_for(lambda: len(_cmdlines(f"sleep\0{tag}".encode())) == 2, 20)
        served.stop(signal.SIGKILL)
        assert wait_for(lambda: not _cmdlines(f"sleep\0{tag}".encode()), 15)
        assert any(item.startswith("record") for item in leftovers(served))
        gc = subprocess.run([CODEX_BOX, "gc"], env=base_env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
        assert gc.returncode == 0, gc.stderr

        # The stale socket file is not counted here (gc leaves it; the next serve
        # replaces it): everything that ran or held data must be gone.
        def left() -> list[str]:
            return [item for item in leftovers(served) if not item.startswith("socket ")]

        assert wait_for(lambda: left() == [], 15), left()
        assert not processes_under(str(codex_home))
        for sock in socks:
            sock.close()


def test_sigterm_cancels_runs_whose_clients_hold_on(serve_factory, codex_home, workspace):
    """Defence: SIGTERM cancels every run at once (the handler before uvicorn's wait),
    even runs whose client is still connected and reading: each still gets its answer,
    marked cancelled, and nothing of the server is left."""
    tag = _nonce()
    with serve_factory() as served:
        results: list[bytes] = []

        def client(i: int) -> None:
            body = {"argv": ["sh", "-c", _stubborn(tag * 10 + i)], "profile": "workspace",
                    "backend": "native", "workspace": str(workspace)}  # fmt: skip
            results.append(_unix(served.socket, _post("/v1/runs", body), wait_s=40))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        prefix = f"sleep\0{tag}".encode()
        assert wait_for(lambda: len(_cmdlines(prefix)) == 8, 30), served.output()
        began = time.monotonic()
        assert served.stop(signal.SIGTERM, timeout_s=30) == 0
        assert time.monotonic() - began < 10.0
        for thread in threads:
            thread.join(timeout=40)
        assert not _cmdlines(prefix)
        assert len(results) == 2 and all(b'"cancelled":true' in r for r in results), results
    assert leftovers(served) == []
