"""Golden tests for the native Linux backend's pure ``translate(spec)``: the WHOLE plan.

Regenerate with ``UPDATE_GOLDEN=1 pytest tests/unit/backends/test_linux_translate_golden.py``;
that writes the files and fails, so that each new golden is read before it is trusted.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.native.backend import LinuxBackend
from orchestrator.backends.native.host import NativeFacts
from orchestrator.backends.native.plan import translate
from orchestrator.compile.spec import proxy_environment
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.profile import DEFAULT_PROTECTED, Access, Capabilities, Network
from orchestrator.core.resources import seccomp_dir
from orchestrator.core.spec import READ_METHODS, Egress, Limits, SandboxSpec
from orchestrator.profiles.store import ProfileStore

GOLDEN_DIR = Path(__file__).parent / "golden" / "linux"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
PROFILES = ("offline", "net-read-only", "workspace", "workspace-net", "trusted")
WORKSPACE = "/work/proj"
SECCOMP_PLACEHOLDER = "<seccomp-profiles>"


def fixed_spec(name: str, *, codex_home: Path) -> SandboxSpec:
    """A spec with fixed, machine-independent values, derived from the built-in profile."""
    profile = ProfileStore(codex_home=codex_home).get(name)
    writable = profile.workspace is Access.READ_WRITE and profile.sandboxed
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/home/user",
        "LANG": "C.UTF-8",
        "CODEX_BOX_PROFILE": name,
        "CODEX_BOX_SESSION": "session-0001",
    }
    if not profile.allows_network():
        env["CODEX_SANDBOX_NETWORK_DISABLED"] = "1"
    egress = None
    if profile.uses_egress_proxy():  # net-read-only: behind the egress proxy
        egress = Egress(allow=(), deny=(), methods=READ_METHODS, inspect_tls=False,
                        allow_local_hosts=False)
        env |= proxy_environment(egress)
    return SandboxSpec(
        run_id="run-0001",
        session_id="session-0001",
        profile=name,
        argv=("make", "test"),
        workspace=WORKSPACE,
        env=tuple(sorted(env.items())),
        network=profile.network,
        sandboxed=profile.sandboxed,
        rootfs_read_only=profile.rootfs is Access.READ_ONLY,
        private_tmp=profile.private_tmp and profile.sandboxed,
        writable_roots=(WORKSPACE,) if writable else (),
        protected_paths=tuple(f"{WORKSPACE}/{p}" for p in profile.protected_paths)
        if writable
        else (),
        seccomp_profile=str(seccomp_dir() / f"{profile.seccomp}.json") if profile.seccomp else None,
        apparmor_profile=profile.apparmor if profile.sandboxed else None,
        capabilities=profile.capabilities,
        limits=Limits(timeout_s=None, memory_bytes=2 * 1024**3, pids=512),
        uid=1000,
        gid=1000,
        egress=egress,
    )


def normalise(plan: dict[str, Any]) -> dict[str, Any]:
    """The seccomp path is absolute and depends on the checkout: keep only its name."""
    out = json.loads(json.dumps(plan))
    if out.get("seccomp"):
        path = Path(out["seccomp"])
        assert path.is_file(), f"plan names a seccomp file that does not exist: {path}"
        assert path.parent == seccomp_dir()
        out["seccomp"] = f"{SECCOMP_PLACEHOLDER}/{path.name}"
    return out


@pytest.mark.parametrize("name", PROFILES)
def test_linux_plan_matches_the_golden_file(name: str, codex_home: Path) -> None:
    plan = normalise(translate(fixed_spec(name, codex_home=codex_home)))
    golden = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        pytest.fail(f"UPDATE_GOLDEN=1: wrote {golden}; review it, then rerun without UPDATE_GOLDEN")
    assert golden.is_file(), f"missing {golden}: run with UPDATE_GOLDEN=1 and review the result"
    assert plan == json.loads(golden.read_text(encoding="utf-8"))


def test_translate_is_pure_and_repeatable(codex_home: Path) -> None:
    spec = fixed_spec("workspace", codex_home=codex_home)
    before = dataclasses.replace(spec)
    first, second = translate(spec), translate(spec)
    assert first == second
    assert first is not second
    assert spec == before
    first["argv"].append("mutated")
    assert translate(spec)["argv"] == ["make", "test"]


def test_backend_object_translate_is_the_module_function(codex_home: Path) -> None:
    spec = fixed_spec("offline", codex_home=codex_home)
    facts = NativeFacts(available=False, reason="test", landlock_abi=0, user_namespaces="test",
                        libseccomp=False)
    # The plan depends on no host fact: a host that could not run it gets the same plan.
    assert LinuxBackend().translate(spec, facts) == translate(spec)


# The goldens must say what each profile means; check the meaning, not just equality,
# so that a regenerated golden that loosened a profile cannot pass review unnoticed.


def load_golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


def test_offline_golden_has_no_network_and_nothing_writable() -> None:
    plan = load_golden("offline")
    assert plan["sandbox"] is True and plan["network"] == "none"
    assert plan["mounts"]["writable_roots"] == [] and plan["mounts"]["private_tmp"] == []
    assert plan["landlock"]["read"] == ["/"] and "/run" in plan["mounts"]["hidden"]
    assert plan["landlock"]["write"] == [] and plan["landlock"]["deny_tcp"] is True
    assert plan["seccomp"] == f"{SECCOMP_PLACEHOLDER}/offline.json"
    assert plan["landlock"]["scope"] is True
    assert plan["env"]["CODEX_SANDBOX_NETWORK_DISABLED"] == "1"


def test_net_read_only_golden_has_network_and_nothing_writable() -> None:
    plan = load_golden("net-read-only")
    assert plan["network"] == "read-only" and plan["landlock"]["deny_tcp"] is False
    assert plan["landlock"]["write"] == [] and plan["mounts"]["writable_roots"] == []
    assert plan["seccomp"] == f"{SECCOMP_PLACEHOLDER}/default.json"


@pytest.mark.parametrize(("name", "network"), [("workspace", "none"), ("workspace-net", "full")])
def test_workspace_goldens_write_the_workspace_and_a_private_tmp_only(
    name: str, network: str
) -> None:
    plan = load_golden(name)
    assert plan["network"] == network
    assert plan["landlock"]["deny_tcp"] is (network == "none")
    assert plan["mounts"]["writable_roots"] == [WORKSPACE]
    assert plan["mounts"]["private_tmp"] == ["/tmp", "/dev/shm"]
    assert plan["landlock"]["write"] == [WORKSPACE, "/tmp", "/dev/shm"]
    assert plan["mounts"]["protected"] == [f"{WORKSPACE}/{n}" for n in DEFAULT_PROTECTED]
    assert plan["mounts"]["require_protected"] is True
    assert plan["cwd"] == WORKSPACE


def test_trusted_golden_is_unsandboxed_and_has_no_sandbox_sections() -> None:
    plan = load_golden("trusted")
    assert plan["sandbox"] is False
    for key in ("mounts", "landlock", "seccomp", "capabilities"):
        assert key not in plan


def test_translate_refuses_a_sandboxed_spec_that_keeps_capabilities(codex_home: Path) -> None:
    spec = dataclasses.replace(
        fixed_spec("workspace", codex_home=codex_home), capabilities=Capabilities.DEFAULT
    )
    with pytest.raises(SandboxSetupError, match="keeps capabilities or a writable root"):
        translate(spec)


def test_translate_refuses_a_sandboxed_spec_with_a_writable_root(codex_home: Path) -> None:
    spec = dataclasses.replace(
        fixed_spec("workspace", codex_home=codex_home), rootfs_read_only=False
    )
    with pytest.raises(SandboxSetupError):
        translate(spec)


def test_translate_refuses_a_sandboxed_spec_without_seccomp(codex_home: Path) -> None:
    spec = dataclasses.replace(fixed_spec("offline", codex_home=codex_home), seccomp_profile=None)
    with pytest.raises(SandboxSetupError, match="names no seccomp profile"):
        translate(spec)


def test_no_network_profiles_deny_tcp_in_landlock(codex_home: Path) -> None:
    spec = dataclasses.replace(
        fixed_spec("workspace-net", codex_home=codex_home), network=Network.NONE
    )
    assert translate(spec)["landlock"]["deny_tcp"] is True


def test_the_launcher_understands_the_plan_version_translate_writes() -> None:
    from orchestrator.backends.native import plan as linux
    from orchestrator.sandbox.linux import launcher

    assert launcher.PLAN_VERSION == linux.PLAN_VERSION
