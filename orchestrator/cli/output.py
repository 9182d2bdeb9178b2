"""What every verb of the command line shares: errors to one line and an exit code,
JSON output, the terminal prompt, and the one ``HostContext`` a command builds.

Owns: the front door's half of DESIGN.md §4 (an error is one line on stderr and a
documented exit code) and reading ``os.environ`` (once, into the context).
Does not own: any decision — ``runner`` makes them.
"""

from __future__ import annotations

import json
import os
import sys

from orchestrator.core.errors import CodexBoxError, UsageError, did_you_mean

TYPE_CHECKING = False  # `typing` itself is not on `exec`'s path (orchestrator/__init__)
if TYPE_CHECKING:  # Typer is not loaded on the fast path of `run` (cli.fast)
    from typing import Any, NoReturn

    import typer

    from orchestrator.resolve.precedence import Resolution
    from orchestrator.runner.context import HostContext


def host() -> HostContext:
    """The one context of this command: the environment and cwd as they are now."""
    from orchestrator.runner.context import HostContext  # not on `exec`'s path: start-up time

    return HostContext.from_environ(os.environ, cwd=os.getcwd())


def echo(text: str, *, err: bool = False) -> None:
    """One line to stdout (or stderr), flushed: what Typer's echo does for our text,
    without loading Typer."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def fail(exc: CodexBoxError) -> NoReturn:
    echo(f"codex-box: {exc.one_line()}", err=True)
    raise SystemExit(exc.exit_code)  # through Typer untouched, to the app's one way out


def usage(message: str) -> NoReturn:
    """A usage mistake Typer cannot see (exit 2, like Typer's own)."""
    echo(f"codex-box: {message}", err=True)
    raise SystemExit(2)


def emit_json(data: Any, *, err: bool = False) -> None:
    echo(json.dumps(data, indent=None if err else 2, ensure_ascii=False), err=err)


def one_of(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise UsageError(
            f"{flag} {value!r} is not one of the recorded values",
            hint=f"{did_you_mean(value, choices)}use one of: {', '.join(choices)}",
        )


def confirm_on_tty(question: str) -> bool | None:
    """The user's answer; None when there is no terminal to ask on."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    # Not click's confirm: it writes the prompt's last character to stdout (through
    # input()), which would land in the output of the command being approved.
    sys.stderr.write(f"codex-box: {question} [y/N]: ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


def merge_parent_option(ctx: typer.Context, name: str, value: str | None) -> str | None:
    """`codex-box --profile X run …` means `run --profile X`; two different values is an error."""
    outer = ctx.parent.params.get(name) if ctx.parent else None
    if outer is not None and value is not None and outer != value:
        usage(f"--{name} given twice ({outer!r} before `run`, {value!r} after) — give it once")
    return value if value is not None else outer


def warn(resolution: Resolution | None) -> None:
    """Each ignored grant and ignored .codex-profile, one line on stderr (a run also
    puts them in the audit log)."""
    for text in resolution.warnings() if resolution else ():
        echo(f"codex-box: warning: {text}", err=True)
