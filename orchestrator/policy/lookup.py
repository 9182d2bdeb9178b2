"""Where the sandbox will find what it runs before the command itself: the program a
bare name resolves to through PATH, and the startup files a shell reads.

Owns: PATH lookup as execvp does it (each entry in order, the first executable file
wins) over the sandbox's own PATH, and which startup files ``bash``/``sh`` read
(``$BASH_ENV``; with ``-l`` the profile files). A PATH entry ahead of the program that
lies inside a writable root, or that is relative (an empty entry is the working
directory), means a file planted there — by an earlier command on the same line,
even — runs instead of the program the rules judged; the same holds for a startup
file inside a writable root. Both make the command unverified, naming the file.
Does not own: the writable roots (``gate``), the rules (``engine``).

Host-side, it only stats (``os.stat``, ``os.access``, ``realpath``): nothing is opened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping

# Bash runs these itself: inside a shell script they are not looked up in PATH.
BASH_BUILTINS = frozenset(
    {".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command",
     "compgen", "complete", "continue", "declare", "dirs", "disown", "echo", "enable",
     "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash", "help",
     "history", "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf",
     "pushd", "pwd", "read", "readarray", "readonly", "return", "set", "shift", "shopt",
     "source", "suspend", "test", "time", "times", "trap", "true", "type", "typeset",
     "ulimit", "umask", "unalias", "unset", "wait"}
)  # fmt: skip
# Builtins that run the next word as a program (looked up in PATH unless a builtin).
_PASSING_BUILTINS = frozenset({"command", "exec", "time"})
LOGIN_FILES = {  # read by a login shell, in $HOME, after /etc/profile
    "bash": (".bash_profile", ".bash_login", ".profile"),
}
DEFAULT_LOGIN_FILES = (".profile",)

Writable = Callable[[str], bool]  # whether a path lies in a writable root (lexically or real)


def looked_up(launched: list[str], *, in_shell: bool) -> list[str]:
    """The program names of a command's layers that are found through PATH: bare
    names, except the builtins a shell runs itself."""
    names: list[str] = []
    builtin_chain = in_shell
    for word in launched:
        if builtin_chain and word in BASH_BUILTINS:
            builtin_chain = word in _PASSING_BUILTINS
            continue
        builtin_chain = False
        if "/" not in word:
            names.append(word)
    return names


def path_problem(name: str, path: str, *, writable: Writable | None) -> str | None:
    """Why the PATH lookup of ``name`` cannot be trusted; None when it can. Every entry
    before the one that holds the program (all of them when none does) counts."""
    for entry in path.split(":"):
        if not entry.startswith("/"):
            shown = "an empty entry (the working directory)" if not entry else repr(entry)
            return (
                f"PATH holds {shown}, a relative entry: '{name}' may run a file of that "
                f"name in the working directory ({entry or '.'}/{name})"
            )
        candidate = os.path.join(entry, name)
        if writable is not None and writable(candidate):
            return (
                f"PATH looks '{name}' up in {entry}, inside a writable root: "
                f"{candidate} (a file planted there runs instead)"
            )
        if _executable(candidate):
            return None
    return None


def startup_problem(
    shell: str,
    *,
    login: bool,
    env: Mapping[str, str],
    home: str,
    cwd: str,
    writable: Writable | None,
) -> str | None:
    """Why a shell's startup files cannot be trusted: one inside a writable root."""
    files: list[tuple[str, str]] = []  # (file, who reads it)
    bash_env = env.get("BASH_ENV")
    if shell == "bash" and bash_env:
        if "$" in bash_env or "`" in bash_env:  # bash expands it: not judged
            return f"BASH_ENV ({bash_env}) is expanded by bash when it starts"
        files.append((os.path.join(cwd, bash_env), "bash (BASH_ENV)"))
    if login:
        home = env.get("HOME", home)
        names = LOGIN_FILES.get(shell, DEFAULT_LOGIN_FILES)
        files += [(os.path.join(home, name), f"{shell} -l") for name in names]
    for file, who in files:
        if writable is not None and writable(file):
            return f"{who} reads {file} when it starts, inside a writable root"
    return None


def _executable(path: str) -> bool:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK)
