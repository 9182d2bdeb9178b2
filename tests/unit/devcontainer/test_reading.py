"""``reading``: a devcontainer configuration through the Dev Containers CLI's
``read-configuration`` (merged with the image's metadata) or, without the CLI, the
file itself (json5). The CLI here is a fake script named by ``CODEX_BOX_DEVCONTAINER_CLI``:
no Node, no engine."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.errors import ConfigError, Refused
from orchestrator.devcontainer import reading
from orchestrator.devcontainer.plan import plan
from orchestrator.devcontainer.reading import (
    CLI_ENV,
    _normalised,
    _rehomed,
    cli_path,
    load,
)
from orchestrator.profiles.store import ProfileStore

HOST_WS = "/home/alice/proj"
PLACE = "/workspaces/proj"


# --- _normalised and _rehomed --------------------------------------------------------------


def answer() -> dict[str, Any]:
    """A read-configuration --include-merged-configuration answer as the CLI writes it
    for an image whose devcontainer.metadata adds a user, env, a mount and commands."""
    return {
        "configuration": {
            "name": "proj",
            "image": "mcr.microsoft.com/devcontainers/python:3.12",
            "workspaceFolder": PLACE,
            "containerEnv": {"FILE_ONLY": "1"},
            "runArgs": ["--init"],
            "postCreateCommand": f"pip install -e {PLACE}",
            "configFilePath": {"$mid": 1, "fsPath": f"{HOST_WS}/.devcontainer/devcontainer.json"},
        },
        "workspace": {"workspaceFolder": PLACE, "workspaceMount": f"type=bind,target={PLACE}"},
        "mergedConfiguration": {
            "name": "proj",
            "image": "mcr.microsoft.com/devcontainers/python:3.12",
            "runArgs": ["--init"],
            "remoteUser": "vscode",
            "containerEnv": {"FILE_ONLY": "1", "PYTHONPATH": f"{PLACE}/src:{PLACE}2/lib"},
            "remoteEnv": {"PATH": "${containerEnv:PATH}:/home/vscode/.local/bin", "X": None},
            "mounts": [{"type": "volume", "source": "pipcache", "target": "/home/vscode/.cache"}],
            "privileged": False,
            "capAdd": None,
            "securityOpt": None,
            "forwardPorts": None,
            "init": True,
            "onCreateCommands": ["echo image", ""],
            "updateContentCommands": [],
            "postCreateCommands": [
                {"feature": ["setup.sh", PLACE]},
                f"pip install -e {PLACE}",
            ],
            "postStartCommands": [],
            "postAttachCommands": ["ignored"],
        },
    }


def test_the_merged_configuration_is_the_file_s_plus_the_image_s_on_the_host_path() -> None:
    config = _normalised(answer(), HOST_WS)
    assert config == {
        "name": "proj",
        "image": "mcr.microsoft.com/devcontainers/python:3.12",
        "workspaceFolder": HOST_WS,
        "containerEnv": {"FILE_ONLY": "1", "PYTHONPATH": f"{HOST_WS}/src:{PLACE}2/lib"},
        "runArgs": ["--init"],
        "postCreateCommand": {
            "#0": {"feature": ["setup.sh", HOST_WS]},
            "#1": f"pip install -e {HOST_WS}",
        },
        "remoteUser": "vscode",
        "remoteEnv": {"PATH": "${containerEnv:PATH}:/home/vscode/.local/bin", "X": None},
        "mounts": [{"type": "volume", "source": "pipcache", "target": "/home/vscode/.cache"}],
        "privileged": False,
        "capAdd": None,
        "securityOpt": None,
        "forwardPorts": None,
        "onCreateCommand": {"#0": "echo image"},  # an empty entry is no command
        "updateContentCommand": {},
        "postStartCommand": {},
    }
    assert "configFilePath" not in config
    assert "init" not in config and "postAttachCommand" not in config


def test_without_a_merged_configuration_the_file_s_own_keys_stay() -> None:
    data = answer()
    del data["mergedConfiguration"]
    config = _normalised(data, HOST_WS)
    assert config["postCreateCommand"] == f"pip install -e {HOST_WS}"
    assert "remoteUser" not in config


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (PLACE, HOST_WS),
        (f"{PLACE}/src", f"{HOST_WS}/src"),
        (f"cd {PLACE} && make", f"cd {HOST_WS} && make"),
        (f"{PLACE}:{PLACE}/bin", f"{HOST_WS}:{HOST_WS}/bin"),
        (f"--volume={PLACE}", f"--volume={HOST_WS}"),
        (f"{PLACE}2", f"{PLACE}2"),  # another folder, whose name begins the same
        (f"{PLACE}-old/x", f"{PLACE}-old/x"),
        (f"{PLACE}.git", f"{PLACE}.git"),
        (f"{PLACE}_b", f"{PLACE}_b"),
        (f"{PLACE}2 and {PLACE}", f"{PLACE}2 and {HOST_WS}"),
        ("/workspaces", "/workspaces"),
    ],
)
def test_the_cli_s_workspace_is_rewritten_only_at_a_path_boundary(
    value: str, expected: str
) -> None:
    assert _rehomed(value, PLACE, HOST_WS) == expected


def test_rehoming_walks_lists_and_objects_and_leaves_keys_and_scalars() -> None:
    value = {PLACE: [PLACE, 1, None, True, {"k": f"{PLACE}/a"}]}
    assert _rehomed(value, PLACE, HOST_WS) == {
        PLACE: [HOST_WS, 1, None, True, {"k": f"{HOST_WS}/a"}]
    }


@pytest.mark.parametrize(
    "workspace", [{"workspaceFolder": HOST_WS}, {"workspaceFolder": "relative"}, {}, None]
)
def test_no_rewrite_when_the_cli_s_folder_is_the_host_s_or_not_a_path(
    workspace: dict[str, str] | None,
) -> None:
    data = {"configuration": {"image": "x", "postCreateCommand": "ls relative"}}
    if workspace is not None:
        data["workspace"] = workspace
    assert _normalised(data, HOST_WS) == {"image": "x", "postCreateCommand": "ls relative"}


def test_a_trailing_slash_on_the_cli_s_folder() -> None:
    data = {"configuration": {"x": f"{PLACE}/a"}, "workspace": {"workspaceFolder": PLACE + "/"}}
    assert _normalised(data, HOST_WS) == {"x": f"{HOST_WS}/a"}


def test_a_path_that_only_contains_the_cli_s_workspace_is_left_alone() -> None:
    assert _rehomed(f"/srv{PLACE}/data", PLACE, HOST_WS) == f"/srv{PLACE}/data"
    assert _rehomed("/usr/src/app:/src/bin", "/src", HOST_WS) == f"/usr/src/app:{HOST_WS}/bin"


_ROOT_FOLDER = textwrap.dedent(
    f"""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (384 << 20, 384 << 20))
    from orchestrator.devcontainer.reading import _normalised
    answer = {{"configuration": {{"image": "x", "containerEnv": {{"A": "b"}}}},
               "workspace": {{"workspaceFolder": "/"}}}}
    print(_normalised(answer, {HOST_WS!r}))
    """
)


def test_a_root_workspace_folder_does_not_hang() -> None:
    # In a child with a memory cap and a timeout: the bug loops, appending forever.
    try:
        done = subprocess.run(
            [sys.executable, "-c", _ROOT_FOLDER],
            capture_output=True,
            text=True,
            timeout=4,
            cwd=Path(__file__).resolve().parents[3],
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("_normalised did not return within 4 s")
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout.strip() == "{'image': 'x', 'containerEnv': {'A': 'b'}}"


# --- load: which reader --------------------------------------------------------------------


def test_the_cli_is_the_variable_s_else_devcontainer_on_path(tmp_path: Path) -> None:
    assert cli_path({CLI_ENV: "/opt/dc"}) == "/opt/dc"
    assert cli_path({"PATH": str(tmp_path)}) is None
    tool = tmp_path / "devcontainer"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert cli_path({"PATH": str(tmp_path)}) == str(tool)
    assert cli_path({CLI_ENV: "", "PATH": str(tmp_path)}) == str(tool)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    workspace = tmp_path / "proj"
    (workspace / ".devcontainer").mkdir(parents=True)
    file = workspace / ".devcontainer" / "devcontainer.json"
    file.write_text('{\n  // JSONC\n  "image": "debian",\n  "postCreateCommand": "make",\n}\n')
    return file, str(workspace)


def test_without_the_cli_the_file_is_read_as_jsonc(
    project: tuple[Path, str], tmp_path: Path
) -> None:
    file, workspace = project
    loaded = load(file, workspace, environ={"PATH": str(tmp_path / "nothing-here")})
    assert loaded.via == "json5" and loaded.note == ""
    assert loaded.raw == loaded.config == {"image": "debian", "postCreateCommand": "make"}
    assert (loaded.file, loaded.workspace) == (file, workspace)


FAKE_CLI = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
# Its settings beside it: the CLI runs with a scrubbed environment (reading.CLI_ENVIRON).
with open(__file__ + ".json") as conf:
    settings = json.load(conf)
with open(settings["log"], "a") as log:
    log.write(json.dumps(args) + "\\n")
mode = settings["mode"]
merged = "--include-merged-configuration" in args
if mode == "fail":
    sys.stderr.write("[trace] reading\\nError: boom in devcontainer.json\\n")
    sys.exit(1)
if mode == "fail-silently":
    sys.exit(3)
if mode == "no-merged" and merged:
    sys.stderr.write("cannot inspect the image\\n")
    sys.exit(1)
if mode == "garbage":
    print("not json")
    sys.exit(0)
if mode == "no-configuration":
    print(json.dumps({{"workspace": {{}}}}))
    sys.exit(0)
folder = "/workspaces/" + os.path.basename(args[args.index("--workspace-folder") + 1])
out = {{
    "configuration": {{"image": "debian", "postCreateCommand": "make -C " + folder}},
    "workspace": {{"workspaceFolder": folder}},
}}
if merged:
    # What the CLI makes of an image label asking for ${{localEnv:GITHUB_TOKEN}}: it
    # substitutes the host's value (the file as written never names it).
    out["mergedConfiguration"] = {{
        "remoteUser": "vscode",
        "remoteEnv": {{"GH": os.environ.get("GITHUB_TOKEN", "")}},
        "postCreateCommands": ["echo image", "make -C " + folder],
    }}
print(json.dumps(out))
"""


