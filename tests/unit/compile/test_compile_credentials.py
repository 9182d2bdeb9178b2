"""Compile's part of the credential broker: the spec holds placeholders, never values,
every run terminates TLS when it brokers, and a config.toml secret routes a
full-network profile through the proxy."""

from __future__ import annotations

from collections.abc import Callable

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
