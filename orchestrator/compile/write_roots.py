"""Which directories a sandbox may be given write access to.

Owns: refusing write roots that would let a sandboxed command reach outside its run —
system trees (cron jobs, binaries on PATH), the user's home and its dot-directories
(shell start-up files, SSH keys), CODEX_HOME (its own config, grants and audit log),
and codex-box's own installation (code the *next* launch runs before any sandbox).
Does not own: the profile's choice of write roots (``compile``).
"""

from __future__ import annotations

import os
import sys

from orchestrator.core import resources
from orchestrator.core.errors import Refused
from orchestrator.core.paths import inside

# Anything at or under these is refused as a write root...
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var",
)
# ...except scratch space meant for anyone.
SCRATCH = ("/var/tmp",)  # noqa: S108 -- a path compared, never written


def installation() -> tuple[str, ...]:
    """Where the code that runs before any sandbox lives: the venv, the interpreter and
    its standard library, and this package with its seccomp and AppArmor profiles (a
    sandbox that could rewrite them would loosen the next run's confinement)."""
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.executable,
        str(resources.PACKAGE),
        str(resources.seccomp_dir()),
        str(resources.apparmor_dir()),
    }
    return tuple(sorted({os.path.realpath(p) for p in paths}))


def refuse_unsafe(
    root: str, *, protected: tuple[str, ...], codex_home: str, user_home: str
) -> None:
    """Raise ``Refused`` unless ``root`` (a realpath) is safe to make writable."""
    trees = {*SYSTEM_TREES, *(os.path.realpath(t) for t in SYSTEM_TREES)}
    if root == "/" or (
        any(inside(root, t) for t in trees) and not any(inside(root, s) for s in SCRATCH)
    ):
        raise Refused(
            f"refusing to make {root} writable: it is (inside) a system directory",
            hint="pass a project directory as --workspace",
        )
    home = os.path.realpath(user_home) if user_home else ""
    if home and home != "/" and (root == home or _in_dot_dir(root, home)):
        raise Refused(
            f"refusing to make {root} writable: it is your home directory or one "
            "of its dot-directories (shell start-up files, keys, tool config)",
            hint="pass a project directory as --workspace",
        )
    for installed in installation():
        if inside(installed, root) or inside(root, installed):
            raise Refused(
                f"refusing to make {root} writable: codex-box's own installation "
                f"({installed}) would be writable, and the next launch runs it "
                "unsandboxed",
                hint="use a workspace outside the codex-box checkout and its virtualenv",
            )
    codex = os.path.realpath(codex_home)
    if inside(root, codex):
        raise Refused(
            f"refusing to make {root} writable: it is inside CODEX_HOME ({codex})",
            hint="use a project directory outside CODEX_HOME",
        )
    if inside(codex, root) and not any(inside(codex, p) for p in protected):
        raise Refused(
            f"refusing to make {root} writable: it contains CODEX_HOME ({codex})",
            hint="use a workspace that does not contain CODEX_HOME, or move CODEX_HOME",
        )


def _in_dot_dir(root: str, home: str) -> bool:
    if not inside(root, home) or root == home:
        return False
    first = root[len(home.rstrip("/")) + 1 :].split("/", 1)[0]
    return first.startswith(".")