@pytest.fixture
def fake_cli(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "fake-devcontainer"
    script.write_text(FAKE_CLI.format(python=sys.executable))
    script.chmod(0o755)
    return script, tmp_path / "calls.log"


def environ_for(fake: tuple[Path, Path], mode: str = "ok") -> dict[str, str]:
    script, log = fake
    Path(f"{script}.json").write_text(json.dumps({"log": str(log), "mode": mode}))
    return {"PATH": "/usr/bin:/bin", CLI_ENV: str(script)}


@pytest.fixture(autouse=True)
def _images_are_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """The merged view is asked for only for an image the engine has: here, every one."""
    monkeypatch.setattr(reading, "is_local", lambda *_args: True)


def calls(fake: tuple[Path, Path]) -> list[list[str]]:
    log = fake[1]
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_through_the_cli_merged_and_rehomed(
    project: tuple[Path, str], fake_cli: tuple[Path, Path]
) -> None:
    file, workspace = project
    loaded = load(file, workspace, engine="docker", environ=environ_for(fake_cli))
    assert loaded.via == "devcontainer CLI" and loaded.note == ""
    assert loaded.raw == {"image": "debian", "postCreateCommand": "make"}  # as written
    assert loaded.config["remoteUser"] == "vscode"
    assert loaded.config["postCreateCommand"] == {"#0": "echo image", "#1": f"make -C {workspace}"}
    (argv,) = calls(fake_cli)
    assert argv[:5] == [
        "read-configuration",
        "--workspace-folder",
        workspace,
        "--config",
        str(file),
    ]
    assert "--log-level" in argv and argv[-1] == "--include-merged-configuration"


def test_podman_is_the_cli_s_docker_path(
    project: tuple[Path, str], fake_cli: tuple[Path, Path]
) -> None:
    file, workspace = project
    load(file, workspace, environ=environ_for(fake_cli), engine="podman")
    load(file, workspace, environ=environ_for(fake_cli), engine="docker")
    podman, docker = calls(fake_cli)
    assert podman[-3:-1] == ["--docker-path", "podman"]
    assert "--docker-path" not in docker


def test_without_the_image_the_cli_is_asked_again_unmerged(
    project: tuple[Path, str], fake_cli: tuple[Path, Path]
) -> None:
    file, workspace = project
    loaded = load(file, workspace, engine="docker", environ=environ_for(fake_cli, "no-merged"))
    assert loaded.via == "devcontainer CLI"
    assert loaded.config == {"image": "debian", "postCreateCommand": f"make -C {workspace}"}
    first, second = calls(fake_cli)
    assert first[-1] == "--include-merged-configuration"
    assert second == first[:-1]


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("fail", "(Error: boom in devcontainer.json)"),
        ("fail-silently", "(exit 3)"),
        ("garbage", "(exit 0)"),
        ("no-configuration", "(exit 0)"),
    ],
)
def test_a_cli_that_cannot_read_it_is_one_config_error(
    project: tuple[Path, str], fake_cli: tuple[Path, Path], mode: str, says: str
) -> None:
    file, workspace = project
    with pytest.raises(ConfigError) as info:
        load(file, workspace, engine="docker", environ=environ_for(fake_cli, mode))
    message = info.value.message
    assert message == f"{file}: the Dev Containers CLI could not read it {says}"
    assert CLI_ENV in info.value.hint
    assert len(calls(fake_cli)) == 2  # merged, then without


