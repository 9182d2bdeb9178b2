"""The five built-in profiles: the contract of DESIGN.md §1 and the seed's Python API."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.core.profile import (
    DEFAULT_PROTECTED,
    Access,
    Capabilities,
    DangerFullAccess,
    Network,
    Profile,
    ReadOnly,
    WorkspaceWrite,
)
from orchestrator.profiles.store import ALIASES, BUILTIN_NAMES, ProfileStore

# name: (network, workspace writable, full write, sandboxed, requires opt-in, private /tmp)
CONTRACT = {
    "offline": (Network.NONE, False, False, True, False, False),
    "net-read-only": (Network.READ_ONLY, False, False, True, False, False),
    "workspace": (Network.NONE, True, False, True, False, True),
    "workspace-net": (Network.FULL, True, False, True, False, True),
    "trusted": (Network.FULL, True, True, False, True, False),
}

POLICIES = {
    "offline": ReadOnly(),
    "net-read-only": ReadOnly(),
    "workspace": WorkspaceWrite(network=False),
    "workspace-net": WorkspaceWrite(network=True),
    "trusted": DangerFullAccess(),
}


def test_exactly_the_five_documented_profiles_are_built_in(store: ProfileStore) -> None:
    assert set(store.builtins()) == set(CONTRACT)
    assert set(BUILTIN_NAMES) == set(CONTRACT)
    assert all(p.origin == "builtin" for p in store.builtins().values())


@pytest.mark.parametrize("name", list(CONTRACT))
def test_each_built_in_profile_has_its_documented_properties(
    store: ProfileStore, name: str
) -> None:
    network, writes, full_write, sandboxed, opt_in, private_tmp = CONTRACT[name]
    profile = store.get(name)
    assert profile.name == name
    assert profile.description.strip()
    assert profile.network is network
    assert profile.allows_network() is (network is not Network.NONE)
    assert profile.allows_write() is writes
    assert profile.allows_full_write() is full_write
    assert profile.sandboxed is sandboxed
    assert profile.requires_opt_in is opt_in
    assert profile.private_tmp is private_tmp
    assert profile.protected_paths == DEFAULT_PROTECTED


@pytest.mark.parametrize("name", list(POLICIES))
def test_each_built_in_profile_maps_to_the_seed_sandbox_policy(
    store: ProfileStore, name: str
) -> None:
    assert store.get(name).to_sandbox_policy() == POLICIES[name]


def test_offline_profile_denies_network_and_every_write(store: ProfileStore) -> None:
    offline = store.get("offline")
    assert not offline.allows_network()
    assert not offline.allows_write()
    assert offline.rootfs is Access.READ_ONLY and offline.workspace is Access.READ_ONLY
    assert offline.seccomp == "offline"  # sockets other than AF_UNIX are refused too


def test_net_read_only_profile_reaches_the_network_but_writes_nothing(
    store: ProfileStore,
) -> None:
    profile = store.get("net-read-only")
    assert profile.allows_network() and profile.network is Network.READ_ONLY
    assert not profile.allows_write()


def test_workspace_profile_writes_the_workspace_without_network(store: ProfileStore) -> None:
    profile = store.get("workspace")
    assert profile.allows_write() and not profile.allows_full_write()
    assert not profile.allows_network()
    assert profile.rootfs is Access.READ_ONLY


def test_workspace_net_profile_writes_the_workspace_and_reaches_the_network(
    store: ProfileStore,
) -> None:
    profile = store.get("workspace-net")
    assert profile.allows_write() and profile.allows_network()
    assert not profile.allows_full_write()


def test_trusted_profile_is_unsandboxed_full_write_and_requires_opt_in(
    store: ProfileStore,
) -> None:
    trusted = store.get("trusted")
    assert trusted.allows_full_write()
    assert not trusted.sandboxed
    assert trusted.requires_opt_in
    assert trusted.capabilities is Capabilities.DEFAULT
    assert trusted.seccomp is None


def test_only_trusted_requires_opt_in_or_runs_unsandboxed(store: ProfileStore) -> None:
    opt_in = {n for n, p in store.builtins().items() if p.requires_opt_in}
    unsandboxed = {n for n, p in store.builtins().items() if not p.sandboxed}
    assert opt_in == unsandboxed == {"trusted"}


def test_sandboxed_built_ins_drop_every_capability(store: ProfileStore) -> None:
    for profile in store.builtins().values():
        if profile.sandboxed:
            assert profile.capabilities is Capabilities.NONE, profile.name
            assert profile.seccomp in ("offline", "default"), profile.name


@pytest.mark.parametrize(
    ("alias", "target"),
    [("read-only", "offline"), ("workspace-write", "workspace"), ("danger-full-access", "trusted")],
)
def test_codex_alias_resolves_to_the_built_in_profile(
    store: ProfileStore, alias: str, target: str
) -> None:
    assert ALIASES[alias] == target
    assert store.get(alias) is store.get(target)


def test_profile_is_frozen() -> None:
    profile = Profile(
        name="x",
        description="d",
        network=Network.NONE,
        rootfs=Access.READ_ONLY,
        workspace=Access.READ_ONLY,
        private_tmp=False,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.network = Network.FULL  # type: ignore[misc]
    assert profile.network is Network.NONE


def test_built_in_profile_cannot_be_mutated_in_place(store: ProfileStore, codex_home: Path) -> None:
    offline = store.get("offline")
    with pytest.raises(dataclasses.FrozenInstanceError):
        offline.sandboxed = False  # type: ignore[misc]
    assert ProfileStore(codex_home=codex_home).get("offline").sandboxed


def test_profile_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Profile("x", "d", Network.NONE, Access.READ_ONLY, Access.READ_ONLY, False)  # type: ignore[misc]


def test_a_sandboxed_profile_with_a_writable_root_maps_to_danger_full_access() -> None:
    profile = Profile(
        name="x",
        description="d",
        network=Network.NONE,
        rootfs=Access.READ_WRITE,
        workspace=Access.READ_ONLY,
        private_tmp=False,
    )
    assert profile.allows_write() and profile.allows_full_write()
    assert profile.to_sandbox_policy() == DangerFullAccess()


def test_the_compiled_builtins_match_their_yaml() -> None:
    """Launches load orchestrator/profiles/compiled.py; the YAML files are the truth."""
    import yaml

    from orchestrator.profiles import compiled
    from tests.conftest import REPO

    sources = sorted((REPO / "orchestrator" / "profiles").glob("*.yaml"))
    assert {p.stem: yaml.safe_load(p.read_text()) for p in sources} == compiled.PROFILES, (
        "run: .venv/bin/python scripts/compile_profiles.py"
    )


def test_every_writable_profile_protects_the_host_tool_paths_by_default(
    store: ProfileStore,
) -> None:
    host_tools = {".mcp.json", ".vscode", ".devcontainer", ".devcontainer.json", ".envrc"}
    host_tools |= {".claude", ".cursor", ".idea", ".git", ".codex", ".codex-profile"}
    for name in ("workspace", "workspace-net"):
        assert host_tools <= set(store.get(name).protected_paths), name


def test_the_protected_file_names_are_protected_names_and_the_rest_are_directories() -> None:
    from orchestrator.core.profile import DEFAULT_PROTECTED, PROTECTED_FILE_NAMES

    assert set(DEFAULT_PROTECTED) >= PROTECTED_FILE_NAMES
    assert {".codex-profile", ".mcp.json", ".devcontainer.json", ".envrc"} == PROTECTED_FILE_NAMES
