"""The Podman backend: probe the service once → ``SandboxSpec`` + facts → podman-py create
kwargs (pure) → run.

Owns: ``PodmanBackend``: the probe (``PodmanFacts``: does the service answer, can it
enforce the spec, is the image there; one probe of a service per backend object;
``quick``, when the backend was named: the service process's facts alone, the run's
first call finding the rest), ``doctor``'s view of the service, and a run's wiring
(request, owner label, network holder, ``ContainerRun``; a run that created nothing
fails with the full probe's reason).
Does not own: the request (``translate``), the libpod calls and their errors
(``ops``), what the service can do (``host``), what all container engines share
(``containers.common``) or the order of a run's calls (``containers.lifecycle``).
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from orchestrator.backends.base import (
    Availability,
    Diagnosis,
    EgressPort,
    HostFacts,
    SessionSandbox,
    fail_with_full_probe,
)
from orchestrator.backends.containers import common as container
from orchestrator.backends.containers.engine_api import PROBE_TIMEOUT_S, Endpoint
from orchestrator.backends.containers.ledger import Ledger
from orchestrator.backends.containers.lifecycle import ContainerRun, egress_holder
from orchestrator.core.errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.spec import DEFAULT_PODMAN_HOST, RunResult, SandboxSpec
from orchestrator.hardening import apparmor

from .host import LIBPOD, START_HINT, PodmanFacts, PodmanHost, probe
from .ops import PodmanOps
from .translate import ENGINE_DEFAULT, cannot_enforce, join_holder, translate


class PodmanBackend:
    name = "podman"

    def __init__(self) -> None:
        self._hosts: dict[str, PodmanHost | OSError] = {}

    def host(self, url: str, *, full: bool = False, quick: bool = False) -> PodmanHost:
        """The probed service at ``url``, probed once per backend object (a service that
        did not answer is not asked again). Raises OSError."""
        if url not in self._hosts:
            try:
                self._hosts[url] = probe(url, full=full, quick=quick)
            except OSError as exc:
                self._hosts[url] = exc
        known = self._hosts[url]
        if isinstance(known, OSError):
            raise known
        return known

    def probe(self, spec: SandboxSpec | None = None, *, quick: bool = False) -> PodmanFacts:
        """A local service: its process's facts, ``_ping`` and the image (~2-3 ms here,
        most of it the service looking the image up); ``quick``: the process's facts
        alone (no round trip; the run fails closed with this probe's reason if its first
        call finds no service or no image). Never skips ``cannot_enforce``."""
        url = spec.podman_host if spec else DEFAULT_PODMAN_HOST
        host: PodmanHost | None = None
        try:
            host = self.host(url, quick=quick)
            if spec is not None and (problem := cannot_enforce(spec, host)):
                reason = f"Podman at {url} {problem}"
                return PodmanFacts(available=False, reason=reason, url=url, host=host)
            if quick:
                reason = f"Podman service at {url} (named: the run's first call checks it)"
                return PodmanFacts(available=True, reason=reason, url=url, host=host)
            if spec is not None and not _has_image(url, spec.image):
                reason = f"image {spec.image} is not in Podman at {url} (run `make images`)"
                return PodmanFacts(available=False, reason=reason, url=url, host=host)
        except OSError as exc:
            reason = f"no Podman service answers at {url} ({exc}); {START_HINT.format(url=url)}"
            return PodmanFacts(available=False, reason=reason, url=url, host=host, error=str(exc))
        reason = f"Podman {host.version} at {url}"
        return PodmanFacts(available=True, reason=reason, url=url, host=host)

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        return self.probe(spec).availability()

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        facts: dict[str, str] = {"endpoint": spec.podman_host}
        try:
            host = self.host(spec.podman_host, full=True)
        except OSError:
            host = None
        probed = self.probe(spec)  # reuses the probe of the service (or its failure)
        if host is None:
            return Diagnosis(available=False, reason=probed.reason, facts=facts)
        armor_fact, armor_note = apparmor.diagnosis(
            host.apparmor_host(), engine_default=ENGINE_DEFAULT
        )
        if host.rootless and not host.apparmor:
            armor_fact = "no (rootless Podman applies none)"
        facts |= {
            "engine": f"Podman {host.version}" + (" (rootless)" if host.rootless else ""),
            "runtime": f"{host.runtime_choice() or host.runtime} ({host.runtime_version})",
            "cgroups": host.cgroups + (" hybrid" if host.hybrid_cgroups else ""),
            "seccomp": "yes" if host.seccomp else "no",
            "apparmor": armor_fact,
            "rlimits": "raised by the runtime"
            if host.can_raise_rlimits
            else ("explicit ulimits" if host.can_raise_rlimits is False else "unknown (remote)"),
        }
        return Diagnosis(
            available=probed.available,
            reason=probed.reason,
            facts=facts,
            notes=(*host.quirks(), *([armor_note] if armor_note else [])),
        )

    def translate(self, spec: SandboxSpec, facts: HostFacts) -> Mapping[str, Any]:
        return translate(spec, PodmanFacts.of(facts).require_host())

    def run(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> RunResult:
        host = PodmanFacts.of(facts if facts is not None else self.probe(spec)).require_host()
        request = translate(spec, host)
        owner = {container.LABEL_OWNER: container.owner_label()}
        request["labels"] = {**request["labels"], **owner}
        debug("podman create", kwargs=request)
        holder = egress_holder(
            spec,
            egress,
            translate=lambda one: translate(one, host),
            labels_key="labels",
            owner=owner,
            join=join_holder,
        )
        ops = PodmanOps(spec.podman_host, spec=spec)
        run = ContainerRun(spec, ops, backend=self.name, holder=holder)
        try:
            return run.execute(request)
        except (BackendUnavailable, SandboxSetupError) as exc:
            if run.created:
                raise
            # A fresh backend: this one holds the quick probe's view of the service.
            fail_with_full_probe(self.name, exc, lambda: PodmanBackend().probe(spec))

    def start_session(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> SessionSandbox:
        """One container for the session (``containers.session``), checked against its
        request by ``PodmanOps`` before it starts, with its network holder; kept until
        ``stop``."""
        # Sessions only: a one-shot run never loads them (start-up time).
        from orchestrator.backends.containers.session import ContainerSession
        from orchestrator.backends.containers.session_request import helper_source, podman_request

        helper = helper_source()
        host = PodmanFacts.of(facts if facts is not None else self.probe(spec)).require_host()
        owner = {container.LABEL_OWNER: container.owner_label()}  # the keeper's own pid
        request = podman_request(translate(spec, host), helper, owner)
        debug("podman create (session)", kwargs=request)
        holder = egress_holder(
            spec,
            egress,
            translate=lambda one: translate(one, host),
            labels_key="labels",
            owner=owner,
            join=join_holder,
        )
        session = ContainerSession(
            spec,
            PodmanOps(spec.podman_host, spec=spec),
            backend=self.name,
            api=Endpoint(spec.podman_host),
            prefix=LIBPOD,
            holder=holder,
        )
        try:
            session.start(request)  # removes what it made on failure
        except (BackendUnavailable, SandboxSetupError) as exc:
            if session.created:
                raise
            fail_with_full_probe(self.name, exc, lambda: PodmanBackend().probe(spec))
        return session

    def gc(self) -> list[str]:
        ops = PodmanOps(DEFAULT_PODMAN_HOST)
        with contextlib.suppress(CodexBoxError), ops.errors():
            listed = time.time()
            removed = ops.sweep()
            if not ops.left:
                Ledger(ops.url).swept(listed)
            return removed
        return []


def _has_image(url: str, image: str) -> bool:
    quoted = urllib.parse.quote(image, safe="")
    response = Endpoint(url).request(
        "GET", f"{LIBPOD}/images/{quoted}/exists", timeout=PROBE_TIMEOUT_S
    )
    return response.status == 204
