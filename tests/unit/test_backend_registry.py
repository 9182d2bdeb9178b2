"""The backend registry: lazy, name-checked, and every entry satisfies ``Backend``."""

from __future__ import annotations

import inspect

import pytest

from orchestrator.backends import base
from orchestrator.backends.base import REGISTRY, Availability, Backend
from orchestrator.core.errors import EXIT_SETUP, BackendUnavailable, ConfigError


def test_loading_an_unknown_backend_is_a_config_error_listing_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        base.load("nope")
    assert info.value.exit_code == EXIT_SETUP
    assert "unknown backend 'nope'" in info.value.message
    assert "choose one of: auto, docker, podman, native, kubernetes" in info.value.hint


def test_a_misspelt_backend_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        base.select("natve")
    assert "did you mean 'native'?" in info.value.hint


def test_auto_is_a_choice_but_not_a_registered_backend() -> None:
    assert "auto" in base.CHOICES and "auto" not in REGISTRY
    assert set(base.AUTO_ORDER) <= set(REGISTRY)
    with pytest.raises(ConfigError):
        base.load("auto")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registered_backend_satisfies_the_backend_protocol(name: str) -> None:
    backend = base.load(name)
    assert isinstance(backend, Backend)
    assert backend.name == name
    for method in ("availability", "translate", "run", "gc", "diagnose"):
        assert callable(getattr(backend, method)), method
    assert list(inspect.signature(backend.translate).parameters) == ["spec"]
    run = inspect.signature(backend.run).parameters
    assert list(run) == ["spec", "egress"]
    assert run["egress"].kind is inspect.Parameter.KEYWORD_ONLY
    assert run["egress"].default is None


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registered_backend_availability_probe_answers_with_a_reason(name: str) -> None:
    availability = base.load(name).availability()
    assert isinstance(availability, Availability)
    assert isinstance(availability.ok, bool)
    assert availability.reason.strip()


class _Unavailable:
    name = "native"

    def availability(self, spec: object = None) -> Availability:
        return Availability(False, f"no {self.name} here")


def test_select_raises_listing_every_reason_when_nothing_is_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(name: str) -> _Unavailable:
        backend = _Unavailable()
        backend.name = name
        return backend

    monkeypatch.setattr(base, "load", unavailable)
    with pytest.raises(BackendUnavailable) as info:
        base.select("auto")
    assert "docker: no docker here" in info.value.message
    assert "podman: no podman here" in info.value.message
    assert "native: no native here" in info.value.message
    assert info.value.exit_code == EXIT_SETUP
    assert info.value.hint


def test_auto_tries_engines_first_then_the_native_sandbox_and_never_kubernetes() -> None:
    assert base.AUTO_ORDER == ("docker", "podman", "native")


def test_kubernetes_answers_not_available_with_a_reason_and_refuses_to_run() -> None:
    backend = base.load("kubernetes")
    assert not backend.availability().ok
    assert "not built yet" in backend.availability().reason
    with pytest.raises(BackendUnavailable) as info:
        base.select("kubernetes")
    assert "kubernetes: not built yet" in info.value.message


def test_something_without_translate_is_not_a_backend() -> None:
    assert not isinstance(_Unavailable(), Backend)
