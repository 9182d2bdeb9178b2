"""The real Dev Containers CLI (``@devcontainers/cli``) for tests: where it is, a fixture
that skips without it locally and FAILS without it when CODEX_BOX_REQUIRE_ENGINES=1 (as
in CI, where ``make devcontainer-cli`` installs the pinned version), and ``DevContainer``:
``devcontainer up``/``exec`` on one workspace and one engine, with a timeout, and the
removal of every container the CLI made for it (it labels them
``devcontainer.local_folder=<workspace>``).

Use: ``from tests.devcontainer_cli import devcontainer_cli  # noqa: F401`` (the fixture),
then ``with DevContainer(devcontainer_cli, workspace, "podman") as box: box.up()``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import pytest

from tests.conftest import REPO, REQUIRE

CLI_ENV = "CODEX_BOX_DEVCONTAINER_CLI"
LOCAL = REPO / ".tools" / "devcontainers" / "node_modules" / ".bin" / "devcontainer"
CAP_SYS_RESOURCE = 24
# Podman lowers its own RLIMIT_NPROC to this (seen on Podman 4.3: /proc/PID/limits).
PODMAN_NPROC = 32768


def find_cli() -> str | None:
    """$CODEX_BOX_DEVCONTAINER_CLI, else the pinned one ``make devcontainer-cli``
    installs, else ``devcontainer`` on PATH."""
    named = os.environ.get(CLI_ENV)
    if named:
        return named if os.access(named, os.X_OK) else None
    if os.access(LOCAL, os.X_OK):
        return str(LOCAL)
    return shutil.which("devcontainer")


@pytest.fixture(scope="session")
def devcontainer_cli() -> str:
    """The CLI's path; skipped without one, a failure when engines are required."""
    found = find_cli()
    if found is None:
        missing = f"no Dev Containers CLI (${CLI_ENV}, {LOCAL}, PATH): run `make devcontainer-cli`"
        if REQUIRE:
            pytest.fail(f"Dev Containers CLI required (CODEX_BOX_REQUIRE_ENGINES=1) but {missing}")
        pytest.skip(missing)
    return found


class DevContainer:
    """``devcontainer up``/``exec`` for ``workspace`` with ``engine`` (``docker`` or
    ``podman``: the CLI's ``--docker-path``); a context manager that removes the
    containers the CLI made, also when the test failed."""

    def __init__(self, cli: str, workspace: Path, engine: str = "docker") -> None:
        self.cli, self.workspace, self.engine = cli, workspace, engine
        self._conf: str | None = None

    def __enter__(self) -> DevContainer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def up(self, *args: str, timeout: float = 120) -> dict[str, object]:
        """``devcontainer up``: its closing JSON line (``outcome``, ``containerId``, …);
        AssertionError with its output unless the outcome is ``success``."""
        done = self._run("up", *args, timeout=timeout)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result: dict[str, object] = json.loads(lines[-1]) if lines else {}
        assert result.get("outcome") == "success", f"devcontainer up: {done.stdout}{done.stderr}"
        return result

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``devcontainer exec ARGV`` in the container, as the remote user."""
        return self._run("exec", *argv, timeout=timeout)

    def containers(self) -> list[str]:
        label = f"label=devcontainer.local_folder={self.workspace}"
        listed = subprocess.run(
            [self.engine, "ps", "-aq", "--filter", label],
            capture_output=True, text=True, timeout=30, env=self.env(),
        )  # fmt: skip
        return listed.stdout.split()

    def remove(self) -> None:
        """Every container the CLI made for the workspace, and its anonymous volumes."""
        ids = self.containers()
        if ids:
            subprocess.run(
                [self.engine, "rm", "-f", "-v", *ids],
                capture_output=True, timeout=60, env=self.env(),
            )  # fmt: skip
        if self._conf is not None:
            Path(self._conf).unlink(missing_ok=True)
            self._conf = None

    def env(self) -> dict[str, str]:
        """The environment for the engine's CLI. Podman here: without CAP_SYS_RESOURCE
        its runtime cannot raise an rlimit above its own hard limit, and Podman's
        default (nofile=nproc=1048576) then fails every start — codex-box's own Podman
        backend sets explicit ulimits for that (backends/podman/host.py); a config
        file (``CONTAINERS_CONF``) does it for the CLI's ``podman run``."""
        env = dict(os.environ)
        if self.engine == "podman" and not _has_cap(CAP_SYS_RESOURCE):
            if self._conf is None:
                nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], PODMAN_NPROC)
                fd, self._conf = tempfile.mkstemp(prefix="codex-box-containers-", suffix=".conf")
                with os.fdopen(fd, "w") as handle:
                    handle.write(
                        "[containers]\ndefault_ulimits = "
                        f'["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
                    )
            env["CONTAINERS_CONF"] = self._conf
        return env

    def _run(self, verb: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        argv = [self.cli, verb, "--workspace-folder", str(self.workspace)]
        argv += ["--docker-path", self.engine, *args]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=self.env(),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _has_cap(number: int) -> bool:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> number & 1)
    return False
