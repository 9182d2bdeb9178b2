"""Red-team of ``codex-box mcp`` (file tools) and ``codex-box mcp wrap`` (the relay),
native backend. Passing tests: attacks that are blocked. ``xfail(strict)``: holes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from orchestrator.mcp.relay import Relay, ToolFilter
from tests.conftest import CODEX_BOX, SANDBOX_PYTHON
from tests.integration.test_mcp_server import error, serve
from tests.integration.test_mcp_wrap import SERVER

pytestmark = pytest.mark.usefixtures("native_available")

DENY = ToolFilter.of([], [["delete_*"]])


def call(i: Any, name: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name}}


def forwarded(*lines: bytes) -> bytes:
    relay = Relay(DENY)
    return b"".join(relay.from_client(line)[0] or b"" for line in lines)


# --- 4. the wrap relay (pure) ---------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        json.dumps(call(1, "delete_all")).encode() + b"\n",
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\u0064elete_all"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"delete_all"}}\n',
        b"\xef\xbb\xbf  " + json.dumps(call(1, "delete_all")).encode() + b"\n",
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all\xff"}}\n',
        json.dumps([call(1, "echo"), call(2, "delete_all")]).encode() + b"\n",
        json.dumps(
            {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_x"}}
        ).encode()
        + b"\n",
        # duplicate keys: the last one is what Python, JS and Go read, and what is judged
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},'
        b'"params":{"name":"delete_all"}}\n',
    ],
)
def test_relay_refuses_encoded_denied_calls(line: bytes) -> None:
    assert b"delete" not in forwarded(line).replace(b"\\u0064", b"d")


def test_relay_tools_list_hides_denied_even_with_colliding_ids() -> None:
    relay = Relay(DENY)
    relay.from_client(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).encode())
    answer = {"jsonrpc": "2.0", "id": 7, "result": {"tools": [{"name": "delete_all"}]}}
    assert b"delete_all" not in relay.from_server(json.dumps(answer).encode())


def test_relay_bare_cr_smuggles_a_second_message() -> None:
    line = json.dumps(call(1, "echo")) + "\r" + json.dumps(call(2, "delete_all")) + "\n"
    assert b"delete_all" not in forwarded(line.encode())


@pytest.mark.parametrize(
    "lines",
    [
        (
            json.dumps(call(1, "echo")).encode()
            + json.dumps(call(2, "delete_all")).encode()
            + b"\n",
        ),
        (b'{"jsonrpc":"2.0","id":2,"method":"tools/call",\n', b'"params":{"name":"delete_all"}}\n'),
        (json.dumps([[call(2, "delete_all")]]).encode() + b"\n",),
    ],
)
def test_relay_forwards_unparsed_lines(lines: tuple[bytes, ...]) -> None:
    assert b"delete_all" not in forwarded(*lines)


# --- 4. the wrap relay end to end -----------------------------------------------------


# The wrapped server reading stdin the way the official mcp SDK's stdio_server does:
# TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"), universal newlines.
SDK_LIKE = SERVER.replace("import json,", "import io, json,").replace(
    "for line in sys.stdin:",
    'for line in io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"):',
)


def _wrap_received(env: dict[str, str], workspace: Path, payload: bytes) -> str:
    assert "io.TextIOWrapper" in SDK_LIKE
    (workspace / "server.py").write_text(SDK_LIKE)
    proc = subprocess.run(
        [
            CODEX_BOX,
            "mcp",
            "wrap",
            "-p",
            "offline",
            "--deny-tool",
            "delete_*",
            "--",
            SANDBOX_PYTHON,
            "server.py",
        ],
        input=payload + json.dumps(call(99, "received")).encode() + b"\n",
        env={**env, "CODEX_BOX_BACKEND": "native"},
        cwd=workspace,
        capture_output=True,
        timeout=30,
    )
    return proc.stdout.decode(errors="replace")


def test_wrap_bare_cr_runs_a_denied_tool_on_a_python_server(
    base_env: dict[str, str], workspace: Path
) -> None:
    payload = (
        json.dumps(call(1, "echo")).encode()
        + b"\r"
        + json.dumps(call(2, "delete_all")).encode()
        + b"\n"
    )
    out = _wrap_received(base_env, workspace, payload)
    assert "ran delete_all" not in out, out


def test_wrap_escaped_name_is_refused_end_to_end(base_env: dict[str, str], workspace: Path) -> None:
    payload = (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\u0064elete_all"}}\n'
    )
    out = _wrap_received(base_env, workspace, payload)
    assert "refused by codex-box" in out and "ran delete_all" not in out, out


# --- 1. the file tools ------------------------------------------------------------------


def test_file_tools_refuse_escapes(
    base_env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    (workspace / "sub").mkdir()
    os.symlink(outside, workspace / "link")
    os.symlink(outside / "secret", workspace / "flink")
    os.link(outside / "secret", workspace / "hard")
    (workspace / ".git").mkdir()

    async def body(client: Client) -> list[str]:
        out = []
        for path in (
            "../outside/secret",
            str(outside / "secret"),
            "link/secret",
            "flink",
            "sub/../../outside/secret",
            "link/.",
        ):
            out.append(("read", path, await client.call_tool("read_file", {"path": path})))
        out.append(("list", "link", await client.call_tool("list_dir", {"path": "link"})))
        for path in (
            "link/new",
            "flink",
            "hard",
            ".git/hooks/pre-commit",
            ".git/config",
            ".codex-profile",
            "sub/../.git/x",
            ".git/.",
            ".//.git//x",
            "x\x00y",
            "a" * 300,
            "../escaped",
        ):
            out.append(
                (
                    "write",
                    path,
                    await client.call_tool("write_file", {"path": path, "content": "pwn"}),
                )
            )
        return [f"{op} {p!r}: {error(r)}" for op, p, r in out]

    results = serve(base_env, workspace, "--profile", "workspace")(body)
    assert len(results) == 19
    assert (outside / "secret").read_text() == "host secret"
    assert not (outside / "new").exists() and not (tmp_path / "escaped").exists()
    assert not (workspace / ".git" / "hooks").exists()
    assert not (workspace / ".codex-profile").exists()


# --- 2. narrowing and 3. approval -------------------------------------------------------


def test_narrowing_tricks_and_unapproved_runs_are_refused(
    base_env: dict[str, str], workspace: Path, codex_home: Path, tmp_path: Path
) -> None:
    (codex_home / "profiles").mkdir(exist_ok=True)
    (codex_home / "profiles" / "sneaky.yaml").write_text("name: sneaky\nextends: trusted\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, workspace / "out")
    target = outside / "pwned"

    async def body(client: Client) -> list[str]:
        texts = []
        for name in ("trusted", "TRUSTED", "sneaky", "Workspace", "workspace "):
            texts.append(error(await client.call_tool("run", {"argv": ["true"], "profile": name})))
            texts.append(error(await client.call_tool("session_start", {"profile": name})))
        for cwd in ("out", "..", str(outside), "out/."):
            texts.append(
                error(await client.call_tool("run", {"argv": ["touch", "pwned"], "cwd": cwd}))
            )
        # the environment of the command is the command's, not the server's choice
        for env in (["CODEX_SECURITY_PROFILE=trusted"], ["CODEX_BOX_PROFILE=trusted"]):
            ran = await client.call_tool("run", {"command": f"echo x > {target}", "env": env})
            assert ran.is_error or ran.structured_content["exit_code"] != 0  # type: ignore[index]
        # approval: `check` first, then `run`, then a session's exec — never approved
        await client.call_tool("check", {"argv": ["frobnicate-unknown"]})
        texts.append(error(await client.call_tool("run", {"argv": ["frobnicate-unknown"]})))
        started = await client.call_tool("session_start", {})
        sid = started.structured_content["id"]  # type: ignore[index]
        texts.append(
            error(await client.call_tool("exec", {"session": sid, "argv": ["frobnicate-unknown"]}))
        )
        touched = await client.call_tool("exec", {"session": sid, "argv": ["touch", str(target)]})
        assert touched.is_error or touched.structured_content["exit_code"] != 0  # type: ignore[index]
        await client.call_tool("session_stop", {"session": sid})
        return texts

    texts = serve(base_env, workspace, "--profile", "workspace", "--policy-mode", "enforce")(body)
    assert all(texts), texts
    assert not target.exists()
    assert sum("not approved" in t for t in texts) >= 2, texts


def test_a_workspace_that_is_home_is_refused(base_env: dict[str, str], home: Path) -> None:
    (home / "notes.txt").write_text("plain")

    async def in_home(client: Client) -> str:
        return error(await client.call_tool("read_file", {"path": "notes.txt"}))

    assert "refusing" in serve(base_env, home, "--profile", "workspace")(in_home)


def _inner_codex_home(base_env: dict[str, str], codex_home: Path, workspace: Path) -> Any:
    inner = workspace / ".codex"
    inner.mkdir()
    (inner / "config.toml").write_text((codex_home / "config.toml").read_text())
    (inner / "auth.json").write_text('{"token": "SECRET"}')
    (workspace / "notes.txt").write_text("plain")
    return inner, serve({**base_env, "CODEX_HOME": str(inner)}, workspace, "-p", "workspace")


def test_codex_home_inside_the_workspace_is_not_written(
    base_env: dict[str, str], codex_home: Path, workspace: Path
) -> None:
    inner, go = _inner_codex_home(base_env, codex_home, workspace)
    before = (inner / "config.toml").read_text()

    async def body(client: Client) -> list[str]:
        return [
            error(await client.call_tool("write_file", {"path": path, "content": "x"}))
            for path in (".codex/config.toml", ".codex/profiles/wide.yaml", ".codex/audit.log")
        ]

    assert all(go(body))
    assert (inner / "config.toml").read_text() == before
    assert not (inner / "profiles" / "wide.yaml").exists()


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="HOLE: a sandboxed command reads $CODEX_HOME/auth.json and audit.log when "
    "CODEX_HOME lies "
    "inside the workspace (the file tools refuse it now; the sandbox hides only CODEX_HOME's "
    "sessions, grants, policy cache, serve and ci): not the MCP server's, a profile-wide "
    "gap (fix: hide CODEX_HOME's secrets when it is under a workspace, or refuse such one)",
)
def test_codex_home_inside_the_workspace_is_not_read(
    base_env: dict[str, str], codex_home: Path, workspace: Path
) -> None:
    _, go = _inner_codex_home(base_env, codex_home, workspace)

    async def body(client: Client) -> list[Any]:
        plain = await client.call_tool("read_file", {"path": "notes.txt"})
        assert not plain.is_error, plain.content
        return [
            await client.call_tool("read_file", {"path": ".codex/auth.json"}),
            await client.call_tool("read_file", {"path": "./.codex//auth.json"}),
            await client.call_tool("list_dir", {"path": ".codex"}),
            await client.call_tool("run", {"command": "cat .codex/auth.json"}),
        ]

    results = go(body)
    # The file tools (this issue's) refuse CODEX_HOME outright.
    assert all(r.is_error for r in results[:3]), [r.content for r in results[:3]]
    # A sandboxed command reading it: the general gap this test's xfail names.
    leaked = [i for i, r in enumerate(results) if "SECRET" in str(r.content)]
    assert not leaked, leaked


def test_write_file_cannot_plant_a_repository_past_quarantine(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    (codex_home / "profiles").mkdir(exist_ok=True)
    (codex_home / "profiles" / "strict.yaml").write_text(
        "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n"
    )
    plant = {
        "sub/HEAD": "ref: refs/heads/main\n",
        "sub/objects/.keep": "",
        "sub/refs/.keep": "",
        "sub/config": "[core]\n\tbare = true\n\tfsmonitor = touch /tmp/pwned\n",
    }

    async def body(client: Client) -> None:
        made = await client.call_tool("run", {"argv": ["mkdir", "-p", "sub/objects", "sub/refs"]})
        assert not made.is_error, made.content
        for path, content in plant.items():
            await client.call_tool("write_file", {"path": path, "content": content})
        await client.call_tool("run", {"argv": ["true"]})

    serve(base_env, workspace, "--profile", "strict")(body)
    config = workspace / "sub" / "config"
    assert not (config.exists() and "fsmonitor" in config.read_text())
