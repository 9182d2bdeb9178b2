"""gitlab-runner's generated stage scripts: what the job may see of them, and what the
execution policy judges.

Owns: taking the job token out of the job's own stages (it clones the sources and
moves artifacts — the runner stages' business — and would let a build script act as
the job against GitLab's API), and recovering the commands the runner's bash script
wraps in ``: | eval $'…'`` so the policy judges the commands, not the wrapper.
Does not own: running the script (``driver``) or the policy (``policy``).

The script reaches the sandbox on stdin (an unlinked file), never in argv: argv is
readable by every user of the host (``/proc/PID/cmdline``) and is what the audit log
records, and the script holds the job's variables, masked ones included.
"""

from __future__ import annotations

import re

MASK = "[MASKED]"
MAX_SCRIPT_BYTES = 32 << 20
# The line gitlab-runner's bash shell writes: `: | eval $'…'` (ANSI-C quoted).
_EVAL = re.compile(r"^: \| eval \$'((?:[^'\\]|\\.)*)'\s*$", re.MULTILINE | re.DOTALL)
_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_ESCAPE = re.compile(
    r"\\(?:x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|([0-7]{1,3})|c(.)|(.))",
    re.DOTALL,
)


def without(text: str, values: tuple[str, ...], *, replacement: str = "") -> str:
    """``text`` with every occurrence of each value replaced (longest first, so a value
    that contains another goes whole)."""
    for value in sorted(values, key=len, reverse=True):
        if value:
            text = text.replace(value, replacement)
    return text


# Lines of the payload that run nothing: the runner's exports of literal values (every
# job variable) and its echo of each command before it runs. $'…' expands nothing, yet
# the policy calls every such line unverified; left in, they would make every job so.
_LITERAL = r"(?:\$'(?:[^'\\\n]|\\.)*'|'[^'\n]*'|[A-Za-z0-9_./:@%+,=-]*)"
_INERT = re.compile(
    rf"^(?:export [A-Za-z_][A-Za-z0-9_]*={_LITERAL}|echo {_LITERAL})$\n?", re.MULTILINE
)


def commands(script: str) -> str:
    """The commands a runner-generated bash script runs: its ``eval`` payload decoded
    (the rest of the script is the runner's fixed frame) without the lines that run
    nothing, else the script itself."""
    found = _EVAL.search(script)
    return script if found is None else _INERT.sub("", decode_ansi_c(found.group(1)))


def decode_ansi_c(body: str) -> str:
    """The text of bash's ``$'…'`` quoting (``body`` without the quotes)."""

    def one(m: re.Match[str]) -> str:
        hex2, u4, u8, octal, control, other = m.groups()
        if hex2 or u4 or u8:
            code = int(hex2 or u4 or u8, 16)
            return chr(code) if code <= 0x10FFFF else "\ufffd"
        if octal:
            return chr(int(octal, 8) & 0xFF)
        if control:
            return chr(ord(control) & 0x1F)
        return _SIMPLE.get(other, "\\" + other)

    return _ESCAPE.sub(one, body)
