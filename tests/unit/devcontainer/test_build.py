"""``build``: the engine's build command line (no pull, no network unless the profile's
is open) and what may go into the image — the Dockerfile and context inside the
workspace, nothing the profile masks inside the context. The engine is a fake script
on PATH: nothing is built."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError, Refused, SandboxSetupError
from orchestrator.devcontainer import build as build_module
from orchestrator.devcontainer.build import (
    TAG_PREFIX,
    build_argv,
    build_image,
    check_inputs,
    image_tag,
)
from orchestrator.devcontainer.plan import Build
from orchestrator.profiles.store import ProfileStore

WriteProfile = Callable[[str, str], Path]
BUILD = Build(
    dockerfile="/w/.devcontainer/Dockerfile",
    context="/w",
    args=(("VARIANT", "3.12"), ("EMPTY", "")),
    target="dev",
)


# --- the command line ----------------------------------------------------------------------


def test_docker_builds_without_network_by_default() -> None:
    assert build_argv("docker", BUILD, "t:latest", network=False) == [
        "docker", "build", "--tag", "t:latest", "--file", "/w/.devcontainer/Dockerfile",
        "--network", "none", "--build-arg", "VARIANT=3.12", "--build-arg", "EMPTY=",
        "--target", "dev", "/w",
    ]  # fmt: skip


def test_podman_never_pulls() -> None:
    assert build_argv("podman", BUILD, "t:latest", network=False) == [
        "podman", "build", "--tag", "t:latest", "--file", "/w/.devcontainer/Dockerfile",
        "--pull=never", "--network", "none", "--build-arg", "VARIANT=3.12",
        "--build-arg", "EMPTY=", "--target", "dev", "/w",
    ]  # fmt: skip


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_an_open_network_builds_with_the_engine_s_and_the_context_is_last(engine: str) -> None:
    argv = build_argv(engine, Build(dockerfile="/w/Dockerfile", context="/w"), "t", network=True)
    assert "--network" not in argv and "--target" not in argv and "--build-arg" not in argv
    assert argv[-1] == "/w"


def test_a_build_arg_value_stays_one_argument() -> None:
    argv = build_argv(
        "docker", Build("/w/D", "/w", args=(("A", "x y; rm -rf /"),)), "t", network=False
    )
    assert argv[argv.index("--build-arg") + 1] == "A=x y; rm -rf /"


def test_the_tag_is_the_workspace_s_real_path(tmp_path: Path) -> None:
    real = tmp_path / "proj"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    tag = image_tag(str(real))
    assert tag.startswith(TAG_PREFIX) and tag.endswith(":latest")
    assert image_tag(str(tmp_path / "link")) == tag
    assert image_tag(str(tmp_path)) != tag


# --- what may go into the image ------------------------------------------------------------


@pytest.fixture
def project(workspace: Path) -> Path:
    folder = workspace / ".devcontainer"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM debian\n")
    (workspace / "src").mkdir()
    return workspace


def check(
    build: Build, workspace: Path, store: ProfileStore, home: Path, codex_home: Path,
    profile: str = "workspace",
) -> None:  # fmt: skip
    check_inputs(
        build,
        workspace=str(workspace),
        profile=store.get(profile),
        home=str(home),
        codex_home=str(codex_home),
    )


def test_a_dockerfile_and_context_in_the_workspace_pass(
    project: Path, store: ProfileStore, home: Path, codex_home: Path
) -> None:
    dockerfile = str(project / ".devcontainer" / "Dockerfile")
    check(Build(dockerfile, str(project)), project, store, home, codex_home)
    check(Build(dockerfile, str(project / ".devcontainer")), project, store, home, codex_home)


def test_a_context_above_the_workspace_is_refused(
    project: Path, store: ProfileStore, home: Path, codex_home: Path
) -> None:
    outside = os.path.normpath(str(project / ".devcontainer" / ".." / ".."))  # "context": "../.."
    with pytest.raises(Refused) as info:
        check(Build(str(project / ".devcontainer" / "Dockerfile"), outside), project, store,
              home, codex_home)  # fmt: skip
    assert info.value.exit_code == 126
    assert info.value.message.startswith(f"build.context {outside} is outside the workspace")


def test_a_dockerfile_symlinked_outside_the_workspace_is_refused(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "Dockerfile.elsewhere"
    elsewhere.write_text("FROM debian\nCOPY . /\n")
    link = project / ".devcontainer" / "Dockerfile.link"
    link.symlink_to(elsewhere)
    with pytest.raises(Refused, match=r"^build\.dockerfile .* is outside the workspace"):
        check(Build(str(link), str(project)), project, store, home, codex_home)


def test_a_context_symlinked_outside_the_workspace_is_refused(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, tmp_path: Path
) -> None:
    (project / "ctx").symlink_to(home)
    with pytest.raises(Refused, match=r"^build\.context .* is outside the workspace"):
        check(Build(str(project / ".devcontainer" / "Dockerfile"), str(project / "ctx")),
              project, store, home, codex_home)  # fmt: skip


def test_a_path_the_profile_masks_inside_the_context_is_refused(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, write_profile: WriteProfile
) -> None:
    write_profile("mine", "extends: workspace\nfilesystem:\n  deny_read: ['**/.env']\n")
    (project / "src" / ".env").write_text("API_KEY=1\n")
    dockerfile = str(project / ".devcontainer" / "Dockerfile")
    check(Build(dockerfile, str(project)), project, store, home, codex_home)  # built-in: fine
    with pytest.raises(Refused) as info:
        check(Build(dockerfile, str(project)), project, store, home, codex_home, "mine")
    assert info.value.message == (
        f"build.context {project} holds {project / 'src' / '.env'}, which profile mine masks: "
        "the build would copy it into the image"
    )
    # A context beside it holds none of it.
    check(Build(dockerfile, str(project / ".devcontainer")), project, store, home, codex_home,
          "mine")  # fmt: skip


def test_the_home_s_credential_stores_in_a_workspace_that_is_the_home(
    store: ProfileStore, home: Path, codex_home: Path
) -> None:
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("key")
    (home / "Dockerfile").write_text("FROM debian\n")
    with pytest.raises(Refused, match=r"holds .*\.ssh, which profile workspace masks"):
        check(Build(str(home / "Dockerfile"), str(home)), home, store, home, codex_home)


def test_codex_home_inside_the_context_is_refused_under_every_profile(
    project: Path, store: ProfileStore, home: Path
) -> None:
    inner = project / ".codex"
    inner.mkdir()
    dockerfile = str(project / ".devcontainer" / "Dockerfile")
    for profile in ("workspace", "trusted"):
        with pytest.raises(Refused, match=rf"holds {inner}, which profile {profile} masks"):
            check(Build(dockerfile, str(project)), project, store, home, inner, profile)


def test_a_relative_deny_read_entry_is_the_workspace_s_whatever_the_context(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, write_profile: WriteProfile
) -> None:
    write_profile("mine", "extends: workspace\nfilesystem:\n  deny_read: ['src/secret.key']\n")
    (project / "src" / "secret.key").write_text("k")
    (project / "src" / "Dockerfile").write_text("FROM debian\nCOPY secret.key /\n")
    build = Build(str(project / "src" / "Dockerfile"), str(project / "src"))  # "context": "../src"
    with pytest.raises(Refused, match=r"secret\.key, which profile mine masks"):
        check(build, project, store, home, codex_home, "mine")


# --- build_image with a fake engine --------------------------------------------------------

FAKE_ENGINE = """\
#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "w") as log:
    json.dump(sys.argv[1:], log)
