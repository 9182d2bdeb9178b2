"""``codex-box serve`` itself: the listening sockets, uvicorn, and an orderly end.

Owns: the Unix socket (bound in a private directory, made 0600, renamed into place: no
moment it is open to others; a stale one left by a killed server replaced, a live one
never), the loopback
TCP socket, starting the service before anything listens (a bad config, a second
server or a refused pool fails here, with nothing served), and the end: SIGTERM or
SIGINT stops accepting, cancels every run and exec at once (each end audited by
whoever ran it), then the service stops its pools and sessions; exit 0.
Does not own: the routes, the service, who may connect (``auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

import uvicorn
from loguru import logger

from orchestrator.core.errors import CodexBoxError, ConfigError, UsageError

from . import app, auth
from .service import Service

GRACEFUL_S = 6  # of STOP_S: answering the cancelled runs' clients (a cancel takes ≤ ~3 s)
CONNECTIONS = 4096  # at most; beyond: 503 at once (each open connection costs a descriptor)
RESERVED_FDS = 512  # for the runs in flight: pipes, channels, pools' keepers


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    socket_path: str | None = None  # None: $CODEX_HOME/serve.sock
    listen: str | None = None  # loopback HOST:PORT
    token_file: str | None = None
    max_concurrent: int | None = None


class _Server(uvicorn.Server):
    """uvicorn's server, cancelling the runs in flight as soon as the signal comes (it
    would otherwise wait for them to end by themselves before stopping)."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.service.stopping:
            logger.info("stopping: every run and session ends now")
        self.service.stopping = True
        for execution in list(self.service.inflight):
            execution.cancel()
        super().handle_exit(sig, frame)


def serve(options: ServeOptions, environ: Mapping[str, str]) -> int:
    """Serve until SIGTERM/SIGINT; the exit code (raises ``CodexBoxError`` before
    anything listens)."""
    if options.token_file and not options.listen:
        raise UsageError("--token-file is for --listen", hint="add --listen 127.0.0.1:PORT")
    tcp_address = auth.loopback(options.listen) if options.listen else None
    if tcp_address is not None and not options.token_file:
        raise UsageError(
            "--listen needs --token-file: TCP is served only with a bearer token",
            hint="e.g. umask 077; mkdir -p $CODEX_HOME/serve; "
            "head -c 32 /dev/urandom | base64 > $CODEX_HOME/serve/token",
        )
    if options.token_file and not _hidden_from_sandboxes(options.token_file, environ):
        # A sandbox sharing the host's loopback (native workspace-net without rules)
        # that could read the token could ask for any profile, trusted included.
        raise ConfigError(
            f"--token-file {options.token_file} is outside $CODEX_HOME/serve/, the one "
            "directory every sandbox is kept from reading",
            hint="move it to $CODEX_HOME/serve/token (mode 0600)",
        )
    token = auth.read_token(options.token_file) if options.token_file else None
    service = Service(environ, max_concurrent=options.max_concurrent)
    path = options.socket_path or str(service.home / "serve.sock")
    service.open()
    sockets: list[socket.socket] = []
    try:
        sockets.append(_unix_socket(path))
        if tcp_address is not None:
            sockets.append(_tcp_socket(*tcp_address))
        config = uvicorn.Config(
            app.create(service, token=token),
            http=auth.PeerCheckedProtocol,
            lifespan="off",
            log_level="info",
            # The runs were cancelled at the signal; a client that does not read its
            # stream must not hold the stop past STOP_S (pools and sessions come after).
            timeout_graceful_shutdown=GRACEFUL_S,
            limit_concurrency=_connection_cap(),
            access_log=bool(environ.get("CODEX_BOX_DEBUG")),
        )
        where = [f"unix:{path}"] + [
            f"http://{_shown(s.getsockname())}" for s in sockets if s.family != socket.AF_UNIX
        ]
        print(f"codex-box serve: listening on {' and '.join(where)}", file=sys.stderr, flush=True)
        # uvicorn re-raises the stopping signal once it has stopped, under the handler it
        # found: with the default one that kills us before the service could end its
        # pools and sessions. Ours does nothing (the stop is under way already).
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _already_stopping)
        asyncio.run(_Server(config, service).serve(sockets=sockets))
    finally:
        service.close()
        for sock in sockets:
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            if _is_socket(path):
                os.unlink(path)
    return 0


def _connection_cap() -> int:
    """Connections served at once (beyond: 503 at once): the descriptors left after the
    runs' own (each run in flight holds pipes and a channel). Not raised: every child
    (fork server, keepers, sandboxed commands) would inherit a higher limit."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTIONS
    return max(64, min(CONNECTIONS, soft - RESERVED_FDS))


def _hidden_from_sandboxes(path: str, environ: Mapping[str, str]) -> bool:
    from orchestrator.core.paths import codex_home

    hidden = os.path.realpath(codex_home(environ) / "serve")
    return os.path.realpath(path).startswith(hidden + os.sep)


def _already_stopping(_signum: int, _frame: FrameType | None) -> None:
    return None


def _unix_socket(path: str) -> socket.socket:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.lexists(path):
        if not _is_socket(path):
            raise CodexBoxError(
                f"--socket {path} exists and is not a socket", hint="remove it or pick another path"
            )
        if _answers(path):
            raise CodexBoxError(f"a server already listens on {path}", hint="stop it first")
        os.unlink(path)  # left by a server that was killed
    # Bound inside a private directory, made 0600, then renamed into place: no moment
    # it is open to others, and no process-wide umask (the pools' threads already run).
    private = tempfile.mkdtemp(prefix=".serve-", dir=directory)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staged = os.path.join(private, "sock")
        sock.bind(staged)
        os.chmod(staged, 0o600)
        os.rename(staged, path)
    except BaseException:
        sock.close()
        raise
    finally:
        shutil.rmtree(private, ignore_errors=True)
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CodexBoxError(
            f"--listen {host}:{port}: {exc.strerror}", hint="pick another port"
        ) from exc
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _is_socket(path: str) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _shown(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
