"""Which configuration a git command will read, and whether it can make git run a
program: a "read-only" ``git status`` runs ``core.fsmonitor``, ``diff.external``,
``core.pager``… from the repository's own config, and a repository is whatever
directory with a ``.git`` (or a bare layout) the command starts in.

Owns: finding the repository as git does (``-C``, ``--git-dir``, ``GIT_DIR``, then up
from the working directory: a ``.git`` directory, a ``gitdir:`` file, a bare
``HEAD``+``objects``+``refs``), reading its ``config`` and ``config.worktree`` (and the
global files when they lie in a writable root) with a bounded, regular-files-only
read, and telling whether a write on the same line could plant one of them.
Does not own: parsing config text or which keys run a program (``orchestrator.host.gitconfig``),
deciding (``engine``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.core.paths import inside

from .gitconfig import ConfigSyntaxError, config_entries, executing

MAX_CONFIG_BYTES = 256 * 1024  # larger: not read, unverified
MAX_GITFILE_BYTES = 4096
MAX_LEVELS = 128
# Names that, created in a directory git searches, turn it into (part of) a repository.
PLANTING_NAMES = frozenset(
    {".git", "config", "config.worktree", "HEAD", "objects", "refs", "commondir"}
)
_FLAGS = frozenset(
    {"-p", "--paginate", "-P", "--no-pager", "--no-replace-objects", "--literal-pathspecs",
     "--glob-pathspecs", "--noglob-pathspecs", "--icase-pathspecs", "--no-optional-locks",
     "--no-lazy-fetch", "--no-advice", "--bare"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Repository:
    configs: tuple[str, ...]  # the config files git will read (present or not)
    searched: tuple[str, ...]  # directories whose .git / bare files decide the repository
    problem: str | None = None  # why it cannot be trusted, naming the file and key


def inspect(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    home: str,
    writable: Callable[[str], bool] | None,
) -> Repository:
    """The repository ``git ARGV`` would use from ``cwd``, and any problem with it."""
    start, git_dir, given = _options(argv, cwd, env)
    searched, git_dirs = ([], [git_dir]) if git_dir else discover(start)
    configs = [c for g in git_dirs for c in repo_configs(g)]
    configs += [c for c in global_configs(env, home) if writable is not None and writable(c)]
    problem = next((p for name, value in given if (p := _given(name, value))), None)
    for path in configs:
        problem = problem or _config_problem(path)
    return Repository(configs=tuple(configs), searched=tuple(searched), problem=problem)


def planted(repository: Repository, written: Iterable[str]) -> str | None:
    """A written path (absolute, normalised) that could create or replace configuration
    this git command reads: a directory on its search path, a ``.git``/``config``/
    ``HEAD``… inside one, anything inside a ``.git``, or a config file itself."""
    for path in written:
        for directory in repository.searched:
            if inside(directory, path) or inside(path, os.path.join(directory, ".git")):
                return path
            if os.path.dirname(path) == directory and os.path.basename(path) in PLANTING_NAMES:
                return path
        for config in repository.configs:
            if inside(config, path) or inside(path, os.path.dirname(config)):
                return path
    return None


def _options(
    argv: Sequence[str], cwd: str, env: Mapping[str, str]
) -> tuple[str, str | None, list[tuple[str, str | None]]]:
    """git's own options: where it starts (-C), an explicit git directory, and -c."""
    git_dir = env.get("GIT_DIR") or None
    given: list[tuple[str, str | None]] = []
    words = list(argv[1:])
    while words and words[0].startswith("-"):
        word = words.pop(0)
        name, eq, inline = word.partition("=")
        if word in ("-C", "-c", "--git-dir", "--config-env", "--work-tree", "--namespace"):
            value = words.pop(0) if words else ""
        elif eq and name in ("--git-dir", "--work-tree", "--namespace", "--config-env"):
            value = inline
        elif word in _FLAGS:
            value = ""
            if word == "--bare":
                git_dir = cwd
        else:
            break  # not read further: the rules do not match such a line either
        if word == "-C" and value:
            cwd = os.path.normpath(os.path.join(cwd, value))
        elif name == "--git-dir":
            git_dir = os.path.join(cwd, value)
        elif word in ("-c", "--config-env"):
            key, has_value, setting = value.partition("=")
            given.append((key.lower(), setting if has_value else None))
    return cwd, (os.path.normpath(os.path.join(cwd, git_dir)) if git_dir else None), given


