"""The Podman backend: ``SandboxSpec`` + probed host → podman-py create kwargs (pure) → run.

Owns: ``translate`` (the whole ``containers.create`` keyword set, golden-tested), the
availability probe, the podman-py calls of a run (``PodmanOps``), checking the created
container against the request (podman-py and Podman 4 silently drop some options: a
sandbox must notice), and turning podman-py's exceptions into ``CodexBoxError``.
Does not own: what all container engines share (``container.py``), the order of a
run's calls (``lifecycle.py``), or the host probe (``podman_host.py``).

podman-py has no attach (``Container.attach`` raises NotImplementedError), so the live
stdin/stdout stream uses the libpod attach endpoint over our own socket client.
"""

from __future__ import annotations

import contextlib
import posixpath
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.backends.base import Availability, Diagnosis, EgressPort
from orchestrator.backends.containers import common as container
from orchestrator.backends.containers.engine_api import API_TIMEOUT_S, PROBE_TIMEOUT_S, Endpoint
from orchestrator.backends.containers.lifecycle import ContainerRun, StartRefused, egress_holder
from orchestrator.core.errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.profile import Capabilities
from orchestrator.core.spec import DEFAULT_PODMAN_HOST, RunResult, SandboxSpec
from orchestrator.hardening import apparmor

from .host import LIBPOD, PodmanHost, probe

if TYPE_CHECKING:
    from podman import PodmanClient
    from podman.domain.containers import Container

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_HINT = "start it: podman system service --time=0 {url} &"
CPU_PERIOD_US = 100_000
ENGINE_DEFAULT = "containers-default"  # the AppArmor profile Podman applies when none is asked


class PodmanBackend:
    name = "podman"

    def __init__(self) -> None:
        self._hosts: dict[str, PodmanHost | OSError] = {}

    def host(self, url: str, *, full: bool = False) -> PodmanHost:
        """The probed service at ``url``, probed once per backend object (a service that
        did not answer is not asked again). Raises OSError."""
        if url not in self._hosts:
            try:
                self._hosts[url] = probe(url, full=full)
            except OSError as exc:
                self._hosts[url] = exc
        known = self._hosts[url]
        if isinstance(known, OSError):
            raise known
        return known

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        url = spec.podman_host if spec else DEFAULT_PODMAN_HOST
        try:
            host = self.host(url)
            if spec is not None and (problem := cannot_enforce(spec, host)):
                return Availability(False, f"Podman at {url} {problem}")
            if spec is not None and not _has_image(url, spec.image):
                return Availability(
                    False, f"image {spec.image} is not in Podman at {url} (run `make images`)"
                )
        except OSError as exc:
            return Availability(
                False, f"no Podman service answers at {url} ({exc}); {START_HINT.format(url=url)}"
            )
        return Availability(True, f"Podman {host.version} at {url}")

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        facts: dict[str, str] = {"endpoint": spec.podman_host}
        try:
            host = self.host(spec.podman_host, full=True)
        except OSError:
            host = None
        availability = self.availability(spec)  # reuses the probe (or its failure)
        if host is None:
            return Diagnosis(available=False, reason=availability.reason, facts=facts)
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
            available=availability.ok,
            reason=availability.reason,
            facts=facts,
            notes=(*host.quirks(), *([armor_note] if armor_note else [])),
        )

    def translate(self, spec: SandboxSpec) -> Mapping[str, Any]:
        with _engine_errors(spec.podman_host, spec.image):
            return translate(spec, self.host(spec.podman_host))

    def run(self, spec: SandboxSpec, *, egress: EgressPort | None = None) -> RunResult:
        with _engine_errors(spec.podman_host, spec.image):
            host = self.host(spec.podman_host)
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
        return ContainerRun(spec, ops, backend=self.name, holder=holder).execute(request)

    def gc(self) -> list[str]:
        ops = PodmanOps(DEFAULT_PODMAN_HOST)
        with contextlib.suppress(CodexBoxError), ops.errors():
            return ops.sweep()
        return []


def join_holder(request: Mapping[str, Any], pid: int) -> dict[str, Any]:
    """podman-py sends ``container:NAME`` as an unknown network name; a namespace path
    is its documented form (``ns:PATH``), so the command joins the holder by pid."""
    return {**request, "network_mode": f"ns:/proc/{pid}/ns/net"}


