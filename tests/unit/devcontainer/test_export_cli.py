"""``codex-box devcontainer export``: the files it writes, where, the one-line errors and
exit codes, what it protects inside a writable workspace."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import json5
import pytest

from orchestrator.core.errors import Refused
from orchestrator.core.resources import seccomp_dir
from orchestrator.devcontainer.export_files import export, protected_names
from orchestrator.profiles.store import ProfileStore
from tests.conftest import Ran

STORE = ProfileStore(codex_home=Path("/nonexistent-codex-home"))


def test_a_new_file_and_its_seccomp_json_beside_it(
    cli: Callable[..., Ran], workspace: Path
) -> None:
    done = cli("devcontainer", "export", "--profile", "offline")
    assert done.returncode == 0, done.stderr
    file = workspace / ".devcontainer" / "devcontainer.json"
    seccomp = workspace / ".devcontainer" / "codex-box-seccomp-offline.json"
    assert f"wrote {file} for profile offline" in done.stdout
    assert seccomp.read_bytes() == (seccomp_dir() / "offline.json").read_bytes()
    config = json5.loads(file.read_text())
    assert config["image"] == "codex-box/base"
    ref = "--security-opt=seccomp=${localWorkspaceFolder}/.devcontainer/"
    ref += "codex-box-seccomp-offline.json"
    assert ref in config["runArgs"] and "--network=none" in config["runArgs"]
    assert str(workspace) not in file.read_text()  # nothing of this machine's paths


def test_an_existing_file_needs_merge(cli: Callable[..., Ran], workspace: Path) -> None:
    (workspace / ".devcontainer.json").write_text(
        '// mine\n{"image": "debian", "privileged": true}'
    )
    refused = cli("devcontainer", "export", "-p", "workspace")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"codex-box: {workspace}/.devcontainer.json exists — pass --merge to merge the profile "
        "into it, or --output"
    ]
    merged = cli("devcontainer", "export", "-p", "workspace", "--merge", "--json")
    assert merged.returncode == 0, merged.stderr
    report = json.loads(merged.stdout)
    assert report["file"] == str(workspace / ".devcontainer.json")
    assert report["seccomp"] == str(workspace / "codex-box-seccomp-workspace.json")
    assert "removed privileged: a privileged container is the host's root" in report["notes"]
    text = (workspace / ".devcontainer.json").read_text()
    assert "// mine" in text and json5.loads(text)["image"] == "debian"
    # Both files the export wrote are read-only inside the container.
    assert json5.loads(text)["mounts"] == [
        f"type=bind,source=${{localWorkspaceFolder}}/{name},"
        f"target=/workspaces/${{localWorkspaceFolderBasename}}/{name},readonly"
        for name in (".devcontainer.json", "codex-box-seccomp-workspace.json")
    ]


@pytest.mark.parametrize(
    ("profile", "words"),
    [("trusted", "profile trusted is no sandbox"), ("net-read-only", "profile net-read-only")],
)
def test_a_profile_devcontainer_up_cannot_enforce_is_126(
    cli: Callable[..., Ran], workspace: Path, profile: str, words: str
) -> None:
    done = cli("devcontainer", "export", "--profile", profile)
    assert done.returncode == 126
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    assert not (workspace / ".devcontainer").exists()


def test_an_output_outside_the_workspace_names_its_seccomp_json_absolutely(
    cli: Callable[..., Ran], workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "elsewhere" / "dc.json"
    done = cli("devcontainer", "export", "-p", "offline", "-o", str(out))
    assert done.returncode == 0, done.stderr
    args = json5.loads(out.read_text())["runArgs"]
    assert f"--security-opt=seccomp={out.parent}/codex-box-seccomp-offline.json" in args
    assert "named by its absolute path" in done.stdout


def test_an_unknown_profile_and_a_broken_file_are_one_line_each(
    cli: Callable[..., Ran], workspace: Path
) -> None:
    unknown = cli("devcontainer", "export", "-p", "ofline")
    assert unknown.returncode == 125 and "offline" in unknown.stderr
    (workspace / ".devcontainer.json").write_text('{"image": ')
    broken = cli("devcontainer", "export", "-p", "offline", "--merge")
    assert broken.returncode == 125 and "not valid JSONC" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1


def test_protected_names_are_those_there_now_and_the_exports_own(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".vscode").symlink_to("/etc")  # a bind would follow it: left out
    (tmp_path / ".envrc").write_text("")
    out = tmp_path / ".devcontainer" / "devcontainer.json"
    assert protected_names(STORE.get("workspace"), tmp_path, (out,)) == (
        ".git", ".devcontainer", ".envrc",
    )  # fmt: skip
    assert protected_names(STORE.get("offline"), tmp_path, (out,)) == ()


def test_a_deny_read_path_inside_the_workspace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key.pem").write_text("k")
    profile = dataclasses.replace(STORE.get("workspace"), deny_read=("secrets/*.pem",))
    out = tmp_path / ".devcontainer" / "devcontainer.json"
    with pytest.raises(Refused, match=r"hides .*key\.pem \(filesystem\.deny_read\)"):
        export(profile, workspace=tmp_path, output=out, merge=False, home="/nonexistent")
    assert not out.exists()
