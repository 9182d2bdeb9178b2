"""The egress proxy's listener, made inside a container's network namespace.

Owns: a TCP socket bound to 127.0.0.1:PORT in the network namespace of a running
process (the run's network holder container), created from a short-lived thread that
joins that namespace alone (setns(CLONE_NEWNET) changes only the calling thread).
A socket stays in the namespace it was made in, so codex-box accepts the sandbox's
connections on it while the sandbox has no route anywhere else: no bridge, no relay
process inside the container that the command could replace or kill.
Does not own: the proxy (``netproxy``) or the containers (``lifecycle``).
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

from orchestrator.core.errors import SandboxSetupError

CLONE_NEWNET = 0x40000000


def listen_in(pid: int, port: int) -> socket.socket:
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            made.append(listener)
        except BaseException as exc:  # reported to the caller below
            failed.append(exc)

    # A thread of its own: it leaves the host's namespace and is then thrown away.
    thread = threading.Thread(target=work, name="netns-listen", daemon=True)
    thread.start()
    thread.join(timeout=10)
    if not made:
        cause = failed[0] if failed else TimeoutError("timed out")
        raise SandboxSetupError(
            f"cannot open the egress proxy's port inside the container (pid {pid}): {cause}",
            hint="filtered egress on container backends needs a rootful engine on this host; "
            "use --backend native, or a profile without network rules",
        ) from (cause if isinstance(cause, Exception) else None)
    return made[0]