def cannot_enforce(spec: SandboxSpec, host: PodmanHost) -> str | None:
    """Why ``host`` would run ``spec`` with less than it asks (then we do not run it)."""
    if spec.sandboxed and host.seccomp is False:
        return "has no seccomp support"
    limits = spec.limits
    # The default memory cap is not asked for there (container.memory_limit): only a
    # limit the user gave makes the run unenforceable.
    memory = limits.memory_bytes is not None and not limits.memory_is_default
    limited = limits.pids is not None or memory or limits.cpus
    if _ignores_limits(host) and limited:
        # Podman then only warns "resource limits are not supported and ignored".
        return "is rootless on cgroup v1, where it ignores pids/memory/cpu limits"
    return None


def _ignores_limits(host: PodmanHost) -> bool:
    return host.rootless and host.cgroups == "v1"


def translate(spec: SandboxSpec, host: PodmanHost) -> dict[str, Any]:
    """Pure: the keyword arguments of podman-py's ``containers.create`` for ``spec`` on
    ``host``. Only keywords podman-py really maps are used (``nano_cpus`` and ``tmpfs``
    are silently dropped or refused by it; see ENVIRONMENT.md; ``security_opt`` becomes
    SELinux options, so AppArmor goes by ``apparmor_profile``)."""
    armor = apparmor.decide(
        spec.apparmor_profile, host.apparmor_host(), engine_default=ENGINE_DEFAULT
    )
    request: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.argv),
        # The command is ours, not an argument of the image's entrypoint. Podman reads an
        # empty list as "unset" (the image's entrypoint runs, our argv as its arguments);
        # [""] is its "no entrypoint" (`podman run --entrypoint ""`).
        "entrypoint": [""],
        "working_dir": spec.workspace,
        "user": f"{spec.uid}:{spec.gid}",  # files written in the workspace stay the user's
        "environment": dict(spec.env),
        "labels": container.labels(spec, armor),
        "tty": spec.tty,
        "stdin_open": True,
        "init": True,  # zombies are reaped; signals reach the command
        "privileged": False,
        "network_mode": container.network_mode(spec),
        "read_only": spec.rootfs_read_only,
        # Podman's own /tmp, /run... tmpfs on a read-only rootfs would be writable holes.
        "read_write_tmpfs": False,
        "mounts": [
            *(
                {
                    "type": "bind",
                    "source": b.source,
                    "target": b.target,
                    "read_only": b.read_only,
                    "propagation": "rprivate",
                }
                for b in container.binds(spec)
            ),
            # podman-py drops a tmpfs mount's "options"; it maps "mode" (Podman adds
            # nosuid,nodev itself — checked from inside by the behavioural suite).
            *(
                {"type": "tmpfs", "source": "tmpfs", "target": target, "mode": container.TMP_MODE}
                for target in container.tmpfs(spec)
            ),
        ],
    }
    if spec.capabilities is Capabilities.NONE:
        request["cap_drop"] = ["ALL"]
    if spec.sandboxed:
        request["no_new_privileges"] = True
        if spec.seccomp_profile:
            request["seccomp_profile_path"] = spec.seccomp_profile  # a path on the server
        if armor.profile:
            request["apparmor_profile"] = armor.profile
    limits = spec.limits
    if limits.pids is not None:
        request["pids_limit"] = limits.pids
    memory = container.memory_limit(spec, spec.podman_host, cgroup_limits=not _ignores_limits(host))
    if memory is not None:
        request["mem_limit"] = memory
        request["memswap_limit"] = memory  # swap must not stretch the limit
    if limits.cpus is not None:
        request["cpu_period"] = CPU_PERIOD_US
        request["cpu_quota"] = int(limits.cpus * CPU_PERIOD_US)
    if ulimits := host.ulimits():
        request["ulimits"] = ulimits
    if runtime := host.runtime_choice():
        request["runtime"] = runtime
    return request


def _has_image(url: str, image: str) -> bool:
    quoted = urllib.parse.quote(image, safe="")
    response = Endpoint(url).request(
        "GET", f"{LIBPOD}/images/{quoted}/exists", timeout=PROBE_TIMEOUT_S
    )
    return response.status == 204


def _api_failure(exc: BaseException) -> OSError | None:
    """The transport failure under a podman-py APIError (it wraps every OSError)."""
    cause = exc.__cause__ or exc.__context__
    return cause if isinstance(cause, OSError) else None


def _is_timeout(exc: BaseException) -> bool:
    cause = _api_failure(exc)
    return (cause is not None and "timed out" in str(cause).lower()) or isinstance(
        cause, TimeoutError
    )


