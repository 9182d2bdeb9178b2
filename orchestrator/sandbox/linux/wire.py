"""Messages between codex-box's own processes over a Unix stream socket: one JSON
object per message, with descriptors (SCM_RIGHTS) riding on its first byte.

Owns: the framing (a 4-byte big-endian length, then that many bytes of UTF-8 JSON),
its bounds (a peer can never make us buffer more than ``MAX_MESSAGE`` or hold more than
``MAX_FDS`` descriptors), and closing descriptors that arrive with a malformed message.
Used by a session's sandbox root (pid 1, so: the standard library only), its keeper and
its clients. Does not own: what the messages mean (``runner.sessions``, ``session_root``).
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct

TYPE_CHECKING = False  # no `typing` on `exec`'s path (orchestrator/__init__)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

MAX_MESSAGE = 4 * 1024 * 1024  # argv + environment of one exec, with room to spare
MAX_FDS = 3  # stdin, stdout, stderr
_HEADER = struct.Struct(">I")


class WireError(OSError):
    """The peer sent something that is not a message of ours."""


class DescriptorsLost(WireError):
    """A whole message whose descriptors did not arrive (more than we accept, or none
    left to us: EMFILE). The stream is still in step: ``message`` says what it was."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__("the descriptors sent with a message were lost")
        self.message = message


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise WireError(f"message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    frame = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [frame[:1]], list(fds))
        frame = frame[sent:]
    sock.sendall(frame)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """The next message and the descriptors that came with it; None at a clean EOF.
    Raises ``WireError`` (closing any descriptors received) for anything else."""
    fds: list[int] = []
    try:
        first, fds, truncated = _first_byte(sock)
        if first is None:
            return None
        header = first + _exactly(sock, _HEADER.size - 1)
        (size,) = _HEADER.unpack(header)
        if size > MAX_MESSAGE:
            raise WireError(f"message of {size} bytes announced, over the limit")
        message = json.loads(_exactly(sock, size))
        if not isinstance(message, dict):
            raise WireError("a message must be a JSON object")
        if truncated:  # read to its end first: the next message starts in step
            raise DescriptorsLost(message)
        return message, fds
    except (ValueError, OSError, RecursionError) as exc:  # RecursionError: nested too deep
        for fd in fds:
            os.close(fd)
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed message: {exc}") from exc


def _first_byte(sock: socket.socket) -> tuple[bytes | None, list[int], bool]:
    space = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
    # Close-on-exec as they arrive: no descriptor of a peer leaks into a later exec.
    data, ancillary, flags, _ = sock.recvmsg(1, space, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
            fds.extend(received)
    truncated = bool(flags & socket.MSG_CTRUNC)
    if truncated or not data:  # more than we accept, or none fit: none is kept
        for fd in fds:
            os.close(fd)
        fds = []
    if not data:
        return None, [], False
    return data, fds, truncated


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise WireError("connection closed in the middle of a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
