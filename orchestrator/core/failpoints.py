"""Named steps of a launch where the fault suite has codex-box SIGKILL itself.

``CODEX_BOX_FAILPOINT=<step>`` makes the process kill itself with SIGKILL the moment it
reaches that step — what the OOM killer, a crashed CI runner or ``kill -9`` does, but at
a known step, so ``tests/faults`` can prove that what each step leaves behind (a decision
record without its end, a container, a cgroup, a network holder, placeholders) is
removed by ``gc`` and never loosens the next run. Steps: ``decided`` (the decision
records are on disk), ``created`` (the container or cgroup exists), ``started`` (the
command's container or launcher runs), ``proxy`` (the egress proxy took a connection).

Why an environment variable is safe here: it can only end codex-box's own process —
the power anyone who sets our environment already has; nothing is skipped or loosened.
"""

from __future__ import annotations

import os
import signal

ENV = "CODEX_BOX_FAILPOINT"
STEPS = ("decided", "created", "started", "proxy")

_armed = os.environ.get(ENV, "")


def reach(step: str) -> None:
    """SIGKILL this process if the fault suite armed ``step``; otherwise nothing."""
    if _armed == step:
        os.kill(os.getpid(), signal.SIGKILL)
