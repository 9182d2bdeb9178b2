"""apparmor/: every profile compiles and holds the required denials; the container
backends ask for one only where the host enforces AppArmor and has it loaded; doctor
says so; `codex-box apparmor check|install` fail clearly.

The compile tests need `apparmor_parser` (Debian's apparmor package, compile-only: this
kernel has no AppArmor). Skipped without it locally, a failure in CI.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends import docker
from orchestrator.backends.containers.common import LABEL_APPARMOR
from orchestrator.backends.podman import backend as podman_backend
from orchestrator.backends.podman import translate as podman
from orchestrator.compile.spec import compile_spec
from orchestrator.core.errors import EXIT_SETUP, AppArmorError, SandboxSetupError
from orchestrator.core.spec import SandboxSpec
from orchestrator.hardening import apparmor
from orchestrator.hardening.apparmor import Decision, HostAppArmor
from orchestrator.profiles.store import APPARMOR_NAMES, BUILTIN_NAMES, ProfileStore
from tests.conftest import REQUIRE, Ran
from tests.unit.backends.test_linux_translate_golden import fixed_spec
from tests.unit.backends.test_podman_translate import HOST as PODMAN_HOST

NO_NETWORK = ("codex-box-offline", "codex-box-workspace")
WITH_NETWORK = ("codex-box-net-read-only", "codex-box-workspace-net")
SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
ALL_LOADED = HostAppArmor(enabled=True, loaded=("/usr/bin/man", *APPARMOR_NAMES))
NONE_LOADED = HostAppArmor(enabled=True, loaded=("/usr/bin/man",))
DISABLED = HostAppArmor(enabled=False)


@pytest.fixture
def parser() -> Iterator[None]:
    try:
        apparmor.parser()
    except AppArmorError as exc:
        if REQUIRE:
            pytest.fail(f"{exc.one_line()} (required: CODEX_BOX_REQUIRE_ENGINES=1)")
        pytest.skip(exc.one_line())
    yield


# --- the profile files -----------------------------------------------------------------


def rules(path: Path) -> list[str]:
    """The profile's rules, one string each (comments gone, whitespace collapsed), with
    our own abstractions expanded in place (the system's are left as include rules)."""
    out: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = " ".join(raw.split("#", 1)[0].split())
        own = re.fullmatch(r"include <(abstractions/codex-box-[\w-]+)>", line)
        if own:
            out += rules(apparmor.profiles_dir() / own[1])
        elif line.startswith("include ") or line.endswith("{") or line == "}":
            out.append(line)  # includes and the profile's braces carry no comma
        elif line:
            pending = f"{pending} {line}".strip()
            if pending.endswith(","):
                out.append(pending.removesuffix(","))
                pending = ""
    assert not pending, f"{path}: a rule without its closing comma: {pending}"
    return out


def file_denied(profile: list[str], path: str) -> str:
    """The permissions a `deny PATH PERMS` rule takes away for exactly ``path``."""
    for rule in profile:
        parts = rule.split()
        if parts[:2] == ["deny", path] and len(parts) == 3:
            return parts[2]
    return ""


def test_one_profile_file_per_sandboxed_built_in_and_none_for_trusted(
    store: ProfileStore,
) -> None:
    assert [p.name for p in apparmor.shipped()] == sorted(APPARMOR_NAMES)
    for name in BUILTIN_NAMES:
        profile = store.get(name)
        expected = f"codex-box-{name}" if profile.sandboxed else None
        assert profile.apparmor == expected, name
    assert store.get("trusted").apparmor is None and not store.get("trusted").sandboxed


@pytest.mark.parametrize("name", APPARMOR_NAMES)
def test_each_file_defines_the_profile_it_is_named_after(name: str) -> None:
    text = (apparmor.profiles_dir() / name).read_text()
    assert re.search(r"^include <tunables/global>$", text, re.M)
    assert f"\nprofile {name} flags=(attach_disconnected,mediate_deleted) {{\n" in text
    assert "include <abstractions/codex-box-base>" in text
    assert "include <abstractions/base>" in rules(apparmor.profiles_dir() / name)


@pytest.mark.parametrize("name", APPARMOR_NAMES)
def test_every_shipped_profile_compiles_with_apparmor_parser(parser: None, name: str) -> None:
    apparmor.compile_check(apparmor.profiles_dir() / name)


@pytest.mark.parametrize("name", APPARMOR_NAMES)
def test_every_profile_denies_mounts_tracing_and_host_kernel_interfaces(name: str) -> None:
    profile = rules(apparmor.profiles_dir() / name)
    for rule in ("deny mount", "deny umount", "deny pivot_root", "deny ptrace (trace)"):
        assert rule in profile, rule
    for path in ("@{PROC}/sys/**", "/sys/**", "@{PROC}/sysrq-trigger", "@{PROC}/kcore",
                 "@{PROC}/*/mem", "@{PROC}/*/task/*/mem"):
        assert "w" in file_denied(profile, path), path
    for path in ("@{PROC}/*", "@{PROC}/{acpi,asound,bus,driver,dynamic_debug,fs,irq,pressure,"
                 "scsi,sysvipc,tty}/**"):
        assert "w" in file_denied(profile, path), path
    for path in ("@{PROC}/sysrq-trigger", "@{PROC}/kcore", "@{PROC}/*/mem",
                 "/dev/{mem,kmem,port,kmsg}", "/sys/devices/virtual/powercap/**"):
        assert "r" in file_denied(profile, path), path
    denied_caps = {cap for rule in profile if rule.startswith("deny capability ")
                   for cap in rule.split()[2:]}
    assert {"sys_admin", "sys_module", "sys_rawio", "sys_ptrace", "mac_admin",
            "net_admin", "net_raw", "bpf"} <= denied_caps
    assert not [r for r in profile if r.startswith("capability")], "no capability is granted"


@pytest.mark.parametrize("name", APPARMOR_NAMES)
def test_a_box_signals_only_its_own_processes(name: str) -> None:
    signals = [r for r in rules(apparmor.profiles_dir() / name) if r.startswith("signal")]
    assert "signal (send, receive) peer=@{profile_name}" in signals
    sending = [r for r in signals if "send" in r]
    assert sending == ["signal (send, receive) peer=@{profile_name}"]
    assert all(r.startswith("signal (receive) peer=") for r in signals if r not in sending)


@pytest.mark.parametrize("name", APPARMOR_NAMES)
def test_raw_and_packet_sockets_are_denied_everywhere(name: str) -> None:
    profile = rules(apparmor.profiles_dir() / name)
    for rule in ("deny network inet raw", "deny network inet6 raw", "deny network packet"):
        assert rule in profile, rule
    assert "network unix" in profile


@pytest.mark.parametrize("name", NO_NETWORK)
def test_the_no_network_profiles_deny_inet_and_inet6(name: str) -> None:
    profile = rules(apparmor.profiles_dir() / name)
    assert "deny network inet" in profile and "deny network inet6" in profile
    granted = [r for r in profile if r.startswith("network ")]
    assert granted == ["network unix"], granted


@pytest.mark.parametrize("name", WITH_NETWORK)
def test_the_network_profiles_allow_inet_and_inet6(name: str) -> None:
    profile = rules(apparmor.profiles_dir() / name)
    assert "network inet" in profile and "network inet6" in profile
    assert "deny network inet" not in profile and "deny network inet6" not in profile


# --- check -----------------------------------------------------------------------------


def test_a_broken_profile_fails_check_with_its_file_and_line(
    parser: None, cli: Callable[..., Ran], tmp_path: Path
) -> None:
    good = (apparmor.profiles_dir() / "codex-box-offline").read_text().splitlines()
    at = good.index("  deny network inet6,")
    broken = tmp_path / "codex-box-broken"
    broken.write_text("\n".join([*good[:at], "  deny network inet6 sometimes,", *good[at + 1:]]))
    ran = cli("apparmor", "check", str(broken))
    assert ran.returncode == apparmor.EXIT_CHECK_FAILED == 1
    assert f"{broken}:{at + 1}: " in ran.stderr
    assert cli("apparmor", "check").returncode == 0


def test_an_error_in_the_shared_abstraction_names_the_abstraction(
    parser: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "apparmor"
    shutil.copytree(apparmor.profiles_dir(), copy)
    base = copy / "abstractions" / "codex-box-base"
    lines = base.read_text().splitlines()
    base.write_text("\n".join([*lines, "  deny bogus everything,", ""]))
    monkeypatch.setattr(apparmor, "profiles_dir", lambda: copy)
    problems = apparmor.check()
    assert len(problems) == len(APPARMOR_NAMES)
    assert all(p.startswith(f"{base}:{len(lines) + 1}: ") for p in problems), problems


def test_check_without_the_parser_is_a_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apparmor, "PARSER_PATHS", ("/nonexistent/apparmor_parser",))
    with pytest.raises(AppArmorError, match="apparmor_parser not found") as info:
        apparmor.check()
    assert info.value.exit_code == EXIT_SETUP and "apt-get install apparmor" in info.value.hint


# --- install ---------------------------------------------------------------------------


@pytest.mark.skipif(apparmor.host_enforces(), reason="this host has AppArmor")
def test_install_on_a_kernel_without_apparmor_fails_with_one_clear_line(
    cli: Callable[..., Ran],
) -> None:
    ran = cli("apparmor", "install")
    assert ran.returncode == EXIT_SETUP == 125
    assert ran.stdout == ""
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("codex-box: this kernel has no")
    assert "/sys/module/apparmor/parameters/enabled" in ran.stderr


@pytest.mark.parametrize(
    ("parsers", "euid", "problem"),
    [(("/nonexistent/apparmor_parser",), 0, "apparmor_parser not found"),
     (None, 1000, "needs root")],
)
def test_install_refuses_without_a_parser_or_root(
    parsers: tuple[str, ...] | None, euid: int, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apparmor, "host_enforces", lambda: True)
    monkeypatch.setattr(apparmor, "parser", (lambda: "/usr/sbin/apparmor_parser")
                        if parsers is None else apparmor.parser)
    if parsers is not None:
        monkeypatch.setattr(apparmor, "PARSER_PATHS", parsers)
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    with pytest.raises(AppArmorError, match=problem) as info:
        apparmor.install()
    assert info.value.exit_code == EXIT_SETUP


@pytest.mark.parametrize("loosen", ["group-writable", "other-writable", "not-root"])
def test_install_refuses_profiles_that_someone_else_could_have_changed(
    loosen: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the copied profiles root's ownership")
    copy = tmp_path / "apparmor"
    shutil.copytree(apparmor.profiles_dir(), copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    target = copy / "abstractions" / "codex-box-base"
    monkeypatch.setattr(apparmor, "profiles_dir", lambda: copy)
    monkeypatch.setattr(apparmor, "host_enforces", lambda: True)
    monkeypatch.setattr(apparmor, "parser", lambda: "/usr/sbin/apparmor_parser")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("nothing may load"))
    if loosen == "not-root":
        os.chown(target, 1000, 1000)
    else:
        target.chmod(0o664 if loosen == "group-writable" else 0o646)
    with pytest.raises(AppArmorError, match="anyone but root") as info:
        apparmor.install()
    assert str(target) in info.value.message and info.value.exit_code == EXIT_SETUP


def test_install_replaces_each_profile_and_writes_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(apparmor, "host_enforces", lambda: True)
    monkeypatch.setattr(apparmor, "parser", lambda: "/usr/sbin/apparmor_parser")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(subprocess, "run", fake_run)
    if apparmor.profiles_dir().stat().st_uid != 0:
        # A normal user's checkout (the non-root CI leg): install() rightly refuses
        # profiles root does not own. What is tested here is the parser's invocation;
        # the ownership refusal has its own test (root only: it chowns).
        monkeypatch.setattr(apparmor, "refuse_unsafe_files", lambda paths: None)
    assert apparmor.install() == sorted(APPARMOR_NAMES)
    directory = str(apparmor.profiles_dir())
    assert calls == [["/usr/sbin/apparmor_parser", "--replace", "--write-cache", "-I", directory,
                      f"{directory}/{name}"] for name in sorted(APPARMOR_NAMES)]


# --- host facts ------------------------------------------------------------------------


def test_only_profiles_in_enforce_mode_count_as_loaded(tmp_path: Path) -> None:
    listing = tmp_path / "profiles"
    listing.write_text("codex-box-workspace (complain)\n/usr/bin/man (enforce)\n"
                       "codex-box-offline (enforce)\ndocker-default (enforce)\n")
    assert apparmor.loaded_profiles(str(listing)) == (
        "/usr/bin/man", "codex-box-offline", "docker-default")
    assert apparmor.loaded_profiles(str(tmp_path / "absent")) == ()


def test_an_unreadable_list_of_loaded_profiles_is_unknown_and_said_so(tmp_path: Path) -> None:
    # /sys/kernel/security/apparmor/profiles is root's only: a user's codex-box cannot
    # tell whether ours is loaded, so it asks for none and says why.
    assert apparmor.loaded_profiles(str(tmp_path)) is None  # EISDIR: an OSError like EACCES
    unknown = HostAppArmor(enabled=True, loaded=None)
    decision = apparmor.decide("codex-box-offline", unknown, engine_default="docker-default")
    assert decision.profile is None
    assert decision.note and "not root" in decision.note and "docker-default" in decision.note
    fact, note = apparmor.diagnosis(unknown, engine_default="docker-default")
    assert "unknown (not root)" in fact and note and "root only" in note


def test_a_remote_engine_gets_none_of_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apparmor, "host_enforces", lambda: True)
    monkeypatch.setattr(apparmor, "loaded_profiles", lambda: APPARMOR_NAMES)
    assert apparmor.probe("tcp://10.0.0.5:2375") == DISABLED
    assert apparmor.probe("unix:///var/run/docker.sock") == HostAppArmor(
        enabled=True, loaded=APPARMOR_NAMES)


# --- the decision, in each engine's request ---------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [(ALL_LOADED, Decision("codex-box-workspace")),
     (NONE_LOADED, Decision(None, "docker-default (codex-box-workspace is not loaded: run "
                                  "`codex-box apparmor install` as root)")),
     (DISABLED, Decision(None))],
)
def test_the_decision_follows_the_probed_host(host: HostAppArmor, expected: Decision) -> None:
    assert apparmor.decide("codex-box-workspace", host, engine_default="docker-default") == (
        expected)
    assert apparmor.decide(None, host, engine_default="docker-default") == Decision(None)


