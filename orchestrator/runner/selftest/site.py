"""The host side of one attack: a scratch root with canaries, and the servers an attack
tries to reach.

Owns: ``Site`` — a fresh directory under /var/tmp holding a scratch HOME (fake keys,
a shell start-up file), a scratch CODEX_HOME (config, a hidden key), a workspace (with a
``.git``) and a target outside it, each holding known bytes; the host processes an
attack may try to signal — and ``Listeners``: a TCP and a UDP socket on the host's
loopback, a Unix socket and an abstract socket, all the harness's own, read without a
thread (``drain``) once a run has ended.
Does not own: what an attack does (``attacks``), running it (``harness``).

Why /var/tmp: write profiles give the sandbox a private /tmp, which would hide a target
there and make every write attack pass for the wrong reason. Why nothing else: the
selftest runs on a CI runner; an attack that got out must only ever touch its own
scratch files and its own servers, never the runner's HOME, CODEX_HOME or network.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SCRATCH_BASE = Path("/var/tmp")  # noqa: S108 -- every site is a fresh mkdtemp inside
MAX_EVENTS = 2000  # what the listeners keep: a flood from inside cannot grow it further
SECRET_ENV = "CODEX_SELFTEST_API_TOKEN"  # noqa: S105 -- a name the environment rules withhold


def original(path: Path, nonce: str) -> str:
    """The bytes a canary file starts with (and must still hold after the attack)."""
    return f"# codex-box selftest canary {path.name} {nonce}\n"  # a comment in every format


@dataclass(eq=False)
class Site:
    root: Path
    nonce: str  # public: it appears in the command line and the output
    secret: str  # never on the command line: found in the output only if it was read
    listeners: Listeners | None = None  # the harness's servers, shared by every site
    heard_from: int = 0  # the listeners' events before this site existed
    victims: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def make(cls, base: Path, name: str, listeners: Listeners | None = None) -> Site:
        nonce = secrets.token_hex(6)
        root = base / f"codex-box-selftest-{name}-{nonce}"
        root.mkdir(mode=0o755)
        secret = f"SECRET{secrets.token_hex(12)}"
        mark = listeners.mark() if listeners else 0
        site = cls(root=root, nonce=nonce, secret=secret, listeners=listeners, heard_from=mark)
        try:
            site._lay_out()
        except OSError:
            site.close()
            raise
        return site

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def codex_home(self) -> Path:
        return self.home / ".codex"

    @property
    def workspace(self) -> Path:
        return self.root / "proj"

    @property
    def target(self) -> Path:
        return self.root / "outside" / "target.txt"

    def canaries(self) -> tuple[Path, ...]:
        """The files outside the workspace whose bytes must not change."""
        return (
            self.target,
            self.home / ".bashrc",
            self.codex_home / "config.toml",
            self.workspace / ".git" / "config",
        )

    def secret_files(self) -> tuple[Path, ...]:
        """Files that hold ``secret``: the sandbox must never show their contents."""
        return (
            self.home / ".ssh" / "id_ed25519",
            self.home / ".aws" / "credentials",
            self.home / ".netrc",
            self.codex_home / "serve" / "token",
        )

    def _lay_out(self) -> None:
        for directory in (
            self.home / ".ssh",
            self.home / ".aws",
            self.codex_home / "serve",
            self.workspace / ".git" / "hooks",
            self.workspace / ".git" / "objects",
            self.workspace / ".git" / "refs" / "heads",
            self.target.parent,
        ):
            directory.mkdir(parents=True, mode=0o755)
        for path in self.canaries():
            path.write_text(original(path, self.nonce))
        for path in self.secret_files():
            path.write_text(f"{path.name} {self.secret}\n")
            path.chmod(0o600)
        (self.workspace / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        (self.workspace / "README").write_text(f"workspace-readable {self.nonce}\n")

    def environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """The caller's environment, pointed at this site's HOME and CODEX_HOME, with a
        secret-looking variable the sandbox must not receive."""
        env = {k: v for k, v in base.items() if k not in ("CODEX_SECURITY_PROFILE", "PWD")}
        env.update(
            HOME=str(self.home),
            CODEX_HOME=str(self.codex_home),
            PWD=str(self.workspace),
            **{SECRET_ENV: self.secret},
        )
        return env

    @property
    def done(self) -> str:
        """What an attack prints last: its witness (it ran to the end)."""
        return f"done-{self.nonce}"

    def heard(self) -> list[str]:
        """What the harness's servers received since this site was made."""
        return self.listeners.since(self.heard_from) if self.listeners else []

    def spawn_victim(self) -> int:
        """A host process the attack will try to kill; its pid."""
        victim = subprocess.Popen(
            ["sleep", "120"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        self.victims.append(victim)
        return victim.pid

    def close(self) -> None:
        for victim in self.victims:
            with contextlib.suppress(OSError):
                victim.kill()
            victim.wait()
        # Attacks run as this user: nothing in the root can be beyond removing.
        shutil.rmtree(self.root, ignore_errors=True)


class Listeners:
    """The harness's own servers. Each connection and datagram is recorded with the
    first bytes it carried (attacks send their site's nonce)."""

    def __init__(self, base: Path) -> None:
        self.events: list[str] = []
        self._accepted: list[socket.socket] = []
        name = f"codex-box-selftest-{secrets.token_hex(6)}"
        self.unix_path = str(base / f"{name}.sock")
        self.abstract = name
        self._sockets: list[tuple[str, socket.socket]] = []
        try:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            self.port = int(tcp.getsockname()[1])
            self._listen("tcp", tcp)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", self.port))
            self._sockets.append(("udp", udp))
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.bind(self.unix_path)
            os.chmod(self.unix_path, 0o777)  # noqa: S103 -- reachable for any user: only the sandbox may stop it
            self._listen("unix", unix)
            abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            abstract.bind("\0" + self.abstract)
            self._listen("abstract", abstract)
        except OSError:
            self.close()
            raise
        for _, sock in self._sockets:
            sock.setblocking(False)

    def _listen(self, kind: str, sock: socket.socket) -> None:
        self._sockets.append((kind, sock))
        sock.listen(64)

    def drain(self) -> None:
        """Record everything that arrived (a run has ended: its bytes are in the
        kernel's buffers already)."""
        for kind, sock in self._sockets:
            for _ in range(MAX_EVENTS):
                try:
                    if kind == "udp":
                        data = sock.recv(2048)
                    else:
                        conn, _ = sock.accept()
                        data = self._first_bytes(conn)
                except OSError:  # BlockingIOError: nothing (more) waiting
                    break
                self._record(kind, data)

    def _first_bytes(self, conn: socket.socket) -> bytes:
        conn.settimeout(0.2)
        try:
            return conn.recv(512)
        except OSError as exc:  # a Unix peer that closed before the accept: a reset
            return f"<{type(exc).__name__}>".encode()
        finally:
            conn.close()

    def _record(self, kind: str, data: bytes) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(f"{kind} {data.decode('latin-1')!r}")

    def mark(self) -> int:
        """Where the next case's events begin: cases run one at a time, so everything
        that arrives after a case's mark is that case's (a Unix peer that closed before
        it was accepted leaves no bytes to attribute it by)."""
        self.drain()
        return len(self.events)

    def since(self, mark: int) -> list[str]:
        self.drain()
        return self.events[mark:]

    def close(self) -> None:
        for _, sock in self._sockets:
            sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.unix_path)
