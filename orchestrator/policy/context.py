"""Where a command runs, as the policy sees it, and what depends on that place rather
than on the command line: which file a bare program name runs (the sandbox's PATH),
which startup files a shell reads, and which configuration git reads.

Owns: ``Context`` (built by ``gate.context_of`` from the sandbox spec), the state one
evaluation collects (``Scan``), and the checks that need both.
Does not own: the rules (``engine``), PATH and startup-file lookup (``lookup``), git
repository discovery (``gitrepo``), path arithmetic (``paths``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.host import gitrepo

from .lookup import looked_up, path_problem, startup_problem
from .paths import writable
from .wrappers import SHELLS, Unwrapped


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """Where the command would run, for the paths it writes."""

    cwd: str
    home: str
    # Realpaths the profile lets the command write; None: no sandbox (trusted), where
    # only a rule's forbidden paths stop a write.
    writable_roots: tuple[str, ...] | None = ()
    protected_paths: tuple[str, ...] = ()
    # The command's own environment (the sandbox spec's): its PATH decides which file
    # a bare program name runs, HOME and BASH_ENV which startup files a shell reads,
    # GIT_DIR and HOME which git configuration is read. None: not known, and no PATH
    # lookup is judged.
    env: tuple[tuple[str, str], ...] | None = None


@dataclass(slots=True)
class Scan:
    """What one evaluation collects on the way: the resolved paths its matches write
    and the git commands to check once every write on the line is known (a write
    before git runs can plant the configuration it reads)."""

    env: dict[str, str]
    written: list[str] = field(default_factory=list)
    gits: list[tuple[tuple[str, ...], Context]] = field(default_factory=list)
    lookups: dict[str, str | None] = field(default_factory=dict)


def writable_in(context: Context) -> Callable[[str], bool] | None:
    """Whether a path is writable in the sandbox; None without one (trusted)."""
    if context.writable_roots is None:
        return None
    return lambda path: writable(path, context)


def launch_problems(
    unwrapped: Unwrapped, context: Context, scan: Scan, *, in_shell: bool
) -> list[str]:
    """Each program found through the sandbox's PATH that a planted file could replace,
    and a shell's startup file the sandbox can write."""
    problems = []
    path = scan.env.get("PATH")
    if context.env is not None and path is not None:
        for name in looked_up(unwrapped.launched, in_shell=in_shell):
            if name not in scan.lookups:
                scan.lookups[name] = path_problem(name, path, writable=writable_in(context))
            if problem := scan.lookups[name]:
                problems.append(problem)
    shell = unwrapped.words[0].value if unwrapped.words else ""
    if shell in SHELLS and (
        problem := startup_problem(
            shell,
            login=unwrapped.login_shell,
            env=scan.env,
            home=context.home,
            cwd=context.cwd,
            writable=writable_in(context),
        )
    ):
        problems.append(problem)
    return problems


def git_problem(argv: tuple[str, ...], context: Context, scan: Scan) -> str | None:
    repository = gitrepo.inspect(
        argv, cwd=context.cwd, env=scan.env, home=context.home, writable=writable_in(context)
    )
    if repository.problem:
        return repository.problem
    if path := gitrepo.planted(repository, scan.written):
        return (
            f"the line writes {path}, where this git command looks for its repository "
            "configuration (which can make git run a program)"
        )
    return None
