"""Finding and reading a project's ``devcontainer.json``.

Owns: where the file is (``.devcontainer/devcontainer.json``, else
``.devcontainer.json``, as the Dev Containers spec looks), and reading it as JSONC
(comments, trailing commas) with the ``json5`` parser from PyPI — a superset of JSONC,
so a file VS Code accepts is accepted — bounded in size, every failure one line naming
the file. Does not own: what the configuration may ask for (``vetting``).
"""

from __future__ import annotations

import os
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
    return data, text
