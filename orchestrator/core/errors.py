"""The one exception root of codex-box and the exit codes it maps to.

Owns: the exception hierarchy and the documented exit codes (DESIGN.md §4).
Does not own: printing or exiting — only ``cli`` does that.

Every error carries the exact input that was wrong (``message``) and how to fix it
(``hint``), so the CLI can print one line a user can act on.
"""

from __future__ import annotations

TYPE_CHECKING = False  # no `typing` on `exec`'s path (orchestrator/__init__)
if TYPE_CHECKING:
    from collections.abc import Iterable

EXIT_USAGE = 2
EXIT_TIMEOUT = 124
EXIT_SETUP = 125  # codex-box failed before the command ran
EXIT_REFUSED = 126  # policy/profile refused the command
EXIT_NOT_FOUND = 127  # command not found inside the sandbox


class CodexBoxError(Exception):
    """Root of every error codex-box raises on purpose."""

    exit_code: int = EXIT_SETUP

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        # One line whatever an input put in the message (a key or path with a newline,
        # a control sequence): a file a sandbox wrote must not forge lines on a terminal
        # or in a log.
        return printable(f"{self.message} — {self.hint}" if self.hint else self.message)


def printable(text: object) -> str:
    """Text with every character that is not printable shown as its escape: a sandbox
    chooses some of what errors and audit records hold (a host name it asked for, a key
    of a file it wrote), and a CR, LF, ESC, a line separator or a bidi override in it
    must not erase, forge or disguise a line on the reader's terminal."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in value)


class ConfigError(CodexBoxError):
    """A profile, config or policy file (or flag value) is malformed or unknown."""


class BackendUnavailable(CodexBoxError):
    """No backend can enforce the spec on this machine."""


class SandboxSetupError(CodexBoxError):
    """The sandbox could not be set up exactly as asked; nothing was run."""


class AppArmorError(CodexBoxError):
    """codex-box's AppArmor profiles cannot be checked or loaded here (no parser, no
    AppArmor in the kernel, not root, or a profile does not compile)."""


class AuditError(CodexBoxError):
    """The audit log cannot be written; codex-box refuses to launch without it."""


class UsageError(CodexBoxError):
    """A flag's value is malformed (``--timeout xyz``): the command line is wrong."""

    exit_code = EXIT_USAGE


class Cancelled(CodexBoxError):
    """The caller went away before the command started (``serve``: the client
    disconnected); nothing was launched."""


class Refused(CodexBoxError):
    """The profile (or, later, the execution policy) refuses this launch."""

    exit_code = EXIT_REFUSED


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean 'offline'? "`` when a close match exists, else ``""``."""
    import difflib  # only when there is a mistake to name: start-up time

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""
