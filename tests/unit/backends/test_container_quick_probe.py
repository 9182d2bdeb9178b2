"""``--backend docker|podman`` is probed quick: no round trip to the engine before the
run. The run's own first call then fails closed with the very line the full probe
(``--backend auto``) gives: an engine that does not answer, an image that is not there.
Engines here are fakes on unix sockets (tests/unit/backends/fake_engine.py)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.backends import base, docker
from orchestrator.backends.containers import ledger
from orchestrator.backends.podman import backend as podman_backend
from orchestrator.backends.podman import host as podman_host
from orchestrator.core.errors import EXIT_SETUP, BackendUnavailable
from orchestrator.core.spec import SandboxSpec
from tests.unit.backends.fake_engine import FakeEngine, Route, dead_socket
from tests.unit.backends.test_linux_translate_golden import fixed_spec

NO_IMAGE = "codex-box/nope"
LIBPOD = "/v4.0.0/libpod"
DOCKER_ROUTES: dict[str, Route] = {
    "GET /_ping": (200, None, {"Server": "Docker/fake (linux)"}),
    "GET /containers/json": (200, [], {}),
    "POST /containers/create": (404, {"message": f"No such image: {NO_IMAGE}:latest"}, {}),
}
PODMAN_ROUTES: dict[str, Route] = {
    f"GET {LIBPOD}/_ping": (200, None, {"Libpod-Api-Version": "4.3.1"}),
    f"GET {LIBPOD}/info": (200, {"host": {"cgroupVersion": "v2", "security": {
        "seccompEnabled": True}}, "version": {"Version": "4.3.1"}}, {}),
    f"GET {LIBPOD}/containers/json": (200, [], {}),
    # Podman 4 answers a missing image with a 500 ("image not known").
    f"POST {LIBPOD}/containers/create": (500, {"cause": "image not known", "message":
                                              f"{NO_IMAGE}: image not known"}, {}),
}


@pytest.fixture
def sockets() -> Iterator[Path]:
    """A directory short enough for unix socket paths (108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["known", "first since boot"])
