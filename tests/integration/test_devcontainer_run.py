"""``run --devcontainer`` and ``session start --devcontainer`` on real engines: a project's
image, Dockerfile build (args, target), remoteUser, containerEnv and lifecycle commands
take effect, checked from inside the container — while the profile's confinement stays
(CapEff 0, NoNewPrivs 1, Seccomp 2, no network under offline, writes confined), refused
keys exit 126 naming the key and start nothing, and every launch leaves its record."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.devcontainer.build import image_tag
from tests.conftest import Ran
from tests.integration.session_helpers import audit_records

ENGINES = ("docker", "podman")
CONFINED = (
    "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '; "
    "ls /sys/class/net | tr '\\n' ' '; echo; "
)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue(f"{request.param}_available")
    return str(request.param)


def write_config(workspace: Path, config: dict[str, object], **files: str) -> Path:
    folder = workspace / ".devcontainer"
    folder.mkdir(exist_ok=True)
    path = folder / "devcontainer.json"
    path.write_text("// a project's own\n" + json.dumps(config, indent=2) + "\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    return path


@pytest.fixture
def built_images(workspace: Path) -> Iterator[None]:
    """Removes the image a build test made (tagged by the workspace) from both engines."""
    yield
    for engine in ENGINES:
        subprocess.run([engine, "rmi", "-f", image_tag(str(workspace))], capture_output=True,
                       timeout=60, check=False)


def lines(ran: Ran) -> list[str]:
    return [line.strip() for line in ran.stdout.splitlines()]


def test_an_image_project_gets_its_env_hostname_and_post_create_and_stays_confined(
    engine: str, cli: Callable[..., Ran], workspace: Path, codex_home: Path
) -> None:
    write_config(workspace, {
        "image": "codex-box/base",
        "containerEnv": {"PROJECT": "demo", "WHERE": "${containerWorkspaceFolder}"},
        "runArgs": ["--init", "-e", "FROM_ARGS=1", "--hostname", "devbox", "--label", "team=a"],
        "postCreateCommand": "echo created > /tmp/created",
    })  # fmt: skip
    ran = cli("run", "--backend", engine, "--devcontainer", "-p", "workspace", "--", "sh", "-c",
              CONFINED + "echo $PROJECT $WHERE $FROM_ARGS; hostname; cat /tmp/created; "
              "touch /etc/x 2>/dev/null || echo etc-refused; touch ok && echo ws-written",
              timeout=180)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    out = lines(ran)
    assert out[:4] == ["CapEff: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", "lo"]
    assert out[4:] == [f"demo {workspace} 1", "devbox", "created", "etc-refused", "ws-written"]
    assert "postCreateCommand: /bin/sh -c echo created > /tmp/created" in ran.stderr
    assert "1 setting(s) changed by the profile" in ran.stderr  # --init
    # The lifecycle command and the command: each an exec of one session, audited.
    execs = [r for r in audit_records(codex_home) if r.get("operation") == "command_exec"]
    assert any("echo created" in json.dumps(r) for r in execs)


def test_offline_keeps_the_workspace_read_only_and_no_network(
    engine: str, cli: Callable[..., Ran], workspace: Path
) -> None:
    write_config(workspace, {"image": "codex-box/base", "containerEnv": {"A": "1"}})
    ran = cli("run", "--backend", engine, "--devcontainer", "-p", "offline", "--", "sh", "-c",
              CONFINED + "echo A=$A; touch w 2>/dev/null || echo ws-refused", timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert lines(ran) == ["CapEff: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", "lo",
                          "A=1", "ws-refused"]  # fmt: skip
    assert not (workspace / "w").exists()


def test_a_dockerfile_build_takes_args_and_target_and_has_no_network_offline(
    engine: str, cli: Callable[..., Ran], workspace: Path, built_images: None
) -> None:
    dockerfile = (
        "ARG BASE=codex-box/base\nFROM ${BASE} AS first\nARG GREETING=none\n"
        "RUN echo \"$GREETING\" > /greeting && ls /sys/class/net | tr '\\n' ' ' > /build-nets\n"
        "FROM first AS second\nRUN echo second > /stage\n"
    )
    write_config(workspace, {
        "build": {"dockerfile": "Dockerfile", "context": "..", "target": "first",
                  "args": {"GREETING": "hi-${localWorkspaceFolderBasename}"}},
    }, Dockerfile=dockerfile)  # fmt: skip
    ran = cli("run", "--backend", engine, "--devcontainer", "-p", "offline", "--", "sh", "-c",
              "cat /greeting; cat /build-nets; echo; test -e /stage || echo no-second-stage",
              timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert lines(ran) == [f"hi-{workspace.name}", "lo", "no-second-stage"]
    assert f"building the image of {workspace}/.devcontainer/devcontainer.json" in ran.stderr


def test_remote_user_and_container_env_and_a_volume_as_private_tmpfs(
    engine: str, cli: Callable[..., Ran], workspace: Path, built_images: None
) -> None:
    write_config(workspace, {
        "build": {"dockerfile": "Dockerfile"},
        "remoteUser": "vscode",
        "containerEnv": {"WHO": "dev"},
        "mounts": ["source=cache,target=/home/vscode/.cache,type=volume"],
        "postStartCommand": ["sh", "-c", "echo started > $HOME/.cache/started"],
    }, Dockerfile="FROM codex-box/base\nRUN useradd -m -u 1000 vscode\n")  # fmt: skip
    ran = cli("run", "--backend", engine, "--devcontainer", "-p", "workspace", "--", "sh", "-c",
              "id -un; echo $WHO $HOME; cat $HOME/.cache/started", timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert lines(ran) == ["vscode", "dev /home/vscode", "started"]
    # Nothing persists: the next run's volume is empty again.
    again = cli("run", "--backend", engine, "--devcontainer", "-p", "workspace", "--", "sh",
                "-c", "ls -A /home/vscode/.cache | grep -v '^started$' | wc -l", timeout=300)
    assert again.returncode == 0, again.stderr
    assert lines(again) == ["0"]


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        ({"privileged": True}, "privileged True refused under profile workspace"),
        ({"capAdd": ["SYS_ADMIN"]}, "capAdd[0] SYS_ADMIN refused"),
        ({"securityOpt": ["seccomp=unconfined"]}, "securityOpt[0] seccomp=unconfined refused"),
        ({"runArgs": ["--network=host"]}, "runArgs[0] --network=host refused"),
        ({"runArgs": ["--pid", "host"]}, "runArgs[0] --pid host refused"),
        ({"runArgs": ["--device", "/dev/kvm"]}, "runArgs[0] --device /dev/kvm refused"),
        ({"runArgs": ["-v", "/var/run/docker.sock:/s"]},
         "runArgs[0] -v /var/run/docker.sock:/s refused"),
        ({"mounts": ["source=/etc,target=/e,type=bind"]}, "mounts[0] source=/etc"),
        ({"containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"}},
         "containerEnv.T ${localEnv:GITHUB_TOKEN} refused"),
        ({"initializeCommand": "touch /tmp/pwned"}, "initializeCommand touch /tmp/pwned refused"),
        ({"securityOpt": ["apparmor=unconfined"]}, "securityOpt[0] apparmor=unconfined refused"),
        ({"securityOpt": ["label=disable"]}, "securityOpt[0] label=disable refused"),
        ({"runArgs": ["--cap-add", "NET_ADMIN"]}, "runArgs[0] --cap-add NET_ADMIN refused"),
        ({"runArgs": ["--net=host"]}, "runArgs[0] --net=host refused"),
        ({"runArgs": ["--ipc=host"]}, "runArgs[0] --ipc=host refused"),
        ({"runArgs": ["--userns=host"]}, "runArgs[0] --userns=host refused"),
        ({"runArgs": ["--privileged"]}, "runArgs[0] --privileged refused"),
        ({"mounts": ["source=/,target=/host,type=bind"]}, "mounts[0] source=/,target=/host"),
        ({"mounts": ["source=${localEnv:HOME},target=/h,type=bind"]},
         "mounts[0] source=${localEnv:HOME},target=/h,type=bind refused"),
        ({"mounts": ["source=${localEnv:HOME}/.codex,target=/c,type=bind"]},
         "mounts[0] source=${localEnv:HOME}/.codex,target=/c,type=bind refused"),
        ({"mounts": ["source=/var/run/docker.sock,target=/d,type=bind"]},
         "mounts[0] source=/var/run/docker.sock"),
    ],
)  # fmt: skip
def test_each_refused_key_exits_126_naming_it_starts_nothing_and_is_audited(
    docker_available: None,
    cli: Callable[..., Ran],
    workspace: Path,
    codex_home: Path,
    config: dict[str, object],
    shown: str,
) -> None:
    write_config(workspace, {"image": "codex-box/base", **config,
                             "postCreateCommand": "touch ran"})  # fmt: skip
    ran = cli("run", "--devcontainer", "-p", "workspace", "--", "touch", "ran", timeout=60,
              env={"GITHUB_TOKEN": "ghp_secretvalue"})  # fmt: skip
    assert ran.returncode == 126, ran.stderr
    assert shown in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    assert not (workspace / "ran").exists()
    records = audit_records(codex_home)
    assert [r["decision"] for r in records] == ["denied"]
    assert "ghp_secretvalue" not in (codex_home / "audit.log").read_text()


def test_a_session_runs_its_lifecycle_once_and_a_forbidden_one_stops_it(
    docker_available: None, cli: Callable[..., Ran], workspace: Path, codex_home: Path
) -> None:
    write_config(workspace, {"image": "codex-box/base",
                             "onCreateCommand": "echo 1 >> /tmp/order",
                             "postCreateCommand": ["sh", "-c", "echo 2 >> /tmp/order"]})
    started = cli("session", "start", "--devcontainer", "-p", "workspace", timeout=120)
    assert started.returncode == 0, started.stderr
    session = started.stdout.strip()
    try:
        ran = cli("exec", "--session", session, "--", "cat", "/tmp/order")
        assert ran.returncode == 0, ran.stderr
        assert lines(ran) == ["1", "2"]
    finally:
        cli("session", "stop", session)
    # Under the enforcing policy a lifecycle command it forbids is not run, and the
    # session it was for does not stay.
    (codex_home / "config.toml").write_text('[policy]\nmode = "enforce"\n')
    write_config(workspace, {"image": "codex-box/base", "postCreateCommand": "rm -rf /"})
    refused = cli("session", "start", "--devcontainer", "-p", "workspace", timeout=120)
    assert refused.returncode == 126, refused.stderr
    assert "forbids" in refused.stderr
    listed = cli("session", "ls", "--json")
    assert [s for s in json.loads(listed.stdout) if s.get("live")] == []


def test_config_toml_auto_picks_up_the_workspace_s_devcontainer(
    docker_available: None, cli: Callable[..., Ran], workspace: Path, codex_home: Path
) -> None:
    write_config(workspace, {"image": "codex-box/base", "containerEnv": {"AUTO": "yes"}})
    (codex_home / "config.toml").write_text(
        '[policy]\nmode = "audit-only"\n[sandbox]\ndevcontainer = "auto"\n'
    )
    ran = cli("run", "-p", "workspace", "--", "sh", "-c", "echo $AUTO")
    assert ran.returncode == 0, ran.stderr
    assert lines(ran) == ["yes"]
    # Without a devcontainer.json the same config changes nothing (native allowed).
    (workspace / ".devcontainer" / "devcontainer.json").unlink()
    plain = cli("run", "--backend", "native", "-p", "workspace", "--", "sh", "-c",
                "echo ${AUTO-unset}")
    assert plain.returncode == 0, plain.stderr
    assert lines(plain) == ["unset"]


def test_native_refuses_a_devcontainer(
    native_available: None, cli: Callable[..., Ran], workspace: Path
) -> None:
    write_config(workspace, {"image": "codex-box/base"})
    ran = cli("run", "--backend", "native", "--devcontainer", "--", "true")
    assert ran.returncode == 2, ran.stderr
    assert "runs no container image" in ran.stderr


def _labelled_image(engine: str, tag: str, metadata: list[dict[str, object]], where: Path) -> None:
    where.mkdir(exist_ok=True)
    label = json.dumps(json.dumps(metadata))  # a Dockerfile LABEL value, quoted
    (where / "Dockerfile").write_text(f"FROM codex-box/base\nLABEL devcontainer.metadata={label}\n")
    done = subprocess.run([engine, "build", "-q", "-t", tag, str(where)], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_through_the_dev_containers_cli_the_image_s_metadata_is_merged_and_vetted(
    engine: str,
    devcontainer_cli: str,
    cli: Callable[..., Ran],
    workspace: Path,
    tmp_path: Path,
) -> None:
    """An image's ``devcontainer.metadata`` label (what features leave behind) is part of
    the configuration the Dev Containers CLI merges: its env and lifecycle commands take
    effect — and its ``privileged``/``capAdd`` are refused like the file's own."""
    good, bad = "codex-box-test/dc-meta:good", "codex-box-test/dc-meta:bad"
    env = {"CODEX_BOX_DEVCONTAINER_CLI": devcontainer_cli}
    try:
        _labelled_image(engine, good, [{"containerEnv": {"META": "1"},
                                             "postCreateCommand": "echo meta > /tmp/meta"}],
                        tmp_path / "good")  # fmt: skip
        _labelled_image(engine, bad, [{"privileged": True, "capAdd": ["SYS_ADMIN"]}],
                        tmp_path / "bad")
        write_config(workspace, {"image": good, "containerEnv": {"OWN": "2"}})
        ran = cli("run", "--backend", engine, "--devcontainer", "-p", "workspace", "--",
                  "sh", "-c", "echo $META $OWN; cat /tmp/meta", env=env, timeout=180)
        assert ran.returncode == 0, ran.stderr
        assert lines(ran) == ["1 2", "meta"]
        write_config(workspace, {"image": bad})
        refused = cli("run", "--backend", engine, "--devcontainer", "-p", "workspace",
                      "--", "true", env=env, timeout=180)
        assert refused.returncode == 126, refused.stderr
        assert "privileged True refused under profile workspace" in refused.stderr
    finally:
        for tag in (good, bad):
            subprocess.run([engine, "rmi", "-f", tag], capture_output=True, timeout=60,
                           check=False)
