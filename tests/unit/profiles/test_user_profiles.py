"""User profiles in $CODEX_HOME/profiles/*.yaml: extend a built-in, only tighten.

Every bad file must give a ConfigError whose one line names the file, the key and a fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.core.errors import EXIT_SETUP, ConfigError
from orchestrator.core.profile import Access, Capabilities, Network, PlantedRepo, WorkspaceWrite
from orchestrator.profiles.store import ProfileStore

WriteProfile = Callable[[str, str], Path]


def load_error(store: ProfileStore, name: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        store.get(name)
    assert info.value.exit_code == EXIT_SETUP
    assert info.value.hint, "every error carries a fix"
    return info.value


def test_user_profile_extending_workspace_net_can_switch_the_network_off(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile(
        "build",
        """
        extends: workspace-net
        description: "package cache only"
        network: none
        """,
    )
    profile = store.get("build")
    assert profile.name == "build"
    assert profile.extends == "workspace-net"
    assert profile.origin == str(path)
    assert profile.network is Network.NONE
    assert not profile.allows_network()
    assert profile.workspace is Access.READ_WRITE  # inherited
    assert profile.to_sandbox_policy() == WorkspaceWrite(network=False)
    assert profile.description == "package cache only"


def test_user_profile_inherits_everything_it_does_not_override(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("quiet", "extends: workspace\n")
    quiet, base = store.get("quiet"), store.get("workspace")
    for attr in (
        "network",
        "rootfs",
        "workspace",
        "private_tmp",
        "protected_paths",
        "sandboxed",
        "seccomp",
        "apparmor",
        "capabilities",
        "requires_opt_in",
    ):
        assert getattr(quiet, attr) == getattr(base, attr), attr
    assert "quiet.yaml" in quiet.description  # says where the tightening came from


def test_user_profile_may_extend_a_codex_alias(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("ww", "extends: workspace-write\nnetwork: none\n")
    assert store.get("ww").extends == "workspace"


def test_user_profile_may_add_explicitly_named_writable_paths(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile(
        "pipcache",
        """
        extends: offline
        filesystem:
          writable_paths: ["~/.cache/pip", "/srv/data"]
        """,
    )
    profile = store.get("pipcache")
    assert profile.writable_paths == ("~/.cache/pip", "/srv/data")
    assert profile.network is Network.NONE


def test_user_profile_may_add_protected_paths(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile(
        "strict",
        """
        extends: workspace
        filesystem:
          protected_paths: [.git, .codex, .codex-profile, .env]
        """,
    )
    assert ".env" in store.get("strict").protected_paths


def test_user_profile_may_tighten_every_ordered_field_at_once(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile(
        "locked",
        """
        extends: trusted
        network: none
        filesystem:
          root: read-only
          workspace: read-only
        process:
          sandboxed: true
          seccomp: offline
          capabilities: none
        """,
    )
    profile = store.get("locked")
    assert profile.network is Network.NONE
    assert profile.rootfs is Access.READ_ONLY and profile.workspace is Access.READ_ONLY
    assert profile.sandboxed and profile.seccomp == "offline"
    assert profile.capabilities is Capabilities.NONE
    assert profile.requires_opt_in  # still inherited from trusted: it cannot be dropped


def test_user_profiles_appear_next_to_the_built_ins(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("mine", "extends: offline\n")
    assert set(store.all()) == {
        "offline",
        "net-read-only",
        "workspace",
        "workspace-net",
        "trusted",
        "mine",
    }


def test_malformed_yaml_names_the_file_and_line(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile(
        "bad",
        """
        extends: workspace
        network: none
        filesystem:
          root: read-only
           workspace: read-write
        """,
    )
    err = load_error(store, "bad")
    assert f"{path}:5:" in err.one_line()
    assert "malformed YAML" in err.one_line()
    assert "fix the YAML syntax" in err.hint


def test_a_profile_that_is_not_a_mapping_is_an_error(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile("list", "- extends\n- workspace\n")
    err = load_error(store, "list")
    assert str(path) in err.one_line() and "mapping" in err.message
    assert "extends:" in err.hint


def test_unknown_top_level_key_names_file_line_key_and_suggests_the_right_one(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile("typo", "extends: workspace\nnetwrk: none\n")
    err = load_error(store, "typo")
    assert f"{path}:2:" in err.message
    assert "'netwrk'" in err.message and "unknown key" in err.message
    assert "did you mean 'network'?" in err.hint


def test_unknown_nested_key_names_the_dotted_key_and_suggests_the_right_one(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile("nested", "extends: workspace\nfilesystem:\n  rot: read-only\n")
    err = load_error(store, "nested")
    assert f"{path}:3:" in err.message
    assert "'filesystem.rot'" in err.message
    assert "did you mean 'root'?" in err.hint


@pytest.mark.parametrize(
    ("body", "key", "fix"),
    [
        ("network: 3\n", "network.mode", "use one of the listed values"),
        ("network:\n  mode: 3\n", "network.mode", "use one of the listed values"),
        ("network:\n  allow: pypi.org\n", "network.allow", "omit the key"),
        ("network:\n  allow: []\n", "network.allow", "omit the key"),
        ("network:\n  inspect_tls: yes please\n", "network.inspect_tls", "true or false"),
        ("filesystem: true\n", "filesystem", "followed by indented keys"),
        ('process:\n  sandboxed: "yes"\n', "process.sandboxed", "true or false"),
        ("filesystem:\n  private_tmp: 1\n", "filesystem.private_tmp", "true or false"),
        ("filesystem:\n  writable_paths: ~/x\n", "filesystem.writable_paths", "YAML list"),
        ("filesystem:\n  writable_paths: [1, 2]\n", "filesystem.writable_paths", "YAML list"),
        ("description: 42\n", "description", "quote the value"),
        ("extends: [workspace]\n", "extends", "quote the value"),
    ],
)
def test_wrong_type_names_file_key_and_fix(
    store: ProfileStore, write_profile: WriteProfile, body: str, key: str, fix: str
) -> None:
    text = body if body.startswith("extends") else "extends: workspace\n" + body
    path = write_profile("wrongtype", text)
    err = load_error(store, "wrongtype")
    assert str(path) in err.message
    assert f"key '{key}'" in err.message
    assert fix in err.hint


@pytest.mark.parametrize(
    ("body", "key", "suggestion"),
    [
        ("network: ful\n", "network.mode", "did you mean 'full'?"),
        ("filesystem:\n  root: readonly\n", "filesystem.root", "did you mean 'read-only'?"),
        ("process:\n  capabilities: nne\n", "process.capabilities", "did you mean 'none'?"),
        ("process:\n  seccomp: ofline\n", "process.seccomp", "did you mean 'offline'?"),
        (
            "process:\n  apparmor: codex-box-workspac\n",
            "process.apparmor",
            "did you mean 'codex-box-workspace'?",
        ),
    ],
)
def test_bad_enum_value_lists_the_choices_and_suggests_one(
    store: ProfileStore, write_profile: WriteProfile, body: str, key: str, suggestion: str
) -> None:
    path = write_profile("enum", "extends: workspace\n" + body)
    err = load_error(store, "enum")
    assert str(path) in err.message and f"key '{key}'" in err.message
    assert suggestion in err.hint


def test_missing_extends_is_an_error_listing_the_built_ins(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile("orphan", "network: none\n")
    err = load_error(store, "orphan")
    assert str(path) in err.message and "'extends'" in err.message
    assert "extends: workspace" in err.hint
    assert "workspace-net" in err.hint


def test_extending_a_profile_that_is_not_built_in_is_an_error(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("first", "extends: workspace\n")
    path = write_profile("second", "extends: first\n")
    with pytest.raises(ConfigError) as info:
        store.all()
    err = info.value
    assert f"{path}:1:" in err.message and "'extends'" in err.message
    assert "'first' is not a built-in profile" in err.message
    assert "extend one of: offline" in err.hint


def test_extending_a_misspelt_built_in_suggests_the_right_one(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("mine", "extends: worksapce\n")
    assert "did you mean 'workspace'?" in load_error(store, "mine").hint


@pytest.mark.parametrize("builtin", ["workspace", "trusted", "read-only"])
def test_a_user_profile_cannot_redefine_a_built_in_or_alias_name(
    store: ProfileStore, write_profile: WriteProfile, builtin: str
) -> None:
    path = write_profile(builtin, "extends: offline\n")
    with pytest.raises(ConfigError) as info:
        store.all()
    assert str(path) in info.value.message
    assert "'name'" in info.value.message and "built-in profile name" in info.value.message
    assert "choose another name" in info.value.hint
    # and the built-in is still the real one
    assert ProfileStore(codex_home=path.parent.parent).builtins()["trusted"].requires_opt_in


def test_a_name_key_naming_a_built_in_is_refused(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("sneaky", "name: workspace\nextends: offline\n")
    with pytest.raises(ConfigError, match="built-in profile name"):
        store.all()


def test_a_name_that_differs_from_the_file_stem_is_an_error(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile("build", "name: builder\nextends: workspace\n")
    with pytest.raises(ConfigError) as info:
        store.all()
    assert f"{path}:1:" in info.value.message and "'name'" in info.value.message
    assert "rename the file to builder.yaml" in info.value.hint


@pytest.mark.parametrize(
    ("extends", "body", "key"),
    [
        ("offline", "network: read-only\n", "network.mode"),
        ("net-read-only", "network: full\n", "network.mode"),
        ("workspace", "network: full\n", "network.mode"),
        ("workspace", "filesystem:\n  root: read-write\n", "filesystem.root"),
        ("offline", "filesystem:\n  workspace: read-write\n", "filesystem.workspace"),
        ("offline", "filesystem:\n  private_tmp: true\n", "filesystem.private_tmp"),
        ("workspace", "process:\n  sandboxed: false\n", "process.sandboxed"),
        ("workspace", "process:\n  seccomp: default\n", "process.seccomp"),
        ("workspace-net", "process:\n  seccomp: null\n", "process.seccomp"),
        ("workspace", "process:\n  apparmor: null\n", "process.apparmor"),
        ("offline", "process:\n  apparmor: codex-box-workspace-net\n", "process.apparmor"),
        ("workspace", "process:\n  capabilities: default\n", "process.capabilities"),
        ("trusted", "process:\n  requires_opt_in: false\n", "process.requires_opt_in"),
    ],
)
def test_loosening_an_ordered_field_is_refused(
    store: ProfileStore, write_profile: WriteProfile, extends: str, body: str, key: str
) -> None:
    path = write_profile("loose", f"extends: {extends}\n" + body)
    err = load_error(store, "loose")
    assert str(path) in err.message
    assert f"key '{key}'" in err.message
    assert f"loosens '{extends}'" in err.message
    assert "may only tighten" in err.hint


def test_loosening_error_points_at_the_offending_line(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile(
        "loose",
        "extends: workspace\ndescription: d\nprocess:\n  seccomp: offline\n  sandboxed: false\n",
    )
    assert f"{path}:5:" in load_error(store, "loose").message


def test_leaving_a_protected_path_out_of_the_list_keeps_it_protected(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    """A list written before a name became a default must not unprotect it: only
    filesystem.unprotect removes a name, by naming it."""
    write_profile(
        "nogit",
        "extends: workspace\nfilesystem:\n  protected_paths: [.codex, .codex-profile, .env]\n",
    )
    protected = store.get("nogit").protected_paths
    assert set(store.get("workspace").protected_paths) | {".env"} == set(protected)


def test_unknown_profile_name_suggests_the_closest_one(store: ProfileStore) -> None:
    err = load_error(store, "ofline")
    assert "unknown profile 'ofline'" in err.message
    assert "did you mean 'offline'?" in err.hint
    for name in ("offline", "net-read-only", "workspace", "workspace-net", "trusted"):
        assert name in err.hint


def test_unknown_profile_name_lists_user_profiles_too(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("frontend", "extends: workspace-net\n")
    err = load_error(store, "frontnd")
    assert "did you mean 'frontend'?" in err.hint


def test_a_bad_user_profile_does_not_break_the_built_ins(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("broken", "extends: [\n")
    assert store.get("offline").name == "offline"
    assert store.get("danger-full-access").name == "trusted"


@pytest.mark.parametrize("bad", ["../outside", "/etc", "a/b", ".."])
def test_protected_paths_must_be_single_names_inside_the_workspace(
    store: ProfileStore, write_profile: Callable[[str, str], Path], bad: str
) -> None:
    names = f'[.git, .codex, .codex-profile, "{bad}"]'
    write_profile("mine", f"extends: workspace\nfilesystem:\n  protected_paths: {names}\n")
    with pytest.raises(ConfigError, match="not a name inside the workspace"):
        store.get("mine")


def test_writable_paths_must_be_absolute(
    store: ProfileStore, write_profile: Callable[[str, str], Path]
) -> None:
    write_profile("mine", 'extends: workspace\nfilesystem:\n  writable_paths: ["build"]\n')
    with pytest.raises(ConfigError, match="not an absolute path"):
        store.get("mine")


# --- filesystem.unprotect and filesystem.on_planted_repo ----------------------------------


def test_a_user_profile_may_unprotect_a_default_host_tool_path_by_name(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("ide", "extends: workspace\nfilesystem:\n  unprotect: [.vscode, .idea]\n")
    profile = store.get("ide")
    assert ".vscode" not in profile.protected_paths
    assert ".idea" not in profile.protected_paths
    assert {".git", ".codex", ".codex-profile", ".mcp.json"} <= set(profile.protected_paths)
    assert profile.unprotected == (".vscode", ".idea")


def test_unprotect_and_an_explicit_protected_list_combine(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    others = ", ".join(p for p in store.get("workspace").protected_paths if p != ".vscode")
    write_profile(
        "ide",
        f"extends: workspace\nfilesystem:\n  protected_paths: [{others}, .env]\n"
        "  unprotect: [.vscode]\n",
    )
    profile = store.get("ide")
    assert ".env" in profile.protected_paths and ".vscode" not in profile.protected_paths


@pytest.mark.parametrize("name", [".git", ".codex", ".codex-profile"])
def test_codex_box_s_own_protected_names_can_never_be_unprotected(
    store: ProfileStore, write_profile: WriteProfile, name: str
) -> None:
    path = write_profile("loose", f"extends: workspace\nfilesystem:\n  unprotect: [{name}]\n")
    err = load_error(store, "loose")
    assert f"{path}:3:" in err.message and "'filesystem.unprotect'" in err.message
    assert f"{name} can never be unprotected" in err.message


def test_unprotecting_a_name_that_is_not_protected_suggests_the_right_one(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("typo", "extends: workspace\nfilesystem:\n  unprotect: [.vscod]\n")
    err = load_error(store, "typo")
    assert ".vscod is not protected by 'workspace'" in err.message
    assert "did you mean '.vscode'?" in err.hint


def test_a_name_both_protected_and_unprotected_is_an_error(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    listed = ", ".join(store.get("workspace").protected_paths)
    write_profile(
        "both",
        f"extends: workspace\nfilesystem:\n  protected_paths: [{listed}]\n  unprotect: [.vscode]\n",
    )
    assert "both protected" in load_error(store, "both").message


@pytest.mark.parametrize("bad", ["a/b", "..", "/etc"])
def test_unprotect_takes_single_names(
    store: ProfileStore, write_profile: WriteProfile, bad: str
) -> None:
    write_profile("mine", f'extends: workspace\nfilesystem:\n  unprotect: ["{bad}"]\n')
    assert "not a name inside the workspace" in load_error(store, "mine").message


def test_on_planted_repo_defaults_to_warn_and_may_be_tightened_to_quarantine(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    assert store.get("workspace").on_planted_repo is PlantedRepo.WARN
    write_profile("strict", "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n")
    assert store.get("strict").on_planted_repo is PlantedRepo.QUARANTINE


def test_on_planted_repo_takes_only_warn_or_quarantine(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("odd", "extends: workspace\nfilesystem:\n  on_planted_repo: delete\n")
    err = load_error(store, "odd")
    assert "expected one of warn, quarantine" in err.message


def test_mcp_tool_lists_are_read_and_may_only_narrow(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("tools", "extends: offline\nmcp:\n  allow_tools: [read_*, search]\n")
    write_profile("fewer", "extends: offline\nmcp:\n  deny_tools: [delete_*]\n")
    tools, fewer = store.get("tools"), store.get("fewer")
    assert tools.mcp_allow_tools == ("read_*", "search") and tools.mcp_deny_tools == ()
    assert fewer.mcp_deny_tools == ("delete_*",) and fewer.mcp_allow_tools == ()
    assert store.get("offline").mcp_allow_tools == ()  # every tool, for the built-ins


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("mcp:\n  allow_tools: read\n", "key 'mcp.allow_tools': expected a list of strings"),
        ("mcp:\n  deny_tools: [1]\n", "key 'mcp.deny_tools': expected a list of strings"),
        ("mcp:\n  deny_tool: [x]\n", "key 'mcp.deny_tool': unknown key"),
        ("mcp: [x]\n", "key 'mcp': expected a mapping"),
    ],
)
def test_a_bad_mcp_key_names_the_file_key_and_fix(
    store: ProfileStore, write_profile: WriteProfile, text: str, wanted: str
) -> None:
    write_profile("bad", "extends: offline\n" + text)
    error = load_error(store, "bad")
    assert "bad.yaml" in error.message and wanted in error.message


def test_a_user_profile_of_a_user_profile_cannot_widen_its_tools(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    from orchestrator.profiles.widening import wider

    write_profile("narrow", "extends: offline\nmcp:\n  allow_tools: [a]\n  deny_tools: [b]\n")
    write_profile("wide", "extends: offline\n")
    narrow, wide = store.get("narrow"), store.get("wide")
    assert wider(narrow, wide) == (
        "mcp.allow_tools admits every tool",
        "mcp.deny_tools no longer denies b",
    )
    assert wider(wide, narrow) == ()
