"""The sessions an agent starts through ``codex-box mcp``: ``session_start``, ``exec``,
``session_stop``, as ``codex-box session`` and the CI drivers drive them.

Owns: the sessions started here (an agent reaches only those, by the id or name it was
given; each is named ``mcp-<MCP session>-<n>``, which its ``session_start`` record
carries), what a start or an exec asks for (launched by ``box.runs``: here, or through
a ``codex-box serve``), and stopping them all when the server ends. Does not own: the
profile (``box``), what the keeper decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from orchestrator.core.errors import CodexBoxError, UsageError

from .box import Box, env_of
from .capture import Stop


class Sessions:
    def __init__(self, box: Box) -> None:
        self.box = box
        self.started: dict[str, tuple[str, str | None]] = {}  # id → name, profile

    def question(
        self, session: str, argv: tuple[str, ...], *, cwd: str | None = None
    ) -> str | None:
        """``question`` for an exec in ``session`` (judged under the session's profile)."""
        sid = self._own(session)
        return self.box.question(argv, profile=self.started[sid][1], cwd=cwd)

    def start(self, profile: str | None = None) -> dict[str, Any]:
        """A new session under the server's profile (or a narrower one); its state."""
        chosen = self.box.narrow(profile, session=True)
        mcp_session = re.sub(r"[^A-Za-z0-9_.-]", "-", self.box.session_id.removeprefix("mcp-"))
        name = f"mcp-{mcp_session[:48]}-{len(self.started) + 1}"
        state = self.box.runs.start(
            {
                "profile": chosen,
                "workspace": self.box.workspace,
                "trust": self.box.trust,
                "policy_mode": self.box.policy_mode,
                "name": name,
            }
        )
        self.started[str(state["id"])] = (name, chosen)
        return state

    def _own(self, session: str) -> str:
        for sid, (name, _) in self.started.items():
            if session in (sid, name):
                return sid
        raise UsageError(
            f"session {session!r} was not started by this server",
            hint="start one with session_start; use the id it returned",
        )

    def exec(
        self,
        session: str,
        argv: tuple[str, ...],
        *,
        cwd: str | None = None,
        timeout: str | None = None,
        env: Sequence[str] = (),
        answer: bool | None = None,
        stop: Stop | None = None,
    ) -> dict[str, Any]:
        """One command in a session started here; ``answer`` and ``stop`` as for ``run``
        (the keeper kills a stopped exec's tree and still answers)."""
        sid = self._own(session)
        approve = self.box.approve or (
            answer is not None
            and self.box.answered(argv, answer, profile=self.started[sid][1], cwd=cwd)
        )
        request = {
            "argv": list(argv),
            "env": list(env_of(env)),
            "cwd": self.box.inside(cwd) if cwd else None,
            "timeout": timeout,
            "approve": approve,
        }
        return self.box.runs.exec(sid, request, stop)

    def stop(self, session: str) -> dict[str, Any]:
        """Stop a session started here, and wait until it is gone."""
        sid = self._own(session)
        stopped = self.box.runs.stop(sid)
        self.started.pop(sid, None)
        return {"session": sid, "stopped": stopped}

    def close(self) -> None:
        """Every session started here stopped."""
        for sid in list(self.started):
            try:
                self.stop(sid)
            except CodexBoxError:
                continue
