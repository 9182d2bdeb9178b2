"""The framing of codex-box's own Unix-socket messages: a message and its descriptors
arrive together; anything malformed or oversized is refused, closing what came with it."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import struct

import pytest

from orchestrator.sandbox.linux import wire


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield a, b
    a.close()
    b.close()


def test_a_message_and_its_descriptors_arrive_together(pair) -> None:
    a, b = pair
    r, w = os.pipe()
    wire.send(a, {"op": "exec", "argv": ["true"]}, [r, w, w])
    message, fds = wire.recv(b)
    assert message == {"op": "exec", "argv": ["true"]}
    assert len(fds) == 3
    assert all(not os.get_inheritable(fd) for fd in fds)  # never leaks into an exec
    os.write(fds[1], b"x")
    assert os.read(r, 1) == b"x"
    for fd in (r, w, *fds):
        os.close(fd)


def test_consecutive_messages_keep_their_own_descriptors(pair) -> None:
    a, b = pair
    r, w = os.pipe()
    wire.send(a, {"n": 1})
    wire.send(a, {"n": 2}, [r])
    assert wire.recv(b) == ({"n": 1}, [])
    message, fds = wire.recv(b)
    assert message == {"n": 2} and len(fds) == 1
    for fd in (r, w, *fds):
        os.close(fd)


def test_a_clean_end_is_none(pair) -> None:
    a, b = pair
    a.shutdown(socket.SHUT_WR)
    assert wire.recv(b) is None


def test_an_oversized_announcement_is_refused_without_reading_it(pair) -> None:
    a, b = pair
    a.sendall(struct.pack(">I", wire.MAX_MESSAGE + 1))
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.recv(b)


def test_a_message_cut_short_is_refused_and_its_descriptors_closed(pair) -> None:
    a, b = pair
    r, w = os.pipe()
    socket.send_fds(a, [struct.pack(">I", 100) + b"{"], [r])
    a.shutdown(socket.SHUT_WR)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(wire.WireError):
        wire.recv(b)
    assert set(os.listdir("/proc/self/fd")) <= before  # the received copy was closed
    os.close(r)
    os.close(w)


def test_more_descriptors_than_allowed_are_all_closed(pair) -> None:
    a, b = pair
    pipes = [os.pipe() for _ in range(wire.MAX_FDS + 2)]
    sent = [p[0] for p in pipes]
    socket.send_fds(a, [struct.pack(">I", 10) + b'{"op":"x"}'], sent)
    wire.send(a, {"op": "next"})
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(wire.DescriptorsLost) as lost:
        wire.recv(b)
    assert lost.value.message == {"op": "x"}  # read whole: the caller can answer it
    assert len(os.listdir("/proc/self/fd")) <= before
    assert wire.recv(b) == ({"op": "next"}, [])  # and the stream is still in step
    for r, w in pipes:
        os.close(r)
        os.close(w)


def test_a_message_whose_descriptors_did_not_fit_is_read_and_the_next_one_too(pair) -> None:
    """Out of descriptors (EMFILE) the kernel drops them (MSG_CTRUNC): a session's pid 1
    must fail that exec, not lose its place in the stream."""
    a, b = pair
    r, w = os.pipe()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wire.send(a, {"op": "exec", "exec_id": "e1"}, [r, w, r])
    wire.send(a, {"op": "after"})
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))  # none left to receive
    try:
        fillers = []
        with contextlib.suppress(OSError):
            while True:
                fillers.append(os.dup(0))
        with pytest.raises(wire.DescriptorsLost) as lost:
            wire.recv(b)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert lost.value.message["exec_id"] == "e1"
    assert wire.recv(b) == ({"op": "after"}, [])
    os.close(r)
    os.close(w)


def test_json_that_is_not_an_object_is_refused(pair) -> None:
    a, b = pair
    a.sendall(struct.pack(">I", 2) + b"[]")
    with pytest.raises(wire.WireError, match="JSON object"):
        wire.recv(b)


def test_sending_a_message_over_the_limit_is_refused(pair) -> None:
    a, _ = pair
    with pytest.raises(wire.WireError):
        wire.send(a, {"x": "y" * wire.MAX_MESSAGE})
