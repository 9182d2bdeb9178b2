"""The signals of a container run, as codex-box's own process sees them.

Owns: which signals end a run (SIGTERM, SIGHUP) while no command runs to forward them
to (``Stopped``), and holding them (with SIGINT) while a container is created or
removed, so that no container exists whose id codex-box never got.
Does not own: forwarding them to a running command or the run's cleanup
(``lifecycle``).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """SIGTERM/SIGHUP arrived while no command was running to forward it to."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGTERM/SIGHUP/SIGINT until the block ends; then they are delivered."""
    held = {*STOP_SIGNALS, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
