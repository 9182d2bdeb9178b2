"""The backend registry: lazy, name-checked, and every entry satisfies ``Backend``."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from orchestrator.backends import base
from orchestrator.backends.base import NOT_PROBED, REGISTRY, Availability, Backend, HostFacts
from orchestrator.core.errors import EXIT_SETUP, BackendUnavailable, ConfigError
from tests.unit.backends.test_linux_translate_golden import fixed_spec


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
    for method in ("probe", "availability", "translate", "run", "gc", "diagnose"):
        assert callable(getattr(backend, method)), method
    assert list(inspect.signature(backend.probe).parameters) == ["spec", "quick"]
    quick = inspect.signature(backend.probe).parameters["quick"]
    assert quick.kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(backend.translate).parameters) == ["spec", "facts"]
    run = inspect.signature(backend.run).parameters
    assert list(run) == ["spec", "facts", "egress"]
    assert run["facts"].default is None  # a caller that did not select: the backend looks
    assert run["egress"].kind is inspect.Parameter.KEYWORD_ONLY
    assert run["egress"].default is None


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registered_backend_probe_answers_with_a_reason_and_availability_agrees(
    name: str,
) -> None:
    backend = base.load(name)
    facts = backend.probe()
    assert isinstance(facts, HostFacts)
    assert isinstance(facts.available, bool)
    assert facts.reason.strip()
    availability = backend.availability()
    assert isinstance(availability, Availability)
    assert availability.ok is facts.available


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_backend_refuses_facts_it_did_not_probe(name: str, codex_home: Path) -> None:
    """Facts of another backend, or a hand-made Selection's, are a caller's mistake."""
    spec = fixed_spec("offline", codex_home=codex_home)
    with pytest.raises((TypeError, BackendUnavailable)):
        base.load(name).translate(spec, NOT_PROBED)


class _Facts(HostFacts):
    pass


PROBED: list[str] = []  # the backends whose probe ran, in order


class _Unavailable:
    name = "native"

    def probe(self, spec: object = None, *, quick: bool = False) -> HostFacts:
        PROBED.append(self.name)
        return HostFacts(available=False, reason=f"no {self.name} here")


class _Available(_Unavailable):
    def probe(self, spec: object = None, *, quick: bool = False) -> HostFacts:
        PROBED.append(self.name)
        return _Facts(available=True, reason=f"{self.name} works")


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


def test_select_probes_each_candidate_once_and_hands_over_the_facts_it_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def load(name: str) -> _Unavailable:
        backend = _Available() if name == "native" else _Unavailable()
        backend.name = name
        return backend

    monkeypatch.setattr(base, "load", load)
    PROBED.clear()
    selection = base.select("auto")
    assert PROBED == ["docker", "podman", "native"]  # each once, in auto's order
    assert selection.backend.name == "native"
    assert selection.why == "native: native works"
    assert selection.skipped == ("docker: no docker here", "podman: no podman here")
    assert isinstance(selection.facts, _Facts) and selection.facts.available


def test_a_named_backend_is_probed_once_but_chosen_even_when_it_cannot_run_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def load(name: str) -> _Unavailable:
        backend = _Unavailable()
        backend.name = name
        return backend

    monkeypatch.setattr(base, "load", load)
    PROBED.clear()
    selection = base.named("docker")
    assert PROBED == ["docker"]
    assert selection.backend.name == "docker"
    assert selection.why == "docker: named (cannot run here: no docker here)"
    assert selection.facts.reason == "no docker here"


def test_facts_are_narrowed_to_their_own_backends_kind_or_refused() -> None:
    facts = _Facts(available=True, reason="ok")
    assert _Facts.of(facts) is facts
    assert HostFacts.of(facts) is facts
    with pytest.raises(TypeError, match=r"_Facts expected .* got HostFacts: not probed"):
        _Facts.of(NOT_PROBED)
    assert facts.availability() == Availability(True, "ok")


def test_a_hand_made_selection_carries_facts_no_backend_accepts() -> None:
    selection = base.Selection(base.load("kubernetes"), "kubernetes: by hand")
    assert selection.facts is NOT_PROBED and not selection.facts.available


def test_kubernetes_answers_not_available_with_a_reason_and_refuses_to_run() -> None:
    backend = base.load("kubernetes")
    assert not backend.probe().available
    assert not backend.availability().ok
    assert "not built yet" in backend.availability().reason
    with pytest.raises(BackendUnavailable) as info:
        base.select("kubernetes")
    assert "kubernetes: not built yet" in info.value.message


def test_something_without_translate_is_not_a_backend() -> None:
    assert not isinstance(_Unavailable(), Backend)
