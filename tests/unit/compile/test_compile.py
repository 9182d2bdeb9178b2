"""compile_spec: Profile + request → a frozen, absolute, final SandboxSpec."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.compile.spec import Request, compile_spec, default_memory_bytes, parse_limits
from orchestrator.core.errors import EXIT_USAGE, ConfigError, Refused, UsageError
from orchestrator.core.profile import DEFAULT_PROTECTED, Capabilities, Network
from orchestrator.core.spec import DEFAULT_PIDS, Limits, SandboxSpec
from orchestrator.profiles.store import ProfileStore

MakeRequest = Callable[..., Request]
ALL = ("offline", "net-read-only", "workspace", "workspace-net", "trusted")
WRITERS = {"workspace", "workspace-net"}  # sandboxed profiles whose workspace is writable
MiB, GiB = 1024**2, 1024**3


@pytest.fixture
def compile_(store: ProfileStore, make_request: MakeRequest) -> Callable[..., SandboxSpec]:
    def run(profile: str, **overrides: object) -> SandboxSpec:
        return compile_spec(store.get(profile), make_request(**overrides))

    return run


# --- paths ------------------------------------------------------------------------------


def test_a_read_only_workspace_becomes_an_absolute_realpath(
    compile_: Callable[..., SandboxSpec], workspace: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(workspace)
    spec = compile_("offline", workspace="link", cwd=str(tmp_path))
    assert spec.workspace == os.path.realpath(workspace)
    assert os.path.isabs(spec.workspace) and "link" not in spec.workspace


def test_a_writable_workspace_through_a_symlink_a_sandbox_could_plant_is_refused(
    compile_: Callable[..., SandboxSpec], workspace: Path, tmp_path: Path
) -> None:
    (tmp_path / "link").symlink_to(workspace)
    with pytest.raises(Refused) as info:
        compile_("workspace", workspace="link", cwd=str(tmp_path))
    assert "crosses a symlink" in info.value.message
    assert str(workspace.resolve()) in info.value.hint


def test_a_writable_workspace_records_the_inode_it_was_checked_at(
    compile_: Callable[..., SandboxSpec], workspace: Path
) -> None:
    spec = compile_("workspace")
    info = os.stat(workspace)
    assert spec.identity_of(spec.workspace) == (info.st_dev, info.st_ino)
    assert spec.writable_roots[0] == spec.workspace


def test_a_symlink_in_a_system_directory_is_followed_for_a_write_root() -> None:
    from orchestrator.sandbox.linux.pinning import resolve_write_root

    if not os.access("/var", os.W_OK):
        pytest.skip("needs root: makes a link directly in /var")
    os.symlink("/var/tmp", link := f"/var/codex-box-test-link-{os.getpid()}")
    try:
        fd, real = resolve_write_root(link)
        os.close(fd)
    finally:
        os.unlink(link)
    assert real == os.path.realpath("/var/tmp")


def test_a_workspace_that_does_not_exist_is_an_error(compile_: Callable[..., SandboxSpec]) -> None:
    with pytest.raises(UsageError) as info:
        compile_("offline", workspace="does-not-exist")
    assert "'does-not-exist'" in info.value.message and "--workspace" in info.value.hint


def test_no_command_is_an_error(compile_: Callable[..., SandboxSpec]) -> None:
    with pytest.raises(ConfigError, match="no command given") as info:
        compile_("offline", argv=())
    assert "--" in info.value.hint


@pytest.mark.parametrize("name", ALL)
def test_writable_roots_hold_the_workspace_only_for_write_profiles(
    compile_: Callable[..., SandboxSpec], workspace: Path, name: str
) -> None:
    spec = compile_(name)
    if name in WRITERS:
        assert spec.writable_roots == (str(workspace.resolve()),)
        assert spec.workspace_writable
    else:
        assert spec.writable_roots == ()
        assert not spec.workspace_writable


@pytest.mark.parametrize("name", ALL)
def test_protected_paths_are_set_under_the_workspace_only_when_it_is_writable(
    compile_: Callable[..., SandboxSpec], workspace: Path, name: str
) -> None:
    spec = compile_(name)
    ws = str(workspace.resolve())
    if name in WRITERS:
        assert spec.protected_paths == tuple(f"{ws}/{n}" for n in DEFAULT_PROTECTED)
    else:
        assert spec.protected_paths == ()


@pytest.mark.parametrize("name", ALL)
def test_spec_mirrors_the_profile(compile_: Callable[..., SandboxSpec], name: str) -> None:
    spec = compile_(name)
    assert spec.profile == name
    assert spec.argv == ("true",)
    assert spec.run_id == "run-1" and spec.session_id == "session-1"
    assert (spec.uid, spec.gid) == (1000, 1000)
    assert spec.sandboxed is (name != "trusted")
    assert spec.rootfs_read_only is (name != "trusted")
    assert spec.private_tmp is (name in WRITERS)
    assert spec.capabilities is (Capabilities.DEFAULT if name == "trusted" else Capabilities.NONE)


def test_spec_is_frozen(compile_: Callable[..., SandboxSpec]) -> None:
    spec = compile_("offline")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.network = Network.FULL  # type: ignore[misc]


@pytest.mark.parametrize("root", ["/", "/etc", "/usr", "/var", "/proc"])
def test_a_system_directory_is_refused_as_a_writable_workspace(
    compile_: Callable[..., SandboxSpec], root: str
) -> None:
    with pytest.raises(Refused) as info:
        compile_("workspace", workspace=root)
    assert info.value.exit_code == 126
    assert f"refusing to make {root} writable" in info.value.message
    assert "--workspace" in info.value.hint


def test_a_system_directory_is_fine_as_a_read_only_workspace(
    compile_: Callable[..., SandboxSpec],
) -> None:
    spec = compile_("offline", workspace="/")
    assert spec.workspace == "/" and spec.writable_roots == ()


@pytest.mark.skipif(not os.path.islink("/bin"), reason="needs a merged-/usr host (/bin → usr/bin)")
def test_a_symlinked_system_directory_is_refused_as_a_writable_workspace(
    compile_: Callable[..., SandboxSpec],
) -> None:
    with pytest.raises(Refused):
        compile_("workspace", workspace="/bin")


@pytest.mark.parametrize("inside_checkout", ["seccomp-profiles", "apparmor", "orchestrator"])
def test_codex_box_own_profiles_and_code_are_refused_as_a_writable_workspace(
    compile_: Callable[..., SandboxSpec], inside_checkout: str
) -> None:
    # A sandbox that could rewrite them would loosen the next run's confinement.
    root = Path(__file__).resolve().parents[3] / inside_checkout
    with pytest.raises(Refused, match="codex-box's own installation"):
        compile_("workspace", workspace=str(root), home="/nonexistent-home")


def test_trusted_gets_no_default_memory_cap_but_sandboxed_profiles_do(
    compile_: Callable[..., SandboxSpec],
) -> None:
    assert compile_("trusted").limits.memory_bytes is None
    sandboxed = compile_("offline").limits
    assert sandboxed.memory_is_default and sandboxed.memory_bytes == default_memory_bytes()
    explicit = compile_("trusted", memory="64m").limits
    assert explicit.memory_bytes == 64 * 2**20 and not explicit.memory_is_default


def test_a_workspace_equal_to_codex_home_is_refused(
    compile_: Callable[..., SandboxSpec], codex_home: Path
) -> None:
    with pytest.raises(Refused, match="inside CODEX_HOME"):
        compile_("workspace", workspace=str(codex_home), home="/nonexistent-home")


def test_a_workspace_that_contains_codex_home_is_refused(
    compile_: Callable[..., SandboxSpec], workspace: Path
) -> None:
    inner = workspace / "state" / "codex"
    with pytest.raises(Refused) as info:
        compile_("workspace-net", codex_home=str(inner))
    assert "contains CODEX_HOME" in info.value.message
    assert str(inner) in info.value.message


def test_a_workspace_that_contains_codex_home_is_fine_when_it_is_read_only(
    compile_: Callable[..., SandboxSpec], workspace: Path
) -> None:
    spec = compile_("offline", codex_home=str(workspace / "state"))
    assert spec.writable_roots == ()


def test_codex_home_inside_a_protected_path_of_the_workspace_is_allowed(
    compile_: Callable[..., SandboxSpec], home: Path, codex_home: Path
) -> None:
    # A project whose CODEX_HOME is its own .codex, which stays read-only.
    project = home.parent / "project"
    (project / ".codex").mkdir(parents=True)
    spec = compile_("workspace", workspace=str(project), codex_home=str(project / ".codex"))
    assert f"{project.resolve()}/.codex" in spec.protected_paths


def test_a_workspace_inside_codex_home_is_refused(
    compile_: Callable[..., SandboxSpec], codex_home: Path
) -> None:
    profiles = codex_home / "profiles"
    profiles.mkdir()
    with pytest.raises(Refused):
        compile_("workspace", workspace=str(profiles))


def test_writable_paths_of_a_user_profile_are_expanded_and_added(
    store: ProfileStore,
    make_request: MakeRequest,
    write_profile: Callable[[str, str], Path],
    home: Path,
    workspace: Path,
) -> None:
    (home / "cache").mkdir()
    write_profile("cache", 'extends: workspace\nfilesystem:\n  writable_paths: ["~/cache"]\n')
    spec = compile_spec(store.get("cache"), make_request())
    assert spec.writable_roots == (str(workspace.resolve()), str((home / "cache").resolve()))


def test_a_missing_writable_path_is_an_error_naming_the_profile(
    store: ProfileStore, make_request: MakeRequest, write_profile: Callable[[str, str], Path]
) -> None:
    write_profile("cache", 'extends: offline\nfilesystem:\n  writable_paths: ["~/nope"]\n')
    with pytest.raises(ConfigError) as info:
        compile_spec(store.get("cache"), make_request())
    assert "writable path in profile cache" in info.value.message
    assert "'" in info.value.message and "nope" in info.value.message


def test_a_writable_path_containing_codex_home_is_refused(
    store: ProfileStore, make_request: MakeRequest, write_profile: Callable[[str, str], Path]
) -> None:
    write_profile("homewrite", 'extends: offline\nfilesystem:\n  writable_paths: ["~"]\n')
    with pytest.raises(Refused, match="home directory"):
        compile_spec(store.get("homewrite"), make_request())


def test_a_workspace_writable_through_a_parent_grant_keeps_its_protected_paths(
    store: ProfileStore,
    make_request: MakeRequest,
    write_profile: Callable[[str, str], Path],
    workspace: Path,
) -> None:
    write_profile(
        "src", f'extends: offline\nfilesystem:\n  writable_paths: ["{workspace.parent}"]\n'
    )
    # CODEX_HOME elsewhere: the grant's parent directory must not contain it.
    spec = compile_spec(store.get("src"), make_request(codex_home="/nonexistent/codex-home"))
    assert f"{workspace.resolve()}/.git" in spec.protected_paths


# --- limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("2.5s", 2.5), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25), (" 7S ", 7.0)],
)
def test_timeout_is_parsed(text: str, seconds: float) -> None:
    assert parse_limits(timeout=text, memory=None, pids=None).timeout_s == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 * MiB),
        ("2g", 2 * GiB),
        ("2GiB", 2 * GiB),
        ("1.5g", int(1.5 * GiB)),
        ("65536k", 64 * MiB),
    ],
)
def test_memory_is_parsed(text: str, size: int) -> None:
    assert parse_limits(timeout=None, memory=text, pids=None).memory_bytes == size


def test_zero_means_no_limit() -> None:
    limits = parse_limits(timeout="0", memory="0", pids="0")
    assert limits == Limits(timeout_s=None, memory_bytes=None, pids=None)


def test_unset_limits_get_the_defaults() -> None:
    limits = parse_limits(timeout=None, memory=None, pids=None)
    total_kib = int(Path("/proc/meminfo").read_text().split()[1])
    half = total_kib // 2 // 1024 * 1024 * 1024
    assert limits == Limits(timeout_s=None, memory_bytes=half, memory_is_default=True,
                            pids=DEFAULT_PIDS)
    assert limits.pids == 4096


def test_the_default_memory_limit_is_half_the_ram_and_unknown_ram_means_none(
        tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2048000 kB\nMemFree: 1 kB\n")
    assert default_memory_bytes(str(meminfo)) == 1000 * 1024 * 1024
    meminfo.write_text("garbage\n")
    assert default_memory_bytes(str(meminfo)) is None
    assert default_memory_bytes(str(tmp_path / "absent")) is None


def test_an_explicit_memory_limit_is_not_a_default() -> None:
    assert not parse_limits(timeout=None, memory="1g", pids=None).memory_is_default
    assert not parse_limits(timeout=None, memory="0", pids=None).memory_is_default


def test_pids_are_parsed() -> None:
    assert parse_limits(timeout=None, memory=None, pids="256").pids == 256


@pytest.mark.parametrize(
    ("kwargs", "flag", "hint"),
    [
        ({"timeout": "soon"}, "--timeout 'soon'", "30, 2.5s, 5m"),
        ({"timeout": "-1"}, "--timeout '-1'", "30, 2.5s, 5m"),
        ({"timeout": "1d"}, "--timeout '1d'", "30, 2.5s, 5m"),
        ({"memory": "lots"}, "--memory 'lots'", "512m, 2g"),
        ({"memory": "2x"}, "--memory '2x'", "512m, 2g"),
        ({"memory": "1m"}, "--memory '1m' is below 16 MiB", "0 for no limit"),
        ({"memory": "512"}, "--memory '512' is below 16 MiB", "0 for no limit"),
        ({"pids": "many"}, "--pids 'many'", "256"),
        ({"pids": "-5"}, "--pids '-5'", "256"),
        ({"pids": "4"}, "--pids '4' is too small", "at least 8"),
    ],
)
def test_bad_limit_values_are_errors_with_a_hint(
    kwargs: dict[str, str], flag: str, hint: str
) -> None:
    args: dict[str, str | None] = {"timeout": None, "memory": None, "pids": None, **kwargs}
    with pytest.raises(UsageError) as info:
        parse_limits(**args)
    assert info.value.exit_code == EXIT_USAGE
    assert flag in info.value.message
    assert hint in info.value.hint


def test_limits_reach_the_spec(compile_: Callable[..., SandboxSpec]) -> None:
    spec = compile_("workspace", timeout="5m", memory="2g", pids="64")
    assert spec.limits == Limits(timeout_s=300.0, memory_bytes=2 * GiB, pids=64)


def test_a_tiny_nonzero_memory_request_is_an_error_not_unlimited() -> None:
    with pytest.raises(UsageError):
        parse_limits(timeout=None, memory="0.5", pids=None)


def test_a_non_decimal_digit_pids_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_limits(timeout=None, memory=None, pids="²")


# --- environment ------------------------------------------------------------------------

SECRETS = {
    "MY_SECRET_TOKEN": "s1",
    "AWS_SECRET_ACCESS_KEY": "s2",
    "GITHUB_TOKEN": "s3",
    "DB_PASSWORD": "s4",
    "GOOGLE_APPLICATION_CREDENTIALS": "/k.json",
    "openai_api_key": "s5",
}


def test_secret_looking_variables_are_withheld(
    compile_: Callable[..., SandboxSpec], home: Path
) -> None:
    environ = {"PATH": "/usr/bin", "HOME": str(home), "LANG": "C.UTF-8", **SECRETS}
    env = compile_("workspace", environ=environ).env_dict()
    for name in SECRETS:
        assert name not in env, name
    assert env["PATH"] == "/usr/bin" and env["LANG"] == "C.UTF-8" and env["HOME"] == str(home)
    assert "s1" not in repr(env)


def test_env_name_passes_a_withheld_variable_through(
    compile_: Callable[..., SandboxSpec],
) -> None:
    env = compile_(
        "workspace", environ={"PATH": "/bin", **SECRETS}, env_names=("GITHUB_TOKEN",)
    ).env_dict()
    assert env["GITHUB_TOKEN"] == SECRETS["GITHUB_TOKEN"]
    assert "AWS_SECRET_ACCESS_KEY" not in env and "MY_SECRET_TOKEN" not in env


def test_env_name_value_sets_a_variable(compile_: Callable[..., SandboxSpec]) -> None:
    env = compile_(
        "offline", environ={"PATH": "/bin"}, env_names=("FOO=bar=baz", "API_KEY=abc", "EMPTY=")
    ).env_dict()
    assert env["FOO"] == "bar=baz"
    assert env["API_KEY"] == "abc"
    assert env["EMPTY"] == ""


def test_env_name_that_is_not_set_is_an_error(compile_: Callable[..., SandboxSpec]) -> None:
    with pytest.raises(UsageError) as info:
        compile_("offline", environ={}, env_names=("GITHUB_TOKEN",))
    assert "--env GITHUB_TOKEN" in info.value.message
    assert "GITHUB_TOKEN=VALUE" in info.value.hint


def test_env_with_an_invalid_name_is_an_error(compile_: Callable[..., SandboxSpec]) -> None:
    with pytest.raises(UsageError, match="is not a variable name"):
        compile_("offline", env_names=("1BAD=x",))


def test_the_environment_comes_from_the_request_not_from_os_environ(
    compile_: Callable[..., SandboxSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONLY_IN_OS_ENVIRON", "1")
    env = compile_("offline", environ={"PATH": "/bin"}).env_dict()
    assert "ONLY_IN_OS_ENVIRON" not in env


@pytest.mark.parametrize("name", ALL)
def test_network_disabled_marker_is_set_only_for_no_network_profiles(
    compile_: Callable[..., SandboxSpec], name: str
) -> None:
    env = compile_(name, environ={"PATH": "/bin"}).env_dict()
    if name in ("offline", "workspace"):
        assert env["CODEX_SANDBOX_NETWORK_DISABLED"] == "1"
    else:
        assert "CODEX_SANDBOX_NETWORK_DISABLED" not in env
    assert env["CODEX_BOX_PROFILE"] == name
    assert env["CODEX_BOX_SESSION"] == "session-1"


def test_the_profile_marker_cannot_be_forged_with_env(
    compile_: Callable[..., SandboxSpec],
) -> None:
    env = compile_("offline", env_names=("CODEX_BOX_PROFILE=trusted",)).env_dict()
    assert env["CODEX_BOX_PROFILE"] == "offline"


def test_spec_env_is_sorted(compile_: Callable[..., SandboxSpec]) -> None:
    spec = compile_("offline", environ={"ZZZ": "1", "AAA": "2", "MMM": "3"})
    names = [k for k, _ in spec.env]
    assert names == sorted(names)


# --- seccomp ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "seccomp"),
    [
        ("offline", "offline"),
        ("net-read-only", "default"),
        ("workspace", "offline"),
        ("workspace-net", "default"),
    ],
)
def test_seccomp_profile_points_at_an_existing_json(
    compile_: Callable[..., SandboxSpec], name: str, seccomp: str
) -> None:
    path = compile_(name).seccomp_profile
    assert path is not None and os.path.isabs(path)
    assert os.path.basename(path) == f"{seccomp}.json"
    assert os.path.isfile(path)
    assert os.path.basename(os.path.dirname(path)) == "seccomp-profiles"


def test_trusted_has_no_seccomp_profile(compile_: Callable[..., SandboxSpec]) -> None:
    assert compile_("trusted").seccomp_profile is None


def test_a_workspace_inside_codex_home_names_the_reason(
    compile_: Callable[..., SandboxSpec], codex_home: Path
) -> None:
    (codex_home / "profiles").mkdir()
    with pytest.raises(Refused, match="inside CODEX_HOME"):
        compile_("workspace", workspace=str(codex_home / "profiles"), home="/nonexistent-home")


@pytest.mark.parametrize("root", ["/usr/local/bin", "/etc/cron.d", "/var/spool", "/var/lib"])
def test_write_roots_inside_system_trees_are_refused(
    compile_: Callable[..., SandboxSpec], root: str
) -> None:
    if not Path(root).is_dir():
        pytest.skip(f"{root} does not exist here")
    with pytest.raises(Refused, match="system directory"):
        compile_("workspace", workspace=root)


def test_scratch_space_under_var_tmp_may_be_a_workspace(
    compile_: Callable[..., SandboxSpec], tmp_path: Path
) -> None:
    scratch = Path(f"/var/tmp/codex-box-unit-{tmp_path.name}")
    scratch.mkdir()
    try:
        assert compile_("workspace", workspace=str(scratch)).workspace == str(scratch)
    finally:
        scratch.rmdir()


def test_the_home_directory_and_its_dot_directories_are_refused(
    compile_: Callable[..., SandboxSpec], home: Path
) -> None:
    (home / ".ssh").mkdir()
    (home / "src").mkdir()
    for root in (home, home / ".ssh"):
        with pytest.raises(Refused, match="home directory"):
            compile_("workspace", workspace=str(root), codex_home="/nonexistent-codex")
    assert compile_("workspace", workspace=str(home / "src"),
                    codex_home="/nonexistent-codex").workspace == str((home / "src").resolve())


def test_codex_box_own_installation_is_never_writable(
    compile_: Callable[..., SandboxSpec],
) -> None:
    """A run that could edit the package or its venv would run code unsandboxed next time."""
    import orchestrator

    repo = Path(orchestrator.__file__).resolve().parent.parent
    with pytest.raises(Refused, match="own installation"):
        compile_("workspace", workspace=str(repo), home="/nonexistent-home",
                 codex_home="/nonexistent-codex")


def test_every_directory_whose_links_are_followed_is_refused_as_a_write_root() -> None:
    """A link is trusted only where no sandbox can write: a directory that could be a
    workspace (say /media) could hold one a sandbox planted."""
    from orchestrator.compile.write_roots import refuse_unsafe
    from orchestrator.sandbox.linux.pinning import TRUSTED_LINK_DIRS

    for directory in TRUSTED_LINK_DIRS:
        with pytest.raises(Refused):
            refuse_unsafe(directory, protected=(), codex_home="/nonexistent", user_home="")


@pytest.mark.parametrize("parent", ["/opt", "/srv", "/mnt", "/media"])
def test_a_link_in_a_directory_that_may_be_a_workspace_is_not_followed(
    parent: str, tmp_path: Path
) -> None:
    from orchestrator.sandbox.linux.pinning import resolve_write_root

    if not os.access(parent, os.W_OK):
        pytest.skip(f"needs root (or a writable {parent}): makes a link directly in {parent}")
    link = f"{parent}/codex-box-test-link-{os.getpid()}"
    os.symlink(tmp_path, link)
    try:
        with pytest.raises(PermissionError, match="may have written"):
            resolve_write_root(link)
    finally:
        os.unlink(link)
