"""Reading a verb's command line the way Typer would, without Typer: what the fast
paths of ``run`` (``cli.fast``) and ``exec`` (``cli.exec_fast``) share.

Owns: the scan of ``VERB [options] [--] COMMAND...`` for a fixed table of options.
Declines (None) whatever Typer must read itself: help, an unknown or repeated option,
``--opt=`` with no value, a value that looks like an option, bundled short flags, no
command, ``CODEX_BOX_DEBUG``. Imports nothing (``exec``'s start-up counts every module).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

REPEATABLE = "env"  # the one option given many times (``--env A --env B``)


def scan(
    argv: Sequence[str],
    verb: str,
    values: Mapping[str, str],
    flags: Mapping[str, str],
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]] | None:
    """(fields by name, ``--env`` values, the command) of ``argv`` (without the program
    name), or None to let Typer read it. ``values``/``flags``: option → field."""
    if not argv or argv[0] != verb or environ.get("CODEX_BOX_DEBUG"):
        return None
    fields: dict[str, Any] = {}
    env: list[str] = []
    command: Sequence[str] = ()
    i = 1
    while i < len(argv):
        token = argv[i]
        if token == "--":  # noqa: S105 -- a command-line token, not a password
            command = argv[i + 1 :]
            break
        if token == "-" or not token.startswith("-"):  # noqa: S105
            command = argv[i:]  # options stop at the command: `run ls -la`
            break
        name, has_value, inline = (
            token.partition("=") if token.startswith("--") else (token, "", "")
        )
        if name in flags and not has_value:
            if flags[name] in fields:
                return None
            fields[flags[name]] = True
            i += 1
            continue
        if name not in values:
            return None  # --help, -h, a typo, -tp, -poffline: Typer's to read or refuse
        if has_value:
            value = inline
        elif i + 1 < len(argv):
            i += 1
            value = argv[i]
        else:
            return None
        field = values[name]
        if not value or value.startswith("-") or (field in fields and field != REPEATABLE):
            return None
        if field == REPEATABLE:
            env.append(value)
        else:
            fields[field] = value
        i += 1
    if not command:
        return None
    return fields, tuple(env), tuple(command)


# Options whose value may be left out (``--devcontainer`` alone: the workspace's file).
OPTIONAL_VALUE = ("--devcontainer",)


def bare_optional(argv: list[str]) -> list[str]:
    """``argv`` with each option of ``OPTIONAL_VALUE`` given no value written as
    ``--option=`` (Click would take the next word, even ``--``, as its value). Only
    before ``--``: the command after it is not ours to read."""
    out = list(argv)
    for i, word in enumerate(out):
        if word == "--":
            break
        following = out[i + 1] if i + 1 < len(out) else None
        if word in OPTIONAL_VALUE and (following is None or following.startswith("-")):
            out[i] = word + "="
    return out
