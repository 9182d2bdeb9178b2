"""The Docker backend: ``SandboxSpec`` → Engine API create body (pure) → run.

Owns: ``translate`` (the whole ``POST /containers/create`` body, golden-tested), the
availability probe, ``run`` (create, attach, start, wait, inspect, remove), and turning
every engine error into a ``CodexBoxError`` in one place (``_engine_errors``).
Does not own: what all container engines share (``container.py``) or HTTP
(``engine_api.py``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import termios
import time
import tty
import urllib.parse
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

from ..errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from ..log import debug
from ..profile import Capabilities
from ..spec import DEFAULT_DOCKER_HOST, RunResult, SandboxSpec
from . import container
from .attach import AttachedStreams
from .base import Availability
from .engine_api import Endpoint, EngineError

GRACE_S = 2.0


class DockerBackend:
    name = "docker"

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        endpoint = Endpoint(spec.docker_host if spec else DEFAULT_DOCKER_HOST)
        try:
            server = endpoint.ping()
            if spec is not None and not endpoint.has_image(spec.image):
                return Availability(
                    False,
                    f"image {spec.image} is not in Docker at {endpoint.url} (run `make images`)",
                )
        except OSError as exc:
            return Availability(False, f"no Docker engine answers at {endpoint.url} ({exc})")
        return Availability(True, f"{server} at {endpoint.url}")

    def translate(self, spec: SandboxSpec) -> Mapping[str, Any]:
        return translate(spec)

    def run(self, spec: SandboxSpec) -> RunResult:
        return _DockerRun(spec).execute()

    def gc(self) -> list[str]:
        endpoint = Endpoint(DEFAULT_DOCKER_HOST)
        with contextlib.suppress(OSError):
            return remove_leftovers(endpoint)
        return []


def translate(spec: SandboxSpec) -> dict[str, Any]:
    """Pure: the body of ``POST /containers/create`` for ``spec`` (what ``docker run``
    sends). ``run`` adds only the owner label: which codex-box process owns it."""
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
        ]
    limits = spec.limits
    if limits.pids is not None:
        host["PidsLimit"] = limits.pids
    if limits.memory_bytes is not None:
        host["Memory"] = limits.memory_bytes
        host["MemorySwap"] = limits.memory_bytes  # swap must not stretch the limit
    if limits.cpus is not None:
        host["NanoCpus"] = int(limits.cpus * 1e9)
    return {
        "Image": spec.image,
        "Cmd": list(spec.argv),
        "Entrypoint": [],  # the command is ours, not the image's entrypoint's argument
        "WorkingDir": spec.workspace,
        "User": f"{spec.uid}:{spec.gid}",  # files written in the workspace stay the user's
        "Env": [f"{k}={v}" for k, v in spec.env],
        "Labels": container.labels(spec),
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


@contextlib.contextmanager
def _engine_errors(spec: SandboxSpec) -> Iterator[None]:
    """Every engine failure becomes one line naming the cause and the fix."""
    try:
        yield
    except CodexBoxError:
        raise
    except EngineError as exc:
        if exc.status == 404 and "image" in exc.message.lower():
            raise SandboxSetupError(
                f"image {spec.image} not found in Docker",
                hint="run `make images`, or pass --image with an image you have",
            ) from exc
        raise SandboxSetupError(
            f"Docker refused the container: {exc.message}",
            hint="nothing was run; check the option it names",
        ) from exc
    except OSError as exc:
        raise BackendUnavailable(
            f"Docker engine not usable at {spec.docker_host}: {exc}",
            hint="start dockerd (scripts/start-dockerd.sh) or use --backend native",
        ) from exc


class _DockerRun:
    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.api = Endpoint(spec.docker_host)
        self.sent: int | None = None  # the last signal we forwarded
        self.timed_out = False

    def execute(self) -> RunResult:
        body = translate(self.spec)
        body["Labels"] = {**body["Labels"], container.LABEL_OWNER: container.owner_label()}
        debug(
            "docker create",
            body={k: v for k, v in body.items() if k != "HostConfig"},
            host_config={k: v for k, v in body["HostConfig"].items() if k != "SecurityOpt"},
        )
        started = time.monotonic()
        with _engine_errors(self.spec):
            remove_leftovers(self.api)
            box = self.api.call("POST", "/containers/create", body)["Id"]
        try:
            with _engine_errors(self.spec):
                code = self._attach_start_wait(box)
                oom = bool(self.api.call("GET", f"/containers/{box}/json")["State"]["OOMKilled"])
        finally:
            with contextlib.suppress(OSError):  # never mask the real outcome
                self.api.call("DELETE", f"/containers/{box}?force=1&v=1")
        return self._result(code, oom, time.monotonic() - started)

    def _attach_start_wait(self, box: str) -> int:
        sock = self.api.hijack(f"/containers/{box}/attach?stream=1&stdin=1&stdout=1&stderr=1")
        streams = AttachedStreams(sock, tty=self.spec.tty)
        with _raw_terminal(enabled=self.spec.tty):
            streams.start()
            try:
                self.api.call("POST", f"/containers/{box}/start")
            except EngineError as exc:
                streams.finish(timeout=1)
                raise _not_startable(exc, self.spec) from exc
            if self.spec.tty:
                _copy_window_size(self.api, box)
            code = self._wait(box)
            streams.finish()
        return code

    def _kill(self, box: str, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(OSError):
            self.api.call("POST", f"/containers/{box}/kill?signal={int(sig)}")

    def _wait(self, box: str) -> int:
        deadline = (
            None
            if self.spec.limits.timeout_s is None
            else time.monotonic() + self.spec.limits.timeout_s
        )

        def forward(signum: int, _frame: FrameType | None) -> None:
            self.sent = signum
            self._kill(box, signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            while True:
                remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
                try:
                    status = self.api.call("POST", f"/containers/{box}/wait", timeout=remaining)
                    return int(status["StatusCode"])
                except TimeoutError:
                    if deadline is None or time.monotonic() < deadline:
                        raise
                    self.timed_out = True
                    self._kill(box)
                except KeyboardInterrupt:
                    self._interrupt(box)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _interrupt(self, box: str) -> None:
        """Ctrl-C: the command does not share our terminal; pass SIGINT on, then insist."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            self.sent = sig
            self._kill(box, sig)
            with contextlib.suppress(TimeoutError, KeyboardInterrupt):
                self.api.call("POST", f"/containers/{box}/wait", timeout=GRACE_S)
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


