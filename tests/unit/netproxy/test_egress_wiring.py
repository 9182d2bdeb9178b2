"""What a profile's network rules compile into, and how each backend is told to put the
egress proxy in the sandbox's only path (pure translation; the real thing runs in
tests/integration/test_egress.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.backends import docker
from orchestrator.backends.containers import common as container
from orchestrator.backends.containers.lifecycle import egress_holder
from orchestrator.backends.native.backend import LinuxBackend
from orchestrator.compile.spec import CA_VARIABLES, Request, compile_spec
from orchestrator.core.errors import ConfigError, SandboxSetupError
from orchestrator.core.profile import Network
from orchestrator.core.spec import READ_METHODS, SandboxSpec
from orchestrator.hardening.apparmor import HostAppArmor
from orchestrator.profiles.store import ProfileStore
from orchestrator.settings.config import NetworkSettings, load_config

MakeRequest = Callable[..., Request]
PROXY = "http://127.0.0.1:3128"


@pytest.fixture
def compile_(store: ProfileStore, make_request: MakeRequest) -> Callable[..., SandboxSpec]:
    def run(profile: str, **overrides: object) -> SandboxSpec:
        return compile_spec(store.get(profile), make_request(**overrides))

    return run


def test_net_read_only_always_goes_through_the_proxy_with_read_methods(compile_) -> None:
    spec = compile_("net-read-only")
    assert spec.egress is not None
    assert spec.egress.methods == READ_METHODS == ("GET", "HEAD", "OPTIONS")
    assert spec.egress.allow == () and spec.egress.ca_file is None
    env = spec.env_dict()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "PIP_PROXY",
                 "npm_config_proxy"):
        assert env[name] == PROXY
    assert env["ALL_PROXY"] == env["all_proxy"] == "socks5h://127.0.0.1:3128"
    assert env["NO_PROXY"] == "localhost,127.0.0.1,::1"
    assert not set(CA_VARIABLES) & set(env)  # no inspection: the system's CAs apply


def test_the_host_proxy_variables_never_win_over_ours(compile_, home: Path) -> None:
    spec = compile_(
        "net-read-only",
        environ={"PATH": "/usr/bin", "HOME": str(home), "HTTP_PROXY": "http://evil:1",
                 "no_proxy": "*"},
    )
    assert spec.env_dict()["HTTP_PROXY"] == PROXY
    assert spec.env_dict()["no_proxy"] == "localhost,127.0.0.1,::1"


@pytest.mark.parametrize("name", ["offline", "workspace", "workspace-net", "trusted"])
def test_profiles_without_rules_have_no_proxy(compile_, name: str) -> None:
    spec = compile_(name)
    assert spec.egress is None
    assert "HTTP_PROXY" not in spec.env_dict() or spec.env_dict()["HTTP_PROXY"] != PROXY


def test_an_allow_list_puts_workspace_net_behind_the_proxy_with_any_method(
    write_profile, compile_
) -> None:
    write_profile("pkgs", "extends: workspace-net\nnetwork:\n  allow: [pypi.org]\n")
    spec = compile_("pkgs")
    assert spec.network is Network.FULL
    assert spec.egress is not None and spec.egress.methods is None
    assert spec.egress.allow == ("pypi.org",)


def test_inspect_tls_points_every_ca_variable_at_the_session_ca(
    write_profile, compile_, codex_home: Path
) -> None:
    write_profile("deep", "extends: net-read-only\nnetwork:\n  inspect_tls: true\n")
    spec = compile_("deep", run_id="run-42")
    assert spec.egress is not None
    expected = str(codex_home / "run" / "run-42" / "egress-ca.pem")
    assert spec.egress.ca_file == expected
    assert {v: spec.env_dict()[v] for v in CA_VARIABLES} == dict.fromkeys(CA_VARIABLES, expected)
    # Containers get it at the same path, read-only.
    assert container.Bind(expected, expected, read_only=True) in container.binds(spec)


def test_config_hosts_and_ca_bundle_reach_the_spec(
    compile_, codex_home: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    (codex_home / "config.toml").write_text(
        f'[network]\nca_bundle = "{bundle}"\n[network.hosts]\n"Pypi.Internal." = "10.0.0.5"\n'
    )
    settings = load_config(codex_home).network
    assert settings == NetworkSettings(hosts=(("pypi.internal", "10.0.0.5"),),
                                       ca_bundle=str(bundle))
    spec = compile_("net-read-only", network=settings)
    assert spec.egress is not None
    assert spec.egress.hosts == (("pypi.internal", "10.0.0.5"),)
    assert spec.egress.upstream_ca == str(bundle)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[network.hosts]\n"a.test" = "not-an-ip"\n', "is not an IP address"),
        ('[network.hosts]\n"a.test" = 7\n', "is not an IP address"),
        ('[network]\nhosts = "a.test"\n', "must be a table"),
        ('[network]\nca_bundle = "/nonexistent/ca.pem"\n', "is not a file"),
        ('[network]\nproxy = "x"\n', "unknown key 'network.proxy'"),
    ],
)
def test_bad_network_config_names_the_key_and_the_fix(
    codex_home: Path, text: str, words: str
) -> None:
    (codex_home / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(codex_home)
    assert words in info.value.message and "config.toml" in info.value.message
    assert info.value.hint


def test_the_network_holder_is_an_idle_container_with_nothing_but_a_loopback(compile_) -> None:
    spec = compile_("net-read-only")
    holder = container.netns_holder_spec(spec)
    assert holder.network is Network.NONE and holder.egress is None
    assert holder.argv == container.HOLDER_COMMAND
    assert holder.writable_roots == () and holder.protected_paths == ()
    assert dict(holder.env) == {"PATH": "/usr/local/bin:/usr/bin:/bin"}  # no user env
    assert holder.limits.pids == 8
    body = docker.translate(holder, HostAppArmor(enabled=False))
    host = body["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"]
    assert [m["ReadOnly"] for m in host["Mounts"]] == [True]
    # The command joins the holder's namespace, by name.
    command = docker.translate(spec, HostAppArmor(enabled=False))
    assert command["HostConfig"]["NetworkMode"] == "container:codex-box-netns-run-1"


def test_every_backend_refuses_an_egress_spec_without_a_proxy(compile_) -> None:
    spec = compile_("net-read-only")
    with pytest.raises(SandboxSetupError, match="egress proxy"):
        LinuxBackend().run(spec)
    with pytest.raises(SandboxSetupError, match="egress proxy"):
        egress_holder(spec, None, translate=lambda one: {"Labels": {}}, labels_key="Labels",
                      owner={})
    no_egress = dataclasses.replace(spec, egress=None)
    assert egress_holder(no_egress, None, translate=lambda one: {}, labels_key="Labels",
                         owner={}) is None


def test_the_native_plan_asks_for_its_own_namespace_and_the_proxy_port(compile_) -> None:
    from orchestrator.backends.native.backend import translate

    plan = translate(compile_("net-read-only"))
    assert plan["egress_port"] == 3128
    # Scoping stays on, but it is no longer the only barrier: the namespace is.
    assert plan["landlock"]["scope"] is True and plan["landlock"]["scope_required"] is False
    assert "egress_port" not in translate(compile_("workspace-net"))


def test_network_rules_on_an_unsandboxed_profile_are_refused_not_ignored(
    write_profile, compile_
) -> None:
    write_profile("loose", "extends: trusted\nnetwork:\n  allow: [pypi.org]\n")
    with pytest.raises(ConfigError, match="no sandbox") as info:
        compile_("loose")
    assert "workspace-net" in info.value.hint
