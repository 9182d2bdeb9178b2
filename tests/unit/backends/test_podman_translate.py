"""The Podman backend's pure ``translate(spec, host)``: golden files, hardening, host
quirks, and the check that refuses a container Podman created without what was asked.

Regenerate goldens with ``UPDATE_GOLDEN=1 pytest tests/unit/backends/test_podman_translate.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.podman.backend import PodmanBackend
from orchestrator.backends.podman.host import PodmanFacts, PodmanHost, _has_capability, _rlimits
from orchestrator.backends.podman.translate import (
    cannot_enforce,
    join_holder,
    translate,
    verify_created,
)
from orchestrator.compile.spec import podman_host
from orchestrator.core.errors import BackendUnavailable, SandboxSetupError
from orchestrator.core.profile import DEFAULT_PROTECTED
from orchestrator.core.resources import seccomp_dir
from orchestrator.core.spec import Limits
from orchestrator.profiles.store import APPARMOR_NAMES
from tests.unit.backends.test_linux_translate_golden import PROFILES, fixed_spec

GOLDEN_DIR = Path(__file__).parent / "golden" / "podman"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SANDBOXED = ["offline", "workspace", "net-read-only", "workspace-net"]

# This machine's shape: runc, hybrid cgroups, a service without CAP_SYS_RESOURCE.
HOST = PodmanHost(
    version="4.3.1", runtime="runc", runtime_version="runc version 1.1.5", cgroups="v1",
    hybrid_cgroups=True, seccomp=True, apparmor=False, rootless=False,
    can_raise_rlimits=False, rlimits=(("nofile", 20000, 20000), ("nproc", 32768, 32768)),
    runc="/usr/bin/runc", init=True,
)


def normalise(request: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(request))
    if "seccomp_profile_path" in out:
        out["seccomp_profile_path"] = f"<seccomp-profiles/{Path(out['seccomp_profile_path']).name}>"
    return out


@pytest.mark.parametrize("name", PROFILES)
def test_podman_request_matches_the_golden_file(name: str, codex_home: Path) -> None:
    request = normalise(translate(fixed_spec(name, codex_home=codex_home), HOST))
    golden = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        golden.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
        pytest.fail(f"wrote {golden}: read it, then run again without UPDATE_GOLDEN")
    assert request == json.loads(golden.read_text())


@pytest.mark.parametrize("name", SANDBOXED)
def test_every_sandboxed_request_is_hardened(name: str, codex_home: Path) -> None:
    request = translate(fixed_spec(name, codex_home=codex_home), HOST)
    assert request["cap_drop"] == ["ALL"]
    assert request["read_only"] is True and request["read_write_tmpfs"] is False
    assert request["privileged"] is False
    assert request["no_new_privileges"] is True
    seccomp = Path(request["seccomp_profile_path"])
    assert seccomp.parent == seccomp_dir() and seccomp.is_file()
    assert not any("podman.sock" in m["source"] or "docker.sock" in m["source"]
                   for m in request["mounts"])


def test_trusted_is_not_privileged_and_keeps_the_engine_socket_out(codex_home: Path) -> None:
    request = translate(fixed_spec("trusted", codex_home=codex_home), HOST)
    assert request["privileged"] is False
    assert "cap_drop" not in request and "seccomp_profile_path" not in request
    assert [(m["source"], m["read_only"]) for m in request["mounts"]] == [("/work/proj", False)]


@pytest.mark.parametrize("name", PROFILES)
def test_podman_py_maps_every_security_option_into_the_spec_generator(
    name: str, codex_home: Path
) -> None:
    """podman-py drops some keywords without an error (nano_cpus) and refuses others
    (tmpfs): render the payload it would POST and find each option in it."""
    from podman.domain.containers_create import CreateMixin

    spec = dataclasses.replace(
        fixed_spec(name, codex_home=codex_home),
        limits=Limits(memory_bytes=256 << 20, pids=64, cpus=1.5),
    )
    request = translate(spec, HOST)
    if spec.egress is not None:  # what run() sends once the network holder is up
        request = join_holder(request, 4242)
    payload = CreateMixin._render_payload(dict(request))
    assert payload["read_only_filesystem"] is request["read_only"]
    expected_net = {"net-read-only": {"nsmode": "path", "value": "/proc/4242/ns/net"}}.get(
        name, {"nsmode": "none" if name in ("offline", "workspace") else "bridge"}
    )
    assert payload["netns"] == expected_net
    assert payload["resource_limits"]["pids"] == {"limit": 64}
    assert payload["resource_limits"]["memory"]["limit"] == 256 << 20
    assert payload["resource_limits"]["memory"]["swap"] == 256 << 20
    assert payload["resource_limits"]["cpu"]["quota"] == 150_000
    assert payload["resource_limits"]["cpu"]["period"] == 100_000
    assert payload["r_limits"] == [{"type": "nofile", "soft": 20000, "hard": 20000},
                                   {"type": "nproc", "soft": 32768, "hard": 32768}]
    assert payload["user"] == f"{spec.uid}:{spec.gid}"
    binds = [m for m in payload["mounts"] if m["type"] == "bind"]
    assert binds and all("rprivate" in m["options"] for m in binds)
    assert all(("ro" in m["options"]) == m["destination"].endswith(
               tuple(DEFAULT_PROTECTED)) or name in ("offline", "net-read-only") for m in binds)
    if name != "trusted":
        assert payload["cap_drop"] == ["ALL"] and payload["no_new_privileges"] is True
        assert payload["seccomp_profile_path"] == request["seccomp_profile_path"]
    tmp = [m for m in payload["mounts"] if m["type"] == "tmpfs"]
    assert tmp == ([{"destination": "/tmp", "options": ["mode=1777"], "source": "tmpfs",
                     "type": "tmpfs"}] if spec.private_tmp else [])
    # AppArmor (on a host that has ours loaded): by apparmor_profile, since podman-py
    # turns security_opt into SELinux options.
    armored = translate(spec, dataclasses.replace(HOST, apparmor=True,
                                                  apparmor_loaded=APPARMOR_NAMES))
    armored_payload = CreateMixin._render_payload(dict(armored))
    assert armored_payload.get("apparmor_profile") == spec.apparmor_profile
    assert (spec.apparmor_profile is None) == (name == "trusted")
    assert not armored_payload.get("selinux_opts")


def test_a_cpu_limit_becomes_a_quota_never_the_silently_dropped_nano_cpus(
    codex_home: Path,
) -> None:
    spec = dataclasses.replace(fixed_spec("offline", codex_home=codex_home),
                               limits=Limits(cpus=0.5))
    request = translate(spec, HOST)
    assert (request["cpu_period"], request["cpu_quota"]) == (100_000, 50_000)
    assert "nano_cpus" not in request


@pytest.mark.parametrize(
    ("can_raise", "expected"),
    [(True, None), (None, None),
     (False, [{"Name": "nofile", "Soft": 20000, "Hard": 20000},
              {"Name": "nproc", "Soft": 32768, "Hard": 32768}])],
)
def test_explicit_ulimits_only_when_the_runtime_cannot_raise_rlimits(
    can_raise: bool | None, expected: list[dict[str, int]] | None, codex_home: Path
) -> None:
    host = dataclasses.replace(HOST, can_raise_rlimits=can_raise)
    assert translate(fixed_spec("offline", codex_home=codex_home), host).get("ulimits") == expected


@pytest.mark.parametrize(
    ("runtime", "cgroups", "runc", "expected"),
    [("crun", "v1", "/usr/bin/runc", "runc"), ("crun", "v2", "/usr/bin/runc", None),
     ("crun", "v1", None, None), ("runc", "v1", "/usr/bin/runc", None)],
)
def test_runc_replaces_crun_only_on_v1_cgroups_where_runc_exists(
    runtime: str, cgroups: str, runc: str | None, expected: str | None, codex_home: Path
) -> None:
    host = dataclasses.replace(HOST, runtime=runtime, cgroups=cgroups, runc=runc)
    assert translate(fixed_spec("offline", codex_home=codex_home), host).get("runtime") == expected
    assert ("runc" in " ".join(host.quirks())) == (expected == "runc")


@pytest.mark.parametrize("rootless", [False, True])
def test_rootless_podman_keeps_the_users_own_uid(rootless: bool, codex_home: Path) -> None:
    """Rootless Podman maps container uids onto subordinate ones: without keep-id the
    sandbox's uid:gid would be a stranger's on the host and a writable workspace would
    not be writable (seen as the non-root CI leg's user)."""
    host = dataclasses.replace(HOST, rootless=rootless, cgroups="v2", hybrid_cgroups=False)
    request = translate(fixed_spec("workspace", codex_home=codex_home), host)
    assert request.get("userns_mode") == ("keep-id" if rootless else None)


def test_rootless_notes_say_why_limits_and_networks_fail_here() -> None:
    host = dataclasses.replace(HOST, rootless=True, cgroups="v1", tun=False)
    notes = " | ".join(host.quirks())
    assert "rootless on cgroup v1: Podman ignores pids/memory/cpu limits" in notes
    assert "/dev/net/tun cannot be opened by this user" in notes
    assert "tun" not in " | ".join(dataclasses.replace(host, tun=True).quirks())


@pytest.mark.parametrize(("profile", "refused"), [("workspace-net", True), ("offline", False)])
def test_rootless_without_dev_net_tun_refuses_a_networked_run(
    profile: str, refused: bool, codex_home: Path
) -> None:
    host = dataclasses.replace(HOST, rootless=True, cgroups="v2", hybrid_cgroups=False,
                               tun=False)
    problem = cannot_enforce(fixed_spec(profile, codex_home=codex_home), host)
    assert (problem is not None and "/dev/net/tun" in problem) == refused, problem


def test_doctor_notes_explain_the_rlimit_quirk_with_the_values_used() -> None:
    notes = " | ".join(HOST.quirks())
    assert "cannot raise rlimits" in notes and "nofile=20000" in notes and "hybrid" in notes


def test_the_service_facts_are_read_from_the_process_itself() -> None:
    """Our own pid stands in for the service: same /proc files, known answers."""
    rlimits = {n: (s, h) for n, s, h in _rlimits(os.getpid())}
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    if nofile[1] != resource.RLIM_INFINITY:
        assert rlimits["nofile"] == nofile
    with open("/proc/self/status") as status:
        cap_eff = int(next(x for x in status if x.startswith("CapEff:")).split()[1], 16)
    assert _has_capability(os.getpid(), 24) == bool(cap_eff >> 24 & 1)


def _inspected(request: dict[str, Any], **override: Any) -> dict[str, Any]:
    host = {"ReadonlyRootfs": request["read_only"], "NetworkMode": request["network_mode"],
            "SecurityOpt": ["no-new-privileges"], "CapAdd": [],
            "PidsLimit": request.get("pids_limit", 0), "Memory": request.get("mem_limit", 0)}
    top = {"EffectiveCaps": None, "OCIRuntime": "runc", "Path": "/run/podman-init",
           "Args": ["--", *request["command"]]}
    for key, value in override.items():
        (top if key in top else host)[key] = value
    return {**top, "HostConfig": host}


@pytest.mark.parametrize(
    ("override", "problem"),
    [({"ReadonlyRootfs": False}, "read-only rootfs"),
     ({"NetworkMode": "bridge"}, "network mode"),
     ({"SecurityOpt": []}, "no-new-privileges"),
     ({"EffectiveCaps": ["CAP_SYS_ADMIN"]}, "capabilities"),
     ({"PidsLimit": 0}, "pids limit"),
     ({"Memory": 0}, "memory limit"),
     ({"Args": ["--", "/bin/echo", "IMAGE-ENTRYPOINT", "make", "test"]}, "command"),
     ({"Path": "/bin/entrypoint.sh", "Args": ["make", "test"]}, "command")],
)
def test_a_container_created_without_what_was_asked_is_refused(
    override: dict[str, Any], problem: str, codex_home: Path
) -> None:
    spec = dataclasses.replace(fixed_spec("offline", codex_home=codex_home),
                               limits=Limits(memory_bytes=1 << 30, pids=100))
    request = translate(spec, HOST)
    verify_created(request, _inspected(request))  # as asked: accepted
    with pytest.raises(SandboxSetupError) as info:
        verify_created(request, _inspected(request, **override))
    assert problem in info.value.message


def test_a_silently_ignored_runtime_choice_is_refused(codex_home: Path) -> None:
    host = dataclasses.replace(HOST, runtime="crun")
    request = translate(fixed_spec("offline", codex_home=codex_home), host)
    with pytest.raises(SandboxSetupError, match="OCI runtime 'crun' instead of 'runc'"):
        verify_created(request, _inspected(request, OCIRuntime="crun"))


@pytest.mark.parametrize(
    ("environ", "uid", "expected"),
    [({"CONTAINER_HOST": "unix:///x.sock"}, 1000, "unix:///x.sock"),
     ({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, "unix:///run/user/1000/podman/podman.sock"),
     ({"XDG_RUNTIME_DIR": "/run/user/0"}, 0, "unix:///run/podman/podman.sock"),
     ({}, 1000, "unix:///run/podman/podman.sock")],
)
def test_the_podman_socket_follows_podmans_own_convention(
    environ: dict[str, str], uid: int, expected: str
) -> None:
    assert podman_host(environ, uid=uid) == expected


@pytest.mark.parametrize(
    ("changes", "limits", "refused"),
    [({}, Limits(), None),
     ({"rootless": True, "cgroups": "v2"}, Limits(), None),
     ({"rootless": True, "cgroups": "v1"}, Limits(), "ignores pids/memory/cpu limits"),
     ({"rootless": True, "cgroups": "v1"}, Limits(pids=None), None),
     # The default memory cap (nobody asked for it) does not make the run unenforceable.
     ({"rootless": True, "cgroups": "v1"},
      Limits(pids=None, memory_bytes=2**30, memory_is_default=True), None),
     ({"rootless": True, "cgroups": "v1"}, Limits(pids=None, memory_bytes=2**30),
      "ignores pids/memory/cpu limits"),
     ({"seccomp": False}, Limits(), "no seccomp support")],
)
def test_a_service_that_would_drop_part_of_the_spec_is_not_available(
    changes: dict[str, Any], limits: Limits, refused: str | None, codex_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import orchestrator.backends.podman.backend as podman_backend

    monkeypatch.setattr(podman_backend, "_has_image", lambda url, image: True)
    backend = PodmanBackend()
    spec = dataclasses.replace(fixed_spec("offline", codex_home=codex_home), limits=limits)
    backend._hosts[spec.podman_host] = dataclasses.replace(HOST, **changes)
    facts = backend.probe(spec)
    assert facts.available is (refused is None)
    assert backend.availability(spec) == facts.availability()
    if refused:
        assert refused in facts.reason


@pytest.mark.parametrize(
    ("changes", "url", "asked"),
    [({}, "unix:///run/podman/podman.sock", True),
     ({"rootless": True, "cgroups": "v1"}, "unix:///run/podman/podman.sock", False),
     ({}, "tcp://10.0.0.5:8888", False)],
)
def test_the_default_memory_cap_is_asked_for_only_where_it_means_this_hosts_ram(
    changes: dict[str, Any], url: str, asked: bool, codex_home: Path
) -> None:
    default = Limits(memory_bytes=2**30, memory_is_default=True)
    spec = dataclasses.replace(
        fixed_spec("offline", codex_home=codex_home), limits=default, podman_host=url)
    request = translate(spec, dataclasses.replace(HOST, **changes))
    assert ("mem_limit" in request) is asked
    assert request.get("memswap_limit") == request.get("mem_limit")
    explicit = dataclasses.replace(spec, limits=Limits(memory_bytes=2**30))
    assert translate(explicit, dataclasses.replace(HOST, **changes))["mem_limit"] == 2**30


def test_a_service_that_does_not_answer_is_not_available_and_cannot_be_translated_for(
    codex_home: Path,
) -> None:
    backend = PodmanBackend()
    spec = dataclasses.replace(
        fixed_spec("offline", codex_home=codex_home), podman_host="unix:///nonexistent/podman.sock")
    facts = backend.probe(spec)
    assert isinstance(facts, PodmanFacts) and facts.host is None and not facts.available
    assert facts.reason.startswith("no Podman service answers at unix:///nonexistent/podman.sock")
    assert "podman system service" in facts.reason
    with pytest.raises(BackendUnavailable) as info:
        backend.translate(spec, facts)
    assert "Podman service not usable at unix:///nonexistent/podman.sock" in info.value.message
    assert "podman system service" in info.value.hint


def test_the_backend_translates_from_the_probed_service_and_looks_at_nothing_else(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestrator.backends.podman.backend as podman_backend

    def no_probe(*args: object, **kwargs: object) -> None:
        raise AssertionError("translate probed the host")

    monkeypatch.setattr(podman_backend, "probe", no_probe)
    monkeypatch.setattr(podman_backend, "_has_image", no_probe)
    spec = fixed_spec("workspace", codex_home=codex_home)
    facts = PodmanFacts(available=True, reason="test", url=spec.podman_host, host=HOST)
    assert PodmanBackend().translate(spec, facts) == translate(spec, HOST)
