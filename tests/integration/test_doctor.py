"""`codex-box doctor` against real engines, and against engines that hang."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "codex-box")


@pytest.fixture
def hung_sockets(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two unix sockets that accept connections and never answer: a hung engine."""
    listeners, paths = [], []
    for name in ("docker", "podman"):
        path = str(tmp_path / f"{name}.sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(64)
        listeners.append(listener)
        paths.append(f"unix://{path}")
    yield paths[0], paths[1]
    for listener in listeners:
        listener.close()


def doctor(base_env: dict[str, str], workspace: Path, **env: str) -> dict:
    ran = subprocess.run([CLI, "doctor", "--json"], env={**base_env, **env}, cwd=workspace,
                         capture_output=True, text=True, timeout=20, check=False)
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def test_doctor_answers_when_both_engines_hang_and_falls_back_to_native(
    native_available, hung_sockets, base_env, workspace
):
    docker_url, podman_url = hung_sockets
    started = time.monotonic()
    ran = subprocess.run([CLI, "doctor", "--json"],
                         env={**base_env, "DOCKER_HOST": docker_url, "CONTAINER_HOST": podman_url},
                         cwd=workspace, capture_output=True, text=True, timeout=6, check=False)
    elapsed = time.monotonic() - started
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    rows = {row["name"]: row for row in report["backends"]}
    assert rows["docker"]["available"] is False and "timed out" in rows["docker"]["reason"]
    assert rows["podman"]["available"] is False and "timed out" in rows["podman"]["reason"]
    assert "podman system service" in rows["podman"]["reason"]  # how to start it
    assert rows["native"]["available"] is True
    assert rows["kubernetes"]["available"] is False
    assert set(report["profiles"].values()) == {"native"}
    # The budget is 2.5 s for the probes; the whole command (interpreter included)
    # must answer inside the documented 3 s with room for a loaded CI machine.
    assert report["elapsed_ms"] <= 3000, elapsed


def test_doctor_reports_versions_quirks_and_the_backend_of_every_profile(
    docker_available, podman_available, native_available, base_env, workspace
):
    report = doctor(base_env, workspace)
    rows = {row["name"]: row for row in report["backends"]}
    assert report["order"] == ["docker", "podman", "native"]
    assert rows["docker"]["available"] and rows["docker"]["facts"]["engine"].startswith("Docker")
    assert rows["podman"]["available"] and rows["podman"]["facts"]["engine"].startswith("Podman")
    assert rows["podman"]["facts"]["seccomp"] == "yes"
    assert rows["native"]["facts"]["landlock ABI"].isdigit()
    assert int(rows["native"]["facts"]["landlock ABI"]) >= 1
    if rows["podman"]["facts"]["rlimits"] == "explicit ulimits":  # no CAP_SYS_RESOURCE here
        assert any("cannot raise rlimits" in note for note in rows["podman"]["notes"])
    sandboxed = ("offline", "net-read-only", "workspace", "workspace-net")
    # trusted is the seed's full system access: on the host, even with engines up.
    assert report["profiles"] == {**dict.fromkeys(sandboxed, "docker"), "trusted": "native"}


def test_doctor_follows_a_backend_named_in_the_environment(
    podman_available, base_env, workspace
):
    report = doctor(base_env, workspace, CODEX_BOX_BACKEND="podman")
    assert report["order"] == ["podman"]
    assert set(report["profiles"].values()) == {"podman"}


def test_doctor_text_has_one_row_per_backend(native_available, base_env, workspace):
    ran = subprocess.run([CLI, "doctor"], env=base_env, cwd=workspace, capture_output=True,
                         text=True, timeout=20, check=False)
    assert ran.returncode == 0, ran.stderr
    first_words = [line.split()[0] for line in ran.stdout.splitlines() if not line[:1].isspace()]
    assert first_words[:4] == ["docker", "podman", "native", "kubernetes"]
    assert "profile → backend" in ran.stdout


def test_trusted_under_auto_runs_on_the_host_and_a_named_engine_contains_it(
    docker_available, native_available, base_env, workspace, tmp_path
):
    """What doctor says is what a run does: `trusted` sees the host's filesystem under
    auto (a file only the host has), and not when --backend docker names a container."""
    marker = tmp_path / "only-on-the-host"
    marker.write_text("host\n")
    argv = ["run", "--profile", "trusted", "--yes-i-trust-this-workspace", "--json", "--",
            "cat", str(marker)]

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *argv[:1], *flags, *argv[1:]], env=base_env, cwd=workspace,
                              capture_output=True, text=True, timeout=60, check=False)

    on_host = run()
    assert on_host.returncode == 0 and on_host.stdout == "host\n", on_host.stderr
    assert json.loads(on_host.stderr.strip().splitlines()[-1])["backend"] == "native"
    contained = run("--backend", "docker")
    assert contained.returncode != 0 and "host" not in contained.stdout
    assert json.loads(contained.stderr.strip().splitlines()[-1])["backend"] == "docker"


def test_doctor_says_whether_the_proxy_can_inject_brokered_secrets(
        native_available, base_env, workspace, codex_home):
    assert doctor(base_env, workspace)["broker"] == (
        "can inject (TLS termination with a per-run CA works)")
    with (codex_home / "config.toml").open("a") as config:
        config.write('[secrets]\nGH_TOKEN = "github"\n')
    assert doctor(base_env, workspace)["broker"].endswith("; config.toml brokers GH_TOKEN")
    ran = subprocess.run([CLI, "doctor"], env=base_env, cwd=workspace, capture_output=True,
                         text=True, timeout=20, check=False)
    assert "credential broker: can inject" in ran.stdout
