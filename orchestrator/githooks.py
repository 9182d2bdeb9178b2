"""The hooks directory a workspace's git config names, and the user's own git config
files, read as text (git is not run).

Owns: the workspace path ``core.hooksPath`` names (``hooks_path_entry``), to be kept
read-only like ``.git`` itself: a ``.husky/pre-commit`` planted by the sandbox would
otherwise run on the host's next ``git commit``; where the user's global config lies
(``global_configs``) and what it says of ``safe.bareRepository``.
Does not own: parsing config text (``gitconfig``), mounting anything read-only
(``compile``, backends) or the post-run check for planted repositories (``planted``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from .gitconfig import config_entries, read_bounded


def hooks_path_entry(workspace: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The path, relative to ``workspace``, to keep read-only because the git config
    of the repository around it names it as ``core.hooksPath`` (with ``environ``, the
    user's global config counts too): the hooks directory if it exists, else its first
    missing component (so nothing can be created under it); a symlink on the way is
    returned as it is (placeholders refuse to protect a symlink: the run fails closed).
    None when no hooks path points inside the workspace (or only into ``.git``)."""
    root = _repo_root(workspace)
    configs = [] if root is None else _repo_configs(root)
    if environ is not None:
        configs[:0] = global_configs(environ)
    value = None
    for path in configs:
        read = read_bounded(path)
        for key, got in config_entries(read[0]) if read else ():
            if key == "core.hookspath":
                value = got  # the last one wins, as in git; local config is read last
    if not value or root is None:
        return None
    if value.startswith("~/") and environ is not None:
        value = environ.get("HOME", "") + value[1:]
    target = os.path.normpath(os.path.join(root, value))
    ws = workspace.rstrip("/") or "/"
    if target == ws or not target.startswith(ws + "/"):
        return None  # outside: the sandbox cannot write it; the root itself: see README
    parts = target[len(ws) + 1 :].split("/")
    if parts[0] == ".git":
        return None  # protected as a whole already
    for depth in range(1, len(parts) + 1):
        try:
            mode = os.lstat(os.path.join(ws, *parts[:depth])).st_mode
        except OSError:
            return "/".join(parts[:depth])  # the first missing component
        if stat.S_ISLNK(mode):
            return "/".join(parts[:depth])
    return "/".join(parts)


def global_configs(environ: Mapping[str, str]) -> list[str]:
    """The user's git config files, lowest precedence first (as git reads them)."""
    home = environ.get("HOME", "")
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    if environ.get("GIT_CONFIG_GLOBAL"):
        return [environ["GIT_CONFIG_GLOBAL"]]
    return [os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")]


def safe_bare_repository(environ: Mapping[str, str]) -> str | None:
    """``safe.bareRepository`` as the user's git would read it (system, then global
    config; only those count for it), or None when unset."""
    value = None
    for path in ["/etc/gitconfig", *global_configs(environ)]:
        read = read_bounded(path)
        for key, got in config_entries(read[0]) if read else ():
            if key == "safe.barerepository":
                value = (got or "").lower()
    return value


def _repo_root(workspace: str) -> str | None:
    path = workspace
    while True:
        if os.path.lexists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _repo_configs(root: str) -> list[str]:
    """Config files of the repository whose worktree is ``root`` (a gitfile's target
    and its commondir too), lowest precedence first."""
    gitdir = _gitdir(os.path.join(root, ".git"))
    if gitdir is None:
        return []
    configs = [os.path.join(gitdir, "config"), os.path.join(gitdir, "config.worktree")]
    common = read_bounded(os.path.join(gitdir, "commondir"), 4096)
    if common and common[0].strip():
        configs.insert(0, os.path.join(gitdir, common[0].strip(), "config"))
    return configs


def _gitdir(dot_git: str) -> str | None:
    """The git directory a ``.git`` directory or gitfile stands for."""
    try:
        mode = os.lstat(dot_git).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return dot_git
    read = read_bounded(dot_git, 4096) if stat.S_ISREG(mode) else None
    if not read or not read[0].startswith("gitdir:"):
        return None
    return os.path.join(os.path.dirname(dot_git), read[0][len("gitdir:") :].strip())
