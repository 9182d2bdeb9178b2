"""The fast path of ``codex-box exec``: a plain, well-formed ``exec`` command line is
read here without loading Typer, and without ``typing`` or ``dataclasses`` either —
an exec's whole cost on this side is reaching the session's keeper.

Owns: recognising the command lines it reads exactly as Typer would (``tests/unit/cli/
test_exec_fast_path.py`` checks it over a grammar of command lines) and ``ExecArgs``,
what both readings hand to ``cli.exec_cmd``. Anything else — help, a typo, a repeated
option, a flag the session fixed at start (``--profile``…: the Typer verb refuses it),
``CODEX_BOX_DEBUG`` — is declined (None) and Typer reads it.
"""

from __future__ import annotations

from .argv_scan import scan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class ExecArgs:
    """``exec``'s options and command, as the command line gave them. A plain class:
    ``dataclasses`` would double the start-up of ``exec``."""

    __slots__ = (
        "approve",
        "as_json",
        "command",
        "cwd",
        "detach",
        "env",
        "server",
        "session",
        "timeout",
    )

    def __init__(
        self,
        *,
        command: tuple[str, ...],
        session: str | None = None,
        cwd: str | None = None,
        env: tuple[str, ...] = (),
        timeout: str | None = None,
        approve: bool = False,
        detach: bool = False,
        as_json: bool = False,
        server: str | None = None,
    ) -> None:
        self.command = command
        self.server = server
        self.session = session
        self.cwd = cwd
        self.env = env
        self.timeout = timeout
        self.approve = approve
        self.detach = detach
        self.as_json = as_json

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecArgs) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"ExecArgs({shown})"


EXEC_VALUES = {
    "--session": "session",
    "-s": "session",
    "--cwd": "cwd",
    "--env": "env",
    "-e": "env",
    "--timeout": "timeout",
    "--server": "server",
}
EXEC_FLAGS = {"--approve": "approve", "--detach": "detach", "--json": "as_json"}


def parse_exec(argv: Sequence[str], environ: Mapping[str, str]) -> ExecArgs | None:
    """``argv`` as ``ExecArgs`` when it is a plain ``exec`` read exactly as Typer would
    read it; None to let Typer read it (help, mistakes, flags a session fixes)."""
    scanned = scan(argv, "exec", EXEC_VALUES, EXEC_FLAGS, environ)
    if scanned is None:
        return None
    fields, env, command = scanned
    return ExecArgs(command=command, env=env, **fields)