def spec_of(name: str, codex_home: Path) -> SandboxSpec:
    return fixed_spec(name, codex_home=codex_home)


@pytest.mark.parametrize("name", SANDBOXED)
def test_docker_asks_for_our_profile_when_apparmor_is_on_and_it_is_loaded(
    name: str, codex_home: Path
) -> None:
    request = docker.translate(spec_of(name, codex_home), ALL_LOADED)
    assert f"apparmor=codex-box-{name}" in request["HostConfig"]["SecurityOpt"]
    assert request["Labels"][LABEL_APPARMOR] == f"codex-box-{name}"


@pytest.mark.parametrize("name", SANDBOXED)
def test_docker_leaves_the_engine_default_when_ours_is_not_loaded_and_says_so(
    name: str, codex_home: Path
) -> None:
    request = docker.translate(spec_of(name, codex_home), NONE_LOADED)
    assert not [o for o in request["HostConfig"]["SecurityOpt"] if o.startswith("apparmor")]
    note = request["Labels"][LABEL_APPARMOR]
    assert note.startswith("docker-default (") and "codex-box apparmor install" in note


@pytest.mark.parametrize("name", SANDBOXED)
def test_docker_without_apparmor_asks_for_nothing(name: str, codex_home: Path) -> None:
    request = docker.translate(spec_of(name, codex_home), DISABLED)
    assert not [o for o in request["HostConfig"]["SecurityOpt"] if o.startswith("apparmor")]
    assert LABEL_APPARMOR not in request["Labels"]


