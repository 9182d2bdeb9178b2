"""The Docker backend: probe the host once → ``SandboxSpec`` + facts → Engine API create
body (pure) → run.

Owns: the probe (``DockerFacts``: does the engine answer, is the image there, the host's
AppArmor; ``quick``, when the backend was named: the AppArmor alone, the run's own
first call finding the rest), ``translate`` (the whole ``POST /containers/create`` body,
golden-tested), and a run's wiring (request, owner label, staged binds, network
holder, ``ContainerRun``; a run that created nothing fails with the full probe's reason).
Does not own: the Engine API calls and their errors (``containers.docker_ops``), what all
container engines share (``containers.common``), the order of a run's calls
(``containers.lifecycle``), HTTP (``containers.engine_api``) or the AppArmor decision
(``hardening.apparmor``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import BackendUnavailable, SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.profile import Capabilities
from orchestrator.core.spec import DEFAULT_DOCKER_HOST, RunResult, SandboxSpec
from orchestrator.hardening import apparmor

from .base import (
    Availability,
    Diagnosis,
    EgressPort,
    HostFacts,
    SessionSandbox,
    fail_with_full_probe,
)
from .containers import common as container
from .containers import staging
from .containers.docker_ops import DockerOps, remove_leftovers
from .containers.engine_api import PROBE_TIMEOUT_S, Endpoint
from .containers.ledger import Ledger
from .containers.lifecycle import ContainerRun, egress_holder

ENGINE_DEFAULT = "docker-default"  # the AppArmor profile Docker applies when none is asked


@dataclass(frozen=True, slots=True, kw_only=True)
class DockerFacts(HostFacts):
    endpoint: str  # the engine's URL
    # The engine's server string when it answered (the image may still be missing).
    server: str | None
    # This host's AppArmor as an engine on ``endpoint`` would apply it: read locally,
    # whether or not the engine answered (``--print-spec`` shows the request anyway).
    armor: apparmor.HostAppArmor


class DockerBackend:
    name = "docker"

    def probe(self, spec: SandboxSpec | None = None, *, quick: bool = False) -> DockerFacts:
        """Two round trips (``/_ping``, the image), ~1 ms; ``quick``: none. A quick
        probe's run fails closed with this probe's reason if its first call finds no
        engine or no image (``run``)."""
        url = spec.docker_host if spec else DEFAULT_DOCKER_HOST
        endpoint = Endpoint(url)
        armor = apparmor.probe(url)

        def facts(available: bool, reason: str, server: str | None = None) -> DockerFacts:
            return DockerFacts(
                available=available, reason=reason, endpoint=url, server=server, armor=armor
            )

        if quick:
            return facts(True, f"engine at {endpoint.url} (named: the run's first call checks it)")
        try:
            server = endpoint.ping()
            if spec is not None and not endpoint.has_image(spec.image):
                return facts(
                    False,
                    f"image {spec.image} is not in Docker at {endpoint.url} (run `make images`)",
                    server,
                )
        except OSError as exc:
            return facts(False, f"no Docker engine answers at {endpoint.url} ({exc})")
        return facts(True, f"{server} at {endpoint.url}", server)

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        return self.probe(spec).availability()

    def translate(self, spec: SandboxSpec, facts: HostFacts) -> Mapping[str, Any]:
        return translate(spec, DockerFacts.of(facts).armor)

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        probed = self.probe(spec)
        facts: dict[str, str] = {"endpoint": spec.docker_host}
        notes: list[str] = []
        if probed.server is not None:
            endpoint = Endpoint(spec.docker_host)
            with contextlib.suppress(OSError):
                info = endpoint.call("GET", "/info", timeout=PROBE_TIMEOUT_S)
                security = [o.split(",")[0].removeprefix("name=") for o in info["SecurityOptions"]]
                # The same host facts translate decides from.
                armor = probed.armor
                armor_fact, armor_note = apparmor.diagnosis(armor, engine_default=ENGINE_DEFAULT)
                if "apparmor" in security and not armor.enabled:  # a remote engine
                    armor_fact = f"yes, on the engine's host ({ENGINE_DEFAULT}; ours not asked for)"
                notes += [armor_note] if armor_note else []
                facts |= {
                    "engine": f"Docker {info.get('ServerVersion', '?')}",
                    "runtime": str(info.get("DefaultRuntime", "?")),
                    "cgroups": f"{info.get('CgroupVersion', '?')} ({info.get('CgroupDriver')})",
                    "seccomp": "yes" if "seccomp" in security else "no",
                    "apparmor": armor_fact,
                    "user namespaces": "remapped" if "userns" in security else "not remapped",
                }
        return Diagnosis(
            available=probed.available, reason=probed.reason, facts=facts, notes=tuple(notes)
        )

    def run(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> RunResult:
        armor = DockerFacts.of(facts if facts is not None else self.probe(spec)).armor
        request = translate(spec, armor)
        owner = {container.LABEL_OWNER: container.owner_label()}
        request["Labels"] = {**request["Labels"], **owner}
        holder = egress_holder(
            spec,
            egress,
            translate=lambda one: translate(one, armor),
            labels_key="Labels",
            owner=owner,
        )
        debug(
            "docker create",
            body={k: v for k, v in request.items() if k != "HostConfig"},
            host_config={k: v for k, v in request["HostConfig"].items() if k != "SecurityOpt"},
        )
        with staging.staged(spec) as sources:
            # As root, every checked path reaches the engine as a staged bind: Docker
            # has no step where a container exists but its command does not run yet.
            for mount in request["HostConfig"]["Mounts"]:
                mount["Source"] = sources.get(mount["Source"], mount["Source"])
            run = ContainerRun(
                spec, DockerOps(spec), backend=self.name, holder=holder, binds_staged=bool(sources)
            )
            try:
                return run.execute(request)
            except (BackendUnavailable, SandboxSetupError) as exc:
                if run.created:
                    raise
                fail_with_full_probe(self.name, exc, lambda: self.probe(spec))

    def start_session(
        self,
        spec: SandboxSpec,
        facts: HostFacts | None = None,
        *,
        egress: EgressPort | None = None,
    ) -> SessionSandbox:
        """One container for the session (``containers.session``): the run's request,
        its binds staged (as root) and its network holder, all kept until ``stop``."""
        from .containers.session import ContainerSession  # sessions only: start-up time
        from .containers.session_request import docker_request, helper_source

        helper = helper_source()
        armor = DockerFacts.of(facts if facts is not None else self.probe(spec)).armor
        owner = {container.LABEL_OWNER: container.owner_label()}  # the keeper's own pid
        request = docker_request(translate(spec, armor), helper, owner)
        holder = egress_holder(
            spec,
            egress,
            translate=lambda one: translate(one, armor),
            labels_key="Labels",
            owner=owner,
        )
        debug(
            "docker create (session)", body={k: v for k, v in request.items() if k != "HostConfig"}
        )
        cleanup = contextlib.ExitStack()
        session = ContainerSession(
            spec,
            DockerOps(spec),
            backend=self.name,
            api=Endpoint(spec.docker_host),
            prefix="",
            holder=holder,
            cleanup=cleanup,
        )
        try:
            sources = cleanup.enter_context(staging.staged(spec))
            for mount in request["HostConfig"]["Mounts"]:
                mount["Source"] = sources.get(mount["Source"], mount["Source"])
            session.start(request)  # removes what it made on failure, staging included
        except (BackendUnavailable, SandboxSetupError) as exc:
            cleanup.close()
            if session.created:
                raise
            fail_with_full_probe(self.name, exc, lambda: self.probe(spec))
        except BaseException:
            cleanup.close()
            raise
        return session

    def gc(self) -> list[str]:
        endpoint = Endpoint(DEFAULT_DOCKER_HOST)
        removed = staging.sweep() if staging.available() else []
        with contextlib.suppress(OSError):
            listed = time.time()
            failed: list[str] = []
            removed += remove_leftovers(endpoint, failed)
            if not failed:
                Ledger(endpoint.url).swept(listed)
        return removed


def translate(spec: SandboxSpec, armor_host: apparmor.HostAppArmor) -> dict[str, Any]:
    """Pure: the body of ``POST /containers/create`` for ``spec`` on a host whose
    AppArmor is ``armor_host`` (what ``docker run`` sends). ``run`` adds only the owner
    label: which codex-box process owns it."""
    armor = apparmor.decide(spec.apparmor_profile, armor_host, engine_default=ENGINE_DEFAULT)
    host: dict[str, Any] = {
        "NetworkMode": container.network_mode(spec),
        "ReadonlyRootfs": spec.rootfs_read_only,
        "Tmpfs": container.tmpfs(spec),
        "Mounts": [
            {
                "Type": "bind",
                "Source": b.source,
                "Target": b.target,
                "ReadOnly": b.read_only,
                "BindOptions": {"Propagation": "rprivate"},
            }
            for b in container.binds(spec)
        ],
        "Init": True,  # zombies are reaped; signals reach the command
        "Privileged": False,
    }
    if spec.capabilities is Capabilities.NONE:
        host["CapDrop"] = ["ALL"]
    if spec.sandboxed:
        seccomp = container.seccomp_json(spec)
        host["SecurityOpt"] = [
            "no-new-privileges:true",
            *([f"seccomp={seccomp}"] if seccomp else []),
            *([f"apparmor={armor.profile}"] if armor.profile else []),
        ]
    limits = spec.limits
    if limits.pids is not None:
        host["PidsLimit"] = limits.pids
    if (memory := container.memory_limit(spec, spec.docker_host)) is not None:
        host["Memory"] = memory
        host["MemorySwap"] = memory  # swap must not stretch the limit
    if limits.cpus is not None:
        host["NanoCpus"] = int(limits.cpus * 1e9)
    return {
        "Image": spec.image,
        "Cmd": list(spec.argv),
        "Entrypoint": [],  # the command is ours, not the image's entrypoint's argument
        "WorkingDir": spec.workspace,
        "User": container.user(spec),
        # Docker refuses a hostname beside a container: network (the egress holder's,
        # whose own hostname the command's container then has).
        **({"Hostname": spec.hostname} if spec.hostname and spec.egress is None else {}),
        "Env": [f"{k}={v}" for k, v in spec.env],
        "Labels": container.labels(spec, armor),
        "Tty": spec.tty,
        # StdinOnce: closing our stdin ends the command's input without the engine also
        # ending the output stream.
        "OpenStdin": True,
        "StdinOnce": True,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": host,
    }
