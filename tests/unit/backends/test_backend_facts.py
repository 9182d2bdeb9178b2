"""A backend looks at the host once: ``probe`` → ``HostFacts``; ``translate`` and a ``run``
given those facts never look again. And how a run's ending becomes a ``RunResult``
(``backends.result``), the same on every backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from orchestrator.backends import docker, result
from orchestrator.backends.containers import common as container
from orchestrator.backends.native import backend as native_backend
from orchestrator.backends.native import host as native_host
from orchestrator.backends.native.host import NativeFacts
from orchestrator.backends.native.plan import translate as native_plan
from orchestrator.backends.podman import backend as podman_backend
from orchestrator.backends.podman.host import PodmanFacts
from orchestrator.backends.podman.translate import translate as podman_translate
from orchestrator.core.spec import Limits, RunResult, SandboxSpec
from orchestrator.hardening import apparmor
from orchestrator.hardening.apparmor import HostAppArmor
from tests.unit.backends.test_linux_translate_golden import fixed_spec
from tests.unit.backends.test_podman_translate import HOST as PODMAN_HOST

ARMOR = HostAppArmor(enabled=True, loaded=("codex-box-workspace",))
DONE = RunResult(exit_code=0, backend="test", duration_s=0.0)


def _no_probe(*args: object, **kwargs: object) -> Any:
    raise AssertionError("the host was probed again")


class _Captured:
    """Stands in for ``ContainerRun``: records what a run would create, runs nothing."""

    requests: ClassVar[list[Mapping[str, Any]]] = []

    def __init__(self, spec: SandboxSpec, ops: object, **kwargs: object) -> None:
        self.spec = spec

    def execute(self, request: Mapping[str, Any]) -> RunResult:
        self.requests.append(request)
        return DONE


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Mapping[str, Any]]:
    _Captured.requests = []
    monkeypatch.setattr(docker, "ContainerRun", _Captured)
    monkeypatch.setattr(podman_backend, "ContainerRun", _Captured)
    monkeypatch.setattr(podman_backend, "PodmanOps", lambda url, **kw: None)
    return _Captured.requests


def _docker_facts(spec: SandboxSpec) -> docker.DockerFacts:
    return docker.DockerFacts(
        available=True, reason="test", endpoint=spec.docker_host, server="Docker/test", armor=ARMOR
    )


def _without_owner(request: Mapping[str, Any], labels: str) -> dict[str, Any]:
    out = dict(request)
    out[labels] = {k: v for k, v in out[labels].items() if k != container.LABEL_OWNER}
    return out


# --- docker ---------------------------------------------------------------------------


def test_docker_translate_reads_the_facts_not_the_host(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apparmor, "probe", _no_probe)
    monkeypatch.setattr(docker, "Endpoint", _no_probe)
    spec = fixed_spec("workspace", codex_home=codex_home)
    request = docker.DockerBackend().translate(spec, _docker_facts(spec))
    assert request == docker.translate(spec, ARMOR)
    assert "apparmor=codex-box-workspace" in request["HostConfig"]["SecurityOpt"]


def test_a_docker_run_given_facts_sends_their_request_without_probing_again(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch, captured: list[Mapping[str, Any]]
) -> None:
    monkeypatch.setattr(apparmor, "probe", _no_probe)
    monkeypatch.setattr(docker.DockerBackend, "probe", _no_probe)
    spec = fixed_spec("workspace", codex_home=codex_home)
    assert docker.DockerBackend().run(spec, _docker_facts(spec)) is DONE
    [request] = captured
    assert request["Labels"][container.LABEL_OWNER] == container.owner_label()
    assert _without_owner(request, "Labels") == docker.translate(spec, ARMOR)


def test_a_docker_run_without_facts_probes_once(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch, captured: list[Mapping[str, Any]]
) -> None:
    spec = fixed_spec("offline", codex_home=codex_home)
    probed: list[SandboxSpec | None] = []

    def probe(
        self: docker.DockerBackend, one: SandboxSpec | None = None, *, quick: bool = False
    ) -> docker.DockerFacts:
        probed.append(one)
        return _docker_facts(spec)

    monkeypatch.setattr(docker.DockerBackend, "probe", probe)
    docker.DockerBackend().run(spec)
    assert probed == [spec]
    assert _without_owner(captured[0], "Labels") == docker.translate(spec, ARMOR)


def test_the_docker_probe_reads_apparmor_even_where_no_engine_answers(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--print-spec --backend docker`` shows the request of a host without an engine."""
    monkeypatch.setattr(apparmor, "probe", lambda url: ARMOR)
    spec = dataclasses.replace(
        fixed_spec("offline", codex_home=codex_home), docker_host="unix:///nonexistent/d.sock"
    )
    facts = docker.DockerBackend().probe(spec)
    assert not facts.available and facts.server is None and facts.armor == ARMOR
    assert facts.reason.startswith("no Docker engine answers at unix:///nonexistent/d.sock")


# --- podman ---------------------------------------------------------------------------


def _podman_facts(spec: SandboxSpec) -> PodmanFacts:
    return PodmanFacts(available=True, reason="test", url=spec.podman_host, host=PODMAN_HOST)


