"""``codex-box devcontainer check``: the report, --json, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Ran


def test_check_reports_and_exits_126_on_a_refusal(cli: Callable[..., Ran], workspace: Path) -> None:
    folder = workspace / ".devcontainer"
    folder.mkdir()
    (folder / "devcontainer.json").write_text(
        '{\n  // ours\n  "image": "debian",\n  "runArgs": ["--init", "--privileged",],\n}\n'
    )
    done = cli("devcontainer", "check", "--profile", "workspace")
    assert done.returncode == 126, done.stderr
    assert "runArgs[1] --privileged: refused" in done.stdout
    report = json.loads(cli("devcontainer", "check", "--json", "-p", "workspace").stdout)
    assert report["profile"] == "workspace"
    assert [(f["key"], f["action"]) for f in report["findings"]] == [
        ("runArgs[0]", "changed"),  # codex-box always runs an init
        ("runArgs[1]", "refused"),
    ]
    (folder / "devcontainer.json").write_text('{"image": "debian", "runArgs": ["--init"]}')
    changed = cli("devcontainer", "check", str(folder / "devcontainer.json"), "-p", "offline")
    assert changed.returncode == 0, changed.stderr
    assert "runArgs[0] --init: changed — codex-box always runs an init" in changed.stdout
    (folder / "devcontainer.json").write_text('{"image": "debian"}')
    clean = cli("devcontainer", "check", str(folder / "devcontainer.json"), "-p", "offline")
    assert clean.returncode == 0 and "nothing refused or changed" in clean.stdout


def test_check_without_a_file_or_with_a_broken_one_is_125(
    cli: Callable[..., Ran], workspace: Path
) -> None:
    missing = cli("devcontainer", "check")
    assert missing.returncode == 125 and "no .devcontainer/devcontainer.json" in missing.stderr
    (workspace / ".devcontainer.json").write_text('{"image": ')
    broken = cli("devcontainer", "check")
    assert broken.returncode == 125 and "not valid JSONC" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1


def test_check_judges_a_bind_inside_the_workspace_as_run_does(
    cli: Callable[..., Ran], workspace: Path
) -> None:
    (workspace / ".devcontainer.json").write_text(
        '{"image": "debian", '
        '"mounts": ["source=${localWorkspaceFolder}/cache,target=/c,type=bind"]}'
    )
    done = cli("devcontainer", "check", "-p", "workspace")
    assert done.returncode == 0, done.stdout
    assert "mounts[0]" in done.stdout and ": changed" in done.stdout