def test_trusted_gets_no_apparmor_of_ours_anywhere(codex_home: Path) -> None:
    spec = spec_of("trusted", codex_home)
    assert spec.apparmor_profile is None
    for host in (ALL_LOADED, NONE_LOADED, DISABLED):
        request = docker.translate(spec, host)
        assert "SecurityOpt" not in request["HostConfig"]
        assert LABEL_APPARMOR not in request["Labels"]
        podman_host = dataclasses.replace(PODMAN_HOST, apparmor=host.enabled,
                                          apparmor_loaded=host.loaded)
        armored = podman.translate(spec, podman_host)
        assert "apparmor_profile" not in armored and LABEL_APPARMOR not in armored["labels"]


@pytest.mark.parametrize(
    ("host", "asked", "note"),
    [(ALL_LOADED, True, False), (NONE_LOADED, False, True), (DISABLED, False, False)],
)
@pytest.mark.parametrize("name", SANDBOXED)
def test_podman_asks_for_our_profile_only_where_it_is_loaded(
    name: str, host: HostAppArmor, asked: bool, note: bool, codex_home: Path
) -> None:
    from podman.domain.containers_create import CreateMixin

    podman_host = dataclasses.replace(PODMAN_HOST, apparmor=host.enabled,
                                      apparmor_loaded=host.loaded)
    request = podman.translate(spec_of(name, codex_home), podman_host)
    payload = CreateMixin._render_payload(dict(request))
    assert payload.get("apparmor_profile") == (f"codex-box-{name}" if asked else None)
    assert not payload.get("selinux_opts")  # podman-py's security_opt: SELinux, not AppArmor
    label = request["labels"].get(LABEL_APPARMOR)
    if note:
        assert label is not None and label.startswith("containers-default (")
    else:
        assert label == (f"codex-box-{name}" if asked else None)


