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
from .getopt import Arity, parse_option
from .shell import Problem, Word, dangerous_variable

# A program named by path counts as its bare name only from these directories:
# ./rm or ~/bin/rm is someone's own program, not rm.
SYSTEM_BIN_DIRS = frozenset(
    {"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}
)
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"})
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
    # getopt's optional arguments: only "-l5" / "--max-lines=5"; "--max-lines touch"
    # leaves "touch" as the command (read as a value, the command would hide).
    optional: frozenset[str] = frozenset()
    operands: int = 0
    assignments: bool = False  # NAME=VALUE words before the command (env, sudo)
    adds: Problem | None = None
    default: tuple[str, ...] = ()  # what runs when no command is given

    @property
    def table(self) -> dict[str, tuple[str, Arity]]:
        arities = ((self.flags, Arity.NONE), (self.valued, Arity.REQUIRED))
        table = {n: (n, arity) for names, arity in arities for n in names}
        return table | {n: (n, Arity.OPTIONAL) for n in self.optional}


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
    # GNU findutils xargs: its whole option list (an unknown one stops the reading).
    "xargs": Spec(
        flags=frozenset(
            {
                "-0",
                "--null",
                "-r",
                "--no-run-if-empty",
                "-t",
                "--verbose",
                "-x",
                "--exit",
                "-p",
                "--interactive",
                "-o",
                "--open-tty",
                "--show-limits",
            }
        ),
        valued=frozenset(
            {
                "-n",
                "--max-args",
                "-L",
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
        optional=frozenset({"-l", "--max-lines", "-i", "--replace", "-e", "--eof"}),
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
    # argv[0] of each program started on the way in, as written: a bare name is
    # looked up in PATH when it runs (the engine checks where that lookup can land).
    launched: list[str] = field(default_factory=list)
    login_shell: bool = False  # a shell -l/--login: it reads the profile files first
    script: str | None = None  # the innermost command is `SHELL -c script`
    hidden_arguments: bool = False  # xargs appends arguments we cannot see
    stopped: bool = False  # an option we do not know: what runs inside is not known


def unwrap(words: list[Word]) -> Unwrapped:
    out = Unwrapped(words=list(words))
    for _ in range(32):  # `env env env ...` ends; the bound only stops a pathological line
        if not out.words:
            return out
        out.launched.append(out.words[0].value)
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
            taken = _option_length(value, [w.value for w in rest[1:2]], spec, name)
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


def _option_length(value: str, following: list[str], spec: Spec, name: str) -> int | None:
    """How many words an option takes (1 or 2), read as getopt_long reads it (unique
    long prefixes, clusters, optional arguments); None if unknown."""
    if value in spec.flags:
        return 1
    if name == "nice" and value[1:].lstrip("-").isdigit():
        return 1  # nice -5
    parsed = parse_option(value, following, spec.table)
    return None if parsed is None else parsed[1]


# Shell options (bash's invocation letters and `set -o` names) and what they do to the
# command line the splitter reads. Harmless ones change nothing judged, or only make
# the shell do less (-f: no globbing, -n: run nothing, -C: no clobbering).
_SHELL_HARMLESS_LETTERS = frozenset("abefhmnprtuvxBCEPT")
_SHELL_HARMLESS_NAMES = frozenset(
    {"allexport", "braceexpand", "emacs", "errexit", "errtrace", "functrace", "hashall",
     "ignoreeof", "monitor", "noclobber", "noexec", "noglob", "nolog", "notify", "nounset",
     "onecmd", "physical", "pipefail", "posix", "privileged", "verbose", "vi", "xtrace"}
)  # fmt: skip
# Options that make the line mean something the splitter does not model.
_SHELL_PARSING = {
    "k": "-k (keyword): NAME=VALUE words anywhere in a command become its environment "
    "(GIT_CONFIG_*=..., LD_PRELOAD=... hidden among the arguments)",
    "H": "-H (histexpand): ! history expansion rewrites the line before it runs",
    "i": "-i (interactive): it reads ~/.bashrc and expands aliases",
    "keyword": "-o keyword: NAME=VALUE words anywhere in a command become its environment",
    "histexpand": "-o histexpand: ! history expansion rewrites the line before it runs",
    "history": "-o history: with history expansion, earlier lines are replayed",
    "+interactive-comments": "+o interactive-comments: # no longer starts a comment, so "
    "what the splitter reads as a comment runs",
}
_SHELL_LONG = frozenset({"--noprofile", "--norc", "--posix", "--noediting"})
_SHELL_LOGIN = frozenset({"--login", "-login"})
_STARTUP = "reads a startup file that is not inspected"
_SHELL_LONG_PROBLEMS = {"--rcfile": _STARTUP, "--init-file": _STARTUP}
_SHELL_GRAMMAR = {  # shells whose grammar is not bash's, beyond what the splitter reads
    "zsh": "zsh is not bash: glob qualifiers *(e:...:) and =cmd run code the bash "
    "grammar does not see, and it reads ~/.zshenv",
}


def _shell(out: Unwrapped) -> None:
    """``bash [-lc|-c ...] SCRIPT [name args...]``: the script is parsed by ``shell``;
    a shell reading a file or its standard input runs code nobody has seen, and an
    option that changes how the shell parses makes the script mean something else."""
    shell = out.words[0].value
    if shell in _SHELL_GRAMMAR:
        out.problems.append(Problem(Decision.UNVERIFIED, _SHELL_GRAMMAR[shell]))
    rest = [w.value for w in out.words[1:]]
    has_c = False
    while rest:  # bash's long options come first, then letter clusters
        value = rest[0]
        if value in _SHELL_LONG or value in _SHELL_LOGIN:
            out.login_shell = out.login_shell or value in _SHELL_LOGIN
            rest = rest[1:]
            continue
        if value in _SHELL_LONG_PROBLEMS:
            _stop(out, f"{shell} {value}: {_SHELL_LONG_PROBLEMS[value]}")
            return
        break
    while rest:
        value = rest.pop(0)
        if value in ("--", "-"):
            break
        if value[:1] not in "-+" or len(value) < 2 or value.startswith("--"):
            rest.insert(0, value)
            if value.startswith("--"):
                _stop(out, f"{shell}: option {value!r} is not understood")
                return
            break
        on = value[0] == "-"
        for letter in value[1:]:
            if letter in "oO":  # each takes the next word, in order: -eo pipefail
                name = rest.pop(0) if rest else ""
                problem = _set_option(letter, name, on=on)
                if problem:
                    _stop(out, f"{shell} {value[0]}{letter} {name}: {problem}")
                    return
            elif letter == "c" and on:
                has_c = True
            elif letter == "l" and on:
                out.login_shell = True
            elif letter in _SHELL_PARSING and on:
                _stop(out, f"{shell}: {_SHELL_PARSING[letter]}")
                return
            elif letter not in _SHELL_HARMLESS_LETTERS:
                _stop(out, f"{shell}: option {value!r} is not understood")
                return
    if has_c:
        if not rest:
            out.problems.append(Problem(Decision.UNVERIFIED, "a shell -c without a script"))
            return
        out.script = rest[0]
        out.via.append(shell)
        return
    what = "a script file" if rest else "commands from its standard input"
    _stop(out, f"{shell} runs {what}, which is not inspected")


def _set_option(letter: str, name: str, *, on: bool) -> str | None:
    """Why ``-o NAME`` / ``+o NAME`` (``-O``: shopt) is not read with confidence."""
    if letter == "O" or not name:
        return "shopt options (extglob, dotglob, expand_aliases…) change globbing and parsing"
    key = name if on else f"+{name}"
    if key in _SHELL_PARSING:
        return _SHELL_PARSING[key].split(": ", 1)[1]
    if name in _SHELL_HARMLESS_NAMES or name == "interactive-comments":
        return None
    if not on and name in ("keyword", "histexpand", "history"):
        return None  # turning a parsing option off restores what the splitter models
    return "not understood"


def _stop(out: Unwrapped, reason: str) -> None:
    out.problems.append(Problem(Decision.UNVERIFIED, reason))
    out.stopped = True
