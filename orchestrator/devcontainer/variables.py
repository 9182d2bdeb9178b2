"""The Dev Containers spec's ``${...}`` variables, as codex-box gives them values.

Owns: ``substitute`` (``${localWorkspaceFolder}``, ``${containerWorkspaceFolder}`` — the
same path: codex-box binds the workspace at its host path — their ``Basename``s,
``${localEnv:HOME}`` and the user's name, ``${containerEnv:NAME}`` from the sandbox's
own environment) and ``host_variables``: every ``${localEnv:NAME}`` a file asks for
that is not one of those. The Dev Containers CLI fills those from the host's
environment; in a sandbox that would carry the host's secrets in (``AWS_SECRET_…``,
a token) past the profile's filter, so ``vetting`` refuses them, and they must be
found in the file as written, before any tool substitutes them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

_VARIABLE = re.compile(r"\$\{([A-Za-z]+)(?::([^}:]*))?(?::([^}]*))?\}")
# Host variables that name the user or their home, nothing secret: allowed.
HARMLESS_LOCAL = frozenset({"HOME", "USERPROFILE", "USER", "USERNAME", "LOGNAME"})


def substitute(
    text: str, *, workspace: str, local: Mapping[str, str], container: Mapping[str, str]
) -> str:
    """``text`` with every known variable replaced; an unknown one is left as written
    (the command then sees it, as the Dev Containers CLI leaves it)."""

    def value(match: re.Match[str]) -> str:
        kind, name, default = match.group(1), match.group(2), match.group(3)
        if kind in ("localWorkspaceFolder", "containerWorkspaceFolder"):
            return workspace
        if kind in ("localWorkspaceFolderBasename", "containerWorkspaceFolderBasename"):
            return os.path.basename(workspace.rstrip("/"))
        if kind in ("localEnv", "env") and name in HARMLESS_LOCAL:
            return local.get(name) or default or ""
        if kind == "containerEnv" and name:
            return container.get(name) or default or ""
        return match.group(0)

    return _VARIABLE.sub(value, text)


def host_variables(config: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(key path, variable name) of each ``${localEnv:NAME}`` (or ``${env:NAME}``) in
    ``config`` whose NAME is not a harmless one, in file order."""
    if isinstance(config, dict):
        for key, item in config.items():
            yield from host_variables(item, f"{path}.{key}" if path else str(key))
    elif isinstance(config, list):
        for i, item in enumerate(config):
            yield from host_variables(item, f"{path}[{i}]")
    elif isinstance(config, str):
        for match in _VARIABLE.finditer(config):
            if match.group(1) in ("localEnv", "env") and match.group(2) not in HARMLESS_LOCAL:
                yield path, match.group(2) or ""


def host_variables_in_text(text: str) -> list[str]:
    """Every such NAME anywhere in ``text``, as written: two JSONC parsers may disagree on
    what a malformed file holds (json5 reads a single-quoted key where the Dev Containers
    CLI reads a value), so the text itself is searched too."""
    names = []
    for match in _VARIABLE.finditer(text):
        if match.group(1) in ("localEnv", "env") and match.group(2) not in HARMLESS_LOCAL:
            names.append(match.group(2) or "")
    return list(dict.fromkeys(names))
