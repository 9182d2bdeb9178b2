"""Filesystem attacks: writes outside the workspace (by path, ``..``, links, /proc),
the workspace's protected files, set-id bits — each judged by the bytes, names and
modes on the host afterwards.

Owns: these catalogue entries and ``files_effect``, the host-side file judge.
Does not own: the catalogue's order (``attacks``), running (``harness``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .model import WRITABLE, Attack, Effect, Expect, Plan, Ran, contained_everywhere
from .site import Site, original


def _sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def files_effect(
    site: Site, ran: Ran, *, unchanged: tuple[Path, ...] = (), absent: tuple[Path, ...] = ()
) -> Effect:
    """Seen when a canary's bytes changed (or it is gone) or a file that must not exist
    does; the witness is the attack's last line."""
    changed = []
    for path in unchanged:
        try:
            if path.read_text(errors="replace") != original(path, site.nonce):
                changed.append(f"{path} changed")
        except FileNotFoundError:
            changed.append(f"{path} was removed")
    changed += [f"{path} was created" for path in absent if os.path.lexists(path)]
    names = ", ".join(p.name for p in (*unchanged, *absent))
    evidence = "; ".join(changed) if changed else f"unchanged on the host: {names}"
    return Effect(bool(changed), evidence, ran=site.done in ran.stdout)


def _write_outside(site: Site) -> tuple[str, ...]:
    target, home = site.target, site.home
    dotdot = os.path.relpath(target, site.workspace)
    return _sh(
        f"cat {target} >/dev/null; echo pwned >> {target}; echo pwned >> {dotdot}; "
        f'echo pwned >> ../../../../../..{target}; echo pwned >> "$HOME/.bashrc"; '
        f"echo pwned >> {home}/.bashrc; echo pwned > {home}/.profile; "
        f"echo pwned > {target.parent}/new-file; "
        f"echo '[policy]' >> {site.codex_home}/config.toml; echo {site.done}"
    )


WRITE_OUTSIDE = Attack(
    name="fs.write-outside",
    summary="write files outside the workspace: absolute path, ../, $HOME, CODEX_HOME",
    command=_write_outside,
    judge=lambda site, ran: files_effect(
        site,
        ran,
        unchanged=site.canaries(),
        absent=(site.home / ".profile", site.target.parent / "new-file"),
    ),
)


def _plant_links(site: Site) -> None:
    (site.workspace / "planted").symlink_to(site.target)
    (site.workspace / "planted-dir").symlink_to(site.target.parent)


SYMLINK_OUT = Attack(
    name="fs.symlink-out",
    summary="write through symlinks out of the workspace (one planted, one made inside)",
    setup=_plant_links,
    command=lambda site: _sh(
        "echo pwned >> planted; echo pwned > planted-dir/new-file; "
        f"ln -s {site.target} made-inside && echo pwned >> made-inside; echo {site.done}"
    ),
    judge=lambda site, ran: files_effect(
        site, ran, unchanged=(site.target,), absent=(site.target.parent / "new-file",)
    ),
)


def _hardlink_effect(site: Site, ran: Ran) -> Effect:
    effect = files_effect(site, ran, unchanged=(site.target,))
    links = site.target.stat().st_nlink if site.target.exists() else 1
    if links > 1:
        return Effect(True, f"{site.target} gained a hard link ({links} links)", effect.ran)
    return effect


HARDLINK_OUT = Attack(
    name="fs.hardlink-out",
    summary="hard-link a file outside into the workspace and write it",
    command=lambda site: _sh(f"ln {site.target} hard && echo pwned >> hard; echo {site.done}"),
    judge=_hardlink_effect,
)


