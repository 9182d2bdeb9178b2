"""The three rule forms of a policy file, as frozen data, and how each matches one
simple command (a program name and its literal arguments).

Owns: ``prefix_rule`` (Codex's current execpolicy: token prefixes with alternatives),
``define_program`` (Codex's original execpolicy: typed options and arguments; writable
file arguments make a Match), ``pipe_rule`` (a downloader piped into an interpreter),
and the typed argument checks (``ARG_*``). Pure: no file system access.
Does not own: reading policy files (``loader``), splitting shell text (``shell``),
combining decisions or checking written paths (``engine``).
"""

from __future__ import annotations

import enum
import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .decision import Decision
from .getopt import Arity, abbreviates, parse_option


class ArgType(enum.Enum):
    """What an argument is. The plural forms take the rest of the positionals."""

    RFILE = "ARG_RFILE"  # a file the program reads
    WFILE = "ARG_WFILE"  # a file the program writes: a Match, its path is checked
    RFILES = "ARG_RFILES"  # one or more read files
    RFILES_OR_CWD = "ARG_RFILES_OR_CWD"  # zero or more read files
    WFILES = "ARG_WFILES"  # one or more written files
    OPAQUE_VALUE = "ARG_OPAQUE_VALUE"  # a value that is neither a file nor code
    OPAQUE_VALUES = "ARG_OPAQUE_VALUES"  # zero or more of them
    POS_INT = "ARG_POS_INT"  # a positive integer
    SED_COMMAND = "ARG_SED_COMMAND"  # a sed script with no e/w/r/W/R commands or flags

    @property
    def plural(self) -> bool:
        return self in _PLURAL

    @property
    def writes(self) -> bool:
        return self in (ArgType.WFILE, ArgType.WFILES)


_PLURAL = (ArgType.RFILES, ArgType.RFILES_OR_CWD, ArgType.WFILES, ArgType.OPAQUE_VALUES)
_AT_LEAST_ONE = (ArgType.RFILES, ArgType.WFILES)

# A sed script we can read with confidence: only s///, y///, p, d, q, = and line
# addresses. GNU sed's `e` command and the `e` flag of s/// run shell commands; `w`,
# `W`, `r`, `R` read or write arbitrary files. Anything else is not a SED_COMMAND.
_SED_ADDRESS = re.compile(r"(?:\d+|\$|/[^/]*/)(?:,(?:\d+|\$|/[^/]*/))?")
_SED_S_FLAGS = frozenset("gpiIm0123456789")


def sed_script_ok(text: str) -> bool:
    if "\\" in text or "\n" in text:
        return False
    i, n = 0, len(text)
    while True:
        while i < n and text[i] == " ":
            i += 1
        if (address := _SED_ADDRESS.match(text, i)) is not None:
            i = address.end()
        i += text.startswith("!", i)
        if i >= n:
            return False
        command = text[i]
        if command in "sy":
            if i + 1 >= n or text[i + 1].isalnum() or text[i + 1] in " ;":
                return False
            delimiter = text[i + 1]
            parts = text[i + 2 :].split(delimiter, 2)
            if len(parts) < 3:
                return False
            rest = parts[2]
            flags = rest.split(";", 1)[0].rstrip(" ")
            if (command == "y" and flags) or not set(flags) <= _SED_S_FLAGS:
                return False
            i = n - len(rest) + len(flags)
        elif command in "pdq=":
            i += 1
            while command == "q" and i < n and text[i].isdigit():
                i += 1
        else:
            return False
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            return True
        if text[i] != ";":
            return False
        i += 1


