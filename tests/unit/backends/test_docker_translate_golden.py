"""Golden tests for the Docker backend's pure ``translate(spec)``: the WHOLE create body.

Regenerate with ``UPDATE_GOLDEN=1 pytest tests/unit/backends/test_docker_translate_golden.py``;
that writes the files and fails, so that each new golden is read before it is trusted.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.docker import translate as translate_on
from orchestrator.core.resources import seccomp_dir
from orchestrator.core.spec import Limits, SandboxSpec
from orchestrator.hardening.apparmor import HostAppArmor
from tests.unit.backends.test_linux_translate_golden import PROFILES, fixed_spec

GOLDEN_DIR = Path(__file__).parent / "golden" / "docker"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
# This machine's shape: a kernel without AppArmor (test_apparmor.py covers the others).
HOST = HostAppArmor(enabled=False)


def translate(spec: SandboxSpec) -> dict[str, Any]:
    return translate_on(spec, HOST)


def normalise(request: dict[str, Any]) -> dict[str, Any]:
    """The seccomp JSON content is long: replace it by the file it must equal."""
    out = json.loads(json.dumps(request))
    options = []
    for option in out["HostConfig"].get("SecurityOpt", []):
        if option.startswith("seccomp="):
            content = json.loads(option.removeprefix("seccomp="))
            matches = [p.name for p in seccomp_dir().glob("*.json")
                       if json.loads(p.read_text()) == content]
            assert len(matches) == 1, "the seccomp option must be exactly one of our files"
            option = f"seccomp=<seccomp-profiles/{matches[0]}>"
        options.append(option)
    if options:
        out["HostConfig"]["SecurityOpt"] = options
    return out


@pytest.mark.parametrize("name", PROFILES)
def test_docker_request_matches_the_golden_file(name: str, codex_home: Path) -> None:
    request = normalise(translate(fixed_spec(name, codex_home=codex_home)))
    golden = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
        pytest.fail(f"wrote {golden}: read it, then run again without UPDATE_GOLDEN")
    assert request == json.loads(golden.read_text())


@pytest.mark.parametrize("name", ["offline", "workspace", "net-read-only", "workspace-net"])
def test_every_sandboxed_request_is_hardened(name: str, codex_home: Path) -> None:
    host = translate(fixed_spec(name, codex_home=codex_home))["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert not any("docker.sock" in m["Source"] for m in host["Mounts"])


def test_trusted_is_not_privileged_and_keeps_the_engine_socket_out(codex_home: Path) -> None:
    host = translate(fixed_spec("trusted", codex_home=codex_home))["HostConfig"]
    assert host["Privileged"] is False
    assert "CapDrop" not in host and "SecurityOpt" not in host
    assert [(m["Source"], m["ReadOnly"]) for m in host["Mounts"]] == [("/work/proj", False)]


@pytest.mark.parametrize(("url", "asked"), [("unix:///var/run/docker.sock", True),
                                            ("tcp://10.0.0.5:2375", False)])
def test_the_default_memory_cap_is_not_sent_to_a_remote_engine(
    url: str, asked: bool, codex_home: Path
) -> None:
    # The default is a share of *this* host's RAM; a remote engine's host has its own.
    default = Limits(memory_bytes=2**30, memory_is_default=True)
    spec = dataclasses.replace(
        fixed_spec("offline", codex_home=codex_home), limits=default, docker_host=url)
    host = translate(spec)["HostConfig"]
    assert ("Memory" in host) is asked and host.get("MemorySwap") == host.get("Memory")
    explicit = dataclasses.replace(spec, limits=Limits(memory_bytes=2**30))
    assert translate(explicit)["HostConfig"]["Memory"] == 2**30
