"""orchestrator.mcp.box and files: narrowing (never widening), the workspace's
confinement, the file tools' refusals and caps, each audited — without the SDK or a
sandbox (nothing here launches a command)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.errors import Refused, UsageError
from orchestrator.mcp import capture, files, questions
from orchestrator.mcp.box import Box, argv_of, env_of
from orchestrator.mcp.files import Files
from orchestrator.runner.context import HostContext

SESSION = "mcp-0123456789ab"


def make_box(home: Path, codex_home: Path, workspace: Path, profile: str | None) -> Box:
    environ = {"HOME": str(home), "CODEX_HOME": str(codex_home), "CODEX_BOX_SESSION": SESSION}
    context = HostContext.from_environ(environ, cwd=str(workspace))
    return Box(context, profile=profile, workspace=str(workspace))


@pytest.fixture
def box(home: Path, codex_home: Path, workspace: Path) -> Box:
    return make_box(home, codex_home, workspace, "workspace")


def records(codex_home: Path) -> list[dict[str, Any]]:
    log = codex_home / "audit.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_a_tool_may_narrow_the_servers_profile_but_never_widen_it(
    box: Box, codex_home: Path
) -> None:
    assert box.narrow(None) == "workspace" and box.narrow("workspace") == "workspace"
    assert box.narrow("offline") == "offline" and box.narrow("read-only") == "offline"
    for wider in ("workspace-net", "trusted"):
        with pytest.raises(Refused, match="wider than this server's workspace"):
            box.narrow(wider, argv=("make",))
    with pytest.raises(Refused):
        box.narrow("trusted", session=True)
    with pytest.raises(UsageError, match="profile 'nope'"):
        box.narrow("nope")
    denied = records(codex_home)
    assert [(r["operation"], r["decision"]) for r in denied] == [
        ("command_exec", "denied"),
        ("command_exec", "denied"),
        ("session_start", "denied"),
    ]
    assert {r["session_id"] for r in denied} == {SESSION}


def test_an_offline_server_cannot_be_widened_to_workspace(
    home: Path, codex_home: Path, workspace: Path
) -> None:
    box = make_box(home, codex_home, workspace, "offline")
    with pytest.raises(Refused, match=r"filesystem\.workspace read-only → read-write"):
        box.narrow("workspace")
    assert {p["name"] for p in questions.profiles(box)["profiles"] if p["allowed_here"]} == {
        "offline"
    }


def test_the_command_is_argv_or_a_shell_line_and_cwd_stays_in_the_workspace(
    box: Box, workspace: Path
) -> None:
    assert argv_of(["ls", "-l"], None) == ("ls", "-l")
    assert argv_of(None, "ls | wc") == ("sh", "-c", "ls | wc")
    for argv, command in ((None, None), (["ls"], "ls")):
        with pytest.raises(UsageError, match="either argv or command"):
            argv_of(argv, command)
    (workspace / "src").mkdir()
    assert box.inside("src") == str(workspace / "src") and box.inside(None) == str(workspace)
    for bad in ("..", "/etc", "missing"):
        with pytest.raises(UsageError, match="not a directory inside the workspace"):
            box.inside(bad)


def test_check_and_explain_answer_without_running(box: Box) -> None:
    judged = questions.check(box, ("rm", "-rf", "/"))
    assert judged["decision"] == "forbidden" and judged["profile"] == "workspace"
    explained = questions.explain(box)
    assert explained["profile"] == "workspace" and explained["mcp_session"] == SESSION
    assert explained["effective"]["name"] == "workspace"


def test_the_file_tools_write_read_and_list_in_the_workspace(
    box: Box, workspace: Path, codex_home: Path
) -> None:
    tools = Files(box)
    (workspace / "d").mkdir()
    assert tools.write_file("d/a.txt", "hello") == {"path": "d/a.txt", "bytes": 5}
    assert tools.read_file(str(workspace / "d" / "a.txt"))["content"] == "hello"
    assert [e["name"] for e in tools.list_dir("d")["entries"]] == ["a.txt"]
    ops = [(r["operation"], r["decision"], r.get("bytes")) for r in records(codex_home)]
    assert ops == [
        ("file_write", "allowed", 5),
        ("file_read", "allowed", 5),
        ("file_read", "allowed", None),
    ]


def test_the_file_tools_refuse_what_the_profile_or_the_workspace_does_not_allow(
    box: Box, workspace: Path, codex_home: Path, tmp_path: Path
) -> None:
    tools = Files(box)
    (workspace / ".git").mkdir()
    (tmp_path / "outside").write_text("secret")
    os.symlink(tmp_path, workspace / "up")
    with pytest.raises(Refused, match="protected path"):
        tools.write_file(".git/hooks/pre-commit", "x")
    with pytest.raises(Refused, match="protected path"):
        tools.write_file(".codex-profile", "trusted")
    with pytest.raises(UsageError, match="outside the workspace"):
        tools.read_file("../outside")
    with pytest.raises(Refused, match="symlinks"):
        tools.read_file("up/outside")
    with pytest.raises(Refused, match="symlinks"):
        tools.write_file("up/outside", "x")
    with pytest.raises(Refused, match="not a regular file"):
        tools.read_file(".git")
    assert (tmp_path / "outside").read_text() == "secret"
    assert not (workspace / ".codex-profile").exists()
    denied = [r["operation"] for r in records(codex_home) if r["decision"] == "denied"]
    assert denied == ["file_write", "file_write", "file_read", "file_write", "file_read"]


def test_a_read_only_profile_refuses_every_write(
    home: Path, codex_home: Path, workspace: Path
) -> None:
    tools = Files(make_box(home, codex_home, workspace, "offline"))
    with pytest.raises(Refused, match="does not let anything write"):
        tools.write_file("a.txt", "x")
    assert not (workspace / "a.txt").exists()


def test_reads_and_writes_are_capped(
    box: Box, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "READ_CAP", 4)
    monkeypatch.setattr(files, "WRITE_CAP", 8)
    tools = Files(box)
    (workspace / "big").write_bytes(b"0123456789")
    read = tools.read_file("big")
    assert read["content"] == "0123" and read["bytes"] == 10 and read["truncated"]
    with pytest.raises(Refused, match="more than the 8"):
        tools.write_file("huge", "x" * 9)


def test_a_runs_output_is_capped_and_counted() -> None:
    seen = capture.Capture()
    script = "import os; os.write(1, b'x' * 10_000_000); os.write(2, b'e')"
    try:
        child = subprocess.Popen(
            ["python3", "-c", script], stdin=seen.theirs[0], stdout=seen.theirs[1],
            stderr=seen.theirs[2],
        )  # fmt: skip
    finally:
        seen.handed_over()
    assert child.wait(timeout=30) == 0
    out = seen.finish()
    assert out["stdout"]["bytes"] == 10_000_000 and out["stdout"]["truncated"]
    assert len(out["stdout"]["text"]) == capture.CAP
    assert out["stderr"] == {"text": "e", "bytes": 1, "truncated": False}


def test_a_server_starts_only_with_a_workspace_and_a_known_policy_mode(
    home: Path, codex_home: Path, workspace: Path
) -> None:
    with pytest.raises(UsageError, match="is not a directory"):
        make_box(home, codex_home, workspace / "missing", "workspace")
    context = HostContext.from_environ({"HOME": str(home), "CODEX_HOME": str(codex_home)})
    with pytest.raises(UsageError, match="is not a policy mode"):
        Box(context, profile="workspace", workspace=str(workspace), policy_mode="enfroce")


def test_an_agent_passes_variables_with_their_values_only() -> None:
    assert env_of(["A=1", "B="]) == ("A=1", "B=")
    for bad in ("HOME", "=x"):
        with pytest.raises(UsageError, match="NAME=VALUE only"):
            env_of([bad])


class Recorded:
    """A ``Runs`` that launches nothing: what the tools asked it for."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def run(self, request: Any, stop: Any) -> dict[str, Any]:
        self.calls.append(("run", dict(request)))
        return {"exit_code": 0}

    def start(self, request: Any) -> dict[str, Any]:
        self.calls.append(("start", dict(request)))
        return {"id": f"s{len(self.calls)}"}

    def exec(self, session: str, request: Any, stop: Any) -> dict[str, Any]:
        self.calls.append(("exec", session, dict(request)))
        return {"exit_code": 0}

    def stop(self, session: str) -> bool:
        self.calls.append(("stop", session))
        return True