def records(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """The run ledger in a private directory of the test's own; "known": the endpoint
    was swept before (the run's first call is its create), else it sweeps first."""
    root = tmp_path / "ledger"
    monkeypatch.setattr(ledger, "ROOT_DIR", str(root))
    monkeypatch.setattr(ledger, "USER_DIR", str(tmp_path / "runtime-{uid}"))
    (tmp_path / f"runtime-{__import__('os').geteuid()}").mkdir(mode=0o700)
    root.mkdir(mode=0o700)
    if request.param == "known":
        monkeypatch.setattr(ledger.Ledger, "must_sweep", lambda self: False)
    return root


@pytest.fixture(autouse=True)
def rootful_fake_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes stand for a rootful service. A local service's quick probe reads its
    process's owner from /proc, and the fake's process is this test's own: run as a
    normal user (the non-root CI leg) it would pass for rootless Podman, which on a
    cgroup v1 host cannot enforce limits and is refused before any round trip."""
    real = podman_host._process_facts
    monkeypatch.setattr(podman_host, "_process_facts",
                        lambda pid: dataclasses.replace(real(pid), rootless=False))


def spec_for(codex_home: Path, **changes: str) -> SandboxSpec:
    return dataclasses.replace(fixed_spec("offline", codex_home=codex_home), **changes)


def the_full_probes_error(name: str, spec: SandboxSpec) -> BackendUnavailable:
    with pytest.raises(BackendUnavailable) as info:
        base.select("auto", spec, order=(name,))
    return info.value


def assert_one_line(error: BackendUnavailable, *parts: str) -> None:
    assert error.exit_code == EXIT_SETUP
    assert "\n" not in error.one_line()
    assert error.message.startswith("no backend can run this on ")
    for part in parts:
        assert part in error.one_line()


# --- docker ----------------------------------------------------------------------------


def test_a_quick_docker_probe_makes_no_round_trip(codex_home: Path, sockets: Path) -> None:
    engine = FakeEngine(sockets / "docker.sock", DOCKER_ROUTES)
    facts = docker.DockerBackend().probe(spec_for(codex_home, docker_host=engine.url), quick=True)
    assert facts.available and facts.server is None and engine.seen == []
    assert facts.armor is not None  # what translate needs is still read (locally)
    engine.close()


def test_a_quick_docker_run_against_a_stopped_engine_fails_as_the_probe_would(
    codex_home: Path, sockets: Path, records: Path
) -> None:
    spec = spec_for(codex_home, docker_host=dead_socket(sockets / "docker.sock"))
    backend = docker.DockerBackend()
    facts = backend.probe(spec, quick=True)
    with pytest.raises(BackendUnavailable) as info:
        backend.run(spec, facts)
    expected = the_full_probes_error("docker", spec)
    assert info.value.one_line() == expected.one_line()
    assert_one_line(info.value, f"docker: no Docker engine answers at {spec.docker_host}")


def test_a_quick_docker_run_of_a_missing_image_fails_as_the_probe_would(
    codex_home: Path, sockets: Path, records: Path
) -> None:
    engine = FakeEngine(sockets / "docker.sock", DOCKER_ROUTES)
    spec = spec_for(codex_home, docker_host=engine.url, image=NO_IMAGE)
    backend = docker.DockerBackend()
    with pytest.raises(BackendUnavailable) as info:
        backend.run(spec, backend.probe(spec, quick=True))
    assert "POST /containers/create" in engine.seen  # the run's own call found it
    expected = the_full_probes_error("docker", spec)
    assert info.value.one_line() == expected.one_line()
    assert_one_line(info.value, f"docker: image {NO_IMAGE} is not in Docker at {engine.url}",
                    "(run `make images`)")
    engine.close()


# --- podman ----------------------------------------------------------------------------


def test_a_quick_podman_probe_makes_no_round_trip(codex_home: Path, sockets: Path) -> None:
    engine = FakeEngine(sockets / "podman.sock", PODMAN_ROUTES)
    spec = spec_for(codex_home, podman_host=engine.url)
    facts = podman_backend.PodmanBackend().probe(spec, quick=True)
    assert facts.available and facts.host is not None
    # /libpod/info only where crun is installed (translate's crun → runc choice).
    assert engine.seen in ([], [f"GET {LIBPOD}/info"])
    engine.close()


def test_a_quick_podman_probe_of_a_stopped_service_is_the_probes_one_line(
    codex_home: Path, sockets: Path
) -> None:
    spec = spec_for(codex_home, podman_host=dead_socket(sockets / "podman.sock"))
    with pytest.raises(BackendUnavailable) as info:
        base.select("podman", spec)
    assert info.value.one_line() == the_full_probes_error("podman", spec).one_line()
    assert_one_line(info.value, f"podman: no Podman service answers at {spec.podman_host}",
                    f"podman system service --time=0 {spec.podman_host}")


def test_a_podman_run_whose_service_stopped_after_the_probe_fails_as_the_probe_would(
    codex_home: Path, sockets: Path, records: Path
) -> None:
    engine = FakeEngine(sockets / "podman.sock", PODMAN_ROUTES)
    spec = spec_for(codex_home, podman_host=engine.url)
    facts = podman_backend.PodmanBackend().probe(spec, quick=True)
    engine.close()
    (sockets / "podman.sock").unlink()
    dead_socket(sockets / "podman.sock")
    with pytest.raises(BackendUnavailable) as info:
        podman_backend.PodmanBackend().run(spec, facts)
    assert info.value.one_line() == the_full_probes_error("podman", spec).one_line()
    assert_one_line(info.value, f"podman: no Podman service answers at {spec.podman_host}")


def test_a_quick_podman_run_of_a_missing_image_fails_as_the_probe_would(
    codex_home: Path, sockets: Path, records: Path
) -> None:
    engine = FakeEngine(sockets / "podman.sock", PODMAN_ROUTES)
    spec = spec_for(codex_home, podman_host=engine.url, image=NO_IMAGE)
    with pytest.raises(BackendUnavailable) as info:
        base.select("podman", spec).backend.run(spec, base.select("podman", spec).facts)
    assert f"POST {LIBPOD}/containers/create" in engine.seen
    expected = the_full_probes_error("podman", spec)
    assert info.value.one_line() == expected.one_line()
    assert_one_line(info.value, f"podman: image {NO_IMAGE} is not in Podman at {engine.url}",
                    "(run `make images`)")
    engine.close()
