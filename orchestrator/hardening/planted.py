"""Git repositories a run planted in its workspace: found after the run, reported, and
on request quarantined.

Owns: a cheap snapshot of the workspace's repositories before a run (where they are,
and the identity of their config files and hooks), the comparison after it, and moving
what was planted aside (``on_planted_repo: quarantine``).
Does not own: parsing git config (``gitconfig``), writing audit records or printing
(``runner``, ``cli``).

Why after the run: a sandbox that may write its workspace can ``git init nested`` and
set ``core.fsmonitor`` there, or lay out ``HEAD``, ``objects/``, ``refs/`` and ``config``
where there is no ``.git``: the host's next ``git status`` in that directory runs the
planted command. No read-only mount made in advance can forbid a name nobody knows
yet, so the workspace is examined once the run has ended. The workspace's own ``.git``
is not examined: it is protected read-only for the whole run.

Identity is (size, mtime_ns, ctime_ns, inode): the sandbox can reset an mtime
(``touch -d``) after rewriting a file in place, but not its ctime.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field

from orchestrator.core.profile import DEFAULT_PROTECTED
from orchestrator.host.gitconfig import MAX_CONFIG, config_entries, executing_keys, read_bounded

MAX_DEPTH = 6
BUDGET_S = 0.2  # per walk; a walk that runs out of time says so
# Trees of dependencies, caches and build output: large, and not where a user runs git.
SKIP = frozenset(
    {
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        "target",
        ".tox",
        ".nox",
        "dist",
        "build",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".gradle",
        ".next",
        "site-packages",
    }
)
QUARANTINE = ".codex-box-quarantine-"  # + run id: a name git never reads
# Files host tools run or trust (profile.DEFAULT_PROTECTED): read-only at the workspace
# root for the whole run, but a subdirectory's (an IDE opened there, direnv on `cd`)
# can only be looked at afterwards. `.codex-profile` below the root is judged by
# resolve (a wider one needs approval), `.git` as a repository.
HOST_TOOL_NAMES = frozenset(DEFAULT_PROTECTED) - {".git", ".codex-profile"}
HOST_TOOL_DEPTH = 2  # inside such a directory: .cursor/rules/x.mdc
_CONFIGS = ("config", "config.worktree")
Identity = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Repo:
    where: str  # relative: "nested/.git" (directory or gitfile), "sub" or "." (bare layout)
    kind: str  # "gitdir", "gitfile" (a .git file or symlink), "bare" or "hostfile"
    gitdir: str  # absolute: the directory holding its config (a gitfile's target)
    files: dict[str, Identity]  # "config", "hooks/pre-commit", ".git" (gitfile) → identity


@dataclass(frozen=True, slots=True)
class Snapshot:
    workspace: str
    repos: dict[str, Repo]
    complete: bool  # False: the walk ran out of time
    looked_at: int  # directories
    started_ns: int  # wall clock when taken: a repo changed later is the run's


@dataclass(frozen=True, slots=True)
class Finding:
    where: str
    kind: str
    new: bool
    keys: tuple[str, ...]  # executing config keys
    hooks: tuple[str, ...]  # hook files added or changed
    moved: tuple[str, ...] = field(default=())  # what quarantine renamed (relative)

    def text(self) -> str:
        what = {"gitdir": "git repository", "gitfile": ".git link", "bare": "bare repository"}
        verb = "created" if self.new else "changed"
        if self.kind == "hostfile":
            line = (
                f"the run {verb} {self.where}, which a tool on the host runs or trusts "
                "(an IDE, direnv, an agent's MCP or hook settings)"
            )
            if self.moved:
                line += f"; quarantined (renamed to *{QUARANTINE}…)"
            return line
        parts = [f"the run {verb} a {what[self.kind]} at {self.where}"]
        if self.keys:
            parts.append(f"with config that runs commands ({', '.join(self.keys)})")
        if self.hooks:
            parts.append(f"with hooks {', '.join(self.hooks)}")
        line = " ".join(parts) + ": git commands there would run them"
        if not (self.keys or self.hooks):
            line = " ".join(parts) + ": git there would use its config and hooks"
        if self.moved:
            line += f"; quarantined (renamed {', '.join(self.moved)} to *{QUARANTINE}…)"
        return line


def snapshot(workspace: str, *, budget_s: float = BUDGET_S) -> Snapshot:
    """Where the repositories are, and what their config files and hooks are now."""
    started_ns = time.time_ns()
    deadline = time.monotonic() + budget_s
    repos: dict[str, Repo] = {}
    queue = collections.deque([("", 0)])
    looked_at, complete = 0, True
    while queue:
        if time.monotonic() > deadline:
            complete = False
            break
        rel, depth = queue.popleft()
        try:
            with os.scandir(os.path.join(workspace, rel) if rel else workspace) as listing:
                entries = {e.name: e for e in listing}
        except OSError:
            continue
        looked_at += 1
        bare = _is_git_directory(entries)
        if bare:
            where = rel or "."
            repos[where] = _repo(workspace, where, "bare", os.path.join(workspace, rel))
        for name, entry in entries.items():
            if rel and name in HOST_TOOL_NAMES:
                repos[f"{rel}/{name}"] = _host_file(f"{rel}/{name}", entry)
            if name == ".git":
                if rel:  # the workspace's own .git is read-only for the whole run
                    repos[f"{rel}/.git"] = _dot_git(workspace, f"{rel}/.git", entry)
            elif (
                depth < MAX_DEPTH  # deeper is by design, not "incomplete"
                and name not in SKIP
                and not (bare and name in ("objects", "refs", "logs"))
                and entry.is_dir(follow_symlinks=False)
            ):
                queue.append((f"{rel}/{name}" if rel else name, depth + 1))
    return Snapshot(workspace, repos, complete, looked_at, started_ns)


def check(before: Snapshot, *, quarantine_id: str | None = None) -> tuple[list[Finding], Snapshot]:
    """Each repository created, or whose config or hooks changed, since ``before``;
    with ``quarantine_id``, its planted files are renamed aside. The second value is the
    walk after the run (``complete`` says whether it saw everything)."""
    after = snapshot(before.workspace)
    findings: list[tuple[Repo, Finding]] = []
    for where, repo in sorted(after.repos.items()):
        old = before.repos.get(where)
        old = old if old is not None and old.kind == repo.kind else None
        if old is None and not before.complete and not _changed_since(repo, before.started_ns):
            continue  # the first walk never got there, and nothing here is recent
        changed = [k for k, v in repo.files.items() if old is None or old.files.get(k) != v]
        if repo.kind == "hostfile":
            if changed:
                findings.append((repo, Finding(where, repo.kind, old is None, (), ())))
            continue
        keys = _keys(repo, changed if old is not None else list(repo.files))
        hooks = tuple(
            k.split("/", 1)[1]  # hooks/NAME → NAME; hooksPath/REL → REL (has a slash)
            for k in changed
            if k.startswith(("hooks/", "hooksPath/"))
        )
        if old is not None and not keys and not hooks:
            continue  # e.g. `git remote add`: a change that runs nothing
        findings.append((repo, Finding(where, repo.kind, old is None, tuple(keys), hooks)))
    if quarantine_id:  # only once every config is read: a gitfile may point at another
        return [_quarantine(before.workspace, r, f, quarantine_id) for r, f in findings], after
    return [f for _, f in findings], after


def _host_file(where: str, entry: os.DirEntry[str]) -> Repo:
    """A host-tool file or directory below the workspace root: the identity of it and of
    what it holds (two levels, no symlink followed)."""
    files: dict[str, Identity] = {}
    pending = [(entry.path, "", 0)]
    while pending:
        path, rel, depth = pending.pop()
        identity = _identity(path)
        if identity is None:
            continue
        files[rel or "."] = identity
        if depth < HOST_TOOL_DEPTH and os.path.isdir(path) and not os.path.islink(path):
            try:
                with os.scandir(path) as inner:
                    for child in inner:
                        pending.append((child.path, f"{rel}/{child.name}".lstrip("/"), depth + 1))
            except OSError:
                continue
    return Repo(where, "hostfile", entry.path, files)


def _is_git_directory(entries: dict[str, os.DirEntry[str]]) -> bool:
    """What git's discovery takes for a git directory: HEAD, and objects/ and refs/ (or
    a commondir that has them) — or a config saying ``bare = true``."""
    head = entries.get("HEAD")
    if head is not None and head.is_file(follow_symlinks=False):
        if "commondir" in entries:
            return True
        if all(n in entries and entries[n].is_dir() for n in ("objects", "refs")):
            return True
    config = entries.get("config")
    if config is None or not config.is_file(follow_symlinks=False):
        return False
    read = read_bounded(config.path)
    return bool(read) and any(
        k == "core.bare" and (v or "true").lower() in ("true", "yes", "on", "1")
        for k, v in config_entries(read[0] if read else "")
    )


def _dot_git(workspace: str, where: str, entry: os.DirEntry[str]) -> Repo:
    if entry.is_dir(follow_symlinks=False):
        return _repo(workspace, where, "gitdir", entry.path)
    target = entry.path
    if entry.is_symlink():
        target = os.path.join(os.path.dirname(entry.path), os.readlink(entry.path))
    else:
        read = read_bounded(entry.path, 4096)
        if read and read[0].startswith("gitdir:"):
            target = os.path.join(os.path.dirname(entry.path), read[0][7:].strip())
    repo = _repo(workspace, where, "gitfile", target)
    link = _identity(entry.path)
    return Repo(where, "gitfile", target, {**repo.files, **({".git": link} if link else {})})


def _repo(workspace: str, where: str, kind: str, gitdir: str) -> Repo:
    files = {}
    for name in ("HEAD", *_CONFIGS):  # HEAD: to date a repository the first walk missed
        identity = _identity(os.path.join(gitdir, name))
        if identity:
            files[name] = identity
    if kind != "gitfile":  # a gitfile's target holds hooks the sandbox may not write
        try:
            with os.scandir(os.path.join(gitdir, "hooks")) as hooks:
                for hook in hooks:
                    identity = None if hook.name.endswith(".sample") else _identity(hook.path)
                    if identity:
                        files[f"hooks/{hook.name}"] = identity
        except OSError:
            pass
        files |= _hooks_path_files(workspace, where, kind, gitdir)
    return Repo(where, kind, gitdir, files)


def _hooks_path_files(workspace: str, where: str, kind: str, gitdir: str) -> dict[str, Identity]:
    """The hooks in the directory a nested repository's ``core.hooksPath`` names (only
    the workspace's own repository has it kept read-only): a husky setup in a
    subproject runs them on the host's next commit there."""
    read = read_bounded(os.path.join(gitdir, "config"))
    hooks_path = None
    for key, value in config_entries(read[0]) if read else []:
        if key == "core.hookspath" and value:
            hooks_path = value
    if hooks_path is None or os.path.isabs(hooks_path) or hooks_path.startswith("~"):
        return {}
    worktree = gitdir if kind == "bare" else os.path.dirname(os.path.join(workspace, where))
    directory = os.path.normpath(os.path.join(worktree, hooks_path))
    if not directory.startswith(workspace.rstrip("/") + "/"):
        return {}
    files: dict[str, Identity] = {}
    try:
        with os.scandir(directory) as hooks:
            for hook in hooks:
                identity = _identity(hook.path)
                if identity and not hook.name.endswith(".sample"):
                    files[f"hooksPath/{os.path.relpath(hook.path, workspace)}"] = identity
    except OSError:
        pass
    return files


