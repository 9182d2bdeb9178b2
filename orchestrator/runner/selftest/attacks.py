"""The catalogue: every attack ``selftest`` runs, in order, with the positive controls
that make a pass mean something.

Owns: the order, the two controls every profile runs first (the sandbox runs a command
and shows its output; it reads the workspace), and looking entries up by name.
Does not own: the attacks themselves (``attacks_fs``, ``attacks_net``, ``attacks_proc``).

What each entry proves and where it is skipped is its own ``plan``: an attack a profile
legitimately allows (the network under ``workspace-net``) is skipped there with the
reason, or, where the host can see it work, becomes a positive control.
"""

from __future__ import annotations

from . import attacks_fs, attacks_net, attacks_proc
from .model import Attack, Effect, Ran, control_everywhere
from .site import Site


def _ran_effect(site: Site, ran: Ran) -> Effect:
    seen = ran.exit_code == 0 and f"alive-{site.nonce}" in ran.stdout
    return Effect(seen, f"exit {ran.exit_code}, its output {'came' if seen else 'is missing'}")


def _read_effect(site: Site, ran: Ran) -> Effect:
    seen = f"workspace-readable {site.nonce}" in ran.stdout
    return Effect(seen, f"the workspace's README {'was' if seen else 'was not'} read")


RUNS = Attack(
    name="control.runs",
    summary="the sandbox runs a command and its output comes back",
    command=lambda site: ("sh", "-c", f"echo alive-{site.nonce}"),
    judge=_ran_effect,
    plan=control_everywhere,
    control=True,
)

READS_WORKSPACE = Attack(
    name="control.reads-workspace",
    summary="the sandbox reads the workspace",
    command=lambda site: ("cat", "README"),
    judge=_read_effect,
    plan=control_everywhere,
    control=True,
)

CATALOGUE: tuple[Attack, ...] = (
    RUNS,
    READS_WORKSPACE,
    *attacks_fs.ATTACKS,
    *attacks_net.ATTACKS,
    *attacks_proc.ATTACKS,
)


def by_name(name: str) -> Attack:
    for attack in CATALOGUE:
        if attack.name == name:
            return attack
    raise KeyError(name)