def _not_startable(exc: EngineError, spec: SandboxSpec) -> CodexBoxError:
    """A start failure that is the command's fault (not found, not executable) maps to
    126/127 like a shell; anything else is a setup failure."""
    text = exc.message.lower()
    for needle, code, what in (
        ("not found", 127, "command not found"),
        ("no such file", 127, "command not found"),
        ("permission denied", 126, "command not executable"),
    ):
        if needle in text:
            error = CodexBoxError(
                f"{what} inside the container: {spec.argv[0]}",
                hint=f"is it installed in {spec.image}?",
            )
            error.exit_code = code
            return error
    return SandboxSetupError(
        f"Docker could not start the container: {exc.message}", hint="nothing was run"
    )


def _copy_window_size(api: Endpoint, box: str) -> None:
    import fcntl
    import struct

    with contextlib.suppress(OSError):
        rows, cols = struct.unpack("hh", fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 4))
        api.call("POST", f"/containers/{box}/resize?h={rows}&w={cols}")


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


def remove_leftovers(api: Endpoint) -> list[str]:
    """Remove containers whose codex-box was killed (SIGKILL gives no chance to clean)."""
    query = urllib.parse.quote(f'{{"label":["{container.LABEL_OWNER}"]}}')
    removed = []
    for box in api.call("GET", f"/containers/json?all=1&filters={query}") or []:
        if container.owner_is_gone((box.get("Labels") or {}).get(container.LABEL_OWNER, "")):
            with contextlib.suppress(OSError):
                api.call("DELETE", f"/containers/{box['Id']}?force=1&v=1")
                removed.append(str(box.get("Names", [box["Id"][:12]])[0]).lstrip("/"))
    return removed
