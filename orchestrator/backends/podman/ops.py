"""The libpod API calls of one Podman run, and their errors in codex-box's words.

Owns: ``PodmanOps`` (``lifecycle.EngineOps`` over the libpod REST API with our own
client: create, init, inspect and check, attach, start, wait, kill, remove, sweep), and
turning every engine or socket failure into one ``CodexBoxError`` (``engine_errors``).
Does not own: the request (``translate``) or its libpod body (``render``), probing the
service (``host``), HTTP (``containers.engine_api``), or the order of a run's calls
(``containers.lifecycle``).

Why not podman-py: it cost ~100-250 ms of imports (requests, urllib3) per launch and a
client object per run, for the nine calls below; ``render`` sends the body it would
have sent, and ``verify_created`` still checks what the service made of it.
Why no wait before start (as Docker has): libpod's wait on a container that has not
started answers at once on some Podman versions, with no exit to report.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator.backends.containers import common as container
from orchestrator.backends.containers.engine_api import Endpoint, EngineError
from orchestrator.backends.containers.lifecycle import StartRefused
from orchestrator.core.errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.spec import SandboxSpec

from .host import LIBPOD, START_HINT
from .render import render
from .translate import verify_created

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WAIT_QUERY = "condition=exited&condition=stopped&interval=10ms"


def image_missing(exc: EngineError) -> bool:
    """The service's way of saying the image is not there (404, or Podman 4's 500)."""
    text = exc.message.lower()
    return "image not known" in text or (exc.status == 404 and "image" in text)


@contextlib.contextmanager
def engine_errors(url: str, image: str) -> Iterator[None]:
    """Every engine or socket failure becomes one line naming the cause and the fix."""
    try:
        yield
    except CodexBoxError:
        raise
    except EngineError as exc:
        if image_missing(exc):
            raise SandboxSetupError(
                f"image {image} not found in Podman",
                hint="run `make images`, or pass --image with an image you have",
            ) from exc
        hint = "nothing was run; check the option it names"
        if "container-init" in exc.message or "catatonit" in exc.message:
            hint = "install catatonit (apt-get install catatonit); nothing was run"
        raise SandboxSetupError(f"Podman refused the container: {exc.message}", hint=hint) from exc
    except OSError as exc:
        raise BackendUnavailable(
            f"Podman service not usable at {url}: {exc}",
            hint=START_HINT.format(url=url) + ", or use --backend docker|native",
        ) from exc


class PodmanOps:
    """The libpod calls of one run (``lifecycle.EngineOps``)."""

    engine = "Podman"

    def __init__(self, url: str, *, spec: SandboxSpec | None = None) -> None:
        self.url = url
        self.spec = spec
        self.image = spec.image if spec else ""
        self.api = Endpoint(url)
        self.unchecked: dict[str, Mapping[str, Any]] = {}  # created, not yet verified
        self.left: list[str] = []  # leftovers a sweep could not remove
        self.last_code: int | None = None

    def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.api.call(method, f"{LIBPOD}{path}", body, **kw)

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return engine_errors(self.url, self.image)

    def sweep(self) -> list[str]:
        """Remove containers whose codex-box was killed (SIGKILL gives no chance to clean)."""
        removed = []
        query = urllib.parse.quote(json.dumps({"label": [container.LABEL_OWNER]}))
        for box in self._call("GET", f"/containers/json?all=true&filters={query}") or []:
            if container.owner_is_gone((box.get("Labels") or {}).get(container.LABEL_OWNER, "")):
                name = str((box.get("Names") or [box["Id"][:12]])[0])
                try:
                    self._remove(str(box["Id"]))
                except OSError:
                    self.left.append(name)
                    continue
                removed.append(name)
        return removed

    def create(self, request: Mapping[str, Any], *, name: str | None = None) -> str:
        body = render({**request, **({"name": name} if name else {})})
        box = str(self._call("POST", "/containers/create", body)["Id"])
        # Checked against the service's inspect before anything starts in it (``_inspect``).
        self.unchecked[box] = request
        return box

    def _inspect(self, box: str) -> dict[str, Any]:
        """The container's inspect, checked against its request the first time (Podman
        4 and podman-py have dropped options silently: a sandbox must notice)."""
        inspected: dict[str, Any] = self._call("GET", f"/containers/{box}/json")
        if (request := self.unchecked.pop(box, None)) is not None:
            verify_created(request, inspected)
        return inspected

    def pid(self, box: str) -> int:
        return int(self._inspect(box)["State"]["Pid"])

    def initialize(self, box: str) -> int | None:
        """``podman init``: namespaces and mounts made, the command not yet started; one
        inspect both checks the container and gives its pid."""
        self._refused_as_start("POST", f"/containers/{box}/init")
        return self.pid(box)

    def attach(self, box: str) -> socket.socket:
        return self.api.hijack(
            f"{LIBPOD}/containers/{box}/attach?stream=true&stdin=true&stdout=true&stderr=true"
        )

    def expect_exit(self, box: str) -> None:
        return None  # see the module's docstring

    def start(self, box: str) -> None:
        if box in self.unchecked:  # started without init (the network holder)
            self._inspect(box)
        self._refused_as_start("POST", f"/containers/{box}/start")

    def _refused_as_start(self, method: str, path: str) -> None:
        """The engine saying no to init or start is the command's start refused."""
        try:
            self._call(method, path)
        except EngineError as exc:
            raise StartRefused(exc.message) from exc

    def wait(self, box: str, timeout: float) -> int:
        code = int(self._call("POST", f"/containers/{box}/wait?{WAIT_QUERY}", timeout=timeout))
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
            query = urllib.parse.urlencode({"path": candidate})
            response = self.api.request("HEAD", f"{LIBPOD}/containers/{box}/archive?{query}")
            if response.status != 404:
                return False
        return True

    def kill(self, box: str, sig: int) -> None:
        try:
            self._call("POST", f"/containers/{box}/kill?signal={int(sig)}")
        except OSError as exc:  # it may have ended on its own meanwhile
            debug("podman kill failed", box=box, signal=sig, error=repr(exc))

    def oom_killed(self, box: str) -> bool:
        if self._inspect(box)["State"].get("OOMKilled"):
            return True
        # Podman 4 on cgroup v1 does not notice; the kernel does (SIGKILL = 137).
        limited = self.spec is not None and self.spec.limits.memory_bytes is not None
        return limited and self.last_code == 137 and container.kernel_saw_oom_kill(box)

    def _remove(self, box: str) -> None:
        self._call("DELETE", f"/containers/{box}?force=true&v=true&volumes=true")

    def remove(self, box: str) -> bool:
        self.unchecked.pop(box, None)
        try:
            self._remove(box)
        except EngineError as exc:
            debug("podman remove failed", box=box, error=repr(exc))
            return exc.status == 404  # already gone
        except OSError as exc:  # never mask the real outcome
            debug("podman remove failed", box=box, error=repr(exc))
            return False
        return True

    def resize(self, box: str, rows: int, cols: int) -> None:
        with contextlib.suppress(OSError):
            self._call("POST", f"/containers/{box}/resize?h={rows}&w={cols}")
