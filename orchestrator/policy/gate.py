"""The execution policy at launch: judge the command, then refuse, ask, or let it go.

Owns: the evaluation context a spec gives (its writable roots and protected paths),
the policy modes (enforce, audit-only, off), and what each decision means at launch:
forbidden → refused (126); unverified → asked once on a terminal, refused when nobody
can be asked unless ``--approve`` was given; match and safe → launched.
Does not own: the rules (``policy``), the records' fields (``audit.records``), writing
them (``runner`` passes ``record``), or asking (``cli`` passes ``confirm``).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.audit import records
from orchestrator.core.errors import Refused, UsageError, did_you_mean
from orchestrator.core.options import Confirm
from orchestrator.core.spec import SandboxSpec
from orchestrator.settings.config import POLICY_MODES

from . import Context, Decision, Evaluation, Policy, load_policy

Record = Callable[[dict[str, Any]], None]
PRIVATE_TMP = "/tmp"  # noqa: S108 -- the sandbox's own tmpfs, a path compared, never written
FIX = (
    "see why with `codex-box check -- CMD`; add a rule in $CODEX_HOME/rules/, or pass "
    "--policy-mode audit-only to rely on the sandbox alone"
)


def policy_mode(flag: str | None, configured: str | None) -> str:
    mode = flag or configured or "enforce"
    if mode not in POLICY_MODES:
        raise UsageError(
            f"--policy-mode {mode!r} is not a policy mode",
            hint=f"{did_you_mean(mode, POLICY_MODES)}use one of: {', '.join(POLICY_MODES)}",
        )
    return mode


def _real(path: str) -> str:
    """Compile already resolved these; a concurrent sandbox renaming a component while
    we look (realpath's readlink then fails) must not crash the judgement."""
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def context_of(spec: SandboxSpec, *, home: str) -> Context:
    """Where the command runs (the workspace, or a session exec's ``--cwd`` as the
    kernel will resolve it: through any link a previous exec planted), what it may
    write there, and its own environment: the PATH it will search, the HOME and
    BASH_ENV its shells read."""
    cwd = _real(spec.cwd) if spec.cwd is not None else spec.workspace
    if not spec.sandboxed:  # trusted: only a rule's forbidden paths stop a write
        return Context(cwd=cwd, home=home, writable_roots=None, env=spec.env)
    roots = tuple(_real(r) for r in spec.writable_roots)
    if spec.private_tmp:
        roots += (PRIVATE_TMP,)
    return Context(
        cwd=cwd,
        home=home,
        writable_roots=roots,
        protected_paths=tuple(_real(p) for p in spec.protected_paths),
        env=spec.env,
    )


def evaluate(spec: SandboxSpec, *, home: str, codex_home: Path) -> Evaluation:
    rules = load_policy(codex_home=codex_home, workspace=Path(spec.workspace))
    return Policy(rules).evaluate(spec.argv, context_of(spec, home=home))


class PolicyRefused(Refused):
    """Refused by the policy; ``policy`` goes into the denied record."""

    def __init__(self, message: str, *, hint: str, policy: records.PolicyFacts) -> None:
        super().__init__(message, hint=hint)
        self.policy = policy


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What goes into the launch's audit records."""

    mode: str
    evaluation: Evaluation | None  # None when the mode is off
    approval: str | None = None  # how an unverified command was let through

    @property
    def policy(self) -> records.PolicyFacts:
        """The verdict as the launch's records carry it (``records.Launch.policy``)."""
        if self.evaluation is None:
            return records.PolicyFacts(mode=self.mode)
        return records.PolicyFacts(
            mode=self.mode,
            decision=self.evaluation.decision.label,
            reason=self.evaluation.summary(),
            rules=tuple(sorted({f.rule for f in self.evaluation.deciding() if f.rule})),
            approval=self.approval,
        )


def decide(
    spec: SandboxSpec,
    *,
    mode: str,
    home: str,
    codex_home: Path,
    approve: bool,
    confirm: Confirm | None,
    record: Record,
) -> Verdict:
    """Raise ``Refused`` (after recording any approval asked) or return the verdict."""
    if mode == "off":
        return Verdict(mode=mode, evaluation=None)
    evaluation = evaluate(spec, home=home, codex_home=codex_home)
    verdict = Verdict(mode=mode, evaluation=evaluation)
    if mode == "audit-only" or evaluation.decision <= Decision.MATCH:
        return verdict
    if evaluation.decision is Decision.FORBIDDEN:
        raise PolicyRefused(
            f"the execution policy forbids this command: {_reasons(evaluation)}",
            hint=FIX,
            policy=verdict.policy,
        )
    # Unverified: a person decides, once, and the answer is recorded either way.
    if approve:
        how, approved = "--approve", True
    elif confirm is not None:
        question = f"`{shlex.join(spec.argv)}` is unverified ({_reasons(evaluation)}). Run it?"
        answered = confirm(question)
        how, approved = ("no terminal", False) if answered is None else ("terminal", answered)
    else:
        how, approved = "no terminal", False
    record(
        records.approval(
            argv=spec.argv,
            profile=spec.profile,
            workspace=spec.workspace,
            approved=approved,
            approved_by=how,
            why=_reasons(evaluation),
            policy=verdict.policy,
        )
    )
    if not approved:
        raise PolicyRefused(
            f"the execution policy cannot verify this command and it was not approved "
            f"({how}): {_reasons(evaluation)}",
            hint="approve it at the prompt, or pass --approve; " + FIX,
            policy=replace(verdict.policy, approval=f"refused ({how})"),
        )
    return Verdict(mode=mode, evaluation=evaluation, approval=how)


def _reasons(evaluation: Evaluation) -> str:
    return evaluation.summary().split(": ", 1)[1]
