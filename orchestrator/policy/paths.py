"""The paths a command names, as the sandbox will see them: a written argument's
absolute target (lexically and with symlinks followed, a glob by the directory it
expands in), whether it lies in a writable root or a protected path, and ``cd``.

Owns: path arithmetic for the engine. Does not own: which arguments are written
(``rules``) or what follows from a path (``engine``).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from orchestrator.core.paths import inside

from .rules import expand_home
from .shell import GLOB_CHARS, Word

if TYPE_CHECKING:
    from .context import Context


def cd(argv: tuple[str, ...], context: Context) -> Context | None:
    args = [a for a in argv[1:] if a not in ("-L", "-P", "--")]
    if len(args) > 1 or (args and args[0].startswith("-")):
        return None
    target = expand_home(args[0] if args else "~", context.home)
    return replace(context, cwd=os.path.normpath(os.path.join(context.cwd, target)))


def target(word: Word, context: Context) -> tuple[str, str]:
    """The absolute path a written argument names, lexically and with symlinks followed.
    A glob names the directory it expands in (``/*`` → ``/``); a leading ``~`` is the
    home directory (also unexpanded: judged as bash would have expanded it)."""
    value = expand_home(word.value, context.home)
    if word.glob:
        # `*/../..` is the parent's parent whatever `*` matches: normalise first, then
        # the glob names the directory it expands in (`/*` → `/`, `/et*/x` → `/`).
        value = normal(os.path.join(context.cwd, value))
        cut = min((value.index(c) for c in GLOB_CHARS if c in value), default=len(value))
        value = value[:cut]
        value = value if value.endswith("/") else os.path.dirname(value) or "/"
    path = normal(os.path.join(context.cwd, value or "."))
    return path, _resolved(path)


def _resolved(path: str) -> str:
    """``realpath``, which fails (EINVAL) when a component changes between a link and a
    directory while it looks — a concurrent sandbox renaming things. A few tries cover
    a passing race; after that the write is judged unresolvable (outside every root:
    refused, saying why), never by its lexical path alone."""
    for _ in range(3):
        try:
            return os.path.realpath(path)
        except OSError as exc:
            problem = exc.strerror or str(exc)
        except ValueError:  # a NUL or a lone surrogate: no file has that name
            return "(unresolvable: not a file name)"
    return f"(unresolvable while it changed: {problem})"


def normal(path: str) -> str:
    path = os.path.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def glob_problem(word: Word, context: Context) -> str | None:
    if not word.glob:
        return None
    reached = [p for p in context.protected_paths if _glob_reaches(word, p, context)]
    return f"a glob that can reach the protected path {reached[0]}" if reached else None


def _glob_reaches(word: Word, protected: str, context: Context) -> bool:
    """Whether a glob could expand to a protected path, inside it or to a parent of it.
    As in bash (dotglob off), a name starting with "." is matched only by a pattern
    component that starts with "." too: `*` does not reach `.git`, `.g*` does."""
    value = expand_home(word.value, context.home)
    pattern = normal(os.path.join(context.cwd, value)).split("/")
    parts = protected.split("/")
    return all(
        fnmatch.fnmatchcase(p, g) and (g.startswith(".") or not p.startswith("."))
        for p, g in zip(parts, pattern, strict=False)
    )


def outside(lexical: str, real: str, context: Context) -> str | None:
    if context.writable_roots is None:
        return None
    for path in (lexical, real):
        for protected in context.protected_paths:
            if inside(path, protected):
                return f"inside the protected path {protected}"
        if not any(inside(path, root) for root in context.writable_roots):
            roots = ", ".join(context.writable_roots) or "none: this profile writes nothing"
            return f"outside the profile's writable roots ({roots})"
    return None


def writable(path: str, context: Context) -> bool:
    """Whether the sandbox could create or change ``path`` (absolute): inside a
    writable root and outside the protected paths, lexically or once resolved."""
    roots = context.writable_roots or ()
    lexical = normal(path)
    try:
        real = os.path.realpath(lexical)
    except ValueError:  # a NUL or a lone surrogate: judged as writable (fail closed)
        return True
    for candidate in dict.fromkeys((lexical, real)):
        if any(inside(candidate, root) for root in roots) and not any(
            inside(candidate, p) for p in context.protected_paths
        ):
            return True
    return False
