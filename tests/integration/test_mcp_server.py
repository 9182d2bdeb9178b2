"""``codex-box mcp`` driven by the MCP SDK's own stdio client: tools listed and called,
refusals as tool errors (a widening, ``rm -rf /``, an unverified command), output caps,
file tools, sessions, elicitation, and the audit records each call leaves (with the
MCP session's id)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult, ElicitResult

from orchestrator.mcp.capture import CAP
from tests.conftest import CODEX_BOX, SANDBOX_PYTHON

pytestmark = pytest.mark.usefixtures("native_available")
TOOLS = {
    "run", "session_start", "exec", "session_stop", "check", "profiles", "explain",
    "read_file", "write_file", "list_dir",
}  # fmt: skip


@asynccontextmanager
async def connected(
    env: Mapping[str, str], workspace: Path, *flags: str, **client: Any
) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=CODEX_BOX,
        args=["mcp", "--workspace", str(workspace), *flags],
        env={**env, "CODEX_BOX_BACKEND": "native"},
        cwd=str(workspace),
    )
    async with Client(params, **client) as session:
        yield session


def serve(
    env: Mapping[str, str], workspace: Path, *flags: str, **client: Any
) -> Callable[[Callable[[Client], Any]], Any]:
    """Run ``body(client)`` against a fresh server."""

    def go(body: Callable[[Client], Any]) -> Any:
        async def main() -> Any:
            async with connected(env, workspace, *flags, **client) as session:
                return await body(session)

        return anyio.run(main)

    return go


def records(codex_home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (codex_home / "audit.log").read_text().splitlines()]


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def error(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_the_tools_are_listed_with_schemas_and_a_run_is_audited_with_the_mcp_session(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    async def body(client: Client) -> Any:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        ran = data(await client.call_tool("run", {"argv": ["echo", "hi"]}))
        shell = data(await client.call_tool("run", {"command": "echo $((1+2)) >&2; exit 3"}))
        passed = data(await client.call_tool("run", {"command": "echo $X", "env": ["X=1"]}))
        (workspace / "sub").mkdir()
        passed = {
            **passed,
            "pwd": data(await client.call_tool("run", {"argv": ["pwd"], "cwd": "sub"})),
        }
        withheld = await client.call_tool("run", {"argv": ["true"], "env": ["PATH"]})
        slow = data(await client.call_tool("run", {"argv": ["sleep", "30"], "timeout": 1}))
        explained = data(await client.call_tool("explain", {}))
        listed = data(await client.call_tool("profiles", {}))
        return tools, ran, shell, (passed, withheld, slow), explained, listed

    tools, ran, shell, more, explained, listed = serve(
        base_env, workspace, "--profile", "workspace"
    )(body)
    passed, withheld, slow = more
    assert passed["stdout"]["text"] == "1\n"
    assert passed["pwd"]["stdout"]["text"] == f"{workspace}/sub\n"
    assert "an agent passes NAME=VALUE only" in error(withheld)
    assert slow["timed_out"] and slow["exit_code"] == 124
    assert set(tools) == TOOLS
    assert {"argv", "command", "cwd", "timeout", "env", "profile"} <= set(
        tools["run"].input_schema["properties"]
    )
    assert ran["exit_code"] == 0 and ran["backend"] == "native"
    assert ran["stdout"] == {"text": "hi\n", "bytes": 3, "truncated": False}
    assert shell["exit_code"] == 3 and shell["stderr"]["text"] == "3\n"
    assert "duration_ms" in ran and "decision" in ran
    mcp_session = explained["mcp_session"]
    assert mcp_session.startswith("mcp-") and ran["session_id"] == mcp_session
    assert explained["profile"] == "workspace"
    allowed = {p["name"]: p["allowed_here"] for p in listed["profiles"]}
    assert allowed["offline"] and allowed["workspace"] and not allowed["trusted"]
    mine = [r for r in records(codex_home) if r["run_id"] == ran["run_id"]]
    assert {r["operation"] for r in mine} >= {"command_exec", "profile_resolve"}
    assert all(r["session_id"] == mcp_session for r in records(codex_home))
    # The questions launch nothing, and still leave their record.
    asked = [r["tool"] for r in records(codex_home) if r["operation"] == "mcp_tool_call"]
    assert asked == ["explain", "profiles"]


def test_a_wider_profile_is_refused_and_audited_and_a_narrower_one_runs(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    async def body(client: Client) -> Any:
        widened = await client.call_tool("run", {"argv": ["true"], "profile": "workspace-net"})
        session = await client.call_tool("session_start", {"profile": "trusted"})
        narrowed = data(await client.call_tool("run", {"argv": ["true"], "profile": "offline"}))
        return widened, session, narrowed

    widened, session, narrowed = serve(base_env, workspace, "--profile", "workspace")(body)
    assert "wider than this server's workspace" in error(widened)
    assert "network.mode none → full" in error(widened)
    assert "wider" in error(session)
    assert narrowed["profile"] == "offline" and narrowed["exit_code"] == 0
    denied = [r for r in records(codex_home) if r["decision"] == "denied"]
    assert [r["operation"] for r in denied] == ["command_exec", "session_start"]
    assert all("wider than this server's" in r["reason"] for r in denied)


def test_rm_rf_root_is_refused_as_forbidden_and_an_unverified_command_needs_approval(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    async def body(client: Client) -> Any:
        judged = data(await client.call_tool("check", {"command": "rm -rf /"}))
        removed = await client.call_tool("run", {"argv": ["rm", "-rf", "/"]})
        unverified = await client.call_tool("run", {"argv": ["frobnicate-unknown"]})
        return judged, removed, unverified

    judged, removed, unverified = serve(
        base_env, workspace, "--profile", "workspace", "--policy-mode", "enforce"
    )(body)
    assert judged["decision"] == "forbidden" and judged["findings"]
    assert "forbids this command" in error(removed)
    text = error(unverified)
    assert "not approved" in text and "--approve" in text and "elicitation" in text
    refused = [r for r in records(codex_home) if r["operation"] == "command_exec"]
    assert [r["policy_decision"] for r in refused] == ["forbidden", "unverified"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # input-required round / mid-call request
@pytest.mark.parametrize("approve", [True, False])
def test_an_unverified_command_is_put_to_the_person_through_elicitation(
    base_env: dict[str, str], workspace: Path, codex_home: Path, mode: str, approve: bool
) -> None:
    asked: list[str] = []

    async def answer(_context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": approve})

    async def body(client: Client) -> Any:
        return await client.call_tool("run", {"command": "frobnicate-unknown || true"})

    result = serve(
        base_env,
        workspace,
        "--profile",
        "workspace",
        "--policy-mode",
        "enforce",
        elicitation_callback=answer,
        mode=mode,
    )(body)
    assert len(asked) == 1 and "unverified" in asked[0]
    if approve:
        assert data(result)["exit_code"] == 0
    else:
        assert "not approved" in error(result)
    approvals = [r for r in records(codex_home) if r["operation"] == "approval"]
    assert approvals[0]["approved_by"] == "mcp elicitation"
    assert approvals[0]["outcome"] == ("approved" if approve else "refused")


def test_output_is_capped_with_its_byte_count(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    ten_mb = 10 * 1024 * 1024
    script = f"import sys; sys.stdout.write('x' * {ten_mb}); sys.stderr.write('e')"

    async def body(client: Client) -> Any:
        return data(await client.call_tool("run", {"argv": [SANDBOX_PYTHON, "-c", script]}))

    result = serve(base_env, workspace, "--profile", "workspace")(body)
    assert result["exit_code"] == 0
    assert result["stdout"]["bytes"] == ten_mb and result["stdout"]["truncated"]
    assert len(result["stdout"]["text"]) == CAP
    assert result["stderr"] == {"text": "e", "bytes": 1, "truncated": False}


def test_the_file_tools_stay_in_the_workspace_and_are_audited(
    base_env: dict[str, str], workspace: Path, codex_home: Path, tmp_path: Path
) -> None:
    (workspace / ".git").mkdir()
    (tmp_path / "outside").write_text("secret")
    os.symlink(tmp_path / "outside", workspace / "link")

    async def body(client: Client) -> Any:
        wrote = data(
            await client.call_tool("write_file", {"path": "src/../a.txt", "content": "hé"})
        )
        read = data(await client.call_tool("read_file", {"path": "a.txt"}))
        listed = data(await client.call_tool("list_dir", {"path": "."}))
        bad = [
            await client.call_tool("write_file", {"path": ".git/config", "content": "x"}),
            await client.call_tool("write_file", {"path": ".codex-profile", "content": "x"}),
            await client.call_tool("read_file", {"path": "../outside"}),
            await client.call_tool("read_file", {"path": "link"}),
            await client.call_tool("write_file", {"path": "link", "content": "x"}),
        ]
        return wrote, read, listed, bad

    wrote, read, listed, bad = serve(base_env, workspace, "--profile", "workspace")(body)
    assert wrote == {"path": "a.txt", "bytes": 3}
    assert read["content"] == "hé" and not read["truncated"]
    assert {"name": "link", "type": "symlink"}.items() <= next(
        e for e in listed["entries"] if e["name"] == "link"
    ).items()
    texts = [error(b) for b in bad]
    assert "protected path" in texts[0] and "protected path" in texts[1]
    assert "outside the workspace" in texts[2]
    assert "symlink" in texts[3] and "symlink" in texts[4]
    assert (tmp_path / "outside").read_text() == "secret"
    ops = [(r["operation"], r["decision"]) for r in records(codex_home)]
    assert ops.count(("file_write", "allowed")) == 1 and ops.count(("file_read", "allowed")) == 2
    assert ops.count(("file_write", "denied")) == 3 and ops.count(("file_read", "denied")) == 1


def test_a_write_neither_blocks_on_a_fifo_nor_goes_through_a_hard_link(
    base_env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    os.mkfifo(workspace / "pipe")
    (tmp_path / "outside").write_text("secret")
    os.link(tmp_path / "outside", workspace / "linked")

    async def body(client: Client) -> Any:
        return [
            await client.call_tool("write_file", {"path": "pipe", "content": "x"}),
            await client.call_tool("write_file", {"path": "linked", "content": "x"}),
        ]

    fifo, linked = [error(r) for r in serve(base_env, workspace, "--profile", "workspace")(body)]
    assert "No such device or address" in fifo and "a FIFO" in fifo  # no reader: not waited on
    assert "not a plain file of its own" in linked
    assert (tmp_path / "outside").read_text() == "secret"


def test_a_read_only_profile_refuses_writes(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    async def body(client: Client) -> Any:
        return await client.call_tool("write_file", {"path": "a.txt", "content": "x"})

    assert "does not let anything write" in error(
        serve(base_env, workspace, "--profile", "offline")(body)
    )
    assert not (workspace / "a.txt").exists()


def test_a_session_keeps_state_across_execs_and_only_its_own_sessions_are_reached(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    async def body(client: Client) -> Any:
        started = data(await client.call_tool("session_start", {}))
        sid = started["id"]
        first = data(await client.call_tool("exec", {"session": sid, "command": "echo 1 > n"}))
        second = data(await client.call_tool("exec", {"session": sid, "argv": ["cat", "n"]}))
        (workspace / "sub").mkdir()
        inner = data(
            await client.call_tool("exec", {"session": sid, "argv": ["pwd"], "cwd": "sub"})
        )
        foreign = await client.call_tool("exec", {"session": "nope", "argv": ["true"]})
        stopped = data(await client.call_tool("session_stop", {"session": sid}))
        return started, first, second, foreign, stopped, inner

    started, first, second, foreign, stopped, inner = serve(
        base_env, workspace, "--profile", "workspace"
    )(body)
    assert started["name"].startswith("mcp-")
    assert first["exit_code"] == 0 and second["stdout"]["text"] == "1\n"
    assert inner["stdout"]["text"] == f"{workspace}/sub\n"
    assert "not started by this server" in error(foreign)
    assert stopped["stopped"]
    starts = [r for r in records(codex_home) if r["operation"] == "session_start"]
    assert starts[0]["target"] == started["name"]


def test_a_cancelled_call_stops_its_command_and_records_the_end_as_cancelled(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    async def body(client: Client) -> Any:
        with anyio.move_on_after(3):
            await client.call_tool("run", {"argv": ["sleep", "60"]})
        with anyio.fail_after(20):
            while not [r for r in records(codex_home) if r.get("cancelled")]:
                await anyio.sleep(0.2)
        return data(await client.call_tool("run", {"argv": ["true"]}))

    assert serve(base_env, workspace, "--profile", "workspace")(body)["exit_code"] == 0
    ended = [r for r in records(codex_home) if r.get("phase") == "ended"]
    assert ended[0]["target"] == "sleep 60" and ended[0]["cancelled"] is True
    assert ended[0]["duration_ms"] < 20_000


def _launched(metrics: str) -> dict[str, float]:
    """The serve side's runs and execs, by kind (its ``codex_box_runs_total``)."""
    counted: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("codex_box_runs_total{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            counted[kind] = counted.get(kind, 0) + float(line.rsplit(" ", 1)[1])
    return counted


def test_with_server_runs_and_execs_go_through_the_api_and_a_widening_never_reaches_it(
    base_env: dict[str, str], workspace: Path, codex_home: Path, serve_factory: Any
) -> None:
    base_env["CODEX_BOX_BACKEND"] = "native"  # the serve side's backend

    async def body(client: Client) -> Any:
        ran = data(await client.call_tool("run", {"command": "echo hi; echo err >&2; exit 3"}))
        big = data(await client.call_tool("run", {"command": f"head -c {CAP + 10} /dev/zero"}))
        sid = data(await client.call_tool("session_start", {}))["id"]
        wrote = data(await client.call_tool("exec", {"session": sid, "command": "echo 1 > n"}))
        read = data(await client.call_tool("exec", {"session": sid, "argv": ["cat", "n"]}))
        widened = await client.call_tool("run", {"argv": ["true"], "profile": "workspace-net"})
        refused = await client.call_tool("session_start", {"profile": "trusted"})
        stopped = data(await client.call_tool("session_stop", {"session": sid}))
        mcp_session = data(await client.call_tool("explain", {}))["mcp_session"]
        return ran, big, (wrote, read, stopped), (widened, refused), mcp_session

    with serve_factory() as served:
        ran, big, session, refusals, mcp_session = serve(
            base_env, workspace, "--profile", "workspace", "--server", served.address
        )(body)
        launched = _launched(served.client().metrics())
        left = served.client().sessions()
    wrote, read, stopped = session
    assert ran["exit_code"] == 3 and "decision" in ran and "duration_ms" in ran
    assert ran["stdout"] == {"text": "hi\n", "bytes": 3, "truncated": False}
    assert ran["stderr"]["text"] == "err\n"
    assert big["stdout"]["bytes"] == CAP + 10 and big["stdout"]["truncated"]
    assert len(big["stdout"]["text"]) == CAP
    assert wrote["exit_code"] == 0 and read["stdout"]["text"] == "1\n"
    assert (workspace / "n").read_text() == "1\n" and stopped["stopped"] and left == []
    assert "wider than this server's workspace" in error(refusals[0])
    assert "wider" in error(refusals[1])
    # Two runs and two execs reached the server; the refused ones never did.
    assert launched == {"run": 2, "exec": 2}, launched
    mine = [r for r in records(codex_home) if r.get("run_id") == ran["run_id"]]
    assert mine and all(r["session_id"] != mcp_session for r in mine)  # the server's records
    denied = [r for r in records(codex_home) if r["decision"] == "denied"]
    assert [r["operation"] for r in denied] == ["command_exec", "session_start"]
    assert all(r["session_id"] == mcp_session for r in denied)


def test_with_server_a_policy_refusal_is_a_tool_error_and_a_cancelled_call_stops_its_command(
    base_env: dict[str, str], workspace: Path, codex_home: Path, serve_factory: Any
) -> None:
    base_env["CODEX_BOX_BACKEND"] = "native"

    async def body(client: Client) -> Any:
        removed = error(await client.call_tool("run", {"argv": ["rm", "-rf", "/"]}))
        assert "forbids this command" in removed  # --approve does not approve it
        with anyio.move_on_after(3):
            await client.call_tool("run", {"argv": ["sleep", "60"]})
        with anyio.fail_after(20):
            while not [r for r in records(codex_home) if r.get("cancelled")]:
                await anyio.sleep(0.2)
        return data(await client.call_tool("run", {"argv": ["true"]}))

    with serve_factory() as served:
        flags = (
            "-p",
            "workspace",
            "--policy-mode",
            "enforce",
            "--approve",
            "--server",
            served.address,
        )
        assert serve(base_env, workspace, *flags)(body)["exit_code"] == 0
        assert _launched(served.client().metrics())["run"] == 3  # the refused one included
    ended = [r for r in records(codex_home) if r.get("phase") == "ended"]
    assert ended[0]["target"] == "sleep 60" and ended[0]["cancelled"] is True
    assert ended[0]["duration_ms"] < 20_000