def test_podman_refuses_a_container_created_under_another_apparmor_profile(
    codex_home: Path,
) -> None:
    host = dataclasses.replace(PODMAN_HOST, apparmor=True, apparmor_loaded=APPARMOR_NAMES)
    request = podman.translate(spec_of("offline", codex_home), host)
    inspected = {
        "AppArmorProfile": "containers-default-0.50.1", "OCIRuntime": "runc",
        "Path": "/run/podman-init", "Args": ["--", *request["command"]],
        "HostConfig": {"ReadonlyRootfs": True, "NetworkMode": "none",
                       "SecurityOpt": ["no-new-privileges"], "PidsLimit": 512,
                       "Memory": 2 * 1024**3},
    }
    with pytest.raises(SandboxSetupError, match="AppArmor profile 'containers-default"):
        podman.verify_created(request, inspected)
    podman.verify_created(request, {**inspected, "AppArmorProfile": "codex-box-offline"})


def test_every_sandboxed_built_in_compiles_to_a_spec_naming_its_profile(
    store: ProfileStore, make_request: Callable[..., Any]
) -> None:
    for name in BUILTIN_NAMES:
        spec = compile_spec(store.get(name), make_request())
        assert spec.apparmor_profile == (None if name == "trusted" else f"codex-box-{name}")


