"""Git config read as text, and the hooks directory it names inside a workspace.

Owns: parsing git config files without running git (never following a symlink,
bounded in size); which keys make git run a command (``executing_keys``); and the
workspace path ``core.hooksPath`` names (``hooks_path_entry``), to be kept read-only
like ``.git`` itself: a ``.husky/pre-commit`` planted by the sandbox would otherwise run
on the host's next ``git commit``.
Does not own: mounting anything read-only (``compile``, backends) or the post-run
check for planted repositories (``planted``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

MAX_CONFIG = 64 * 1024  # a config longer than this is itself a finding (padding hides keys)
_FALSE = frozenset({"false", "no", "off", "0", ""})
_BOOLEAN = _FALSE | {"true", "yes", "on", "1"}
# Keys whose value git runs as a command (or that pull in more config) ...
_EXEC_KEYS = frozenset(
    {
        "core.hookspath",
        "core.sshcommand",
        "core.pager",
        "core.editor",
        "core.askpass",
        "core.gitproxy",
        "core.alternaterefscommand",
        "sequence.editor",
        "diff.external",
        "include.path",
        "interactive.difffilter",
        "sendemail.sendmailcmd",
        "sendemail.smtpserver",
        "web.browser",
        "help.browser",
        "uploadpack.packobjectshook",
        "protocol.allow",
    }
)
# ... every key of these sections ...
_EXEC_SECTIONS = frozenset({"pager", "filter", "includeif", "instaweb", "guitool", "protocol"})
# ... and these (section, name) pairs in any subsection.
_EXEC_NAMES = frozenset(
    {
        ("diff", "textconv"),
        ("diff", "command"),
        ("merge", "driver"),
        ("credential", "helper"),
        ("gpg", "program"),
        ("gpg", "defaultkeycommand"),
        ("difftool", "cmd"),
        ("difftool", "path"),
        ("mergetool", "cmd"),
        ("mergetool", "path"),
        ("browser", "cmd"),
        ("browser", "path"),
        ("man", "cmd"),
        ("man", "path"),
        ("tar", "command"),
        ("trailer", "command"),
        ("trailer", "cmd"),
        ("remote", "uploadpack"),
        ("remote", "receivepack"),
    }
)


# --- git config as text --------------------------------------------------------------


def read_bounded(path: str, limit: int = MAX_CONFIG) -> tuple[str, bool] | None:
    """The text of the regular file at ``path`` (its last component not followed) and
    whether it was cut at ``limit``; None if it is no readable regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


def config_entries(text: str) -> list[tuple[str, str | None]]:
    """``(key, value)`` as git reads them: ``section[.subsection].name`` with section and
    name lower-cased; a value-less key is ``None`` (true). Lenient where git errors."""
    entries: list[tuple[str, str | None]] = []
    section, i, n = "", 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\r\n":
            i += 1
        elif char in "#;":
            i = _line_end(text, i)
        elif char == "[":
            section, i = _header(text, i + 1)
        elif char.isalpha():
            start = i
            while i < n and (text[i].isalnum() or text[i] == "-"):
                i += 1
            name = text[start:i].lower()
            while i < n and text[i] in " \t":
                i += 1
            value: str | None = None
            if i < n and text[i] == "=":
                value, i = _value(text, i + 1)
            else:
                i = _line_end(text, i)
            entries.append((f"{section}.{name}" if section else name, value))
        else:
            i = _line_end(text, i)
    return entries


def _line_end(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end + 1


def _header(text: str, i: int) -> tuple[str, int]:
    start, n = i, len(text)
    while i < n and text[i] not in ']" \t\n':
        i += 1
    name = text[start:i].lower()  # [section.sub] (old form) is lower-cased whole
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == '"':
        sub, i = [], i + 1
        while i < n and text[i] not in '"\n':
            if text[i] == "\\" and i + 1 < n:
                i += 1
            sub.append(text[i])
            i += 1
        name += "." + "".join(sub)
    close, end = text.find("]", i), _line_end(text, i)
    return name, close + 1 if 0 <= close < end else end


def _value(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    quoted, n = False, len(text)
    while i < n and text[i] != "\n":
        char = text[i]
        if not quoted and char in "#;":
            i = _line_end(text, i) - 1
            break
        if char == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "\n" or (nxt == "\r" and text[i + 2 : i + 3] == "\n"):  # continued
                i += 2 if nxt == "\n" else 3
                continue
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(nxt, nxt))
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        else:
            out.append(char)
        i += 1
    return "".join(out).strip(), min(i + 1, n)


def executing_keys(entries: list[tuple[str, str | None]]) -> list[str]:
    """The keys git would run a command for (or that pull in other config)."""
    found: list[str] = []
    for key, value in entries:
        section, _, rest = key.partition(".")
        name = rest.rsplit(".", 1)[-1]
        text = (value or "").strip()
        if (
            key in _EXEC_KEYS
            or section in _EXEC_SECTIONS
            or (section, name) in _EXEC_NAMES
            or (key == "core.fsmonitor" and text.lower() not in _BOOLEAN)  # true: git's own
            or (section == "alias" and text.startswith("!"))
            or (section == "submodule" and name == "update" and text.startswith("!"))
            or (section == "remote" and name == "url" and text.startswith("ext::"))
        ):
            found.append(key)
    return list(dict.fromkeys(found))


# --- core.hooksPath ------------------------------------------------------------------


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
