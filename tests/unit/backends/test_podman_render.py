"""``podman.render``: the libpod create body a run sends is exactly the one podman-py 5
would have sent for the same request (podman-py is the oracle here, in tests only: no
run imports it any more)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.containers import common as container
from orchestrator.backends.podman.render import render
from orchestrator.backends.podman.translate import join_holder, translate
from orchestrator.core.spec import Limits
from orchestrator.profiles.store import APPARMOR_NAMES
from tests.unit.backends.test_linux_translate_golden import PROFILES, fixed_spec
from tests.unit.backends.test_podman_translate import HOST


def podman_py(request: dict[str, Any]) -> Any:
    """What podman-py's ``containers.create(**request)`` POSTs, as JSON data."""
    from podman.api import prepare_body
    from podman.domain.containers_create import CreateMixin

    return json.loads(prepare_body(CreateMixin._render_payload(dict(request))))


HOSTS = {
    "this machine": HOST,
    "apparmor, crun (so runc) on hybrid cgroups": dataclasses.replace(
        HOST, apparmor=True, apparmor_loaded=APPARMOR_NAMES, runtime="crun"
    ),
    "rlimits raised by the runtime, default runtime": dataclasses.replace(
        HOST, can_raise_rlimits=True, runtime="crun", cgroups="v2", hybrid_cgroups=False
    ),
    "rootless on cgroup v2 (keep-id)": dataclasses.replace(
        HOST, rootless=True, cgroups="v2", hybrid_cgroups=False
    ),
}
LIMITS = {
    "defaults": Limits(timeout_s=None, memory_bytes=2 * 1024**3, pids=512),
    "every limit": Limits(memory_bytes=256 << 20, pids=64, cpus=1.5),
    "none": Limits(pids=None, memory_bytes=None),
}


@pytest.mark.parametrize("limits", LIMITS)
@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("name", PROFILES)
def test_the_body_is_what_podman_py_would_send(
    name: str, host: str, limits: str, codex_home: Path
) -> None:
    spec = dataclasses.replace(fixed_spec(name, codex_home=codex_home), limits=LIMITS[limits])
    request = translate(spec, HOSTS[host])
    request["labels"] = {**request["labels"], container.LABEL_OWNER: "host:1:2"}
    assert render(request) == podman_py(request)
    if spec.egress is not None:  # the command joining its network holder, and the holder
        joined = join_holder(request, 4242)
        assert render(joined) == podman_py(joined)
        holder = translate(container.netns_holder_spec(spec), HOSTS[host])
        named = {**holder, "name": container.netns_holder_name(spec)}
        assert render(named) == podman_py(named)


def test_the_body_keeps_every_security_option(codex_home: Path) -> None:
    """Read in the body itself, not only compared with podman-py."""
    spec = dataclasses.replace(
        fixed_spec("workspace", codex_home=codex_home), limits=LIMITS["every limit"]
    )
    body = render(translate(spec, HOSTS["apparmor, crun (so runc) on hybrid cgroups"]))
    assert body["read_only_filesystem"] is True and body["read_write_tmpfs"] is False
    assert body["privileged"] is False and body["no_new_privileges"] is True
    assert body["cap_drop"] == ["ALL"] and body["netns"] == {"nsmode": "none"}
    assert body["seccomp_profile_path"] == spec.seccomp_profile
    assert body["apparmor_profile"] == "codex-box-workspace"
    assert body["oci_runtime"] == "runc"
    assert body["resource_limits"] == {
        "pids": {"limit": 64},
        "cpu": {"period": 100_000, "quota": 150_000},
        "memory": {"limit": 256 << 20, "swap": 256 << 20},
    }
    assert body["r_limits"] == [
        {"type": "nofile", "soft": 20000, "hard": 20000},
        {"type": "nproc", "soft": 32768, "hard": 32768},
    ]
    assert body["user"] == "1000:1000" and body["entrypoint"] == [""]
    assert all("rprivate" in m["options"] for m in body["mounts"] if m["type"] == "bind")


@pytest.mark.parametrize(
    "extra",
    [{"security_opt": ["label=disable"]}, {"mounts": [{"type": "bind", "source": "/a",
                                                       "target": "/a", "bind": "/b"}]}],
)
def test_an_option_it_cannot_render_is_refused_never_dropped(
    extra: dict[str, Any], codex_home: Path
) -> None:
    request = {**translate(fixed_spec("offline", codex_home=codex_home), HOST), **extra}
    with pytest.raises(TypeError, match="no libpod rendering"):
        render(request)
