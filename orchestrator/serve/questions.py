"""The API's questions that launch nothing: the policy's decision, the profiles, the audit
log — each answered by the same library call as its CLI verb.

Owns: nothing a verb does not; only where the server's answers differ (a check with
no workspace is judged against a fresh scratch workspace's place, as a run with none
would be). Does not own: the answers (``runner``, ``policy``, ``audit.query``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.runner.context import HostContext
from orchestrator.runner.pipeline import Runner, RunRequest
from orchestrator.runner.views import profile_dict

from .models import CheckBody

Filters = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


def check(context: HostContext, workspaces: Path, body: CheckBody) -> dict[str, Any]:
    from orchestrator.policy import gate  # the Starlark engine: only for questions that judge

    request = RunRequest(
        argv=tuple(body.argv),
        profile=body.profile,
        workspace=body.workspace or str(workspaces),
        trust_opt_in=True,  # nothing runs: no opt-in to ask for
    )
    _, spec = Runner(context, request).compile()
    evaluation = gate.evaluate(spec, home=context.user_home, codex_home=context.home)
    return {**evaluation.as_json(), "profile": spec.profile, "workspace": spec.workspace}


def profiles(context: HostContext) -> list[dict[str, Any]]:
    return [profile_dict(p) for p in context.store.all().values()]


def audit(log: Path, filters: Filters, limit: int) -> dict[str, Any]:
    from orchestrator.audit.query import of_filters, read

    decision, operation, profile, session, since, until = filters
    query = of_filters(
        decision=decision,
        operation=operation,
        profile=profile,
        session=session,
        since=since,
        until=until,
    )
    found = list(read(log, query))
    return {"records": found[-limit:], "truncated": len(found) > limit}
