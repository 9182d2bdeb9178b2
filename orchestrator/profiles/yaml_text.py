"""A profile file's YAML as text: parsed safely, and a key's line for error messages.

Owns: ``parse_yaml`` (libyaml's safe loader, no aliases: a few hundred bytes must not
stand for billions of nodes) and ``line_of`` (the line where a dotted key is written).
Does not own: what the keys mean (``profiles.parser``, ``profiles.schema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError


def parse_yaml(path: Path, text: str) -> dict[str, Any]:
    import yaml  # only user profiles need the parser: built-ins load from `compiled`

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C loader if there
    try:
        # No aliases (*name): they let a few hundred bytes stand for billions of nodes
        # ("billion laughs"), and any walk of the value, or an error message showing it,
        # would then hang codex-box. A .codex-profile may have been written by a
        # sandboxed command; no profile needs an alias.
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise ConfigError(
                    f"{path}{f':{mark.line + 1}' if mark else ''}: a YAML alias (*name)",
                    hint="aliases are not allowed in a profile; write the value out in full",
                )
        data = yaml.load(text, Loader=loader)  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{path}{line}: malformed YAML ({problem})", hint="fix the YAML syntax at that line"
        ) from exc
    except (ValueError, RecursionError) as exc:  # an integer of over 4300 digits, …
        raise ConfigError(
            f"{path}: malformed YAML ({str(exc).splitlines()[0][:80]})",
            hint="fix the value; a profile holds names, lists and true/false",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a profile must be a YAML mapping, got {type(data).__name__}",
            hint="start the file with 'extends: <built-in>' or 'name: …'",
        )
    return data


def line_of(text: str, dotted: str) -> str:
    """``":N"`` for the line where ``dotted`` (e.g. ``filesystem.root``) is written."""
    import yaml

    if not text:
        return ""
    try:
        node = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):  # nested deeper than Python's composer goes
        return ""
    line = 0
    for part in dotted.split("."):
        if not isinstance(node, yaml.MappingNode):
            # `network: read-only` answers for network.mode: point at that line.
            return f":{line}" if line else ""
        for key_node, value_node in node.value:
            if key_node.value == part:
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            return ""
    return f":{line}"