GIT_HOOKS = Attack(
    name="fs.git-hooks",
    summary="plant a .git/hooks/pre-commit and a core.fsmonitor in the workspace's .git",
    command=lambda site: _sh(
        "printf '#!/bin/sh\\necho pwned\\n' > .git/hooks/pre-commit; "
        "chmod +x .git/hooks/pre-commit; "
        "printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' >> .git/config; "
        f"echo {site.done}"
    ),
    judge=lambda site, ran: files_effect(
        site,
        ran,
        unchanged=(site.workspace / ".git" / "config",),
        absent=(site.workspace / ".git" / "hooks" / "pre-commit",),
    ),
)


CODEX_PROFILE = Attack(
    name="fs.codex-profile",
    summary="widen its own permissions: write .codex-profile and .codex/ in the workspace",
    command=lambda site: _sh(
        "echo trusted > .codex-profile; mkdir -p .codex; "
        f"echo 'profile = \"trusted\"' > .codex/config.toml; echo {site.done}"
    ),
    judge=lambda site, ran: files_effect(
        site,
        ran,
        absent=(site.workspace / ".codex-profile", site.workspace / ".codex" / "config.toml"),
    ),
)


def _proc_root(site: Site) -> tuple[str, ...]:
    key = site.home / ".ssh" / "id_ed25519"
    return _sh(
        f"cat /proc/1/root{key} /proc/self/root{key}; "
        f"echo pwned >> /proc/1/root{site.target}; echo pwned >> /proc/self/root{site.target}; "
        f"echo pwned > /proc/self/cwd/../outside/new-file; echo {site.done}"
    )


def _proc_root_effect(site: Site, ran: Ran) -> Effect:
    if site.secret in ran.output:
        return Effect(True, "a key under the scratch HOME was read through /proc/*/root")
    return files_effect(
        site, ran, unchanged=(site.target,), absent=(site.target.parent / "new-file",)
    )


PROC_ROOT = Attack(
    name="fs.proc-root",
    summary="reach host files through /proc/1/root, /proc/self/root and /proc/self/cwd",
    command=_proc_root,
    judge=_proc_root_effect,
)


def _setid_effect(site: Site, ran: Ran) -> Effect:
    made = [p for p in (site.workspace / "suid", site.workspace / "shell") if p.exists()]
    setid = [p.name for p in made if p.stat().st_mode & (stat.S_ISUID | stat.S_ISGID)]
    if setid:
        return Effect(True, f"set-id bits on the host: {', '.join(setid)}", site.done in ran.stdout)
    return Effect(False, f"no set-id file on the host ({len(made)} made)", site.done in ran.stdout)


SETID_BITS = Attack(
    name="fs.setid-bits",
    summary="leave a set-uid/set-gid file in the workspace for the host to run",
    command=lambda site: _sh(
        "touch suid && chmod 4755 suid; chmod 2755 suid; "
        f"cp /bin/sh shell && chmod u+s shell; echo {site.done}"
    ),
    judge=_setid_effect,
)


def _written_effect(site: Site, ran: Ran) -> Effect:
    path = site.workspace / "written"
    seen = path.exists() and path.read_text(errors="replace") == f"{site.nonce}\n"
    said = "holds" if seen else "lacks"
    return Effect(seen, f"{path} {said} the run's bytes", ran=site.done in ran.stdout)


def _workspace_plan(profile: str, backend: str) -> Plan:
    if profile in WRITABLE:  # where it is allowed, the write must work: a control
        return Plan(Expect.REACHES)
    return contained_everywhere(profile, backend)


WORKSPACE_WRITE = Attack(
    name="fs.workspace-write",
    summary="write a file in the workspace (a control where the profile allows it)",
    command=lambda site: _sh(f"echo {site.nonce} > written; echo {site.done}"),
    judge=_written_effect,
    plan=_workspace_plan,
    control=True,
)


ATTACKS = (
    WORKSPACE_WRITE,
    WRITE_OUTSIDE,
    SYMLINK_OUT,
    HARDLINK_OUT,
    GIT_HOOKS,
    CODEX_PROFILE,
    PROC_ROOT,
    SETID_BITS,
)
