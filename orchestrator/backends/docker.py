"""The Docker backend: ``SandboxSpec`` → container create request (pure) → docker-py run.

Owns: ``translate`` (the whole ``containers.create`` request, golden-tested), the
availability probe, ``run`` (create, attach, start, wait, remove), and turning every
docker-py exception into a ``CodexBoxError`` in one place (``_engine_errors``).
Does not own: what all container engines share (``container.py``).

docker-py is imported only inside ``run``: ``--backend auto`` probes Docker on every
launch, and the probe (``engine_probe``) must not pay for the SDK.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import termios
import time
import tty
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from ..log import debug
from ..profile import Capabilities
from ..spec import DEFAULT_DOCKER_HOST, RunResult, SandboxSpec
from . import container
from .attach import AttachedStreams
from .base import Availability
from .engine_probe import Endpoint

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

API_TIMEOUT_S = 60  # any single engine call; waiting for the command has no limit
GRACE_S = 2.0


class DockerBackend:
    name = "docker"

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        endpoint = Endpoint(spec.docker_host if spec else DEFAULT_DOCKER_HOST)
        try:
            version = endpoint.version()
            if spec is not None and not endpoint.has_image(spec.image):
                return Availability(
                    False,
                    f"image {spec.image} is not in Docker at {endpoint.url} (run `make images`)",
                )
        except OSError as exc:
            return Availability(False, f"no Docker engine answers at {endpoint.url} ({exc})")
        return Availability(
            True,
            f"Docker {version.get('Version', '?')} "
            f"(API {version.get('ApiVersion', '?')}) at {endpoint.url}",
        )

    def translate(self, spec: SandboxSpec) -> Mapping[str, Any]:
        return translate(spec)

    def run(self, spec: SandboxSpec) -> RunResult:
        return _DockerRun(spec).execute()

    def gc(self) -> list[str]:
        if not self.availability().ok:
            return []
        import docker

        with contextlib.suppress(Exception):
            return remove_leftovers(
                docker.DockerClient(
                    base_url=DEFAULT_DOCKER_HOST, version="auto", timeout=API_TIMEOUT_S
                )
            )
        return []


def translate(spec: SandboxSpec) -> dict[str, Any]:
    """Pure: the keyword arguments of docker-py's ``containers.create`` for ``spec``.
    ``run`` adds only the owner label (which codex-box process owns the container)."""
    request: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.argv),
        "entrypoint": [],
        "working_dir": spec.workspace,
        "user": f"{spec.uid}:{spec.gid}",  # files written in the workspace stay the user's
        "environment": spec.env_dict(),
        "network_mode": container.network_mode(spec),
        "read_only": spec.rootfs_read_only,
        "tmpfs": container.tmpfs(spec),
        "mounts": [
            {
                "Type": "bind",
                "Source": b.source,
                "Target": b.target,
                "ReadOnly": b.read_only,
                "BindOptions": {"Propagation": "rprivate"},
            }
            for b in container.binds(spec)
        ],
        "init": True,  # zombies are reaped; signals reach the command
        "labels": container.labels(spec),
        "stdin_open": True,
        "tty": spec.tty,
        # Not detached: docker-py then sets StdinOnce, so closing our stdin ends the
        # command's input without the engine also ending the output stream.
        "detach": False,
        "privileged": False,
    }
    if spec.capabilities is Capabilities.NONE:
        request["cap_drop"] = ["ALL"]
    seccomp = container.seccomp_json(spec)
    if spec.sandboxed:
        request["security_opt"] = [
            "no-new-privileges:true",
            *([f"seccomp={seccomp}"] if seccomp else []),
        ]
    limits = spec.limits
    if limits.pids is not None:
        request["pids_limit"] = limits.pids
    if limits.memory_bytes is not None:
        request["mem_limit"] = limits.memory_bytes
        request["memswap_limit"] = limits.memory_bytes  # swap must not stretch the limit
    if limits.cpus is not None:
        request["nano_cpus"] = int(limits.cpus * 1e9)
    return request


@contextlib.contextmanager
def _engine_errors(spec: SandboxSpec) -> Iterator[None]:
    """Every docker-py / requests exception becomes one line naming the cause and fix."""
    from docker import errors
    from requests import exceptions as http

    try:
        yield
    except CodexBoxError:
        raise
    except errors.ImageNotFound as exc:
        raise SandboxSetupError(
            f"image {spec.image} not found in Docker",
            hint="run `make images`, or pass --image with an image you have",
        ) from exc
    except errors.APIError as exc:
        raise SandboxSetupError(
            f"Docker refused the container: {exc.explanation or exc}",
            hint="nothing was run; check the option it names",
        ) from exc
    except (http.ConnectionError, http.Timeout, errors.DockerException) as exc:
        raise BackendUnavailable(
            f"Docker engine not usable at {spec.docker_host}: {exc}",
            hint="start dockerd (scripts/start-dockerd.sh) or use --backend native",
        ) from exc


class _DockerRun:
    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.sent: int | None = None  # the last signal we forwarded
        self.timed_out = False

    def execute(self) -> RunResult:
        import docker

        request = translate(self.spec)
        request["labels"] = {**request["labels"], container.LABEL_OWNER: container.owner_label()}
        debug("docker create", request={k: v for k, v in request.items() if k != "security_opt"})
        started = time.monotonic()
        with _engine_errors(self.spec):
            client = docker.DockerClient(
                base_url=self.spec.docker_host, version="auto", timeout=API_TIMEOUT_S
            )
            remove_leftovers(client)
            box = client.containers.create(**request)
        try:
            with _engine_errors(self.spec):
                code = self._attach_start_wait(client, box)
                box.reload()
                oom = bool(box.attrs["State"].get("OOMKilled"))
        finally:
            with contextlib.suppress(Exception):  # never mask the real outcome
                box.remove(force=True)
        return self._result(code, oom, time.monotonic() - started)

    def _attach_start_wait(self, client: DockerClient, box: Container) -> int:
        raw = client.api.attach_socket(
            box.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        streams = AttachedStreams(_socket_of(raw), tty=self.spec.tty)
        with _raw_terminal(enabled=self.spec.tty):
            streams.start()
            try:
                box.start()
            except Exception as exc:
                streams.finish(timeout=1)
                raise _not_startable(exc, self.spec) from exc
            code = self._wait(box)
            streams.finish()
        return code

    def _wait(self, box: Container) -> int:
        from requests import exceptions as http

        deadline = (
            None
            if self.spec.limits.timeout_s is None
            else time.monotonic() + self.spec.limits.timeout_s
        )

        def forward(signum: int, _frame: FrameType | None) -> None:
            self.sent = signum
            with contextlib.suppress(Exception):
                box.kill(signal=signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            while True:
                remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
                try:
                    return int(box.wait(timeout=remaining)["StatusCode"])
                except (http.ReadTimeout, http.ConnectionError):
                    if deadline is None or time.monotonic() < deadline:
                        raise
                    self.timed_out = True
                    box.kill()
                except KeyboardInterrupt:
                    self._interrupt(box)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _interrupt(self, box: Container) -> None:
        """Ctrl-C: the command does not share our terminal; pass SIGINT on, then insist."""
        from requests import exceptions as http

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            self.sent = sig
            with contextlib.suppress(Exception):
                box.kill(signal=sig)
            with contextlib.suppress(http.ReadTimeout, http.ConnectionError, KeyboardInterrupt):
                box.wait(timeout=GRACE_S)
                return

    def _result(self, code: int, oom: bool, duration: float) -> RunResult:
        detail = ""
        if self.timed_out:
            code, detail = 124, f"timed out after {self.spec.limits.timeout_s:g}s; killed"
        elif oom:
            detail = "killed by the OOM killer (memory limit reached)"
        return RunResult(
            exit_code=code,
            backend="docker",
            duration_s=duration,
            signal=signal.SIGKILL if oom else container.signal_of(code, sent=self.sent),
            timed_out=self.timed_out,
            oom_killed=oom,
            detail=detail,
        )


def _not_startable(exc: Exception, spec: SandboxSpec) -> CodexBoxError:
    """A start failure that is the command's fault (not found, not executable) maps to
    126/127 like a shell; anything else is a setup failure."""
    text = str(getattr(exc, "explanation", None) or exc)
    for needle, code, what in (
        ("not found", 127, "command not found"),
        ("no such file", 127, "command not found"),
        ("permission denied", 126, "command not executable"),
    ):
        if needle in text.lower():
            error = CodexBoxError(
                f"{what} inside the container: {spec.argv[0]}",
                hint=f"is it installed in {spec.image}?",
            )
            error.exit_code = code
            return error
    return SandboxSetupError(
        f"Docker could not start the container: {text}", hint="nothing was run"
    )


def _socket_of(raw: Any) -> socket.socket:
    sock = getattr(raw, "_sock", raw)
    if not isinstance(sock, socket.socket):
        raise SandboxSetupError(
            "Docker attach did not return a socket", hint="use a local engine (unix socket)"
        )
    return sock


@contextlib.contextmanager
def _raw_terminal(*, enabled: bool) -> Iterator[None]:
    """With -t on a real terminal, keystrokes go to the container unprocessed."""
    if not (enabled and sys.stdin.isatty()):
        yield
        return
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def remove_leftovers(client: DockerClient) -> list[str]:
    """Remove containers whose codex-box was killed (SIGKILL gives no chance to clean)."""
    removed = []
    for box in client.containers.list(all=True, filters={"label": container.LABEL_OWNER}):
        if container.owner_is_gone(box.labels.get(container.LABEL_OWNER, "")):
            with contextlib.suppress(Exception):
                box.remove(force=True)
                removed.append(box.name)
    return removed
