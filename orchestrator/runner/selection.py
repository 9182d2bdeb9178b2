"""Which backend runs a spec: the one asked for, or ``auto``'s choice.

Owns: the precedence (``--backend`` > CODEX_BOX_BACKEND > config.toml > auto, through
``HostContext.backend_choice``) and the ``trusted`` rule: a profile with no sandbox runs
on the host under ``auto`` (the seed's DangerFullAccess), not in a container that would
hide the host from it; ``--backend docker|podman`` still puts it in a container.
Does not own: probing (each backend's ``probe``), the registry (``backends.base``).
"""

from __future__ import annotations

import dataclasses

from orchestrator.backends import base
from orchestrator.core.spec import SandboxSpec

from .context import HostContext

HOST = "native"  # where an unsandboxed profile runs under auto


def choose(
    context: HostContext, flag: str | None, spec: SandboxSpec, *, probe: bool = True
) -> base.Selection:
    """``probe=False`` (``--print-spec``): a *named* backend is chosen even when it could
    not run here — showing what it would do needs no kernel feature or engine; its probe
    still supplies the facts its pure ``translate`` decides from. ``auto`` must find one
    that can run."""
    requested = context.backend_choice(flag)
    if requested != "auto" and not probe:
        return base.named(requested, spec)
    # One pass over this spec's order, each backend probed at most once.
    chosen = base.select(requested, spec, order=order_for(requested, spec))
    if requested == "auto" and not spec.sandboxed and chosen.backend.name == HOST:
        how = chosen.why.partition(": ")[2]
        why = f"{HOST}: profile {spec.profile} has no sandbox, so it runs on the host ({how})"
        return dataclasses.replace(chosen, why=why)
    return chosen


def order_for(requested: str, spec: SandboxSpec) -> tuple[str, ...]:
    """The backends a run of ``spec`` tries, in order (``doctor`` shows the same)."""
    if requested != "auto":
        return (requested,)
    if spec.devcontainer is not None:  # its image, user and env need a container engine
        return tuple(name for name in base.AUTO_ORDER if name != HOST)
    if not spec.sandboxed:
        return (HOST, *(name for name in base.AUTO_ORDER if name != HOST))
    return base.AUTO_ORDER
