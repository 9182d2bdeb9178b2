"""What ``codex-box mcp`` does for each tool, without MCP: the runner, sessions, the
policy and the profiles, for one server whose profile the person who started it chose.

Owns: the server's fixed profile and workspace, narrowing (a tool may ask for a profile
``profiles.widening`` finds no wider than the server's; a wider one is refused and
audited), a run's request (launched by ``runs``: through the fork server, or a
``codex-box serve``), the fork server, and the question an unverified command puts to
the person (asked through the MCP client's elicitation by ``server``; the answer
recorded here) before the launch, which the runner judges again.
Does not own: any decision (the runner, the policy gate), MCP (``server``), files
(``files``), sessions (``sessions``), questions (``questions``). Blocking: the MCP
layer calls it in a worker thread.
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.audit import records
from orchestrator.core.errors import CodexBoxError, Refused, UsageError
from orchestrator.core.profile import Profile
from orchestrator.core.spec import SandboxSpec
from orchestrator.profiles.widening import wider
from orchestrator.runner.context import HostContext, new_id
from orchestrator.runner.forkserver import ForkServer
from orchestrator.runner.pipeline import Runner, RunRequest

from .capture import Stop
from .runs import Local, Runs

APPROVED_BY = "mcp elicitation"


def env_of(env: Sequence[str]) -> tuple[str, ...]:
    """NAME=VALUE only: a bare NAME would pass the server's own variable (a token in the
    environment of whoever started it), which is the person's to pass, not the agent's."""
    for entry in env:
        if "=" not in entry or entry.startswith("="):
            raise UsageError(
                f"env {entry!r} has no value: an agent passes NAME=VALUE only",
                hint="give the value (NAME=VALUE); the server's own variables stay its own",
            )
    return tuple(env)


def argv_of(argv: Sequence[str] | None, command: str | None) -> tuple[str, ...]:
    """``argv`` as given, or ``command`` run by ``sh -c`` (the policy parses it)."""
    if bool(argv) == bool(command):
        raise UsageError(
            "give either argv or command, not both or neither",
            hint='e.g. {"argv": ["make", "test"]} or {"command": "make test"}',
        )
    return tuple(argv) if argv else ("sh", "-c", str(command))


class Box:
    def __init__(
        self,
        context: HostContext,
        *,
        profile: str | None,
        workspace: str | None,
        approve: bool = False,
        policy_mode: str | None = None,
        trust: bool = False,
        runs: Runs | None = None,
    ) -> None:
        """``context``'s session id is the MCP session's: every record carries it.
        ``runs``: where the run and session tools launch (default: here)."""
        self.context = context
        self.workspace = context.resolved_workspace(workspace)
        if not os.path.isdir(self.workspace):
            raise UsageError(
                f"--workspace {workspace or context.cwd} is not a directory",
                hint="give the directory the agent works in (default: the current one)",
            )
        self.resolution = context.resolve(profile, Path(self.workspace))
        self.base = self.resolution.profile
        self.profile = self.base.name
        # What each launch asks for: the name, so a file changed later cannot widen it.
        self.flag = profile or (self.profile if self.profile in context.store.all() else None)
        if policy_mode is not None:  # a mistyped mode: refused now, not at every call
            from orchestrator.policy.gate import policy_mode as known_mode

            known_mode(policy_mode, None)
        self.approve, self.policy_mode, self.trust = approve, policy_mode, trust
        self._forkserver: ForkServer | None = None
        self._lock = threading.Lock()
        self.audit = context.audit_log(strict=False)
        self.runs: Runs = runs if runs is not None else Local(context, self.forkserver)

    @property
    def session_id(self) -> str:
        return self.context.session_id

    def write(self, record: dict[str, Any]) -> None:
        head = {k: record[k] for k in ("operation", "target")}
        self.audit.append({**head, "session_id": self.session_id, "run_id": new_id(), **record})

    # --- the profile: narrowed, never widened -------------------------------------

    def narrow(
        self, requested: str | None, *, argv: Sequence[str] = (), session: bool = False
    ) -> str | None:
        """The profile a launch asks for; ``Refused`` (audited) for one wider than the
        server's."""
        if requested is None or requested == self.profile:
            return self.flag
        try:
            profile = self.context.store.get(requested)
        except CodexBoxError as exc:
            raise UsageError(
                f"profile {requested!r}: {exc.message}", hint="the profiles tool lists them"
            ) from exc
        widened = self.widens(profile)
        if not widened:
            return profile.name
        error = Refused(
            f"profile {requested} is wider than this server's {self.profile} "
            f"({'; '.join(widened)}): an agent can only narrow it",
            hint=f"ask for {self.profile} or a narrower one (the profiles tool lists them); "
            "a wider one needs the person to restart `codex-box mcp --profile P`",
        )
        if session:
            self.write(
                records.session_refused(name=None, error=error.one_line(), profile=self.profile)
            )
        else:
            self.write(
                records.command_denied(argv=argv, error=error.one_line(), profile=self.profile)
            )
        raise error

    def widens(self, profile: Profile) -> tuple[str, ...]:
        """How ``profile`` allows more than the server's (empty: it only narrows); one
        that needs an opt-in is never the agent's to choose."""
        opt_in = ("process.requires_opt_in",) if profile.requires_opt_in else ()
        return wider(self.base, profile) or opt_in

    def inside(self, cwd: str | None) -> str:
        """``cwd`` (relative to the workspace, or absolute) as a directory in it."""
        if not cwd:
            return self.workspace
        path = os.path.realpath(os.path.join(self.workspace, cwd))
        if os.path.commonpath([path, self.workspace]) != self.workspace or not os.path.isdir(path):
            raise UsageError(
                f"cwd {cwd!r} is not a directory inside the workspace {self.workspace}",
                hint='give a path relative to the workspace, e.g. "src"',
            )
        return path

    # --- runs ----------------------------------------------------------------------

    def run(
        self,
        argv: tuple[str, ...],
        *,
        cwd: str | None = None,
        timeout: str | None = None,
        env: Sequence[str] = (),
        profile: str | None = None,
        answer: bool | None = None,
        stop: Stop | None = None,
    ) -> dict[str, Any]:
        """One command, as ``codex-box run`` runs it; raises its refusal or error. ``cwd``:
        the run's workspace and working directory (a directory of the server's);
        ``answer``: the person's, when ``question`` was asked; ``stop``: armed with the
        run's cancel (its end is then recorded as cancelled)."""
        chosen = self.narrow(profile, argv=argv)
        where = self.inside(cwd)
        approve = self.approve or (
            answer is not None and self.answered(argv, answer, profile=chosen, cwd=cwd)
        )
        request = {
            "argv": list(argv),
            "profile": chosen,
            "workspace": where,
            "env": list(env_of(env)),
            "timeout": timeout,
            "approve": approve,
            "policy_mode": self.policy_mode,
            "trust": self.trust,
        }
        return self.runs.run(request, stop)

    def forkserver(self) -> ForkServer:
        with self._lock:
            if self._forkserver is None:
                self._forkserver = ForkServer(dict(self.context.environ))
            return self._forkserver

    def question(
        self, argv: tuple[str, ...], *, profile: str | None = None, cwd: str | None = None
    ) -> str | None:
        """What to ask the person before launching ``argv``: None when nothing needs
        asking (approved by flag, not enforced, not unverified, or refused anyway — the
        launch then says why)."""
        judged = None if self.approve else self._judge(argv, profile, cwd)
        return judged[0] if judged else None

    def answered(
        self, argv: tuple[str, ...], approved: bool, *, profile: str | None, cwd: str | None
    ) -> bool:
        """The person's answer, recorded (``approval``, by ``APPROVED_BY``); the launch
        that follows is judged again by the runner, with ``approve`` set to it."""
        judged = self._judge(argv, profile, cwd)
        if judged is None:
            return False
        why, spec, policy = judged[1], judged[2], judged[3]
        self.write(
            records.approval(
                argv=argv,
                profile=spec.profile,
                workspace=spec.workspace,
                approved=approved,
                approved_by=APPROVED_BY,
                why=why,
                policy=policy,
            )
        )
        return approved

    def _judge(
        self, argv: tuple[str, ...], profile: str | None, cwd: str | None
    ) -> tuple[str, str, SandboxSpec, records.PolicyFacts] | None:
        from orchestrator.policy import Decision, gate

        try:
            chosen = profile or self.flag
            request = RunRequest(
                argv=argv, profile=chosen, workspace=self.inside(cwd), trust_opt_in=True
            )
            _, spec = Runner(self.context, request).compile()
            mode = gate.policy_mode(self.policy_mode, self.context.config.policy_mode)
            if mode != "enforce":
                return None
            evaluation = gate.evaluate(
                spec, home=self.context.user_home, codex_home=self.context.home
            )
        except CodexBoxError:
            return None
        if evaluation.decision is not Decision.UNVERIFIED:
            return None
        why = evaluation.summary().split(": ", 1)[-1]
        policy = gate.Verdict(mode=mode, evaluation=evaluation).policy
        return f"`{shlex.join(argv)}` is unverified ({why}). Run it?", why, spec, policy

    def close(self) -> None:
        """The fork server ended (its runs in flight are cancelled)."""
        if self._forkserver is not None:
            self._forkserver.close()
