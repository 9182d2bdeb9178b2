"""Regression tests for the holes the red team found in ``codex-box serve`` (fixed in
3ade23e), one test per hole (A to J). Each fails on the server as it was before the fix
and passes after it, except where its docstring says otherwise; each docstring names the
hole and the defence that closes it.

Every server here is the test's own (``serve_factory``), on its Unix socket or on
127.0.0.1; every request loop is bounded in count and time. The test's files live
under /var/tmp (``tmp_path`` below), which sandboxes see: a private /tmp would hide
from a sandboxed command what the attacks read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CODEX_BOX
from tests.escape.conftest import scratch_root
from tests.integration.session_helpers import audit_records
from tests.serve_helpers import processes_under, wait_for

pytestmark = pytest.mark.usefixtures("native_available")


@pytest.fixture
def tmp_path() -> Iterator[Path]:  # overrides pytest's: under /var/tmp, seen by sandboxes
    yield from scratch_root("codex-box-serve-regress")


# --- helpers ------------------------------------------------------------------------


def _tag() -> int:
    return 60000 + int.from_bytes(os.urandom(2), "big") % 30000


def _port(served) -> int:  # type: ignore[no-untyped-def]
    found = re.search(r"http://127\.0\.0\.1:(\d+)", served.output())
    assert found, served.output()
    return int(found.group(1))


def _post(path: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()


def _read(sock: socket.socket, wait_s: float) -> bytes:
    """Read until the server closes, ``wait_s`` passes, or one whole JSON document with
    an exit code (or a whole bodyless answer) is in; bounded."""
    answer = b""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        answer += chunk
        if _complete(answer):
            break
    return answer


def _unix(served, data: bytes, wait_s: float = 60.0) -> bytes:  # type: ignore[no-untyped-def]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(served.socket))
    try:
        sock.sendall(data)
        return _read(sock, wait_s)
    finally:
        sock.close()


def _answer(raw: bytes) -> tuple[int, dict, dict | None]:  # type: ignore[type-arg]
    """Status, headers (lower-case names) and the JSON body of one HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    found = re.match(r"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
    assert found, raw[:300]
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    try:
        document = json.loads(body) if body.strip() else None
    except ValueError:
        document = None
    return int(found.group(1)), headers, document


def _problem(raw: bytes, status: int, exit_code: int) -> dict:  # type: ignore[type-arg]
    got, headers, document = _answer(raw)
    assert got == status, raw[:400]
    assert headers.get("content-type") == "application/problem+json", headers
    assert document is not None and document["exit_code"] == exit_code, document
    return document


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: (\d+)", head)
    return bool(sep and length and len(body) >= int(length.group(1)))


def _chunked_past_the_limit(served) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    """POST a chunked body of up to 22 MiB (a JSON run whose stdin is too long), 256 KiB
    a chunk, stopping at the first answer; its end is sent only if none came. Returns
    the answer and the bytes of stdin sent."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(served.socket))
    sock.settimeout(10)
    sock.sendall(
        b"POST /v1/runs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    opening = b'{"argv": ["true"], "stdin": "'
    sock.sendall(f"{len(opening):x}\r\n".encode() + opening + b"\r\n")
    chunk = b"a" * (256 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    answer, sent = b"", 0
    try:
        for _ in range(22 * 4):
            try:
                sock.sendall(framed)
            except OSError:
                break
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:  # an answer (or the end) came
                with contextlib.suppress(OSError):
                    answer += sock.recv(65536)
                break
        else:
            with contextlib.suppress(OSError):
                sock.sendall(b'2\r\n"}\r\n0\r\n\r\n')
        if not _complete(answer):
            answer += _read(sock, 30)
    finally:
        sock.close()
    return answer, sent


def _records(codex_home: Path) -> list[dict]:  # type: ignore[type-arg]
    return audit_records(codex_home) if (codex_home / "audit.log").exists() else []


def _cmdlines(prefix: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().startswith(prefix):
                    found.append(int(entry.name))
    return found


# A native pooled sandbox claimed within about a second of a new server's start can fail
# its first exec with "cannot enter <its workspace>: Permission denied" (exit 125) when
# the workspaces root is visible to sandboxes (here: /var/tmp); seen before and after
# 3ade23e, about 1 in 10 under load, never after a pause. Not one of the holes tested
# here: the tests that claim from a pool let a new server settle first.
SETTLE_S = 1.5


def _settled(served):  # type: ignore[no-untyped-def]
    served.wait_ready()
    time.sleep(SETTLE_S)
    return served


# --- A. the token file ----------------------------------------------------------------


def test_a_token_file_outside_codex_home_serve_is_refused(base_env, codex_home, tmp_path):
    """Hole A: ``serve --listen … --token-file F`` with F outside $CODEX_HOME/serve/
    started with a warning only; a native workspace-net sandbox (the host's loopback)
    could read F and ask the API for a trusted run. Defence: ``server.serve`` refuses
    such a file (ConfigError, exit 125, one line naming it) before anything listens."""
    outside = tmp_path / "api.token"
    outside.write_text(uuid.uuid4().hex * 2 + "\n")
    outside.chmod(0o600)
    sock_path = tmp_path / "api.sock"
    log = tmp_path / "refused.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [CODEX_BOX, "serve", "--socket", str(sock_path), "--listen", "127.0.0.1:0",
             "--token-file", str(outside)],
            env=base_env, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True,
        )  # fmt: skip
    try:
        # Ends at once when refused; a server that started serves its socket instead.
        wait_for(lambda: process.poll() is not None or sock_path.exists(), 60)
        listening = sock_path.exists() or "http://127.0.0.1" in log.read_text(errors="replace")
        assert not listening, f"serve started with a token file outside: {log.read_text()}"
        assert process.wait(timeout=30) == 125, log.read_text()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run([CODEX_BOX, "gc"], env=base_env, capture_output=True, timeout=120,
                       check=False)  # fmt: skip
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and str(outside) in lines[0], lines
    assert not sock_path.exists()
    assert not (codex_home / "serve.sock").exists()


def test_a_workspace_net_sandbox_cannot_read_the_token(serve_factory, codex_home, token, workspace):
    """Hole A, the other half: the token's one accepted place, $CODEX_HOME/serve/, is
    hidden from every sandbox (``compile.deny_read``): a workspace-net command (the
    host's loopback) sees that directory empty and cannot read the token — cold or
    pooled. (This held before the fix too: it is the premise of the refusal above.)"""
    secret = token.read_text().strip()
    script = (
        'ls -A "$1/serve"; echo "ls=$?"; cat "$1/serve/token" 2>/dev/null; echo "cat=$?"; '
        'test -f "$1/config.toml" && echo home-seen'
    )
    args = ("--listen", "127.0.0.1:0", "--token-file", str(token))
    with serve_factory(pools={"workspace-net/native": 1}, args=args) as served:
        api = _settled(served).client()
        cold = api.run(["sh", "-c", script, "sh", str(codex_home)], profile="workspace-net",
                       backend="native", workspace=str(workspace))  # fmt: skip
        pooled = api.run(["sh", "-c", script, "sh", str(codex_home)], profile="workspace-net",
                         backend="native")  # fmt: skip
        assert pooled.pooled and not cold.pooled
        for result in (cold, pooled):
            assert secret not in result.stdout + result.stderr, result
            lines = result.stdout.splitlines()
            assert lines[0] == "ls=0", f"$CODEX_HOME/serve is not empty: {result.stdout}"
            assert "cat=0" not in lines, result.stdout
            assert "home-seen" in lines, f"the control saw no CODEX_HOME: {result.stdout}"


# --- B. unclaimed pooled sessions ------------------------------------------------------


def test_an_unclaimed_pooled_session_is_invisible_to_the_api(serve_factory, cli):
    """Hole B: a pooled session nobody claimed (``pool-…``, listed by ``session ls``)
    could be read and used through the API: GET /v1/sessions/<id> and POST
    /v1/sessions/<id>/exec worked, so a client could plant files in a sandbox a later
    claim gets as fresh. Defence: ``Service._visible``: 404 problem for it, by id or
    name, until it is claimed. (The same uid's CLI ``exec -s`` still reaches it: not a
    boundary, documented.)"""
    tag = _tag()
    with serve_factory(pools={"offline/native": 1}) as served:
        _settled(served)
        listed = json.loads(cli("session", "ls", "--json").stdout)
        pooled = [s for s in listed if str(s.get("name") or "").startswith("pool-")]
        assert len(pooled) == 1, listed
        sid, name = pooled[0]["id"], pooled[0]["name"]
        # It answers as a session that does not exist (the CLI's exit code for one).
        unknown = _problem(_unix(served, _get("/v1/sessions/nosuch")), 404, 125)
        for ref in (sid, name):
            document = _problem(_unix(served, _get(f"/v1/sessions/{ref}")), 404, 125)
            assert document["type"] == unknown["type"], document
            planted = {"argv": ["sh", "-c", f"echo x > planted-{tag}"]}
            answer = _unix(served, _post(f"/v1/sessions/{ref}/exec", planted))
            document = _problem(answer, 404, 125)
            assert document["type"] == unknown["type"], document
        assert sid not in {s["id"] for s in served.client().sessions()}
        assert list(served.workspaces.glob(f"*/planted-{tag}")) == []
        assert not any(
            f"planted-{tag}" in str(r.get("target")) for r in _records(served.codex_home)
        )
        # Control: claimed (a session from the pool), it is the claimer's to use.
        claimed = served.client().start_session(profile="offline", backend="native")
        assert claimed["pooled"] and claimed["id"] == sid, claimed
        status, _, info = _answer(_unix(served, _get(f"/v1/sessions/{sid}")))
        assert status == 200 and info is not None and info["id"] == sid
        mine = served.client().exec(sid, ["sh", "-c", "echo mine"])
        assert mine.stdout == "mine\n", mine
        served.client().stop_session(sid)


# --- C. a claim's workspace ------------------------------------------------------------


def test_a_pooled_claims_workspace_is_emptied_before_its_answer(serve_factory, tmp_path):
    """Hole C: a pooled claim's workspace stayed on disk until a background discard
    after the answer, and native sandboxes read the host's files: the next claim could
    ``cat <workspaces>/*/secret.txt``. Defence: ``service._emptied`` empties it before
    the claim's answer is sent (never following a link the sandbox planted)."""
    tag = _tag()
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "kept.txt").write_text("host file\n")
    with serve_factory(pools={"workspace/native": 2}) as served:
        api = _settled(served).client()
        first = api.run(
            ["sh", "-c",
             f"pwd; echo s3cret-{tag} > secret.txt; mkdir -p d/e; echo s3cret-{tag} > d/e/s; "
             f"ln -s {keep} link; ln -s {keep}/kept.txt file-link; echo done"],
            profile="workspace", backend="native",
        )  # fmt: skip
        assert first.pooled and first.exit_code == 0 and first.stdout.endswith("done\n"), first
        where = Path(first.stdout.split()[0])
        assert where.parent == served.workspaces, where
        left = sorted(p.name for p in where.iterdir()) if where.exists() else []
        assert left == [], f"the claim's workspace still holds {left} after its answer"
        # The attack itself: the next claim reads every workspace the server has.
        second = api.run(
            ["sh", "-c", f"cat {served.workspaces}/*/secret.txt {served.workspaces}/*/d/e/s "
                         "2>/dev/null; echo end"],
            profile="workspace", backend="native",
        )  # fmt: skip
        assert second.pooled, second
        assert f"s3cret-{tag}" not in second.stdout, second.stdout
        assert (keep / "kept.txt").read_text() == "host file\n", "a planted link was followed"


# --- D. settings that changed --------------------------------------------------------


def test_a_pooled_sandbox_never_judges_by_stale_settings(serve_factory, workspace):
    """Hole D: a pooled sandbox kept the policy mode it was started with: started
    under ``mode = "audit-only"``, then config.toml set to ``enforce``, a pooled
    ``rm -rf /nonexistent-zz`` still ran (exit 0). Defence: ``pools.settings_stamp``:
    a pooled sandbox started under other settings is destroyed, not handed out."""
    with serve_factory(pools={"workspace/native": 1}) as served:
        config = served.codex_home / "config.toml"
        config.write_text(config.read_text().replace('"audit-only"', '"enforce"'))
        answer = _unix(
            served,
            _post("/v1/runs", {"argv": ["rm", "-rf", "/nonexistent-zz"], "profile": "workspace",
                               "backend": "native"}),
        )  # fmt: skip
        status, _, document = _answer(answer)
        ran = [
            r for r in _records(served.codex_home)
            if r.get("target") == "rm -rf /nonexistent-zz" and r.get("phase") == "ended"
        ]  # fmt: skip
        assert ran == [], f"it ran under the old settings: {answer[:400]!r}"
        _problem(answer, 403, 126)
        assert status == 403 and document is not None and "forbid" in document["detail"]
        # Control: the same request with a workspace of the user's own is judged the same.
        cold = _unix(
            served,
            _post("/v1/runs", {"argv": ["rm", "-rf", "/nonexistent-zz"], "profile": "workspace",
                               "backend": "native", "workspace": str(workspace)}),
        )  # fmt: skip
        _problem(cold, 403, 126)
        # The pool's replacement, started under the new settings, judges by them too.
        served.wait_ready()
        again = _unix(
            served,
            _post("/v1/runs", {"argv": ["rm", "-rf", "/nonexistent-zz"], "profile": "workspace",
                               "backend": "native"}),
        )  # fmt: skip
        _problem(again, 403, 126)
        assert not any(
            r.get("target") == "rm -rf /nonexistent-zz" and r.get("phase") == "ended"
            for r in _records(served.codex_home)
        )


# --- E. the server's own workspaces -------------------------------------------------------


def test_a_workspace_holding_or_inside_the_servers_workspaces_is_refused(
    serve_factory, workspace, tmp_path
):
    """Hole E: a run (or session) whose workspace was the server's workspaces root, a
    directory holding it, or one inside it (a pooled sandbox's) was accepted: it could
    write into pooled sandboxes that later claims get as fresh. Defence:
    ``Service._own_workspace``: 403 problem, exit code 126, nothing run."""
    tag = _tag()
    with serve_factory(pools={"workspace/native": 1}) as served:
        root = _settled(served).workspaces
        (pool_dir,) = [p for p in root.iterdir() if p.is_dir()]
        (tmp_path / "to-workspaces").symlink_to(root)
        touch = f"touch planted-{tag} */planted-{tag} */*/planted-{tag} 2>/dev/null; true"
        for target in (root, pool_dir, tmp_path, tmp_path / "to-workspaces"):
            answer = _unix(
                served,
                _post("/v1/runs", {"argv": ["sh", "-c", touch], "profile": "workspace",
                                   "backend": "native", "workspace": str(target)}),
            )  # fmt: skip
            document = _problem(answer, 403, 126)
            assert "workspace" in document["detail"], (target, document)
        session = _unix(
            served, _post("/v1/sessions", {"profile": "offline", "workspace": str(root)})
        )
        _problem(session, 403, 126)
        assert list(tmp_path.rglob(f"planted-{tag}")) == []
        # Control: a project directory of the user's own is served.
        control = served.client().run(["sh", "-c", touch], profile="workspace",
                                      backend="native", workspace=str(workspace))  # fmt: skip
        assert control.exit_code == 0 and (workspace / f"planted-{tag}").exists()
        pooled = served.client().run(["ls", "-A"], profile="workspace", backend="native")
        assert pooled.pooled and f"planted-{tag}" not in pooled.stdout, pooled


# --- F. idle connections ----------------------------------------------------------------


def test_a_connection_that_never_sends_a_request_is_closed(serve_factory, token):
    """Hole F: a connection that never sent a request was held for ever (anyone on the
    host can open many on TCP: the server runs out of descriptors). Defence:
    ``auth.PeerCheckedProtocol`` closes a connection with no whole request head within
    ``FIRST_REQUEST_S`` (10 s) — silent or sending its head a few bytes at a time."""
    args = ("--listen", "127.0.0.1:0", "--token-file", str(token))
    with serve_factory(args=args) as served:
        port = _port(served)
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        partial = socket.create_connection(("127.0.0.1", port), timeout=5)
        partial.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # no end of head
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.connect(str(served.socket))
        began = time.monotonic()
        open_ones = {"tcp-silent": silent, "tcp-partial": partial, "unix-silent": unix}
        closed: dict[str, float] = {}
        deadline = began + 13.0
        while open_ones and time.monotonic() < deadline:
            for name, sock in list(open_ones.items()):
                sock.settimeout(0.2)
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:  # closed by the server (an answer first is fine too)
                    closed[name] = time.monotonic() - began
                    sock.close()
                    del open_ones[name]
        for sock in open_ones.values():
            sock.close()
        assert not open_ones, f"still open after 13 s: {sorted(open_ones)} (closed: {closed})"
        assert all(seconds > 5 for seconds in closed.values()), closed  # not at once
        # Control: a client that asks in time is served, on TCP with the token.
        secret = token.read_text().strip()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            f"GET /healthz HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n".encode()
        )
        assert _answer(_read(sock, 10))[0] == 200
        sock.close()


# --- G. bodies ------------------------------------------------------------------------------


def test_oversized_bodies_argv_and_env_are_refused_before_they_are_held(
    serve_factory, codex_home, workspace
):
    """Hole G: a 255 MiB valid body made the server hold 1.5 GB and answer 500.
    Defences: ``limits.BodyLimit`` — a Content-Length over 20 MiB is a 413 problem at
    once (the body never sent), a chunked body is a 413 as soon as it passes 20 MiB —
    and ``models``: argv over 1 MiB in all, env over 256 KiB in all are 422."""
    mib = 1024 * 1024
    with serve_factory() as served:
        before = len(_records(codex_home))
        # 1. Content-Length says 21 MiB; a few bytes follow, the rest never does.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(served.socket))
        sock.sendall(
            b"POST /v1/runs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {21 * mib}\r\n\r\n".encode()
            + b'{"argv": ["true"], "stdin": "'
        )
        began = time.monotonic()
        answer = _read(sock, 8)
        sock.close()
        assert answer, "no answer to a Content-Length over the limit (the body was awaited)"
        document = _problem(answer, 413, 2)
        assert "too-large" in document["type"] and time.monotonic() - began < 5
        # 2. Chunked, 256 KiB at a time, up to 22 MiB: refused once past 20 MiB (the
        # status: see the test below), the rest never read.
        answer, sent = _chunked_past_the_limit(served)
        assert answer, f"no answer to a chunked body of {sent} bytes"
        assert sent <= 21 * mib, f"the server read {sent} bytes before refusing: {answer[:300]!r}"
        assert _answer(answer)[0] in (400, 413), answer[:300]
        # 3. argv over 1 MiB in all (each argument within its own bound), env over 256 KiB.
        base = {"profile": "offline", "backend": "native", "workspace": str(workspace)}
        big_argv = ["true"] + ["a" * 65536] * 17
        big_env = [f"V{i}=" + "b" * 60000 for i in range(5)]
        for name, path, body in (
            ("argv", "/v1/runs", {"argv": big_argv, **base}),
            ("env", "/v1/runs", {"argv": ["true"], "env": big_env, **base}),
            ("check-argv", "/v1/check", {"argv": big_argv, "profile": "offline"}),
        ):
            document = _problem(_unix(served, _post(path, body)), 422, 2)
            assert "in all" in document["detail"], (name, document)
        assert len(_records(codex_home)) == before, "a refused request reached the runner"
        # Control: just under the bounds is served.
        ok = _unix(served, _post("/v1/check", {"argv": big_argv[:15], "profile": "offline"}))
        assert _answer(ok)[0] == 200, ok[:300]
        assert served.client().health()["running"] == 0


def test_a_chunked_body_past_the_limit_is_a_413_problem(serve_factory):
    """Hole G (chunked): ``limits.BodyLimit`` promises a 413 problem (too-large, exit
    code 2) as soon as a chunked body's bytes pass 20 MiB."""
    with serve_factory() as served:
        answer, sent = _chunked_past_the_limit(served)
        assert sent <= 21 * 1024 * 1024, sent
        document = _problem(answer, 413, 2)
        assert document["type"].endswith("too-large"), document


# --- H. the stop ---------------------------------------------------------------------------


def test_sigterm_ends_the_server_within_ten_seconds_past_a_client_that_never_reads(
    serve_factory, workspace
):
    """Hole H: SIGTERM took more than 10 s when a streaming client never read (uvicorn
    waited its whole graceful timeout, 10 s, for the stream; then the service stopped).
    Defences: ``server.GRACEFUL_S`` (6 s of the 10) and a cancel that escalates within
    ~3 s (``forked_run._Cancel``): the stop ends in time with exit 0, and a run whose
    command traps TERM and INT, whose client reads, still gets its answer, cancelled."""
    tag = uuid.uuid4().hex[:12]
    seconds = _tag()
    with serve_factory() as served:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(str(served.socket))
        sock.sendall(_post("/v1/runs?stream=1", {"argv": ["yes", tag * 40], "profile": "offline",
                                                 "backend": "native",
                                                 "workspace": str(workspace)}))  # fmt: skip
        reader = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        reader.connect(str(served.socket))
        stubborn = ["sh", "-c", f"trap '' TERM INT; sleep {seconds}"]
        reader.sendall(_post("/v1/runs", {"argv": stubborn, "profile": "offline",
                                          "backend": "native",
                                          "workspace": str(workspace)}))  # fmt: skip
        prefix, sleeper = f"yes\0{tag}".encode(), f"sleep\0{seconds}\0".encode()
        assert wait_for(lambda: bool(_cmdlines(prefix) and _cmdlines(sleeper)), 20), served.output()
        time.sleep(2)  # the pipes and the socket's buffers fill; nothing reads them
        began = time.monotonic()
        code = served.stop(signal.SIGTERM, timeout_s=30)
        took = time.monotonic() - began
        answer = _read(reader, 5)
        reader.close()
        sock.close()
        assert code == 0, served.output()
        assert took < 10.0, f"the stop took {took:.1f} s"
        status, _, document = _answer(answer)
        assert status == 200 and document is not None and document["cancelled"] is True, answer
        assert wait_for(lambda: not _cmdlines(prefix) and not _cmdlines(sleeper), 10), (
            "a run outlived its server"
        )


# --- I. cancelled, on record ------------------------------------------------------------------


def test_a_pooled_run_or_exec_whose_client_left_is_recorded_cancelled(serve_factory, workspace):
    """Hole I: a pooled run or a session exec cancelled because its client went away
    was audited as a plain kill. Defence: ``execs_io.Watcher.client_gone`` → the
    ``command_exec`` ``ended`` record says ``"cancelled": true`` (as a cold run's does)."""
    with serve_factory(pools={"offline/native": 1}) as served:
        api = _settled(served).client()
        session = api.start_session(profile="workspace", backend="native",
                                    workspace=str(workspace))  # fmt: skip
        assert not session["pooled"]
        try:
            kinds = {
                "pooled": ("/v1/runs", {"profile": "offline", "backend": "native"}),
                "exec": (f"/v1/sessions/{session['id']}/exec", {}),
            }
            for kind, (path, extra) in kinds.items():
                seconds = _tag()
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(served.socket))
                sock.sendall(_post(path, {"argv": ["sleep", str(seconds)], **extra}))
                sleeper = f"sleep\0{seconds}\0".encode()
                assert wait_for(lambda s=sleeper: bool(_cmdlines(s)), 20), (kind, served.output())
                sock.close()  # the client goes away
                assert wait_for(lambda s=sleeper: not _cmdlines(s), 10), f"{kind} outlived it"

                def ended(s: int = seconds) -> list[dict]:  # type: ignore[type-arg]
                    return [
                        r for r in _records(served.codex_home)
                        if r.get("phase") == "ended" and r.get("target") == f"sleep {s}"
                    ]  # fmt: skip

                assert wait_for(lambda e=ended: bool(e()), 15), kind
                (record,) = ended()
                assert record.get("cancelled") is True, (kind, record)
                assert "cancelled" in record["reason"], (kind, record)
                served.wait_ready()
        finally:
            api.stop_session(session["id"])


# --- J. gc and the socket -----------------------------------------------------------------------


def test_gc_removes_the_socket_of_a_sigkilled_server(serve_factory, base_env, codex_home):
    """Hole J: after SIGKILL of the server, ``codex-box gc`` left $CODEX_HOME/serve.sock.
    Defence: ``owned.sweep`` removes the default socket when no server holds
    $CODEX_HOME/serve/serve.lock — and leaves a live server's alone."""

    def gc() -> None:
        ran = subprocess.run([CODEX_BOX, "gc"], env=base_env, capture_output=True, text=True,
                             timeout=120, check=False)  # fmt: skip
        assert ran.returncode == 0, ran.stderr

    with serve_factory() as served:
        gc()  # control: a live server's socket is its own
        assert served.socket.exists() and served.client().health()["running"] == 0
        served.stop(signal.SIGKILL)
        assert wait_for(lambda: not processes_under(str(codex_home)), 15)
        assert served.socket.exists()  # what SIGKILL leaves
        gc()
        assert not served.socket.exists(), "gc left the socket of a server that is gone"
