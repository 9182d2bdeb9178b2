"""The explicit opt-in a profile without a sandbox needs before anything runs.

Owns: the question and the refusal. A grant made with --yes-i-trust-this-workspace
(``codex-box elevate``) is the opt-in: given at the command line, for this workspace,
for a while. Nothing inside a workspace can give it.
Does not own: asking (the front door passes ``confirm``), resolving the profile.
"""

from __future__ import annotations

from orchestrator.core.errors import Refused
from orchestrator.core.options import Confirm
from orchestrator.core.profile import Profile


def require(
    profile: Profile,
    *,
    chosen_by: str,
    trusted: bool,
    granted: bool,
    workspace: str,
    confirm: Confirm | None,
) -> None:
    """Return when ``profile`` may run in ``workspace``; raise Refused otherwise.
    ``trusted``: --yes-i-trust-this-workspace; ``granted``: an elevation grant made with it."""
    if not profile.requires_opt_in or trusted or granted:
        return
    question = (
        f"Profile '{profile.name}' runs with NO sandbox: full "
        f"filesystem, network and process access. Trust {workspace}?"
    )
    if confirm is None or not confirm(question):
        raise Refused(
            f"profile '{profile.name}' needs explicit opt-in (chosen by {chosen_by})",
            hint="add --yes-i-trust-this-workspace, or confirm at the prompt",
        )