def test_a_podman_run_given_facts_sends_their_request_without_probing_again(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch, captured: list[Mapping[str, Any]]
) -> None:
    monkeypatch.setattr(podman_backend, "probe", _no_probe)
    monkeypatch.setattr(podman_backend, "_has_image", _no_probe)
    monkeypatch.setattr(podman_backend.PodmanBackend, "probe", _no_probe)
    spec = fixed_spec("workspace", codex_home=codex_home)
    assert podman_backend.PodmanBackend().run(spec, _podman_facts(spec)) is DONE
    [request] = captured
    assert _without_owner(request, "labels") == podman_translate(spec, PODMAN_HOST)


def test_a_podman_backend_asks_a_service_once_however_often_it_is_probed(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def probe(url: str, *, full: bool = False, quick: bool = False) -> Any:
        asked.append(url)
        return PODMAN_HOST

    monkeypatch.setattr(podman_backend, "probe", probe)
    monkeypatch.setattr(podman_backend, "_has_image", lambda url, image: True)
    backend = podman_backend.PodmanBackend()
    spec = fixed_spec("offline", codex_home=codex_home)
    first, second = backend.probe(spec), backend.probe(spec)
    assert first == second and first.available and first.host == PODMAN_HOST
    assert asked == [spec.podman_host]


# --- native ---------------------------------------------------------------------------


def test_the_native_plan_and_run_need_no_probe(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[SandboxSpec] = []

    class Launch:
        def __init__(self, spec: SandboxSpec, egress: object, *, backend: str) -> None:
            assert backend == "native"
            launched.append(spec)

        def execute(self) -> RunResult:
            return DONE

    monkeypatch.setattr(native_host, "probe", _no_probe)
    monkeypatch.setattr(native_backend, "Launch", Launch)
    spec = fixed_spec("offline", codex_home=codex_home)
    facts = NativeFacts(
        available=True, reason="test", landlock_abi=7, user_namespaces=None, libseccomp=True
    )
    backend = native_backend.LinuxBackend()
    assert backend.translate(spec, facts) == native_plan(spec)
    assert backend.run(spec, facts) is DONE
    assert backend.run(spec) is DONE  # without facts: nothing to look up either
    assert launched == [spec, spec]


def test_the_native_probe_names_the_first_missing_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_host.landlock, "abi_version", lambda: 7)
    monkeypatch.setattr(native_host, "_user_namespace_problem", lambda: None)
    monkeypatch.setattr(native_host, "_loads", lambda library: True)
    assert native_host.probe() == NativeFacts(
        available=True,
        reason="Landlock ABI 7, seccomp, namespaces",
        landlock_abi=7,
        user_namespaces=None,
        libseccomp=True,
    )
    monkeypatch.setattr(native_host, "_loads", lambda library: False)
    assert native_host.probe().reason.startswith("libseccomp.so.2 missing")
    monkeypatch.setattr(native_host, "_user_namespace_problem", lambda: "no userns")
    assert native_host.probe().reason == "no userns"
    monkeypatch.setattr(native_host.landlock, "abi_version", lambda: 0)
    facts = native_host.probe()
    assert not facts.available and facts.reason.startswith("Landlock ABI 0 < ")


# --- result ---------------------------------------------------------------------------


def _spec(codex_home: Path) -> SandboxSpec:
    return dataclasses.replace(
        fixed_spec("offline", codex_home=codex_home), limits=Limits(timeout_s=2.5)
    )


def test_a_timed_out_run_exits_124_and_says_so_whatever_its_own_status(codex_home: Path) -> None:
    ended = result.finished(
        _spec(codex_home),
        backend="docker",
        exit_code=137,
        duration_s=2.6,
        signal=None,
        timed_out=True,
        oom_killed=False,
        detail="its own words",
    )
    assert (ended.exit_code, ended.timed_out, ended.backend) == (124, True, "docker")
    assert ended.detail == "timed out after 2.5s; killed"


def test_an_oom_kill_is_named_and_keeps_the_commands_status(codex_home: Path) -> None:
    ended = result.finished(
        _spec(codex_home),
        backend="native",
        exit_code=137,
        duration_s=1.0,
        signal=9,
        timed_out=False,
        oom_killed=True,
    )
    assert (ended.exit_code, ended.signal, ended.oom_killed) == (137, 9, True)
    assert ended.detail == "killed by the OOM killer (memory limit reached)"


def test_a_run_that_ended_on_its_own_keeps_the_backends_detail(codex_home: Path) -> None:
    ended = result.finished(
        _spec(codex_home),
        backend="native",
        exit_code=127,
        duration_s=0.1,
        signal=None,
        timed_out=False,
        oom_killed=False,
        detail="nope: No such file or directory (inside the sandbox)",
    )
    assert ended.exit_code == 127
    assert ended.detail == "nope: No such file or directory (inside the sandbox)"


@pytest.mark.parametrize(
    ("status", "sent", "expected"), [(143, 15, 15), (130, 2, 2), (1, 15, None), (137, None, None)]
)
def test_a_signal_is_reported_only_when_we_sent_it_and_its_status_came_back(
    status: int, sent: int | None, expected: int | None
) -> None:
    assert result.signal_of(status, sent=sent) == expected