def arg_ok(kind: ArgType, value: str) -> bool:
    """Whether ``value`` can be an argument of ``kind`` (file names are not checked)."""
    if kind is ArgType.POS_INT:
        return value.isdigit() and int(value) > 0
    if kind is ArgType.SED_COMMAND:
        return sed_script_ok(value)
    if kind in (ArgType.RFILE, ArgType.WFILE, ArgType.RFILES, ArgType.WFILES):
        return value != ""
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """``flag(...)`` takes no value; ``opt(...)`` takes one (``-t X``, ``-tX``, ``--t=X``);
    ``opt(..., optional = True)`` takes one only as ``-tX`` or ``--t=X`` (getopt's
    optional argument: ``rm --interactive /etc x`` removes /etc, it is no value)."""

    names: tuple[str, ...]  # the first is canonical
    value: ArgType | None = None
    optional: bool = False

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def arity(self) -> Arity:
        if self.value is None:
            return Arity.NONE
        return Arity.OPTIONAL if self.optional else Arity.REQUIRED


@dataclass(frozen=True, slots=True, kw_only=True)
class Where:
    """Where a rule was defined, for reasons and load errors."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


Token = str | tuple[str, ...]  # one literal, or alternatives


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixRule:
    pattern: tuple[Token, ...]
    decision: Decision
    justification: str
    where: Where
    # Globs (fnmatch) at least one later argument must match for the rule to apply:
    # how "find ... -delete" or "dd ... of=/dev/sda" is told apart from the safe forms.
    with_any: tuple[str, ...] = ()

    def matches(self, argv: Sequence[str]) -> bool:
        if len(argv) < len(self.pattern):
            return False
        # A rule that is not "safe" names a dangerous long option in every spelling
        # getopt accepts (--outp, --output=x); a safe rule only in the one it states.
        loose = self.decision is not Decision.SAFE
        for token, arg in zip(self.pattern, argv, strict=False):
            options = token if isinstance(token, tuple) else (token,)
            if arg not in options and not (loose and any(_spells(arg, t) for t in options)):
                return False
        rest = argv[len(self.pattern) :]
        return not self.with_any or any(
            _option_hits(arg, glob) for arg in rest for glob in self.with_any
        )

    def describe(self) -> str:
        shown = ["|".join(t) if isinstance(t, tuple) else t for t in self.pattern]
        extra = f" with any of {' '.join(self.with_any)}" if self.with_any else ""
        return f"prefix_rule {' '.join(shown)}{extra} ({self.where})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramMatch:
    writes: tuple[str, ...]  # written file arguments, as given
    flags: frozenset[str]  # canonical names of the options present


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    program: str
    options: tuple[Option, ...]
    args: tuple[ArgType, ...]
    where: Where
    requires: tuple[str, ...] = ()  # canonical option names that must be present
    # Written files that make the command Forbidden whatever the profile: "/" exactly,
    # "~" (the home directory) exactly, "/etc/**" for /etc and all below it.
    forbidden_paths: tuple[str, ...] = ()
    justification: str = ""

    def match(self, argv: Sequence[str]) -> ProgramMatch | None:
        """Parse ``argv`` (``argv[0]`` is the program) GNU-style: options anywhere
        before ``--``, short flags combined (``-rf``). None when it does not conform:
        an unknown option, a bad value, too few or too many arguments."""
        if not argv or argv[0] != self.program:
            return None
        by_name = {n: (o, o.arity) for o in self.options for n in o.names}
        flags: set[str] = set()
        writes: list[str] = []
        positionals: list[str] = []
        rest = list(argv[1:])
        while rest:
            word = rest.pop(0)
            if word == "--":
                positionals += rest
                break
            if word == "-" or not word.startswith("-"):
                positionals.append(word)
                continue
            parsed = parse_option(word, rest, by_name)
            if parsed is None:
                return None
            options, taken = parsed
            del rest[: taken - 1]
            for option, value in options:
                flags.add(option.name)
                if option.value is not None and not (value is None and option.optional):
                    if value is None or not arg_ok(option.value, value):
                        return None
                    if option.value.writes:
                        writes.append(value)
        if not set(self.requires) <= flags:
            return None
        typed = _assign(self.args, positionals)
        if typed is None:
            return None
        writes += [value for kind, value in typed if kind.writes]
        return ProgramMatch(writes=tuple(writes), flags=frozenset(flags))

    def describe(self) -> str:
        return f"define_program {self.program} ({self.where})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PipeRule:
    """A command of ``source`` piped (directly or further on) into one of ``sink``."""

    source: tuple[str, ...]
    sink: tuple[str, ...]
    decision: Decision
    justification: str
    where: Where

    def matches(self, programs: Sequence[str]) -> bool:
        seen_source = False
        for program in programs:
            if seen_source and program in self.sink:
                return True
            seen_source = seen_source or program in self.source
        return False

    def describe(self) -> str:
        return f"pipe_rule {'|'.join(self.source)} into {'|'.join(self.sink)} ({self.where})"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    prefix: tuple[PrefixRule, ...] = ()
    programs: tuple[Program, ...] = ()
    pipes: tuple[PipeRule, ...] = ()
    files: tuple[str, ...] = field(default=())  # the files they came from, in load order

    def __add__(self, other: RuleSet) -> RuleSet:
        return RuleSet(
            prefix=self.prefix + other.prefix,
            programs=self.programs + other.programs,
            pipes=self.pipes + other.pipes,
            files=self.files + other.files,
        )


def _option_hits(arg: str, glob: str) -> bool:
    """Whether ``arg`` is what a ``with_any`` glob names, in any spelling GNU getopt
    accepts: ``-uo`` holds ``-o``; ``--o=x`` and ``--outp`` abbreviate ``--output``."""
    if fnmatch.fnmatchcase(arg, glob):
        return True
    if arg.startswith("--") and glob.startswith("--"):
        return abbreviates(arg, glob.rstrip("*").partition("=")[0])
    if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
        # Combined short options: each letter may start an option (its value attached).
        return any(fnmatch.fnmatchcase(f"-{arg[i:]}", glob) for i in range(2, len(arg)))
    return False


def _spells(arg: str, token: str) -> bool:
    """Whether ``arg`` spells the long option a pattern token names: ``--o``, ``--out``
    or ``--output=x`` for ``--output``; ``--out=x`` for ``--output=x``."""
    if not (token.startswith("--") and len(token) > 2):
        return False
    name, eq, value = token.partition("=")
    given, given_eq, given_value = arg.partition("=")
    if eq and (not given_eq or given_value != value):
        return False
    return abbreviates(given, name)


def _assign(kinds: tuple[ArgType, ...], values: list[str]) -> list[tuple[ArgType, str]] | None:
    """Give each positional its type: singular types take one each, a plural type takes
    what the singular types after it leave over."""
    singular_after = 0
    plural_at = next((i for i, k in enumerate(kinds) if k.plural), None)
    if plural_at is None:
        if len(values) != len(kinds):
            return None
        pairs = list(zip(kinds, values, strict=True))
    else:
        singular_after = len(kinds) - plural_at - 1
        head = list(zip(kinds[:plural_at], values[:plural_at], strict=False))
        if len(head) < plural_at or len(values) < plural_at + singular_after:
            return None
        middle_end = len(values) - singular_after
        plural = kinds[plural_at]
        middle = [(plural, v) for v in values[plural_at:middle_end]]
        if plural in _AT_LEAST_ONE and not middle:
            return None
        tail = list(zip(kinds[plural_at + 1 :], values[middle_end:], strict=True))
        pairs = head + middle + tail
    return pairs if all(arg_ok(kind, value) for kind, value in pairs) else None


def expand_home(path: str, home: str) -> str:
    """``~`` and ``~/x`` as bash expands them (``~user`` never reaches here: Unverified)."""
    if home and (path == "~" or path.startswith("~/")):
        return home.rstrip("/") + path[1:]
    return path


def path_hits(pattern: str, target: str, *, home: str) -> bool:
    """Whether the normalised absolute ``target`` is what a forbidden-path entry names."""
    pattern = expand_home(pattern, home)
    if pattern.endswith("/**"):
        root = pattern[:-3] or "/"
        return target == root or target.startswith(root.rstrip("/") + "/")
    return target == pattern
