"""``gc`` sweeps what a dead owner left: a container labelled with its owner, a run
cgroup named after it. A SIGKILLed session keeper stays a zombie until the host's init
reaps it; ``gc`` run in that window must treat it as dead (it was the bug: a keeper
killed a moment before ``gc`` kept its container and cgroup)."""

from __future__ import annotations

import os
import socket
import time

from orchestrator.backends import cgroups
from orchestrator.backends.containers import common
from orchestrator.sandbox.linux.proctree import start_time, stat_field


def _zombie() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 10
    while stat_field(pid, 0) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stat_field(pid, 0) == "Z"
    return pid


def test_a_zombie_owner_is_gone_and_a_live_one_is_not() -> None:
    live = common.owner_label()
    assert not common.owner_is_gone(live)
    assert not cgroups._alive(12345678)  # no such pid
    assert cgroups._alive(os.getpid())
    pid = _zombie()
    try:
        label = f"{socket.gethostname()}:{pid}:{start_time(pid)}"
        assert common.owner_is_gone(label)
        assert not cgroups._alive(pid)
    finally:
        os.waitpid(pid, 0)
    assert common.owner_is_gone(label)  # reaped: gone for the plain reason too


def test_another_hosts_owner_is_never_gone() -> None:
    assert not common.owner_is_gone(f"not-{socket.gethostname()}:1:1")
    assert not common.owner_is_gone("garbage")