def _identity(path: str) -> Identity | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _changed_since(repo: Repo, started_ns: int) -> bool:
    # Timestamps come from a coarse clock: a write just after the start may read as
    # up to a tick (≤ 10 ms) earlier.
    return any(ident[2] >= started_ns - 10_000_000 for ident in repo.files.values())


def _keys(repo: Repo, names: list[str]) -> list[str]:
    keys: list[str] = []
    for name in names:
        if name not in _CONFIGS:
            continue
        read = read_bounded(os.path.join(repo.gitdir, name))
        if read is None:
            continue
        if read[1]:  # padding must not push a key past what is read
            keys.append(f"({name} longer than {MAX_CONFIG // 1024} KiB)")
        keys += executing_keys(config_entries(read[0]))
    return list(dict.fromkeys(keys))


def _quarantine(workspace: str, repo: Repo, finding: Finding, run_id: str) -> Finding:
    """Rename what makes the planted files run: a new repository loses ``HEAD`` (git no
    longer takes the directory for a repository) and its config; a gitfile is renamed;
    a changed one loses the config files with executing keys and the changed hooks."""
    if repo.kind == "hostfile" or repo.kind == "gitfile":
        names = [repo.where]
    else:
        base = os.path.relpath(repo.gitdir, workspace)
        if finding.new:
            chosen = ["HEAD", *(c for c in _CONFIGS if c in repo.files)]
        else:
            chosen = [c for c in _CONFIGS if c in repo.files] if finding.keys else []
            chosen += [f"hooks/{h}" for h in finding.hooks if "/" not in h]
        names = [os.path.normpath(os.path.join(base, c)) for c in chosen]
        names += [h for h in finding.hooks if "/" in h]  # a hooksPath file: from the root
    moved = tuple(n for n in names if _rename_aside(workspace, n, run_id))
    return Finding(finding.where, finding.kind, finding.new, finding.keys, finding.hooks, moved)


def _rename_aside(workspace: str, rel: str, run_id: str) -> bool:
    """Rename ``rel`` to ``<name>.codex-box-quarantine-<run_id>`` in its own directory,
    reached component by component without following a symlink (a process that
    outlived the run could swap one in to send the rename elsewhere)."""
    parts = rel.split("/")
    if rel.startswith("..") or "" in parts or ".." in parts:
        return False  # a gitfile target outside the workspace is not the run's to move
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        # The root is the workspace as pinned before the run (runner passes
        # /proc/self/fd/N): following that one link is the point; below it, none.
        fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        # rename() moves a symlink itself, never what it points to.
        os.rename(parts[-1], parts[-1] + QUARANTINE + run_id, src_dir_fd=fd, dst_dir_fd=fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