def test_a_cli_that_does_not_run_falls_back_to_the_file_with_a_note(
    project: tuple[Path, str], tmp_path: Path
) -> None:
    file, workspace = project
    missing = tmp_path / "no-such-cli"
    loaded = load(file, workspace, environ={CLI_ENV: str(missing), "PATH": "/usr/bin"})
    assert loaded.via == "json5"
    assert loaded.config == loaded.raw == {"image": "debian", "postCreateCommand": "make"}
    assert loaded.note.startswith(f"the Dev Containers CLI at {missing} did not answer")


def test_a_malformed_file_never_reaches_the_cli(
    project: tuple[Path, str], fake_cli: tuple[Path, Path]
) -> None:
    file, workspace = project
    file.write_text('{"image": ')
    with pytest.raises(ConfigError, match="not valid JSONC"):
        load(file, workspace, engine="docker", environ=environ_for(fake_cli))
    assert calls(fake_cli) == []


def test_the_cli_cannot_carry_a_host_secret_in_through_the_image_s_metadata(
    project: tuple[Path, str], fake_cli: tuple[Path, Path]
) -> None:
    file, workspace = project
    environ = {**environ_for(fake_cli), "GITHUB_TOKEN": "ghp_host_secret"}
    loaded = load(file, workspace, engine="docker", environ=environ)
    try:
        made = plan(
            loaded,
            ProfileStore(codex_home=Path("/nonexistent-codex-home")).get("workspace"),
            home="/home/alice",
            codex_home="/home/alice/.codex",
            environ=environ,
        )
    except Refused:
        return  # refusing it is a fix too
    assert not any("ghp_host_secret" in item for item in made.env)


