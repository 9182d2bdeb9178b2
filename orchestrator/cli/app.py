"""The ``codex-box`` command line's entry point: the fast path or the Typer tree, and
the process's way out.

Owns: choosing how a command line is read (``cli.fast`` for a plain ``run``, Typer's
tree, ``cli.tree``, for everything else, built for the invoked verb only) and turning
any exit into a documented code (DESIGN.md §4).
Does not own: any verb's options or output (its module), any decision (``runner``).
"""

from __future__ import annotations

import contextlib
import os
import sys

from orchestrator.core.errors import EXIT_SETUP


def main() -> None:
    argv = sys.argv[1:]
    if "--devcontainer" in argv:
        from .argv_scan import bare_optional

        argv = sys.argv[1:] = bare_optional(argv)
    try:
        if argv[:1] == ["exec"]:  # first: `exec` loads none of what `run`'s path does
            from . import exec_fast

            exec_args = exec_fast.parse_exec(argv, os.environ)
            if exec_args is not None:
                from . import exec_cmd

                raise SystemExit(exec_cmd.execute(exec_args))
        from . import fast

        args = fast.parse(argv, os.environ)
        if args is not None:
            from . import launch

            raise SystemExit(launch.execute(args))
        from . import tree

        tree.build(argv)(prog_name="codex-box")
    except SystemExit as exc:
        _exit_now(exc.code)
    # As Typer ends these (typer.core._main), so the fast path of `run` ends them alike.
    except KeyboardInterrupt:
        _exit_now(130)
    except EOFError:
        sys.stderr.write("\nAborted!\n")
        _exit_now(1)
    except BrokenPipeError:  # our reader went away: nothing left to tell it
        _exit_now(1)
    except Exception as exc:  # a bug, not bad input: still one line and a documented code
        if os.environ.get("CODEX_BOX_DEBUG"):
            raise
        sys.stderr.write(
            f"codex-box: internal error: {type(exc).__name__}: {exc} — nothing more "
            "was run; rerun with CODEX_BOX_DEBUG=1 for the traceback and report it\n"
        )
        _exit_now(EXIT_SETUP)


def _exit_now(code: object) -> None:
    """Exit without the interpreter's teardown (20-35 ms per run with an engine SDK
    loaded). Safe because everything durable is already on disk: audit records are
    fsync'd when written, the sandbox is gone, and codex-box registers no atexit work.
    Only our own buffered output remains, flushed here."""
    status = code if isinstance(code, int) else (0 if code is None else EXIT_SETUP)
    if not isinstance(code, int) and code is not None:
        print(code, file=sys.stderr)  # SystemExit("message") semantics
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe: nothing to tell; started with the descriptor closed: None.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(status)
