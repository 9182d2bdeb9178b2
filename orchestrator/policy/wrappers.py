"""Commands that run another command: ``env``, ``nice``, ``timeout``, ``xargs``,
``sudo``, ``nohup``, ``stdbuf``, ``command``, ``exec``, ``busybox`` and the shells'
``-c``. Each is peeled off so the command inside is what the rules judge.

Owns: each wrapper's options (an option we do not know makes the line Unverified:
it could change what runs), which program path counts as its bare name, and what a
wrapper itself adds to the decision (``sudo`` is never safe; ``xargs`` adds arguments
nobody can see). Does not own: the rules (``engine``) or shell grammar (``shell``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .decision import Decision
from .shell import Problem, Word, dangerous_variable

# A program named by path counts as its bare name only from these directories:
# ./rm or ~/bin/rm is someone's own program, not rm.
SYSTEM_BIN_DIRS = frozenset(
    {"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}
)
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"})
# Shell options that take no value and change nothing we judge.
_SHELL_FLAG_LETTERS = frozenset("cleuxvfhBEHPTabkmnpt")
_SHELL_LONG = frozenset({"--login", "--noprofile", "--norc", "--posix", "--noediting"})
NOT_INSPECTED = {
    "eval": "eval runs its arguments as shell code",
    "source": "source runs a script file that is not inspected",
    ".": ". runs a script file that is not inspected",
}


@dataclass(frozen=True, slots=True)
class Spec:
    """A wrapper's options: those without a value, those with one, how many operands
    precede the wrapped command, and what to add to the decision."""

    flags: frozenset[str] = frozenset()
    valued: frozenset[str] = frozenset()  # short "-n" (also "-n5") and long "--x" (also "--x=5")
    operands: int = 0
    assignments: bool = False  # NAME=VALUE words before the command (env, sudo)
    adds: Problem | None = None
    default: tuple[str, ...] = ()  # what runs when no command is given


_SUDO = Problem(Decision.UNVERIFIED, "privilege elevation is never verified safe")
WRAPPERS: dict[str, Spec] = {
    "env": Spec(
        flags=frozenset({"-i", "--ignore-environment", "-0", "--null", "-", "-v", "--debug"}),
        valued=frozenset({"-u", "--unset"}),
        assignments=True,
    ),
    "nice": Spec(valued=frozenset({"-n", "--adjustment"})),
    "nohup": Spec(),
    "time": Spec(flags=frozenset({"-p"})),
    "timeout": Spec(
        flags=frozenset({"--preserve-status", "--foreground", "-v", "--verbose"}),
        valued=frozenset({"-s", "--signal", "-k", "--kill-after"}),
        operands=1,
    ),
    "stdbuf": Spec(valued=frozenset({"-i", "-o", "-e", "--input", "--output", "--error"})),
    "command": Spec(flags=frozenset({"-p"})),
    "exec": Spec(flags=frozenset({"-c", "-l"}), valued=frozenset({"-a"})),
    "sudo": Spec(
        flags=frozenset({"-E", "-H", "-n", "-S", "-k", "-P", "--preserve-env"}),
        valued=frozenset({"-u", "-g", "--user", "--group"}),
        assignments=True,
        adds=_SUDO,
    ),
    "doas": Spec(flags=frozenset({"-n", "-s"}), valued=frozenset({"-u"}), adds=_SUDO),
    "xargs": Spec(
        flags=frozenset(
            {"-0", "--null", "-r", "--no-run-if-empty", "-t", "--verbose", "-x", "--exit"}
        ),
        valued=frozenset(
            {
                "-n",
                "--max-args",
                "-L",
                "--max-lines",
                "-P",
                "--max-procs",
                "-s",
                "--max-chars",
                "-d",
                "--delimiter",
                "-I",
                "-E",
                "-a",
                "--arg-file",
            }
        ),
        default=("echo",),
    ),
    "busybox": Spec(),
}


def program_name(path: str) -> str:
    """``/usr/bin/rm`` → ``rm``; ``./rm``, ``bin/rm``, ``/opt/x/rm`` stay as written."""
    if "/" not in path:
        return path
    directory = os.path.normpath(os.path.dirname(path))
    if directory.startswith("//"):  # POSIX keeps a leading //; the kernel does not care
        directory = "/" + directory.lstrip("/")
    return os.path.basename(path) if directory in SYSTEM_BIN_DIRS else path


@dataclass(slots=True)
class Unwrapped:
    words: list[Word]  # the innermost command; argv[0] already a bare name
    via: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    script: str | None = None  # the innermost command is `SHELL -c script`
    hidden_arguments: bool = False  # xargs appends arguments we cannot see
    stopped: bool = False  # an option we do not know: what runs inside is not known


def unwrap(words: list[Word]) -> Unwrapped:
    out = Unwrapped(words=list(words))
    for _ in range(32):  # `env env env ...` ends; the bound only stops a pathological line
        if not out.words:
            return out
        name = program_name(out.words[0].value)
        out.words = [Word(name), *out.words[1:]]
        if name in SHELLS:
            _shell(out)
            return out
        spec = WRAPPERS.get(name)
        if spec is None:
            if name in NOT_INSPECTED:
                out.problems.append(Problem(Decision.UNVERIFIED, NOT_INSPECTED[name]))
            return out
        if name == "command" and len(out.words) > 1 and out.words[1].value in ("-v", "-V"):
            return out  # a lookup, judged as the program `command`
        rest = _peel(name, spec, out)
        if rest is None:
            out.stopped = True
            return out
        out.via.append(name)
        if spec.adds:
            out.problems.append(Problem(spec.adds.decision, f"{name}: {spec.adds.reason}"))
        if name == "xargs":
            out.hidden_arguments = True
        out.words = rest or [Word(w) for w in spec.default]
        if not out.words:
            out.words = [Word(name)]  # `env` alone prints the environment
            return out
    out.problems.append(Problem(Decision.UNVERIFIED, "too many nested wrappers"))
    return out


def _peel(name: str, spec: Spec, out: Unwrapped) -> list[Word] | None:
    """The words after ``name``'s own options and operands; None (with a problem
    recorded) when an option is not one we know."""
    rest = out.words[1:]
    operands = spec.operands
    while rest:
        value = rest[0].value
        if value == "--":
            rest = rest[1:]
            break
        if spec.assignments and "=" in value and not value.startswith("-"):
            variable = value.split("=", 1)[0]
            if dangerous_variable(variable):
                out.problems.append(
                    Problem(
                        Decision.UNVERIFIED, f"{name} sets {variable}, which decides what code runs"
                    )
                )
            rest = rest[1:]
            continue
        if (value.startswith("-") and value != "-") or value in spec.flags:
            taken = _option_length(value, spec, name)
            if taken is None:
                out.problems.append(
                    Problem(Decision.UNVERIFIED, f"{name}: option {value!r} is not understood")
                )
                return None
            rest = rest[taken:]
            continue
        if operands:
            operands -= 1
            rest = rest[1:]
            continue
        break
    return rest


def _option_length(value: str, spec: Spec, name: str) -> int | None:
    """How many words an option takes (1 or 2); None if unknown."""
    if value in spec.flags:
        return 1
    long_name, eq, _ = value.partition("=")
    if long_name in spec.valued:
        return 1 if eq else 2
    if value[:2] in spec.valued and not value.startswith("--"):
        return 1  # -n5, -uNAME
    if name == "nice" and value[1:].lstrip("-").isdigit():
        return 1  # nice -5
    return None


def _shell(out: Unwrapped) -> None:
    """``bash [-lc|-c ...] SCRIPT [name args...]``: the script is parsed by ``shell``;
    a shell reading a file or its standard input runs code nobody has seen."""
    rest = out.words[1:]
    has_c = False
    while rest:
        value = rest[0].value
        if value == "--":
            rest = rest[1:]
            break
        if value in ("-o", "+o"):
            rest = rest[2:]
            continue
        if value in _SHELL_LONG:
            rest = rest[1:]
            continue
        if value[:1] in "-+" and len(value) > 1 and set(value[1:]) <= _SHELL_FLAG_LETTERS:
            has_c = has_c or (value[0] == "-" and "c" in value)
            rest = rest[1:]
            continue
        if value[:1] in "-+" and len(value) > 1:
            out.problems.append(
                Problem(
                    Decision.UNVERIFIED,
                    f"{out.words[0].value}: option {value!r} is not understood",
                )
            )
            out.stopped = True
            return
        break
    if has_c:
        if not rest:
            out.problems.append(Problem(Decision.UNVERIFIED, "a shell -c without a script"))
            return
        out.script = rest[0].value
        out.via.append(out.words[0].value)
        return
    out.stopped = True
    what = "a script file" if rest else "commands from its standard input"
    out.problems.append(
        Problem(Decision.UNVERIFIED, f"{out.words[0].value} runs {what}, which is not inspected")
    )