def test_an_image_not_here_is_never_inspected_so_never_pulled(
    project: tuple[Path, str], fake_cli: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merged view makes the CLI inspect (and pull) the image: only for one the engine
    already has; otherwise the CLI reads the file alone."""
    file, workspace = project
    monkeypatch.setattr(reading, "is_local", lambda *_args: False)
    load(file, workspace, engine="docker", environ=environ_for(fake_cli))
    load(file, workspace, engine=None, environ=environ_for(fake_cli))
    assert all("--include-merged-configuration" not in argv for argv in calls(fake_cli))
    assert len(calls(fake_cli)) == 2


def test_the_cli_sees_only_what_finds_the_engine(
    project: tuple[Path, str], fake_cli: tuple[Path, Path]
) -> None:
    file, workspace = project
    environ = {
        **environ_for(fake_cli),
        "AWS_SECRET_ACCESS_KEY": "x",
        "DOCKER_HOST": "unix:///d",
        "DOCKER_CONFIG": "/home/alice/.docker",
        "NODE_OPTIONS": "--require /evil.js",
    }
    seen = tmp = Path(f"{fake_cli[0]}.env")
    Path(str(fake_cli[0])).write_text(
        Path(str(fake_cli[0]))
        .read_text()
        .replace(
            'mode = settings["mode"]',
            'mode = settings["mode"]\n'
            f"open({str(tmp)!r}, 'w').write(json.dumps(dict(os.environ)))",
        )
    )
    load(file, workspace, engine="docker", environ=environ)
    names = set(json.loads(seen.read_text()))
    assert names <= set(reading.CLI_ENVIRON) | {"PWD", "SHLVL", "_", "LC_CTYPE"}
    assert "DOCKER_HOST" in names and "AWS_SECRET_ACCESS_KEY" not in names