@contextlib.contextmanager
def _engine_errors(url: str, image: str) -> Iterator[None]:
    """Every podman-py or socket failure becomes one line naming the cause and the fix."""
    from podman.errors import APIError, ImageNotFound, PodmanError

    try:
        yield
    except CodexBoxError:
        raise
    except ImageNotFound as exc:
        raise SandboxSetupError(
            f"image {image} not found in Podman",
            hint="run `make images`, or pass --image with an image you have",
        ) from exc
    except APIError as exc:
        if exc.status_code is None and _api_failure(exc) is not None:
            raise BackendUnavailable(
                f"Podman service not usable at {url}: {_api_failure(exc)}",
                hint=START_HINT.format(url=url) + ", or use --backend docker|native",
            ) from exc
        message = str(exc.explanation or exc)
        hint = "nothing was run; check the option it names"
        if "container-init" in message or "catatonit" in message:
            hint = "install catatonit (apt-get install catatonit); nothing was run"
        raise SandboxSetupError(f"Podman refused the container: {message}", hint=hint) from exc
    except (PodmanError, OSError) as exc:
        raise BackendUnavailable(
            f"Podman service not usable at {url}: {exc}",
            hint=START_HINT.format(url=url) + ", or use --backend docker|native",
        ) from exc


class PodmanOps:
    """The podman-py calls of one run (``lifecycle.EngineOps``)."""

    engine = "Podman"

    def __init__(self, url: str, *, spec: SandboxSpec | None = None) -> None:
        self.url = url
        self.spec = spec
        self.image = spec.image if spec else ""
        self.client = _client(url)
        self.boxes: dict[str, Container] = {}
        self.last_code: int | None = None

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return _engine_errors(self.url, self.image)

    def sweep(self) -> list[str]:
        """Remove containers whose codex-box was killed (SIGKILL gives no chance to clean)."""
        removed = []
        # A plain string: podman-py str()s a list value into "['...']", matching nothing.
        for box in self.client.containers.list(all=True, filters={"label": container.LABEL_OWNER}):
            if container.owner_is_gone(box.labels.get(container.LABEL_OWNER, "")):
                with contextlib.suppress(Exception):
                    box.remove(force=True, v=True)
                    removed.append(box.name)
        return removed

    def create(self, request: Mapping[str, Any], *, name: str | None = None) -> str:
        box = self.client.containers.create(**request, **({"name": name} if name else {}))
        self.boxes[box.id] = box
        try:
            verify_created(request, box.attrs)
        except BaseException:
            self.remove(box.id)
            raise
        return str(box.id)

    def pid(self, box: str) -> int:
        return int(self.boxes[box].inspect()["State"]["Pid"])

    def initialize(self, box: str) -> int | None:
        """``podman init``: namespaces and mounts made, the command not yet started."""
        _refused_as_start(self.boxes[box].init)
        return self.pid(box)

    def attach(self, box: str) -> socket.socket:
        return Endpoint(self.url).hijack(
            f"{LIBPOD}/containers/{box}/attach?stream=true&stdin=true&stdout=true&stderr=true"
        )

    def start(self, box: str) -> None:
        _refused_as_start(self.boxes[box].start)

    def wait(self, box: str, timeout: float) -> int:
        from podman.errors import APIError

        try:
            code = int(
                self.boxes[box].wait(
                    condition=["exited", "stopped"], interval="10ms", timeout=timeout
                )
            )
        except APIError as exc:
            if _is_timeout(exc):
                raise TimeoutError(f"container {box[:12]} still running") from exc
            raise
        # catatonit (the init) reports a command it cannot exec as exit 1, where a shell
        # and the other backends say 127: look whether the command exists at all.
        if code == 1 and self.spec is not None and self._command_missing(box, self.spec):
            raise StartRefused(f"{self.spec.argv[0]}: executable file not found")
        self.last_code = code
        debug("podman wait", box=box, code=code)
        return code

    def _command_missing(self, box: str, spec: SandboxSpec) -> bool:
        """True when no candidate path for argv[0] exists in the container (stat of the
        container's filesystem through the archive endpoint; bounded by PATH's length)."""
        name = spec.argv[0]
        if "/" in name:
            candidates = [posixpath.join(spec.workspace, name)]
        else:
            path = spec.env_dict().get("PATH", DEFAULT_PATH)
            candidates = [f"{d}/{name}" for d in path.split(":")[:16] if d.startswith("/")]
        for candidate in candidates:
            response = self.client.api.head(
                f"/containers/{box}/archive", params={"path": candidate}
            )
            if response.status_code != 404:
                return False
        return True

    def kill(self, box: str, sig: int) -> None:
        try:
            self.boxes[box].kill(signal=int(sig))
        except Exception as exc:  # it may have ended on its own meanwhile
            debug("podman kill failed", box=box, signal=sig, error=repr(exc))

    def oom_killed(self, box: str) -> bool:
        if self.boxes[box].inspect()["State"].get("OOMKilled"):
            return True
        # Podman 4 on cgroup v1 does not notice; the kernel does (SIGKILL = 137).
        limited = self.spec is not None and self.spec.limits.memory_bytes is not None
        return limited and self.last_code == 137 and container.kernel_saw_oom_kill(box)

    def remove(self, box: str) -> None:
        try:
            self.boxes[box].remove(force=True, v=True)
        except Exception as exc:  # never mask the real outcome
            debug("podman remove failed", box=box, error=repr(exc))

    def resize(self, box: str, rows: int, cols: int) -> None:
        with contextlib.suppress(Exception):
            self.boxes[box].resize(height=rows, width=cols)