# --- doctor ----------------------------------------------------------------------------


def test_doctor_fact_and_fix_follow_what_is_loaded() -> None:
    assert apparmor.diagnosis(DISABLED, engine_default="docker-default") == (
        "no (not in this kernel)", None)
    fact, note = apparmor.diagnosis(NONE_LOADED, engine_default="docker-default")
    assert fact == "yes; codex-box profiles loaded: none"
    assert note is not None and "docker-default" in note
    assert "run `codex-box apparmor install` as root" in note
    fact, note = apparmor.diagnosis(ALL_LOADED, engine_default="docker-default")
    assert fact.startswith("yes; codex-box profiles loaded: codex-box-offline, ") and note is None


def test_podman_doctor_reports_apparmor_and_the_fix(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(podman_backend, "_has_image", lambda url, image: True)
    backend = podman_backend.PodmanBackend()
    spec = spec_of("offline", codex_home)
    backend._hosts[spec.podman_host] = dataclasses.replace(
        PODMAN_HOST, apparmor=True, apparmor_loaded=("codex-box-offline",))
    diagnosis = backend.diagnose(spec)
    assert diagnosis.facts["apparmor"] == "yes; codex-box profiles loaded: codex-box-offline"
    assert any("containers-default" in n and "codex-box apparmor install" in n
               for n in diagnosis.notes)


class FakeEngine:
    """Docker's /_ping, image and /info answers, as on an AppArmor host."""

    def __init__(self, url: str) -> None:
        self.url = url

    def ping(self) -> str:
        return "Docker/20.10.24 (linux)"

    def has_image(self, image: str) -> bool:
        return True

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        assert (method, path) == ("GET", "/info")
        return {"ServerVersion": "20.10.24", "SecurityOptions": ["name=apparmor",
                                                                 "name=seccomp,profile=default"]}


def test_docker_doctor_reports_apparmor_and_the_fix(
    codex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker, "Endpoint", FakeEngine)
    monkeypatch.setattr(apparmor, "probe", lambda url: NONE_LOADED)
    diagnosis = docker.DockerBackend().diagnose(spec_of("offline", codex_home))
    assert diagnosis.facts["apparmor"] == "yes; codex-box profiles loaded: none"
    assert any("docker-default" in n and "codex-box apparmor install" in n
               for n in diagnosis.notes)
    monkeypatch.setattr(apparmor, "probe", lambda url: ALL_LOADED)
    assert docker.DockerBackend().diagnose(spec_of("offline", codex_home)).notes == ()
