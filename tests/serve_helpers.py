"""A real ``codex-box serve`` for the tests: started as the CLI starts it, in its own
CODEX_HOME and workspaces directory, stopped with SIGTERM after its test (SIGKILL and
``gc`` if it would not stop), and what it must never leave behind looked for on the host."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.client import Client, ServerError
from tests.conftest import CODEX_BOX

READY_S = 120.0  # a docker pool's first sandboxes take a few seconds each on 2 cores


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    codex_home: Path
    workspaces: Path
    env: dict[str, str]
    log: Path
    socket: Path = field(init=False)

    def __post_init__(self) -> None:
        self.socket = self.codex_home / "serve.sock"

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"

    def client(self, **kw: object) -> Client:
        return Client(self.address, timeout=120, environ=self.env, **kw)  # type: ignore[arg-type]

    def wait_ready(self, *, pools_full: bool = True, timeout_s: float = READY_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(ServerError, OSError):
                health = self.client().health()
                if not pools_full or all(p["ready"] >= p["size"] for p in health["pools"].values()):
                    return
            time.sleep(0.1)
        raise AssertionError(f"serve not ready within {timeout_s}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def config_text(*, pools: dict[str, int] | None = None, workspaces: Path, extra: str = "") -> str:
    lines = ["[policy]", 'mode = "audit-only"', "", "[serve]", f'workspaces = "{workspaces}"']
    lines += [extra] if extra else []
    if pools:
        lines += ["", "[serve.pools]"] + [f'"{key}" = {size}' for key, size in pools.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def serving(
    base_env: dict[str, str],
    codex_home: Path,
    tmp_path: Path,
    *,
    pools: dict[str, int] | None = None,
    args: tuple[str, ...] = (),
    extra_config: str = "",
    wait: bool = True,
) -> Iterator[Served]:
    """A server for one test; on the way out it is stopped and then ``gc`` removes
    anything a failed test left (the test's own assertions are what check that)."""
    workspaces = tmp_path / "serve-workspaces"
    (codex_home / "config.toml").write_text(
        config_text(pools=pools, workspaces=workspaces, extra=extra_config)
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [CODEX_BOX, "serve", *args],
            env=base_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, codex_home, workspaces, dict(base_env), log)
    try:
        if wait:
            served.wait_ready()
        yield served
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            served.stop()
        subprocess.run(
            [CODEX_BOX, "gc"], env=base_env, capture_output=True, timeout=120, check=False
        )


def leftovers(served: Served) -> list[str]:
    """What a stopped server must not have left: its socket, records, workspaces,
    sessions' directories, processes of its own."""
    found: list[str] = []
    if served.socket.exists():
        found.append(f"socket {served.socket}")
    owned = served.codex_home / "serve" / "owned"
    found += [f"record {p.name}" for p in owned.glob("*")] if owned.is_dir() else []
    if served.workspaces.is_dir():
        found += [f"workspace {p.name}" for p in served.workspaces.iterdir()]
    sessions = served.codex_home / "sessions"
    found += (
        [f"session {p.name}" for p in sessions.iterdir() if not p.name.startswith(".")]
        if sessions.is_dir()
        else []
    )
    found += [f"process {pid}" for pid in processes_under(str(served.codex_home))]
    return found


def processes_under(needle: str) -> list[int]:
    """Processes whose environment names ``needle`` (this test's CODEX_HOME): the
    server's keepers, fork server and runs all carry it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle.encode() in (entry / "environ").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
    return found


def wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture
def serve_factory(
    base_env: dict[str, str], codex_home: Path, tmp_path: Path
) -> Callable[..., contextlib.AbstractContextManager[Served]]:
    def make(**kw: object) -> contextlib.AbstractContextManager[Served]:
        return serving(base_env, codex_home, tmp_path, **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def token(codex_home: Path) -> Path:
    """A bearer token where it belongs: $CODEX_HOME/serve/token, 0600 (hidden from sandboxes)."""
    directory = codex_home / "serve"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / "token"
    path.write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
    path.chmod(0o600)
    return path
