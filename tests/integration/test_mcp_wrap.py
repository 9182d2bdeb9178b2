"""``codex-box mcp wrap`` around a tiny stdio MCP server written here (plain Python, JSON
lines), driven by the MCP SDK's own stdio client on the native backend: its tool list
filtered, a denied tool never reaching it, the sandbox holding (no loopback listener of
the host reached, no file outside the workspace written: judged on the host), and the
audit records of each call."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from tests.conftest import CODEX_BOX, SANDBOX_PYTHON

pytestmark = pytest.mark.usefixtures("native_available")

# The wrapped server: keeps every method (and tool name) it received, and says so when
# asked (under offline its workspace is read-only: the record stays in its memory).
SERVER = r"""
import json, socket, sys

TOOLS = ["echo", "connect", "write", "received", "delete_all", "secret_dump"]
received = []

def text(t, error=False):
    return {"content": [{"type": "text", "text": t}], "isError": error}

def tool(name, args):
    if name == "echo":
        return text(json.dumps(args))
    if name == "connect":
        errors = []
        for _ in range(3):  # bounded
            try:
                socket.create_connection(("127.0.0.1", int(args["port"])), timeout=2).close()
                return text("connected")
            except OSError as exc:
                errors.append(type(exc).__name__)
        return text("failed: " + ",".join(errors), True)
    if name == "write":
        try:
            with open(args["path"], "w") as f:
                f.write("written by the sandbox")
            return text("wrote")
        except OSError as exc:
            return text("failed: " + type(exc).__name__, True)
    if name == "received":
        return text(json.dumps(received))
    return text("ran " + name)

for line in sys.stdin:
    message = json.loads(line)
    method = message.get("method")
    name = (message.get("params") or {}).get("name")
    received.append(method + (" " + name if name else ""))
    print("server got", method, file=sys.stderr, flush=True)
    if "id" not in message:
        continue
    if method == "initialize":
        result = {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "tiny", "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": [{"name": t, "inputSchema": {"type": "object"}} for t in TOOLS]}
    elif method == "tools/call":
        result = tool(name, message["params"].get("arguments") or {})
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""

PROFILE = "name: tools\nextends: offline\nmcp:\n  deny_tools: [secret_*]\n"


def records(codex_home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (codex_home / "audit.log").read_text().splitlines()]


def text(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def wrapped(env: Mapping[str, str], workspace: Path, *flags: str) -> StdioServerParameters:
    (workspace / "server.py").write_text(SERVER)
    return StdioServerParameters(
        command=CODEX_BOX,
        args=["mcp", "wrap", *flags, "--", SANDBOX_PYTHON, "server.py"],
        env={**env, "CODEX_BOX_BACKEND": "native"},
        cwd=str(workspace),
    )


def test_a_wrapped_server_is_filtered_audited_and_sandboxed(
    base_env: dict[str, str], workspace: Path, codex_home: Path, tmp_path: Path
) -> None:
    (codex_home / "profiles").mkdir()
    (codex_home / "profiles" / "tools.yaml").write_text(PROFILE)
    outside = tmp_path / "outside.txt"
    outside.write_text("host's own")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    params = wrapped(base_env, workspace, "--profile", "tools", "--deny-tool", "delete_*")

    async def main() -> Any:
        async with Client(params) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            echoed = await client.call_tool("echo", {"token": "ghp_" + "a" * 36, "q": "hi"})
            refused = []
            for name in ("delete_all", "secret_dump"):
                with pytest.raises(MCPError) as caught:
                    await client.call_tool(name, {})
                refused.append(str(caught.value))
            connected = await client.call_tool("connect", {"port": port})
            wrote = await client.call_tool("write", {"path": str(outside)})
            received = json.loads(text(await client.call_tool("received", {})))
            return tools, echoed, refused, (connected, wrote), received

    try:
        tools, echoed, refused, (connected, wrote), received = anyio.run(main)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing from the sandbox reached the host's listener
    finally:
        listener.close()
    assert tools == ["echo", "connect", "write", "received"]
    assert not echoed.is_error and '"q": "hi"' in text(echoed)
    assert "'delete_all' is refused by codex-box: denied (delete_*)" in refused[0]
    assert "'secret_dump' is refused by codex-box: denied (secret_*)" in refused[1]
    assert connected.is_error and text(connected).startswith("failed:"), text(connected)
    assert wrote.is_error and text(wrote).startswith("failed:"), text(wrote)
    assert outside.read_text() == "host's own"
    assert not (workspace / "outside.txt").exists()
    calls = [r for r in received if r.startswith("tools/call")]
    assert calls == ["tools/call echo", "tools/call connect", "tools/call write",
                     "tools/call received"]  # fmt: skip
    assert "tools/list" in received

    log = records(codex_home)
    mcp_session = log[0]["session_id"]
    assert mcp_session.startswith("mcp-") and {r["session_id"] for r in log} == {mcp_session}
    launch = [r for r in log if r["operation"] == "command_exec"]
    assert launch[0]["profile"] == "tools" and "server.py" in launch[0]["target"]
    assert launch[-1]["phase"] == "ended"
    tool_calls = [r for r in log if r["operation"] == "mcp_tool_call"]
    shown = [(r["tool"], r["decision"], r["phase"], r.get("tool_error")) for r in tool_calls]
    assert shown == [
        ("echo", "allowed", "decided", None), ("echo", "allowed", "ended", False),
        ("delete_all", "denied", "decided", None), ("secret_dump", "denied", "decided", None),
        ("connect", "allowed", "decided", None), ("connect", "allowed", "ended", True),
        ("write", "allowed", "decided", None), ("write", "allowed", "ended", True),
        ("received", "allowed", "decided", None), ("received", "allowed", "ended", False),
    ]  # fmt: skip
    assert "ghp_" not in tool_calls[0]["target"] and "[REDACTED]" in tool_calls[0]["target"]
    assert tool_calls[0]["run_id"] == tool_calls[1]["run_id"] != tool_calls[4]["run_id"]
    assert all(r["profile"] == "tools" for r in tool_calls)


def test_the_server_command_is_judged_by_the_policy_and_usage_is_checked(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    def wrap(*args: str, before: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CODEX_BOX, "mcp", *before, "wrap", *args],
            cwd=workspace,
            env={**base_env, "CODEX_BOX_BACKEND": "native"},
            input="",
            capture_output=True,
            text=True,
            timeout=60,
        )

    unverified = wrap("--policy-mode", "enforce", "--", SANDBOX_PYTHON, "server.py")
    assert unverified.returncode == 126, unverified.stderr
    assert unverified.stdout == ""  # stdout is the protocol: the refusal goes to stderr
    assert "cannot verify this command" in unverified.stderr
    empty = wrap()
    assert empty.returncode == 2 and "no server command" in empty.stderr
    bad = wrap("--profile", "nope", "--", "true")
    assert bad.returncode == 125 and bad.stdout == "" and "nope" in bad.stderr
    # `codex-box mcp`'s own options are wrap's too; given twice, a usage error.
    outer = wrap("--", "true", before=("--profile", "nope"))
    assert outer.returncode == 125 and "nope" in outer.stderr
    twice = wrap("-p", "offline", "--", "true", before=("-p", "workspace"))
    assert twice.returncode == 2 and "given twice" in twice.stderr
    typo = wrap("--deny-tools", "x", "--", "true")
    assert typo.returncode == 2 and "No such option" in typo.stderr
    # The server's exit code is ours; with stdin closed at once, it ends.
    ended = wrap("--", "sh", "-c", "exit 7")
    assert ended.returncode == 7 and ended.stdout == ""
