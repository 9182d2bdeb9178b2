"""The Engine API calls of one Docker run, and Docker's errors in codex-box's words.

Owns: ``DockerOps`` (``lifecycle.EngineOps`` over the Engine API: create, attach, a wait
held from before start, start, kill, inspect, remove), the sweep of containers whose
codex-box was killed (``remove_leftovers``), and turning every engine failure into one
``CodexBoxError`` (``engine_errors``).
Does not own: the request (``docker.translate``), the probe (``docker``), HTTP
(``engine_api``) or the order of a run's calls (``lifecycle``).
"""

from __future__ import annotations

import contextlib
import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator.core.errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from orchestrator.core.spec import SandboxSpec

from . import common as container
from .engine_api import Endpoint, EngineError, Pending, checked
from .lifecycle import StartRefused


@contextlib.contextmanager
def engine_errors(spec: SandboxSpec) -> Iterator[None]:
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


class DockerOps:
    """The Engine API calls of one run (``lifecycle.EngineOps``)."""

    engine = "Docker"

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.api = Endpoint(spec.docker_host)
        self.url = spec.docker_host
        self.waits: dict[str, Pending] = {}  # waits the engine holds (``expect_exit``)
        self.left: list[str] = []  # leftovers a sweep could not remove

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return engine_errors(self.spec)

    def sweep(self) -> list[str]:
        return remove_leftovers(self.api, self.left)

    def create(self, request: Mapping[str, Any], *, name: str | None = None) -> str:
        query = f"?name={urllib.parse.quote(name)}" if name else ""
        return str(self.api.call("POST", f"/containers/create{query}", request)["Id"])

    def pid(self, box: str) -> int:
        return int(self.api.call("GET", f"/containers/{box}/json")["State"]["Pid"])

    def initialize(self, box: str) -> int | None:
        return None  # Docker makes and starts a container in one step

    def attach(self, box: str) -> socket.socket:
        return self.api.hijack(f"/containers/{box}/attach?stream=1&stdin=1&stdout=1&stderr=1")

    def expect_exit(self, box: str) -> None:
        """``wait?condition=next-exit`` before start, as ``docker run`` does: Docker
        answers with its headers once the wait is in place, the body at the exit."""
        pending = self.api.send("POST", f"/containers/{box}/wait?condition=next-exit")
        try:
            if pending.status() >= 400:
                checked(pending.response())  # raises the engine's error
        except BaseException:
            pending.close()
            raise
        self.waits[box] = pending

    def start(self, box: str) -> None:
        try:
            self.api.call("POST", f"/containers/{box}/start")
        except EngineError as exc:
            raise StartRefused(exc.message) from exc

    def wait(self, box: str, timeout: float) -> int:
        pending = self.waits.pop(box, None)
        if pending is None:  # none held (or already answered): ask now
            answer = self.api.call("POST", f"/containers/{box}/wait", timeout=timeout)
            return _status_code(answer)
        try:
            response = pending.response(timeout)
        except (TimeoutError, KeyboardInterrupt):
            self.waits[box] = pending  # still held by the engine: read on next time
            raise
        return _status_code(checked(response))

    def kill(self, box: str, sig: int) -> None:
        with contextlib.suppress(OSError):
            self.api.call("POST", f"/containers/{box}/kill?signal={int(sig)}")

    def oom_killed(self, box: str) -> bool:
        return bool(self.api.call("GET", f"/containers/{box}/json")["State"]["OOMKilled"])

    def remove(self, box: str) -> bool:
        if (pending := self.waits.pop(box, None)) is not None:
            pending.close()
        try:
            self.api.call("DELETE", f"/containers/{box}?force=1&v=1")
        except EngineError as exc:
            return exc.status == 404  # already gone
        except OSError:  # never mask the real outcome
            return False
        return True

    def resize(self, box: str, rows: int, cols: int) -> None:
        with contextlib.suppress(OSError):
            self.api.call("POST", f"/containers/{box}/resize?h={rows}&w={cols}")


def remove_leftovers(api: Endpoint, failed: list[str] | None = None) -> list[str]:
    """Remove containers whose codex-box was killed (SIGKILL gives no chance to clean);
    the names removed. One that could not be removed is added to ``failed``."""
    query = urllib.parse.quote(f'{{"label":["{container.LABEL_OWNER}"]}}')
    removed = []
    for box in api.call("GET", f"/containers/json?all=1&filters={query}") or []:
        if container.owner_is_gone((box.get("Labels") or {}).get(container.LABEL_OWNER, "")):
            name = str(box.get("Names", [box["Id"][:12]])[0]).lstrip("/")
            try:
                api.call("DELETE", f"/containers/{box['Id']}?force=1&v=1")
            except OSError:
                (failed if failed is not None else []).append(name)
                continue
            removed.append(name)
    return removed


def _status_code(answer: Any) -> int:
    """The exit status from a wait's answer. A dockerd that dies while holding the wait
    has already sent its headers (200): the body is then empty — the engine went away,
    not the command (an OSError: "Docker engine not usable", exit 125)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("StatusCode"), int):
        raise OSError(f"the wait ended without the command's exit status ({answer!r})")
    return int(answer["StatusCode"])
