"""Which profile each of a job's sessions gets.

Owns: the job's profile — ``--profile`` in ``prepare_args`` (default ``workspace``),
bounded by the runner's ``--max-profile``, tightened (never widened) by the job's
``CODEX_BOX_PROFILE`` variable, never ``trusted`` from a job — and the runner stages'
profile, ``gitlab-<server>``: ``workspace-net`` with network to the GitLab server
only, written as an ordinary user profile anyone can read with ``codex-box profiles``.
Does not own: what "wider" means (``profiles.widening``), resolving a ``.codex-profile``
(``resolve``).
"""

from __future__ import annotations

import hashlib
import re

from orchestrator.core.errors import CodexBoxError, Refused
from orchestrator.core.profile import Profile
from orchestrator.profiles import templates
from orchestrator.profiles.store import ProfileStore
from orchestrator.profiles.widening import wider

DEFAULT_PROFILE = "workspace"
NO_NETWORK_PROFILE = "workspace"  # the runner stages' when no server is known


def job_profile(
    store: ProfileStore, *, flag: str | None, max_profile: str | None, asked: str | None
) -> Profile:
    """``flag`` and ``max_profile`` are the runner admin's (config.toml); ``asked`` is
    the job's own variable, which can only narrow."""
    chosen = store.get(flag or DEFAULT_PROFILE, source="prepare_args --profile")
    if max_profile:
        ceiling = store.get(max_profile, source="prepare_args --max-profile")
        if widened := wider(ceiling, chosen):
            raise CodexBoxError(
                f"the runner's --profile {chosen.name} is wider than its --max-profile "
                f"{ceiling.name}: {'; '.join(widened)}",
                hint="fix [runners.custom] prepare_args in the runner's config.toml",
            )
    if asked:
        try:
            narrower = store.get(asked, source="the job's CODEX_BOX_PROFILE variable")
        except CodexBoxError as exc:  # the job's typo: its failure, not the runner's
            raise Refused(exc.message, hint=exc.hint) from exc
        if narrower.requires_opt_in:
            raise Refused(
                f"the job's CODEX_BOX_PROFILE={asked} asks for a profile a job cannot choose",
                hint="only the runner's config.toml can; a job variable can only narrow",
            )
        if widened := wider(chosen, narrower):
            raise Refused(
                f"the job's CODEX_BOX_PROFILE={asked} is wider than the runner's "
                f"{chosen.name}: {'; '.join(widened)}",
                hint=f"a job variable can only narrow the runner's profile ({chosen.name})",
            )
        chosen = narrower
    return chosen


def runner_profile(store: ProfileStore, server: str) -> str:
    """The runner stages' profile: the workspace (builds and cache) writable, network
    to ``server`` only. Written (or rewritten, identically) on each prepare."""
    if not server:
        return NO_NETWORK_PROFILE
    # Readable, and distinct per server: gitlab.example.test and gitlab-example.test
    # (or host:8080 and host-8080) must never share (and rewrite) one profile.
    digest = hashlib.sha256(server.encode()).hexdigest()[:8]
    name = f"gitlab-{re.sub(r'[^a-z0-9]+', '-', server.lower()).strip('-')[:40]}-{digest}"
    new = templates.render(
        store,
        name=name,
        base="workspace-net",
        allow=(server,),
        description=f"gitlab-runner's own stages: sources, caches, artifacts; to {server} only.",
    )
    # No allow_local_hosts: a user profile cannot turn it on (the proxy refuses
    # loopback, link-local and private addresses); a GitLab server on the runner's own
    # network needs the admin's own profile (--runner-profile).
    if new.path.exists() and new.path.read_text(encoding="utf-8") == new.text:
        return new.profile.name
    templates.write(new, force=True)
    return new.profile.name
