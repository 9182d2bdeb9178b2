"""The questions ``codex-box mcp`` answers without running anything: ``check`` (the
execution policy's decision, as ``codex-box check`` gives it), ``profiles`` (which a tool
may narrow to) and ``explain`` (where the server's profile came from, what it allows).

Owns: their results' shapes. Does not own: the profile's resolution (``box``), the
renderers (``runner.views``), the policy (``policy.gate``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.policy import gate
from orchestrator.runner import views
from orchestrator.runner.pipeline import Runner, RunRequest

from .box import Box


def check(box: Box, argv: tuple[str, ...], profile: str | None = None) -> dict[str, Any]:
    """The policy's decision on ``argv`` with its findings (``codex-box check --json``)."""
    chosen = box.narrow(profile, argv=argv)
    request = RunRequest(argv=argv, profile=chosen, workspace=box.workspace, trust_opt_in=True)
    _, spec = Runner(box.context, request).compile()
    evaluation = gate.evaluate(spec, home=box.context.user_home, codex_home=box.context.home)
    return {**evaluation.as_json(), "profile": spec.profile, "workspace": spec.workspace}


def profiles(box: Box) -> dict[str, Any]:
    """Every profile, and whether a tool may ask for it here."""
    return {
        "server_profile": box.profile,
        "profiles": [
            {
                "name": name,
                "summary": views.summary(profile),
                "allowed_here": name == box.profile or not box.widens(profile),
            }
            for name, profile in box.context.store.all().items()
        ],
    }


def explain(box: Box) -> dict[str, Any]:
    """The server's profile: its resolution and its effective values."""
    return {
        **views.resolution_dict(box.resolution),
        "workspace": box.workspace,
        "effective": views.profile_dict(box.base),
        "mcp_session": box.session_id,
        "approve": box.approve,
        "policy_mode": box.policy_mode,
        "narrowing": "a tool's profile argument may narrow this profile, never widen it",
    }
