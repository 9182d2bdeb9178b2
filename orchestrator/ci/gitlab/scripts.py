"""gitlab-runner's generated stage scripts: what the execution policy judges, what the
job may see of them, and what of the job reaches the runner's own stages.

Owns: recovering the commands the runner's bash script wraps in ``: | eval $'…'``
(decoded byte for byte, as bash does); the runner's own statements in it that run
nothing (its ``export`` of each job variable as a literal, its ``echo`` of each command),
found by the bash grammar as whole top-level statements — never by lines, which a
preceding ``\\`` or an open quote would join to what follows; taking secrets out of a
text; and taking the job's variables that decide which code runs (``GIT_CONFIG_*``,
``LD_PRELOAD``, ``PATH``, …) out of the runner's stages, which hold the job token.
Does not own: running the script (``driver``) or the policy (``policy``).

The script reaches the sandbox on stdin (an unlinked file), never in argv: argv is
readable by every user of the host (``/proc/PID/cmdline``) and is what the audit log
records, and the script holds the job's variables, masked ones included.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.policy.shell import dangerous_variable

from .protocol import ProtocolError

if TYPE_CHECKING:
    from tree_sitter import Parser

MASK = "[MASKED]"
MAX_SCRIPT_BYTES = 32 << 20
# The line gitlab-runner's bash shell writes: `: | eval $'…'` (ANSI-C quoted); with
# FF_USE_NEW_BASH_EVAL_STRATEGY, `: | (eval $'…')`.
_EVAL = re.compile(r"^: \| (\(?)eval \$'((?:[^'\\]|\\.)*)'(\)?)[ \t]*$", re.MULTILINE | re.DOTALL)
_SIMPLE = {
    "a": b"\a",
    "b": b"\b",
    "e": b"\x1b",
    "E": b"\x1b",
    "f": b"\f",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
    "\\": b"\\",
    "'": b"'",
    '"': b'"',
    "?": b"?",
}
_ESCAPE = re.compile(
    r"\\(?:x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|([0-7]{1,3})|c(.)|(.))",
    re.DOTALL,
)
# A word with nothing for bash to expand: $'…', '…', or plain characters.
_LITERAL = r"(?:\$'(?:[^'\\]|\\.)*'|'[^']*'|[A-Za-z0-9_./:@%+,=-]*)"
_EXPORT = re.compile(rf"export ([A-Za-z_][A-Za-z0-9_]*)={_LITERAL}", re.DOTALL)
_ECHO = re.compile(rf"echo {_LITERAL}", re.DOTALL)
# The runner's own knobs among GIT_*: read when it writes the script, or harmless to git.
RUNNER_KNOBS = frozenset(
    {
        "GIT_STRATEGY",
        "GIT_DEPTH",
        "GIT_CHECKOUT",
        "GIT_CLEAN_FLAGS",
        "GIT_FETCH_EXTRA_FLAGS",
        "GIT_CLONE_PATH",
        "GIT_SUBMODULE_STRATEGY",
        "GIT_SUBMODULE_DEPTH",
        "GIT_SUBMODULE_PATHS",
        "GIT_SUBMODULE_UPDATE_FLAGS",
        "GIT_SUBMODULE_FORCE_HTTPS",
        "GIT_LFS_SKIP_SMUDGE",
        "GIT_TERMINAL_PROMPT",
    }
)
# Never in the runner's stages as a job set them: besides what decides which code runs,
# where the proxy is and where TLS roots come from.
_NOT_FOR_RUNNER = frozenset(
    {"TMPDIR", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
     "all_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"}
)  # fmt: skip


def code_deciding(name: str) -> bool:
    """A variable that decides which code a program runs (``policy.shell``'s list), or
    where its traffic goes; the runner's own GIT_* knobs excepted."""
    return name not in RUNNER_KNOBS and (dangerous_variable(name) or name in _NOT_FOR_RUNNER)


def without(text: str, values: tuple[str, ...], *, replacement: str = "") -> str:
    """``text`` with every occurrence of each value replaced: the union of all matches in
    the original text, each merged span replaced once (replacing values one after
    another could leave parts of overlapping ones), until none is left (with an empty
    replacement, ``ab`` + value + ``cd`` would re-form ``abcd``). Each pass shortens
    the text, so this ends."""
    while True:
        replaced = _without_once(text, values, replacement)
        if replaced == text or not any(v and v in replaced for v in values):
            return replaced
        text = replaced


def _without_once(text: str, values: tuple[str, ...], replacement: str) -> str:
    spans: list[tuple[int, int]] = []
    for value in {v for v in values if v}:
        start = text.find(value)
        while start >= 0:
            spans.append((start, start + len(value)))
            start = text.find(value, start + 1)
    if not spans:
        return text
    spans.sort()
    out, at, end = [], 0, -1
    for s, e in spans:
        if s > end:
            if end >= 0:
                out.append(replacement)
            out.append(text[at:s])
        end = max(end, e)
        at = end
    out.append(replacement)
    out.append(text[at:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Statement:
    start: int  # byte offsets in the payload, the newline after it included
    end: int
    kind: str  # "export" or "echo"
    name: str  # the exported variable ("" for echo)


def commands(script: str) -> str:
    """The commands a runner-generated bash script runs, for the policy: its ``eval``
    payload decoded, without the runner's literal ``echo``s and its literal ``export``s
    of variables that decide no code (an ``export LD_PRELOAD=…`` stays, for the policy
    to see). A script of another shape is judged whole."""
    found = _EVAL.search(script)
    if found is None:
        return script
    payload = decode_ansi_c(found.group(2))
    drop = [
        s for s in _top_level_literals(payload) if s.kind == "echo" or not code_deciding(s.name)
    ]
    return _cut(payload, drop)


# A line of the payload that exports a variable, whatever form its value takes ($'…'
# from ShellEscape, "…" from Go's %q for File variables): the runner writes each on a
# line of its own, and every value's newlines are escaped.
_EXPORT_LINE = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=[^\n]*(?:\n|\Z)", re.MULTILINE)


def for_runner_stage(script: str) -> tuple[str, tuple[str, ...]]:
    """The runner stage's script without the job's exports of code-deciding variables
    (a job's GIT_CONFIG_*, LD_PRELOAD or PATH would run its own code where the job
    token is); the names left out. A runner stage's payload is all the runner's (no
    line of the job's script is in it; the job gives only values, escaped), so its
    export lines are found line by line, without the grammar (which fails on some
    values: a job could make it drop nothing). Raises ProtocolError for a script of
    another shape: what it would export cannot be known, so it does not run."""
    found = _EVAL.search(script)
    if found is None:
        raise ProtocolError(
            "the runner stage's script is not the bash script gitlab-runner writes",
            hint='set shell = "bash" in the runner\'s [[runners]] section',
        )
    payload = decode_ansi_c(found.group(2))
    dropped: list[str] = []

    def keep(m: re.Match[str]) -> str:
        if code_deciding(m.group(1)):
            dropped.append(m.group(1))
            return ""
        return m.group(0)

    body = encode_ansi_c(_EXPORT_LINE.sub(keep, payload))
    rebuilt = f": | {found.group(1)}eval {body}{found.group(3)}"
    return script[: found.start()] + rebuilt + script[found.end() :], tuple(dict.fromkeys(dropped))


def _cut(payload: str, drop: list[_Statement]) -> str:
    data = payload.encode("utf-8", "surrogateescape")
    out, at = [], 0
    for s in sorted(drop, key=lambda s: s.start):
        out.append(data[at : s.start])
        at = s.end
    out.append(data[at:])
    return b"".join(out).decode("utf-8", "surrogateescape")


def _top_level_literals(payload: str) -> list[_Statement]:
    """The top-level statements of ``payload`` that are a literal ``export NAME=…`` or
    ``echo …`` as a whole and alone on their lines, by the bash grammar; none when it
    does not parse (then the policy judges everything)."""
    source = payload.encode("utf-8", "surrogateescape")
    if max(payload, default="") >= "\U00020000":  # tree-sitter-bash's crash (policy.shell)
        return []
    tree = _parser().parse(source)
    if tree.root_node.has_error:
        return []
    found = []
    for node in tree.root_node.children:
        if not _alone_on_its_lines(source, node.start_byte, node.end_byte):
            continue  # `echo a; rm -rf /`: cutting `echo a` would leave `; rm -rf /`
        text = source[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")
        end = node.end_byte + (1 if source[node.end_byte : node.end_byte + 1] == b"\n" else 0)
        if node.type == "declaration_command" and (m := _EXPORT.fullmatch(text)):
            found.append(_Statement(node.start_byte, end, "export", m.group(1)))
        elif node.type == "command" and _ECHO.fullmatch(text):
            found.append(_Statement(node.start_byte, end, "echo", ""))
    return found


def _alone_on_its_lines(source: bytes, start: int, end: int) -> bool:
    """Nothing but blanks between the statement and the line breaks around it."""
    line_start = source.rfind(b"\n", 0, start) + 1
    line_end = source.find(b"\n", end)
    after = source[end : len(source) if line_end < 0 else line_end]
    return not source[line_start:start].strip(b" \t") and not after.strip(b" \t")


@functools.cache
def _parser() -> Parser:
    import tree_sitter_bash
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_bash.language()))


def decode_ansi_c(body: str) -> str:
    """The text of bash's ``$'…'`` quoting (``body`` without the quotes): escapes are
    bytes (gitlab-runner writes each byte of a UTF-8 character as ``\\xHH``)."""
    out = bytearray()
    at = 0
    for m in _ESCAPE.finditer(body):
        out += body[at : m.start()].encode("utf-8", "surrogateescape")
        at = m.end()
        hex2, u4, u8, octal, control, other = m.groups()
        if hex2:
            out.append(int(hex2, 16))
        elif u4 or u8:
            code = int(u4 or u8, 16)
            out += (chr(code) if code <= 0x10FFFF else "\ufffd").encode("utf-8", "surrogatepass")
        elif octal:
            out.append(int(octal, 8) & 0xFF)
        elif control:
            out.append(ord(control) & 0x1F)
        else:
            out += _SIMPLE.get(other, ("\\" + other).encode("utf-8", "surrogateescape"))
    out += body[at:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


def encode_ansi_c(text: str) -> str:
    """``text`` as bash's ``$'…'``, the way gitlab-runner writes it (every byte that is
    not printable ASCII as ``\\xHH``)."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"
