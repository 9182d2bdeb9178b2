"""The hooks directory a workspace's git config names, and the user's own git config
files, read as text (git is not run).

Owns: the workspace path ``core.hooksPath`` names (``hooks_path_entry``), to be kept
read-only like ``.git`` itself: a ``.husky/pre-commit`` planted by the sandbox would
otherwise run on the host's next ``git commit``; what the user's config says of
``safe.bareRepository``.
Does not own: parsing config text (``gitconfig``), finding a repository and its config
files as git does (``policy.gitrepo``), mounting anything read-only
(``compile``, backends) or the post-run check for planted repositories (``planted``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from .gitconfig import config_entries
from .gitrepo import discover, global_configs, read_small, repo_configs


def hooks_path_entry(workspace: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The path, relative to ``workspace``, to keep read-only because the git config
    of the repository around it names it as ``core.hooksPath`` (with ``environ``, the
    user's global config counts too): the hooks directory if it exists, else its first
    missing component (so nothing can be created under it); a symlink on the way is
    returned as it is (placeholders refuse to protect a symlink: the run fails closed).
    None when no hooks path points inside the workspace (or only into ``.git``)."""
    searched, git_dirs = discover(workspace)
    if not git_dirs:
        return None
    # Where the repository's worktree starts (relative hooks paths start there): the
    # directory holding the first .git found; a gitfile's or a bare one's: where the
    # search stopped.
    first = git_dirs[0]
    beside = os.path.dirname(first)
    root = beside if os.path.basename(first) == ".git" and beside in searched else searched[-1]
    configs = [c for git_dir in git_dirs for c in repo_configs(git_dir)]
    if environ is not None:
        configs[:0] = global_configs(environ)
    value = _last(configs, "core.hookspath")
    if not value:
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


def safe_bare_repository(environ: Mapping[str, str]) -> str | None:
    """``safe.bareRepository`` as the user's git would read it (system, then global
    config; only those count for it), or None when unset."""
    value = _last(["/etc/gitconfig", *global_configs(environ)], "safe.barerepository")
    return None if value is None else value.lower()


def _last(paths: list[str], key: str) -> str | None:
    """The value the last of ``paths`` to set ``key`` gives it, read as git reads
    them (symlinks followed); "" for a key set with no value."""
    value = None
    for path in paths:
        data = read_small(path)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
        for name, got in config_entries(text):
            if name == key:
                value = got or ""
    return value