def _given(name: str, value: str | None) -> str | None:
    if executing(name, value):
        return f"git -c {name} runs a program"
    return None


def discover(start: str) -> tuple[list[str], list[str]]:
    """Directories searched and the git directories whose configs count: every
    candidate up to the first that git would take (stricter than git when a
    ``.git`` it would skip as invalid still has a config)."""
    searched: list[str] = []
    git_dirs: list[str] = []
    directory = os.path.normpath(start)
    for _ in range(MAX_LEVELS):
        searched.append(directory)
        dot_git = os.path.join(directory, ".git")
        kind = _kind(dot_git)
        if kind == "file":  # a gitfile: git uses its target or dies
            target = _gitfile(dot_git)
            if target is not None:
                git_dirs.append(os.path.normpath(os.path.join(directory, target)))
            return searched, git_dirs
        if kind == "dir":
            git_dirs.append(dot_git)
            if _is_git_dir(dot_git):
                return searched, git_dirs
        elif _is_git_dir(directory):  # bare
            git_dirs.append(directory)
            return searched, git_dirs
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return searched, git_dirs


def repo_configs(git_dir: str) -> list[str]:
    """The config files of the repository in ``git_dir``, lowest precedence first as
    git reads them: a worktree's common ``config`` (``commondir``), then its own."""
    configs = [os.path.join(git_dir, "config"), os.path.join(git_dir, "config.worktree")]
    common = read_small(os.path.join(git_dir, "commondir"), MAX_GITFILE_BYTES)
    if isinstance(common, bytes) and common.strip():
        common_dir = os.path.join(git_dir, common.decode(errors="replace").strip())
        configs.insert(0, os.path.join(os.path.normpath(common_dir), "config"))
    return configs


def global_configs(env: Mapping[str, str], home: str = "") -> list[str]:
    """The user's git config files as git finds them, lowest precedence first
    (``GIT_CONFIG_GLOBAL`` replaces both; the legacy ``GIT_CONFIG`` is added)."""
    home = env.get("HOME", home)
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = [os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")]
    if env.get("GIT_CONFIG_GLOBAL"):
        files = [env["GIT_CONFIG_GLOBAL"]]
    files += [env["GIT_CONFIG"]] if env.get("GIT_CONFIG") else []
    return [os.path.normpath(f) for f in files if f.startswith("/")]


def _config_problem(path: str) -> str | None:
    data = read_small(path, MAX_CONFIG_BYTES)
    if data is None:
        return None
    if isinstance(data, str):
        return f"git reads its configuration {path}, which {data}"
    try:
        found = config_entries(data.decode("utf-8", errors="surrogateescape"), strict=True)
    except ConfigSyntaxError as exc:
        return f"git reads its configuration {path}, which cannot be read with confidence ({exc})"
    for name, value in found:
        if executing(name, value):
            return f"git reads {path}, which sets {name} (it runs a program or includes a file)"
    return None


def read_small(path: str, limit: int = MAX_CONFIG_BYTES) -> bytes | str | None:
    """A regular file's bytes (None: absent), or why it is not read: only stat before
    opening, never a FIFO or a device, never more than ``limit`` bytes. Symlinks are
    followed, as git follows them (a dotfiles manager's ~/.gitconfig is one)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "is not a regular file"
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        return f"cannot be read ({exc.__class__.__name__})"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "is not a regular file"
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    except OSError as exc:
        return f"cannot be read ({exc.__class__.__name__})"
    finally:
        os.close(fd)
    return f"is larger than {limit} bytes" if len(data) > limit else data


def _kind(path: str) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else None


def _gitfile(path: str) -> str | None:
    data = read_small(path, MAX_GITFILE_BYTES)
    if not isinstance(data, bytes):
        return None
    text = data.decode(errors="replace")
    return text[len("gitdir:") :].strip() if text.startswith("gitdir:") else None


def _is_git_dir(directory: str) -> bool:
    """git's is_git_directory: objects/, refs/ and a HEAD."""
    return (
        _kind(os.path.join(directory, "HEAD")) is not None
        and _kind(os.path.join(directory, "objects")) == "dir"
        and _kind(os.path.join(directory, "refs")) == "dir"
    )
