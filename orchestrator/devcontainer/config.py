"""Finding and reading a project's ``devcontainer.json``.

Owns: where the file is (``.devcontainer/devcontainer.json``, else
``.devcontainer.json``, as the Dev Containers spec looks), and reading it as JSONC
(comments, trailing commas) with the ``json5`` parser from PyPI — a superset of JSONC,
so a file VS Code accepts is accepted — bounded in size, every failure one line naming
the file. Does not own: what the configuration may ask for (``vetting``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

MAX_BYTES = 1 << 20  # a devcontainer.json is a few KiB; a bigger one is not one
CANDIDATES = (Path(".devcontainer") / "devcontainer.json", Path(".devcontainer.json"))


def find_config(workspace: str | os.PathLike[str]) -> Path | None:
    """The workspace's devcontainer.json, as the spec looks for it; None without one."""
    for candidate in CANDIDATES:
        path = Path(workspace) / candidate
        if path.is_file():
            return path
    return None


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The configuration at ``path`` (a JSONC object); ConfigError naming the file for
    anything else: missing, unreadable, too big, not JSONC, not an object."""
    return read_config_text(path)[0]


def read_config_text(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """``read_config``, and the file's text as written (what another parser may read
    differently: checked for host variables as text, too)."""
    import json5  # only where a devcontainer.json is read (start-up time)

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="pass --devcontainer PATH to a readable devcontainer.json",
        ) from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"{path} is over {MAX_BYTES >> 10} KiB", hint="is it a devcontainer.json?"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    try:
        data = json5.loads(text)
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply to read") from exc
    except (ValueError, OverflowError, TypeError, IndexError) as exc:  # json5: line, column
        raise ConfigError(
            f"{path}: not valid JSONC ({str(exc).splitlines()[0][:200]})",
            hint="devcontainer.json is JSON with comments and trailing commas",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a devcontainer.json is a JSON object, not {type(data).__name__}"
        )
    # json5 reads more than JSONC (single quotes, unquoted keys, hex): a file only it
    # understands is one the Dev Containers CLI (and VS Code) read differently — a key
    # json5 sees inside a string is a key to them. Only what both read alike is read.
    try:
        strict = json.loads(strict_json(text), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{path}: not strict JSONC ({str(exc).splitlines()[0][:160]})",
            hint="use JSON with // or /* */ comments and trailing commas only (no single "
            "quotes, unquoted keys or other JSON5): other tools read those differently",
        ) from exc
    if strict != data:
        raise ConfigError(
            f"{path}: JSONC and JSON5 read it differently",
            hint="write plain JSON with comments and trailing commas",
        )
    return data, text


def strict_json(text: str) -> str:
    """``text`` (JSONC) as JSON: comments out, trailing commas out; strings untouched.
    ValueError for an unterminated string or comment."""
    chunks: list[tuple[bool, str]] = []  # (is a string, text)
    plain: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ValueError("an unterminated string")
            chunks += [(False, "".join(plain)), (True, text[i : j + 1])]
            plain, i = [], j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ValueError("an unterminated /* comment")
            plain.append(" ")
            i = j + 2
        else:
            plain.append(c)
            i += 1
    chunks.append((False, "".join(plain)))
    return "".join(part if quoted else _TRAILING.sub(r"\1", part) for quoted, part in chunks)


_TRAILING = re.compile(r",(\s*[}\]])")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