def test_the_runs_chosen_get_narrowed_requests_and_never_a_widening_one(
    home: Path, codex_home: Path, workspace: Path
) -> None:
    from orchestrator.mcp.sessions import Sessions

    environ = {"HOME": str(home), "CODEX_HOME": str(codex_home), "CODEX_BOX_SESSION": SESSION}
    context = HostContext.from_environ(environ, cwd=str(workspace))
    runs = Recorded()
    box = Box(context, profile="workspace", workspace=str(workspace), runs=runs)
    sessions = Sessions(box)
    (workspace / "src").mkdir()
    box.run(("make",), profile="offline", cwd="src", env=["A=1"], timeout="5")
    sid = sessions.start()["id"]
    sessions.exec(sid, ("true",), cwd="src")
    with pytest.raises(Refused, match="wider"):
        box.run(("make",), profile="workspace-net")
    with pytest.raises(Refused, match="wider"):
        sessions.start("trusted")
    with pytest.raises(UsageError, match="not started by this server"):
        sessions.exec("nope", ("true",))
    sessions.close()
    assert [c[0] for c in runs.calls] == ["run", "start", "exec", "stop"]
    ran, started, executed = runs.calls[0][1], runs.calls[1][1], runs.calls[2]
    assert ran["profile"] == "offline" and ran["workspace"] == str(workspace / "src")
    assert ran["env"] == ["A=1"] and ran["timeout"] == "5" and ran["approve"] is False
    assert started["workspace"] == str(workspace) and started["name"] == "mcp-0123456789ab-1"
    assert executed[1] == sid and executed[2]["cwd"] == str(workspace / "src")
    assert runs.calls[3] == ("stop", sid)


def test_a_malformed_server_address_is_refused_when_the_server_starts() -> None:
    from orchestrator.client import ServerError
    from orchestrator.mcp.api import Remote

    with pytest.raises(ServerError, match="neither unix:PATH nor http"):
        Remote("ftp://x", {})
    assert Remote("unix:/nowhere.sock", {}).address == "unix:/nowhere.sock"
