"""The forked native launcher's plumbing: when a fork is allowed, what the child keeps,
and waiting for it like a Popen (timeouts, exit codes, signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from orchestrator.backends.native import forking


def test_a_fork_is_safe_only_with_one_thread() -> None:
    alone = subprocess.run(
        [
            sys.executable,
            "-c",
            "from orchestrator.backends.native import forking; print(forking.safe())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert alone.stdout.strip() == "True"
    before = forking.safe()  # False in a pytest-xdist worker (execnet's threads)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not forking.safe()
    finally:
        stop.set()
        thread.join()
    assert forking.safe() == before


def _fork(child: object) -> forking.Forked:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            child()  # type: ignore[operator]
        finally:
            os._exit(0)
    return forking.Forked(pid)


def test_wait_gives_the_exit_code_and_minus_the_signal_like_popen() -> None:
    assert _fork(lambda: os._exit(3)).wait() == 3
    killed = _fork(lambda: time.sleep(30))
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert killed.poll() == -signal.SIGKILL  # reaped once, remembered


def test_wait_with_a_timeout_raises_timeout_expired_and_can_wait_again() -> None:
    child = _fork(lambda: time.sleep(30))
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.2)
    assert time.monotonic() - started < 5
    assert child.poll() is None
    os.kill(child.pid, signal.SIGTERM)
    assert child.wait(timeout=10) == -signal.SIGTERM


def test_the_child_keeps_only_stdio_and_the_named_descriptors() -> None:
    kept_r, kept_w = os.pipe()
    stray = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(stray, True)  # even an inheritable one must not get through
    report_r, report_w = os.pipe()

    def child() -> None:
        forking._close_all_except({0, 1, 2, report_w, kept_w})
        os.write(
            report_w, json.dumps(sorted(int(fd) for fd in os.listdir("/proc/self/fd"))).encode()
        )

    waited = _fork(child)
    os.close(report_w)
    assert waited.wait(timeout=30) == 0
    seen = json.loads(os.read(report_r, 65536))
    for fd in (report_r, kept_r, kept_w, stray):
        os.close(fd)
    assert stray not in seen and kept_r not in seen
    assert {0, 1, 2, report_w, kept_w} <= set(seen)
    assert len(seen) == 6  # and listdir's own descriptor


def test_the_child_has_neither_our_arguments_nor_our_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.sandbox.linux import libc

    report_r, report_w = os.pipe()

    def child() -> None:
        libc.scrub_inherited_arguments_and_environment()
        with open("/proc/self/environ", "rb") as environ, open("/proc/self/cmdline", "rb") as cmd:
            os.write(report_w, environ.read().strip(b"\0") + b"|" + cmd.read().strip(b"\0"))

    with open("/proc/self/environ", "rb") as mine:
        assert mine.read().strip(b"\0"), "control: our own environment block is not empty"
    waited = _fork(child)
    os.close(report_w)
    assert waited.wait(timeout=30) == 0
    assert os.read(report_r, 65536) == b"|"
    os.close(report_r)


def test_signals_wait_until_the_forked_child_has_reset_its_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C between fork and the child's own handlers must not raise
    KeyboardInterrupt into codex-box's frames: every signal is blocked across the fork;
    the child resets SIGINT to its default before it unblocks; the parent gets its own
    mask back."""
    report_r, report_w = os.pipe()
    real_become = forking._become

    def observe(plan: object, status_fd: int, keep: object, stdio: object, mask: object) -> None:
        at_entry = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        monkeypatch.setattr(forking, "_close_all_except", lambda keep: None)
        monkeypatch.setattr(forking.libc, "scrub_inherited_arguments_and_environment", lambda: 0)

        def become(plan: object, status_fd: int) -> None:
            after = signal.pthread_sigmask(signal.SIG_BLOCK, [])
            handler = signal.getsignal(signal.SIGINT)
            os.write(report_w, json.dumps([signal.SIGINT in at_entry, signal.SIGINT in after,
                                           handler == signal.SIG_DFL]).encode())
            os._exit(0)

        monkeypatch.setattr(forking.launcher, "become", become)
        real_become(plan, status_fd, keep, stdio, mask)  # type: ignore[arg-type]

    monkeypatch.setattr(forking, "_become", observe)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    child = forking.fork_launcher({"argv": ["true"]}, status_fd=report_w, keep=[report_w],
                                  stdio=None)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # the parent's mask back
    os.close(report_w)
    assert child.wait(timeout=30) == 0
    blocked_at_fork, blocked_in_launcher, default_sigint = json.loads(os.read(report_r, 4096))
    os.close(report_r)
    assert blocked_at_fork, "SIGINT could arrive before the child's handlers were reset"
    assert not blocked_in_launcher  # the launcher runs with the caller's mask again
    assert default_sigint  # not codex-box's KeyboardInterrupt handler