def _client(url: str) -> PodmanClient:
    from podman import PodmanClient

    parsed = urllib.parse.urlparse(url)
    base = f"http+unix://{parsed.path}" if parsed.scheme == "unix" else url
    return PodmanClient(base_url=base, timeout=API_TIMEOUT_S)


INIT_PATH = "/run/podman-init"  # where Podman mounts catatonit in the container


def _process_argv(inspected: Mapping[str, Any]) -> list[str]:
    """The argv the container will exec (after its init, if it has one)."""
    path, args = inspected.get("Path"), list(inspected.get("Args") or [])
    if path == INIT_PATH:
        return args[1:] if args[:1] == ["--"] else args
    return [str(path), *args]


def verify_created(request: Mapping[str, Any], inspected: Mapping[str, Any]) -> None:
    """Fail closed when the created container is not what was asked for: podman-py and
    older Podman services ignore some options without an error."""
    host = inspected.get("HostConfig") or {}
    problems = []
    if bool(host.get("ReadonlyRootfs")) != bool(request["read_only"]):
        problems.append(f"read-only rootfs {host.get('ReadonlyRootfs')}")
    wanted_net = request["network_mode"]
    if wanted_net == "none" and host.get("NetworkMode") != "none":
        problems.append(f"network mode {host.get('NetworkMode')!r}")
    if wanted_net.startswith("ns:") and host.get("NetworkMode") != wanted_net:
        problems.append(f"network mode {host.get('NetworkMode')!r} instead of {wanted_net!r}")
    if request.get("no_new_privileges") and "no-new-privileges" not in (
        host.get("SecurityOpt") or []
    ):
        problems.append("no-new-privileges missing")
    if "cap_drop" in request and (inspected.get("EffectiveCaps") or host.get("CapAdd")):
        problems.append(f"capabilities {inspected.get('EffectiveCaps') or host.get('CapAdd')}")
    if request.get("pids_limit") is not None and host.get("PidsLimit") != request["pids_limit"]:
        problems.append(f"pids limit {host.get('PidsLimit')}")
    if request.get("mem_limit") is not None and host.get("Memory") != request["mem_limit"]:
        problems.append(f"memory limit {host.get('Memory')}")
    if (
        request.get("apparmor_profile")
        and inspected.get("AppArmorProfile") != request["apparmor_profile"]
    ):
        problems.append(f"AppArmor profile {inspected.get('AppArmorProfile')!r}")
    if request.get("runtime") and inspected.get("OCIRuntime") != request["runtime"]:
        problems.append(
            f"OCI runtime {inspected.get('OCIRuntime')!r} instead of {request['runtime']!r}"
        )
    if (process := _process_argv(inspected)) != list(request["command"]):
        problems.append(f"command {process!r} instead of {list(request['command'])!r}")
    if problems:
        raise SandboxSetupError(
            "Podman created the container without what was asked: " + "; ".join(problems),
            hint="nothing was run; upgrade Podman/podman-py or use --backend docker|native",
        )


def _refused_as_start(step: Callable[[], object]) -> None:
    """An API error with a status (the engine said no) is the command's start refused."""
    from podman.errors import APIError

    try:
        step()
    except APIError as exc:
        if exc.status_code is None:
            raise
        raise StartRefused(str(exc.explanation or exc)) from exc
