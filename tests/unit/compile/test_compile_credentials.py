"""Compile's part of the credential broker: the spec holds placeholders, never values,
every run terminates TLS when it brokers, and a config.toml secret routes a
full-network profile through the proxy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.brokered import SecretBinding
from orchestrator.core.errors import UsageError
from orchestrator.profiles.secrets import PRESETS
from orchestrator.profiles.store import ProfileStore

GITHUB = SecretBinding(
    name="GH_TOKEN",
    source=("env", "GH_TOKEN"),
    hosts=PRESETS["github"].hosts,
    inject=PRESETS["github"].inject,
    prefix="ghp_",
    length=40,
)


def test_a_config_secret_sends_workspace_net_through_the_proxy_with_tls_terminated(
    store: ProfileStore, make_request: Callable[..., Request]
) -> None:
    plain = compile_spec(store.get("workspace-net"), make_request())
    assert plain.egress is None  # no rules, no secrets: the unfiltered network
    spec = compile_spec(store.get("workspace-net"), make_request(secrets=(GITHUB,)))
    assert spec.egress is not None and spec.egress.inspect_tls and spec.egress.ca_file
    [secret] = spec.egress.secrets
    env = dict(spec.env)
    assert env["GH_TOKEN"] == secret.placeholder and secret.placeholder.startswith("ghp_")
    assert env["SSL_CERT_FILE"] == spec.egress.ca_file
    again = compile_spec(store.get("workspace-net"), make_request(secrets=(GITHUB,)))
    assert again.egress and again.egress.secrets[0].placeholder != secret.placeholder


def test_a_host_value_of_the_same_name_never_reaches_the_sandbox(
    store: ProfileStore, make_request: Callable[..., Request]
) -> None:
    spec = compile_spec(
        store.get("workspace-net"),
        make_request(secrets=(GITHUB,), environ={"PATH": "/usr/bin", "GH_TOKEN": "ghp_real"}),
    )
    assert "ghp_real" not in repr(spec)
    with pytest.raises(UsageError, match="brokered secret"):
        compile_spec(
            store.get("workspace-net"),
            make_request(secrets=(GITHUB,), env_names=("GH_TOKEN=ghp_real",)),
        )


def test_offline_and_trusted_broker_nothing(
    store: ProfileStore, make_request: Callable[..., Request]
) -> None:
    for name in ("offline", "trusted"):
        spec = compile_spec(store.get(name), make_request(secrets=(GITHUB,)))
        assert spec.egress is None and "GH_TOKEN" not in dict(spec.env)


def test_the_sources_of_real_values_stay_out_of_the_sandbox(
    store: ProfileStore, make_request: Callable[..., Request], home: Path
) -> None:
    key = home / ".config" / "openai" / "key"
    key.parent.mkdir(parents=True)
    key.write_text("sk-real\n")
    (home / "link-to-key").symlink_to(key)
    by_env = SecretBinding(name="OPENAI_API_KEY", source=("env", "OPENAI"),
                           hosts=("api.openai.com",), inject=("header",))  # fmt: skip
    by_file = SecretBinding(name="API_KEY", source=("file", "~/link-to-key"),
                            hosts=("api.openai.com",), inject=("header",))  # fmt: skip
    spec = compile_spec(
        store.get("workspace-net"),
        make_request(
            secrets=(by_env, by_file),
            environ={"PATH": "/usr/bin", "HOME": str(home), "OPENAI": "sk-real"},
        ),
    )
    env = dict(spec.env)
    assert "OPENAI" not in env and "sk-real" not in repr(spec)  # an unremarkable name
    assert str(key) in spec.deny_read  # the file itself, not the link to it
    assert str(home / "link-to-key") not in spec.deny_read


def test_a_codex_profile_that_cuts_the_network_leaves_no_proxy_for_inherited_secrets(
    store: ProfileStore, make_request: Callable[..., Request], write_profile
) -> None:
    import dataclasses

    from orchestrator.core.profile import Network

    write_profile("gh", "extends: workspace-net\nsecrets:\n  GH_TOKEN: github\n")
    offline = dataclasses.replace(store.get("gh"), network=Network.NONE)
    spec = compile_spec(offline, make_request())
    assert spec.egress is None and "GH_TOKEN" not in dict(spec.env)
    narrowed = dataclasses.replace(store.get("gh"), allow_domains=("pypi.org",))
    spec = compile_spec(narrowed, make_request())
    assert spec.egress is not None and spec.egress.secrets == ()
