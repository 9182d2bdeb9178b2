"""Which backend runs a spec: precedence, the trusted rule, and --print-spec's named
backend. Backends are stubs here (no engine, no kernel): what is tested is the choice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.backends import base
from orchestrator.core.errors import BackendUnavailable
from orchestrator.core.spec import SandboxSpec
from orchestrator.runner import preview, selection
from orchestrator.runner.context import HostContext

probed: list[str] = []  # every backend whose probe ran, in order


class Stub:
    def __init__(self, name: str, ok: bool) -> None:
        self.name, self.ok = name, ok

    def probe(self, spec: SandboxSpec | None = None, *, quick: bool = False) -> base.HostFacts:
        probed.append(self.name)
        return base.HostFacts(available=self.ok, reason="ready" if self.ok else "absent")


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Which stub backends are available; the real `base.select`/`base.named` load them."""
    up = {"docker": True, "podman": True, "native": True, "kubernetes": False}
    probed.clear()
    monkeypatch.setattr(base, "load", lambda name: Stub(name, up[name]))
    return up


@pytest.fixture
def context(base_env: dict[str, str], workspace: Path) -> HostContext:
    return HostContext.from_environ(base_env, cwd=str(workspace))


def spec(context: HostContext, profile: str) -> SandboxSpec:
    return preview.spec_for(context, profile=profile, workspace=None)


def test_a_sandboxed_profile_under_auto_takes_auto_s_order(
    context: HostContext, engines: dict[str, bool]
) -> None:
    assert selection.choose(context, None, spec(context, "offline")).backend.name == "docker"


def test_trusted_under_auto_runs_on_the_host_even_with_an_engine_up(
    context: HostContext, engines: dict[str, bool]
) -> None:
    chosen = selection.choose(context, None, spec(context, "trusted"))
    assert chosen.backend.name == "native"
    assert "no sandbox, so it runs on the host" in chosen.why


def test_trusted_with_a_named_engine_still_goes_in_that_container(
    context: HostContext, engines: dict[str, bool]
) -> None:
    assert selection.choose(context, "docker", spec(context, "trusted")).backend.name == "docker"


def test_trusted_falls_back_to_auto_s_order_where_the_host_has_no_launcher(
    context: HostContext, engines: dict[str, bool]
) -> None:
    engines["native"] = False
    assert selection.choose(context, None, spec(context, "trusted")).backend.name == "docker"
    assert probed == ["native", "docker"]  # one pass: the host's launcher is not asked twice


def test_doctor_s_order_matches_the_choice(context: HostContext) -> None:
    assert selection.order_for("auto", spec(context, "trusted"))[0] == "native"
    assert selection.order_for("auto", spec(context, "offline")) == base.AUTO_ORDER
    assert selection.order_for("podman", spec(context, "trusted")) == ("podman",)


def test_print_spec_keeps_a_named_backend_that_cannot_run_here(
    context: HostContext, engines: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    engines["podman"] = False
    chosen = selection.choose(context, "podman", spec(context, "offline"), probe=False)
    assert chosen.backend.name == "podman" and "cannot run here" in chosen.why
    with pytest.raises(BackendUnavailable):
        selection.choose(context, "podman", spec(context, "offline"))


def test_show_profile_says_what_was_skipped_in_one_short_line(
    context: HostContext, engines: dict[str, bool]
) -> None:
    engines["docker"] = engines["podman"] = False
    line = preview.backend_for(context, profile="offline", workspace=None, backend=None)
    assert line == "native: ready (skipped docker, podman: `codex-box doctor` says why)"


def test_the_preview_compiles_without_a_command(context: HostContext) -> None:
    previewed = spec(context, "workspace")
    assert previewed.argv == () and previewed.profile == "workspace"
    assert dataclasses.replace(previewed, argv=("true",)).argv == ("true",)