if os.environ.get("FAKE_FAIL"):
    print("step 1/3\\nstep 2/3")
    sys.stderr.write("ERROR: failed to solve: debian: not found\\n")
    sys.exit(1)
"""


@pytest.fixture
def engine_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake engines on PATH, and every base image already there (nothing would be pulled;
    test_dockerfile_checks.py tests the check itself)."""
    monkeypatch.setattr(build_module, "is_local", lambda *_args: True)
    monkeypatch.setattr(build_module, "onbuild", lambda *_args: [])
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("docker", "podman"):
        script = folder / name
        script.write_text(FAKE_ENGINE.format(python=sys.executable))
        script.chmod(0o755)
    return folder


def build_with(
    engine: str, project: Path, store: ProfileStore, home: Path, codex_home: Path,
    environ: dict[str, str], profile: str = "workspace",
) -> str:  # fmt: skip
    return build_image(
        engine,
        Build(str(project / ".devcontainer" / "Dockerfile"), str(project)),
        workspace=str(project),
        profile=store.get(profile),
        home=str(home),
        codex_home=str(codex_home),
        environ=environ,
    )


def test_build_image_runs_the_engine_and_answers_the_tag(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, engine_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    import json

    log = tmp_path / "argv.json"
    environ = {"PATH": str(engine_dir), "FAKE_LOG": str(log)}
    tag = build_with("podman", project, store, home, codex_home, environ)
    assert tag == image_tag(str(project))
    argv = json.loads(log.read_text())
    assert argv[:3] == ["build", "--tag", tag] and "--pull=never" in argv
    assert argv[argv.index("--network") + 1] == "none"
    # Open network (workspace-net): the build has the engine's network.
    build_with("docker", project, store, home, codex_home, environ, "workspace-net")
    assert "--network" not in json.loads(log.read_text())
    # net-read-only's allowlist cannot be enforced on a build: none.
    build_with("docker", project, store, home, codex_home, environ, "net-read-only")
    assert "none" in json.loads(log.read_text())


def test_a_failed_build_is_a_setup_error_with_its_last_lines(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, engine_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    environ = {"PATH": str(engine_dir), "FAKE_LOG": str(tmp_path / "l"), "FAKE_FAIL": "1"}
    with pytest.raises(SandboxSetupError) as info:
        build_with("docker", project, store, home, codex_home, environ)
    message = info.value.message
    assert message.startswith(f"docker build of {project}/.devcontainer/Dockerfile failed (exit 1)")
    assert "step 2/3 | ERROR: failed to solve: debian: not found" in message
    assert "no network under profile workspace" in info.value.hint


def test_no_engine_command_is_a_setup_error(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(build_module, "is_local", lambda *_args: True)
    monkeypatch.setattr(build_module, "onbuild", lambda *_args: [])
    with pytest.raises(SandboxSetupError, match="no docker command"):
        build_with("docker", project, store, home, codex_home, {"PATH": str(tmp_path / "none")})


def test_only_docker_or_podman_build_and_a_missing_dockerfile_is_a_config_error(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, tmp_path: Path
) -> None:
    environ = {"PATH": str(tmp_path / "none")}
    with pytest.raises(ConfigError, match="needs docker or podman, not native"):
        build_with("native", project, store, home, codex_home, environ)
    (project / ".devcontainer" / "Dockerfile").unlink()
    with pytest.raises(ConfigError, match=r"build\.dockerfile .* does not exist"):
        build_with("docker", project, store, home, codex_home, environ)


def test_the_inputs_are_checked_before_anything_runs(
    project: Path, store: ProfileStore, home: Path, codex_home: Path, engine_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    log = tmp_path / "argv.json"
    outside = Build(str(project / ".devcontainer" / "Dockerfile"), str(tmp_path))
    with pytest.raises(Refused):
        build_image("docker", outside, workspace=str(project), profile=store.get("workspace"),
                    home=str(home), codex_home=str(codex_home),
                    environ={"PATH": str(engine_dir), "FAKE_LOG": str(log)})  # fmt: skip
    assert not log.exists()
