"""The real values of a run's brokered secrets, read on the host just before launch.

Owns: reading each secret's source — a variable of codex-box's own environment, a file
(``~`` is the user's home), or a command run on the host, outside any sandbox, once per
run (or session) — and refusing a value that is missing, empty or unfit for an HTTP
header. Every error names the secret and its source and never shows the value; it is a
ConfigError (exit 125) raised before anything is launched.
Does not own: where values go (``netproxy.broker``, in this process's memory only: not
the spec, the environment, a file or a log).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterable, Mapping

from orchestrator.core.brokered import BrokeredSecret, SecretBinding
from orchestrator.core.errors import ConfigError
from orchestrator.core.spec import SandboxSpec

from .context import HostContext

COMMAND_TIMEOUT_S = 30.0
MAX_VALUE = 16 * 1024
# Visible ASCII only: a CR or LF would let a value add headers of its own upstream,
# and a space or a non-ASCII byte is no token anyone issues.
_VALUE = re.compile(r"[\x21-\x7e]+")


def secret_values(spec: SandboxSpec, context: HostContext) -> dict[str, str] | None:
    """The values of the secrets ``spec``'s proxy brokers (None: it brokers none)."""
    if spec.egress is None or not spec.egress.secrets:
        return None
    return read_values(spec.egress.secrets, environ=context.environ, home=context.user_home)


def read_values(
    bindings: Iterable[SecretBinding | BrokeredSecret], *, environ: Mapping[str, str], home: str
) -> dict[str, str]:
    return {b.name: _read(b, environ, home) for b in bindings}


def _read(binding: SecretBinding | BrokeredSecret, environ: Mapping[str, str], home: str) -> str:
    kind, *rest = binding.source
    shown = f"secret {binding.name} (from {binding.shown_source()})"
    if kind == "env":
        value = environ.get(rest[0])
        if value is None:
            raise ConfigError(
                f"{shown}: {rest[0]} is not set", hint=f"export {rest[0]} before codex-box runs"
            )
    elif kind == "file":
        path = os.path.join(home, rest[0][2:]) if rest[0].startswith("~/") else rest[0]
        value = _read_file(path, shown)
    else:
        value = _run(rest, shown, environ)
    value = value.strip()
    if not value:
        raise ConfigError(f"{shown}: the value is empty", hint="set the secret's value")
    if len(value) > MAX_VALUE or not _VALUE.fullmatch(value):
        raise ConfigError(
            f"{shown}: the value is not a token (only visible ASCII, at most {MAX_VALUE} bytes)",
            hint="store the token alone, without spaces or line breaks inside it",
        )
    return value


def _read_file(path: str, shown: str) -> str:
    """A regular file's first bytes. Non-blocking and checked: a FIFO or a device put
    where the token file was would otherwise hang every launch on ``open``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(
            f"{shown}: cannot read {path}: {exc.strerror}",
            hint="create the file, or point 'from:' at the right one",
        ) from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(
                f"{shown}: {path} is not a regular file",
                hint="store the token in a plain file",
            )
        return handle.read(MAX_VALUE + 1).decode("latin-1")


def _run(argv: list[str], shown: str, environ: Mapping[str, str]) -> str:
    try:
        # The user's own profile names the command; it runs on the host, unsandboxed.
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=dict(environ),
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{shown}: {argv[0]} not found", hint="install it, or fix the command"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(
            f"{shown}: the command did not finish in {COMMAND_TIMEOUT_S:.0f} s",
            hint="unlock the store first (e.g. gpg-agent), then run again",
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"{shown}: cannot run {argv[0]}: {exc.strerror}", hint="fix the command"
        ) from exc
    if done.returncode != 0:
        # Not its output: a failing password manager may still print part of a secret.
        raise ConfigError(
            f"{shown}: the command exited {done.returncode}",
            hint="run it by hand to see why",
        )
    return done.stdout.decode("latin-1")
