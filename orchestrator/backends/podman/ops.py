"""The podman-py calls of one Podman run, and its errors in codex-box's words.

Owns: ``PodmanOps`` (``lifecycle.EngineOps`` on podman-py: create and check, init,
attach, start, wait, kill, remove, sweep), and turning podman-py's and the socket's
exceptions into ``CodexBoxError`` in one place (``engine_errors``).
Does not own: the request (``translate``), probing the service (``host``), or the order
of a run's calls (``containers.lifecycle``).

podman-py has no attach (``Container.attach`` raises NotImplementedError), so the live
stdin/stdout stream uses the libpod attach endpoint over our own socket client.
podman-py itself is imported only here, and only when a run or a sweep needs it.
"""

from __future__ import annotations

import contextlib
import posixpath
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.backends.containers import common as container
from orchestrator.backends.containers.engine_api import API_TIMEOUT_S, Endpoint
from orchestrator.backends.containers.lifecycle import StartRefused
from orchestrator.core.errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.spec import SandboxSpec

from .host import LIBPOD, START_HINT
from .translate import verify_created

if TYPE_CHECKING:
    from podman import PodmanClient
    from podman.domain.containers import Container

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
def engine_errors(url: str, image: str) -> Iterator[None]:
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
        return engine_errors(self.url, self.image)

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


def _refused_as_start(step: Callable[[], object]) -> None:
    """An API error with a status (the engine said no) is the command's start refused."""
    from podman.errors import APIError

    try:
        step()
    except APIError as exc:
        if exc.status_code is None:
            raise
        raise StartRefused(str(exc.explanation or exc)) from exc
