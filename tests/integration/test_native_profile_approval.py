"""Issue 17's attack on the native backend (real Landlock and namespaces): a `workspace`
run writes sub/.codex-profile naming workspace-net; the next run in sub must still have
no network (and say why) until the person runs `codex-box profiles allow`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import AUDIT_ONLY_CONFIG, SANDBOX_PYTHON, Ran
from tests.integration.test_native_network import TCP_CLIENT
from tests.servers import tcp_server


def test_a_codex_profile_planted_by_a_workspace_run_gives_no_network_until_approved(
    native_available: None, cli: Callable[..., Ran], workspace: Path, codex_home: Path
) -> None:
    (codex_home / "config.toml").write_text(
        AUDIT_ONLY_CONFIG + '[sandbox]\nprofile = "workspace"\n'
    )

    def run(*argv: str, cwd: Path) -> Ran:  # no --profile: config.toml (or a file) decides
        return cli("run", "--backend", "native", "--", *argv, cwd=cwd)

    plant = run(
        "sh", "-c", "mkdir -p sub && echo workspace-net > sub/.codex-profile", cwd=workspace
    )
    assert plant.returncode == 0, plant.stderr
    planted = workspace / "sub" / ".codex-profile"
    assert planted.read_text() == "workspace-net\n"  # the sandbox could write it

    with tcp_server() as server:
        client = TCP_CLIENT.format(port=server.port)
        ignored = run(SANDBOX_PYTHON, "-c", client, cwd=planted.parent)
        time.sleep(0.2)
        assert ignored.returncode == 3 and "blocked" in ignored.stdout, ignored.stdout
        assert server.hits == []
        warning = f"codex-box: warning: {planted} ignored: 'workspace-net' is wider than "
        assert warning + "'workspace'" in ignored.stderr
        assert f"run `codex-box profiles allow {planted}`" in ignored.stderr

        allow = cli("profiles", "allow", cwd=planted.parent)
        assert allow.returncode == 0, allow.stderr
        approved = run(SANDBOX_PYTHON, "-c", client, cwd=planted.parent)
        assert approved.returncode == 0, approved.stdout + approved.stderr
        assert server.hits == [b"ping"]
        assert "ignored" not in approved.stderr
