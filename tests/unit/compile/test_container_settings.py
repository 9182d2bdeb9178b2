"""``compile.container.container_settings``: a devcontainer's user, hostname, labels and
tmpfs paths checked before they reach a spec — nothing an engine would read as more
than it says, no label posing as codex-box's, no tmpfs over what codex-box binds or
masks or over the kernel's file systems — and how ``compile_spec`` applies them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.compile.container import container_settings
from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.errors import EXIT_USAGE, UsageError
from orchestrator.core.options import LaunchOptions
from orchestrator.profiles.store import ProfileStore

MakeRequest = Callable[..., Request]
WriteProfile = Callable[[str, str], Path]
FILE = "/home/alice/proj/.devcontainer/devcontainer.json"
BOUND = ("/home/alice/proj", "/home/alice/proj/.git/hooks", "/home/alice/.ssh")


def settings(
    sandboxed: bool = True, bound: tuple[str, ...] = BOUND, **fields: Any
) -> dict[str, Any]:
    options = LaunchOptions(devcontainer=fields.pop("devcontainer", FILE), **fields)
    return container_settings(options, sandboxed=sandboxed, bound=bound)


def refused(**fields: Any) -> str:
    with pytest.raises(UsageError) as info:
        settings(**fields)
    assert info.value.exit_code == EXIT_USAGE
    return info.value.message


def test_without_a_devcontainer_there_is_nothing() -> None:
    options = LaunchOptions(user="root", hostname="x", labels=("a=b",), tmpfs=("/proc",))
    assert container_settings(options, sandboxed=True, bound=BOUND) == {}


def test_the_spec_fields_of_a_devcontainer() -> None:
    assert settings(
        user="vscode",
        hostname="box",
        labels=("dev.team=core", "a/b.c-d_e=", "x=y=z"),
        tmpfs=("/home/vscode/.cache", "//data/", "/data", "/var/lib/../cache"),
    ) == {
        "devcontainer": FILE,
        "container_user": "vscode",
        "hostname": "box",
        "extra_labels": (("dev.team", "core"), ("a/b.c-d_e", ""), ("x", "y=z")),
        "extra_tmpfs": ("/home/vscode/.cache", "/data", "/var/cache"),
    }


def test_nothing_asked_is_nothing_set() -> None:
    assert settings() == {
        "devcontainer": FILE,
        "container_user": None,
        "hostname": None,
        "extra_labels": (),
        "extra_tmpfs": (),
    }


@pytest.mark.parametrize(
    "user", ["vscode", "root", "node:node", "1000", "1000:1000", "_apt", "svc.user-1", "a" * 32]
)
def test_a_plain_name_or_id_is_a_user(user: str) -> None:
    assert settings(user=user)["container_user"] == user


@pytest.mark.parametrize(
    "user",
    ["", "VSCode", "-u", "a b", "vscode:", ":1000", "a:b:c", "../etc", "a" * 33, "1" * 11,
     "user;id", "${localEnv:USER}", "vs/code", "0:0:0", "a\nb"],
)  # fmt: skip
def test_anything_else_is_not_a_user(user: str) -> None:
    assert refused(user=user).startswith(f"devcontainer user {user!r} is not a user name or id")


@pytest.mark.parametrize("hostname", ["box", "dev-box-1", "a", "x" * 63, "9lives"])
def test_a_host_name(hostname: str) -> None:
    assert settings(hostname=hostname)["hostname"] == hostname


@pytest.mark.parametrize(
    "hostname", ["", "-box", "box-", "a.b", "x" * 64, "a_b", "a\nb", "a b", "box;reboot"]
)
def test_not_a_host_name(hostname: str) -> None:
    assert refused(hostname=hostname) == f"devcontainer hostname {hostname!r} is not a host name"


@pytest.mark.parametrize(
    "label",
    [
        "codex-box.owner=me",  # would decide what `gc` removes
        "codex-box.session=s",
        "codex-box.profile=trusted",
        "codex-box.run=r",
        "codex-box.role=netns",
        "codex-box.apparmor=unconfined",
        "Codex-Box.Owner=x",
        "CODEX-BOX.anything=x",
        "=value",
        "",
        "a b=c",
        "-lead=x",
        ".dot=x",
        "k\nk=v",
        "k" * 129 + "=v",
        "k=" + "v" * 4097,
    ],
)
def test_a_label_posing_as_codex_box_s_or_malformed_is_refused(label: str) -> None:
    message = refused(labels=("ok=1", label))
    assert message.startswith("devcontainer label") and message.endswith("refused")
    assert "\n" not in message


@pytest.mark.parametrize(
    "fields", [{"user": "root\n"}, {"hostname": "box\n"}, {"labels": ("k\n=v",)}]
)
def test_a_trailing_newline_is_refused(fields: dict[str, Any]) -> None:
    refused(**fields)


def test_a_label_like_codex_box_but_not_its_own_passes() -> None:
    assert settings(labels=("codex-box=1", "io.codex-box.x=2", "k=" + "v" * 4096))[
        "extra_labels"
    ] == (("codex-box", "1"), ("io.codex-box.x", "2"), ("k", "v" * 4096))


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("relative/dir", "not an absolute path below /"),
        ("", "not an absolute path below /"),
        ("/", "not an absolute path below /"),
        ("/..", "not an absolute path below /"),
        ("//", "not an absolute path below /"),
        ("/data:/other", "not an absolute path below /"),
        ("/data,ro", "not an absolute path below /"),
        ("/da\nta", "not an absolute path below /"),
        ("/proc", "the kernel's file systems are the engine's"),
        ("/proc/sys/kernel", "the kernel's file systems are the engine's"),
        ("/sys", "the kernel's file systems are the engine's"),
        ("/sys/fs/cgroup", "the kernel's file systems are the engine's"),
        ("/dev", "the kernel's file systems are the engine's"),
        ("/dev/shm", "the kernel's file systems are the engine's"),
        ("/tmp/../proc", "the kernel's file systems are the engine's"),
        ("/home/alice/proj", "it would cover a directory codex-box binds or masks"),
        ("/home/alice/proj/node_modules", "it would cover a directory codex-box binds or masks"),
        ("/home/alice/proj/", "it would cover a directory codex-box binds or masks"),
        ("/home", "it would cover a directory codex-box binds or masks"),  # above the workspace
        ("/home/alice", "it would cover a directory codex-box binds or masks"),
        ("/home/alice/.ssh/keys", "it would cover a directory codex-box binds or masks"),
        ("/home/alice/proj/.git/hooks", "it would cover a directory codex-box binds or masks"),
    ],
)
def test_a_tmpfs_over_what_codex_box_binds_or_the_kernel_s_is_refused(path: str, why: str) -> None:
    message = refused(tmpfs=(path,))
    assert message == f"devcontainer volume target {path!r} refused: {why}"


@pytest.mark.parametrize("path", ["/devices", "/process", "/system", "/home2", "/home/bob/.cache"])
def test_a_tmpfs_beside_them_passes(path: str) -> None:
    assert settings(tmpfs=(path,))["extra_tmpfs"] == (path,)


def test_trusted_gets_no_tmpfs_but_its_targets_are_still_checked() -> None:
    assert settings(sandboxed=False, tmpfs=("/data",), user="root")["extra_tmpfs"] == ()
    assert settings(sandboxed=False, user="root")["container_user"] == "root"
    with pytest.raises(UsageError, match="kernel"):
        settings(sandboxed=False, tmpfs=("/proc",))


# --- through compile_spec ------------------------------------------------------------------


@pytest.fixture
def compiled(store: ProfileStore, make_request: MakeRequest) -> Callable[..., Any]:
    def run(profile: str = "workspace", **overrides: Any) -> Any:
        overrides.setdefault("devcontainer", FILE)
        return compile_spec(store.get(profile), make_request(**overrides))

    return run


def test_compile_sets_the_spec_s_fields(compiled: Callable[..., Any]) -> None:
    spec = compiled(user="vscode", hostname="box", labels=("a=b",), tmpfs=("/home/vscode/.cache",))
    assert spec.devcontainer == FILE
    assert (spec.container_user, spec.hostname) == ("vscode", "box")
    assert spec.extra_labels == (("a", "b"),)
    assert spec.extra_tmpfs == ("/home/vscode/.cache",)


def test_without_a_devcontainer_compile_sets_none_of_them(
    store: ProfileStore, make_request: MakeRequest
) -> None:
    spec = compile_spec(store.get("workspace"), make_request(user="vscode", tmpfs=("/x",)))
    assert spec.devcontainer is None and spec.container_user is None and spec.extra_tmpfs == ()


def test_compile_refuses_a_tmpfs_over_the_workspace_or_a_protected_path(
    compiled: Callable[..., Any], workspace: Path
) -> None:
    real = str(workspace.resolve())
    with pytest.raises(UsageError, match="would cover a directory codex-box binds"):
        compiled(tmpfs=(real + "/build",))
    with pytest.raises(UsageError, match="would cover a directory codex-box binds"):
        compiled(tmpfs=(str(Path(real).parent),))
    (workspace / ".git").mkdir()
    with pytest.raises(UsageError, match="would cover a directory codex-box binds"):
        compiled(tmpfs=(real + "/.git",))


def test_compile_refuses_a_tmpfs_over_a_masked_path(
    store: ProfileStore, make_request: MakeRequest, home: Path, write_profile: WriteProfile
) -> None:
    (home / ".aws").mkdir()
    with pytest.raises(UsageError, match="would cover a directory codex-box binds or masks"):
        compile_spec(
            store.get("workspace"),
            make_request(devcontainer=FILE, tmpfs=(str(home / ".aws"),)),
        )


def test_compile_refuses_a_codex_box_label(compiled: Callable[..., Any]) -> None:
    with pytest.raises(UsageError, match="refused"):
        compiled(labels=("codex-box.owner=elsewhere:1:1",))


def test_container_env_is_under_the_caller_s_env_and_codex_box_s_own(
    compiled: Callable[..., Any], home: Path
) -> None:
    spec = compiled(
        container_env=(
            "A=from-file",
            "B=from-file",
            "CODEX_BOX_PROFILE=trusted",
            "HOME=/home/vscode",
        ),
        env_names=("B=from-caller",),
        environ={"PATH": "/usr/bin:/bin", "HOME": str(home)},
    )
    env = dict(spec.env)
    assert env["A"] == "from-file"
    assert env["B"] == "from-caller"
    assert env["CODEX_BOX_PROFILE"] == "workspace"
    assert env["HOME"] == "/home/vscode"


def test_a_container_env_entry_that_is_not_a_variable_is_a_usage_error(
    compiled: Callable[..., Any],
) -> None:
    with pytest.raises(UsageError, match="is not a variable name"):
        compiled(container_env=("1BAD=x",))
