"""The fast path of ``codex-box run``: a plain, well-formed ``run`` command line is read
here without loading Typer (whose import and command tree cost more than the sandbox).

Owns: recognising the command lines it can read exactly as Typer would, and nothing
more. Anything else — ``--help``, a global option before ``run``, an unknown or
repeated option, ``--opt=`` with no value, a value that looks like an option, bundled
short flags, no command, ``CODEX_BOX_DEBUG`` — is declined (None) and Typer reads it,
so help, usage errors and their exit codes are Typer's own. ``tests/unit/cli/
test_fast_path.py`` checks, over a grammar of command lines, that every one read here
is read exactly as Typer reads it.
Also ``RunArgs``, what both readings hand to ``cli.launch``. Imports nothing of
codex-box: reading a command line loads no runner.
Does not own: what a run does (``cli.launch``, shared with the Typer verb).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .argv_scan import scan


@dataclass(frozen=True, slots=True, kw_only=True)
class RunArgs:
    """``run``'s options and command, as the command line gave them (after a global
    ``--profile``/``--workspace`` before ``run`` was merged in)."""

    command: tuple[str, ...]
    profile: str | None = None
    workspace: str | None = None
    backend: str | None = None
    env: tuple[str, ...] = ()
    timeout: str | None = None
    memory: str | None = None
    pids: str | None = None
    cpus: str | None = None
    image: str | None = None
    tty: bool = False
    trust: bool = False
    approve: bool = False
    policy_mode: str | None = None
    print_spec: bool = False
    as_json: bool = False
    server: str | None = None  # through `codex-box serve` (cli.remote)
    # --devcontainer [PATH]: "" the workspace's devcontainer.json; None not asked
    # (config.toml's [sandbox] devcontainer = "auto" may still pick one up).
    devcontainer: str | None = None


# ``run``'s options (cli.run's Typer signature): name → RunArgs field.
VALUE_OPTIONS = {
    "--profile": "profile",
    "-p": "profile",
    "--workspace": "workspace",
    "--backend": "backend",
    "--env": "env",
    "-e": "env",
    "--timeout": "timeout",
    "--memory": "memory",
    "--pids": "pids",
    "--cpus": "cpus",
    "--image": "image",
    "--policy-mode": "policy_mode",
    "--server": "server",
}
FLAG_OPTIONS = {
    "--tty": "tty",
    "-t": "tty",
    "--yes-i-trust-this-workspace": "trust",
    "--approve": "approve",
    "--print-spec": "print_spec",
    "--json": "as_json",
}


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> RunArgs | None:
    """``argv`` (without the program name) as ``RunArgs`` when it is a ``run`` this
    reads exactly as Typer would; None to let Typer read it."""
    scanned = scan(argv, "run", VALUE_OPTIONS, FLAG_OPTIONS, environ)
    if scanned is None:
        return None
    fields, env, command = scanned
    return RunArgs(command=command, env=env, **fields)
