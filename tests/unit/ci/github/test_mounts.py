"""Which job-container mounts a session honours: engine sockets dropped, container
paths translated to the host's (orchestrator.ci.github.mounts)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.ci.github import mounts
from orchestrator.ci.github.mounts import Mount, PathPlan

WORK = "/Users/thomas/git/runner/_layout/_work"


@pytest.mark.parametrize(
    "path",
    [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/var/run/docker.sock/",
        "/run/podman/podman.sock",
        "/run/user/1000/podman/podman.sock",
        "/run/user/1000/docker.sock",
        "/home/me/.docker/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/var/run",
        "/run",
        "/var",
        "/",
        "/run/podman",
        "/run/user/1000",
        "/var//run/../run/docker.sock",
    ],
)
def test_an_engine_socket_or_a_directory_holding_one_is_recognised(path: str) -> None:
    assert mounts.engine_socket(path)


@pytest.mark.parametrize(
    "path",
    [WORK, "/__w", "/github/home", "/run/secrets", "/var/lib/docker-data", "my_docker_volume"],
)
def test_ordinary_paths_and_volume_names_are_not_engine_sockets(path: str) -> None:
    assert not mounts.engine_socket(path)


def _all(container: dict[str, Any]) -> list[Mount]:
    return [
        *mounts.parse_mounts(container["systemMountVolumes"], "system"),
        *mounts.parse_mounts(container["userMountVolumes"], "user"),
    ]


def test_the_documented_prepare_job_loses_only_its_docker_socket(
    prepare_example: dict[str, Any],
) -> None:
    every = _all(prepare_example["args"]["container"])
    kept, notes = mounts.drop_engine_sockets(every, keep=False, profile="workspace")
    assert [m.source for m in every if m not in kept] == ["/var/run/docker.sock"]
    assert len(notes) == 1
    assert "/var/run/docker.sock" in notes[0] and "'workspace'" in notes[0]
    assert "only 'trusted' keeps it" in notes[0]


def test_a_service_that_mounts_the_docker_socket_would_lose_it_too(
    prepare_example: dict[str, Any],
) -> None:
    service = prepare_example["args"]["services"][0]
    kept, notes = mounts.drop_engine_sockets(
        mounts.parse_mounts(service["userMountVolumes"], "user"), keep=False, profile="offline"
    )
    assert kept == () and len(notes) == 1


def test_trusted_keeps_the_engine_socket(prepare_example: dict[str, Any]) -> None:
    every = _all(prepare_example["args"]["container"])
    kept, notes = mounts.drop_engine_sockets(every, keep=True, profile="trusted")
    assert list(kept) == every and notes == ()


def test_a_socket_mounted_under_another_target_is_dropped_by_its_source() -> None:
    sneaky = Mount(source="/run/docker.sock", target="/tmp/harmless")
    kept, _ = mounts.drop_engine_sockets([sneaky], keep=False, profile="workspace")
    assert kept == ()


def test_the_work_directory_is_the_source_mounted_at_dunder_w(
    prepare_example: dict[str, Any],
) -> None:
    assert mounts.work_directory(_all(prepare_example["args"]["container"])) == WORK
    assert mounts.work_directory([Mount(source="/x", target="/__e")]) is None


def test_a_container_backend_maps_only_mounts_inside_the_work_directory(
    prepare_example: dict[str, Any],
) -> None:
    every = _all(prepare_example["args"]["container"])
    kept, _ = mounts.drop_engine_sockets(every, keep=False, profile="workspace")
    plan = mounts.plan(kept, workspace=WORK, host_visible=False)
    targets = {t for t, _ in plan.mappings}
    assert targets == {
        "/__w", "/__w/_temp", "/__w/_actions", "/__w/_tool", "/github/home", "/github/workflow"
    }  # fmt: skip
    assert any("/__e" in n and "not mounted" in n for n in plan.notes)
    assert any("my_docker_volume" in n and "engine volume" in n for n in plan.notes)


def test_the_native_backend_also_maps_host_paths_it_can_read(
    prepare_example: dict[str, Any],
) -> None:
    every = _all(prepare_example["args"]["container"])
    kept, _ = mounts.drop_engine_sockets(every, keep=False, profile="workspace")
    plan = mounts.plan(kept, workspace=WORK, host_visible=True)
    assert plan.to_host("/__e/node20/bin/node") == (
        "/Users/thomas/git/runner/_layout/externals/node20/bin/node"
    )
    assert "/var/run/docker.sock" not in {t for t, _ in plan.mappings}


def test_paths_translate_by_the_longest_whole_component_prefix() -> None:
    plan = PathPlan.from_json([["/__w", "/r/_work"], ["/__w/_temp", "/elsewhere/tmp"]])
    assert plan.to_host("/__w") == "/r/_work"
    assert plan.to_host("/__w/repo/repo") == "/r/_work/repo/repo"
    assert plan.to_host("/__w/_temp/x.sh") == "/elsewhere/tmp/x.sh"
    assert plan.to_host("/__wx/file") == "/__wx/file"
    assert plan.to_host("relative/__w") == "relative/__w"
    assert plan.to_host("/usr/bin") == "/usr/bin"


def test_a_plan_survives_its_json_and_ignores_what_it_did_not_write() -> None:
    plan = mounts.plan(
        [Mount(source="/r/_work", target="/__w")], workspace="/r/_work", host_visible=False
    )
    assert PathPlan.from_json(plan.to_json()).mappings == plan.mappings
    assert PathPlan.from_json([["/a"], 3, ["/b", 4], "x"]).mappings == ()
    assert PathPlan.from_json({"not": "a list"}).mappings == ()


@pytest.mark.parametrize(
    "items",
    [{"sourceVolumePath": "/a"}, [{"sourceVolumePath": "/a"}], ["x"], [{"targetVolumePath": 3}]],
)
def test_malformed_mounts_are_refused_naming_the_field(items: object) -> None:
    with pytest.raises(ValueError, match="systemMountVolumes"):
        mounts.parse_mounts(items, "container.systemMountVolumes")
