"""The Python API of sessions: ``orchestrator.Session``.

    with Session.start(profile="workspace", workspace=path) as s:
        r = s.exec(["pytest", "-q"])   # the same RunResult as orchestrator.run

Owns: the library face of a session (start, attach by id or name, exec with the
caller's or given stdin/stdout/stderr, info, stop). Each call goes to the session's
keeper, which judges and audits the exec exactly as ``codex-box exec`` would.
Does not own: anything the keeper decides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import Confirm, LaunchOptions
from orchestrator.core.paths import codex_home
from orchestrator.core.spec import RunResult

from . import client, store
from .request import StartRequest
from .start import start


class Session:
    def __init__(self, session_id: str, *, home: Path, environ: Mapping[str, str]) -> None:
        self.id = session_id
        self.home = home
        self.environ = dict(environ)
        self.last_run_id: str | None = None
        self.last_warnings: tuple[str, ...] = ()

    @classmethod
    def start(
        cls,
        *,
        profile: str | None = None,
        workspace: str | os.PathLike[str] | None = None,
        backend: str | None = None,
        name: str | None = None,
        idle_timeout_s: float = 30 * 60.0,
        max_lifetime_s: float = 8 * 3600.0,
        options: LaunchOptions | None = None,
        trust_opt_in: bool = False,
        environ: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Session:
        env = dict(os.environ if environ is None else environ)
        state = start(
            StartRequest(
                environ=env,
                cwd=cwd or os.getcwd(),
                profile=profile,
                workspace=None if workspace is None else os.fspath(workspace),
                backend=backend,
                options=options or LaunchOptions(),
                trust_opt_in=trust_opt_in,
                name=name,
                idle_timeout_s=idle_timeout_s,
                max_lifetime_s=max_lifetime_s,
            )
        )
        return cls(str(state["id"]), home=codex_home(env), environ=env)

    @classmethod
    def attach(cls, ref: str, *, environ: Mapping[str, str] | None = None) -> Session:
        """A live session by id or name (``UnknownSession`` when none answers)."""
        env = dict(os.environ if environ is None else environ)
        home = codex_home(env)
        return cls(store.find(home, ref).id, home=home, environ=env)

    def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Sequence[str] = (),
        timeout: str | float | None = None,
        approve: bool = False,
        detach: bool = False,
        stdio: Sequence[int] = (0, 1, 2),
        confirm: Confirm | None = None,
    ) -> RunResult:
        """Run ``argv`` in the session; raises ``CodexBoxError`` (exit 125/126) when it
        was refused or could not run, like ``orchestrator.run``."""
        event = client.execute(
            self.home,
            self.id,
            {
                "op": "exec",
                "argv": list(argv),
                "environ": self.environ,
                "env": list(env),
                "cwd": cwd,
                "timeout": None if timeout is None else str(timeout),
                "approve": approve,
                "detach": detach,
            },
            stdio=stdio,
            confirm=confirm,
        )
        data = event["result"]
        self.last_run_id = str(data["run_id"])
        # What ``run`` prints as warnings (planted repositories the exec left).
        self.last_warnings = tuple(str(w) for w in data.get("warnings") or ())
        return RunResult(
            exit_code=int(data["exit_code"]),
            backend=str(data["backend"]),
            duration_s=float(data["duration_ms"]) / 1000,
            signal=data.get("signal"),
            timed_out=bool(data.get("timed_out")),
            oom_killed=bool(data.get("oom_killed")),
            detail=str(data.get("detail") or ""),
        )

    def info(self) -> dict[str, Any]:
        return client.request(self.home, self.id, {"op": "info"})

    def stop(self) -> None:
        """End the session (idempotent: a session already gone is not an error)."""
        try:
            client.request(self.home, self.id, {"op": "stop"})
        except CodexBoxError:
            return
        client.wait_stopped(self.home, self.id)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
