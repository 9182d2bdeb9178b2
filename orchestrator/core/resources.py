"""Where the files codex-box ships with live: inside the package when installed from a
wheel (``pyproject.toml`` force-includes them), else the repository's own directories.

Owns: these locations, so no module counts ``.parent`` hops from its own file.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # orchestrator/
REPOSITORY = PACKAGE.parent


def seccomp_dir() -> Path:
    """``seccomp-profiles/``: one policy, handed to the engines and compiled natively."""
    packaged = PACKAGE / "seccomp-profiles"
    return packaged if packaged.is_dir() else REPOSITORY / "seccomp-profiles"


def apparmor_dir() -> Path:
    """``apparmor/``: the AppArmor profiles for ``codex-box apparmor check|install``."""
    packaged = PACKAGE / "apparmor-profiles"
    return packaged if packaged.is_dir() else REPOSITORY / "apparmor"
