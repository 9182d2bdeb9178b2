"""Profile templates, and writing a new user profile (``codex-box profiles new``).

Owns: the shipped templates (``profiles/templates/*.yaml``: a user profile's body
without a name), turning a base or template plus flags into a user profile's YAML, and
writing it to ``$CODEX_HOME/profiles/NAME.yaml`` only after it loads through the
ProfileStore (the same checks as any user profile: it may only tighten its built-in).
Does not own: loading user profiles (``profiles.store``), printing (``cli.profiles``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import domains
from orchestrator.core.errors import ConfigError, UsageError, did_you_mean
from orchestrator.core.profile import Profile

from .store import ALIASES, BUILTIN_DIR, BUILTIN_NAMES, ProfileStore, changes

TEMPLATE_DIR = BUILTIN_DIR / "templates"
# A file stem that is also a safe, plain command-line word: no path, no leading dot.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    name: str
    path: Path
    description: str
    extends: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewProfile:
    path: Path
    text: str
    profile: Profile


def templates() -> dict[str, Template]:
    import yaml

    found = {}
    for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        network = data.get("network") or {}
        found[path.stem] = Template(
            name=path.stem,
            path=path,
            description=str(data.get("description", "")),
            extends=str(data["extends"]),
            allow=tuple(network.get("allow") or ()),
            deny=tuple(network.get("deny") or ()),
            data=data,
        )
    return found


def render(
    store: ProfileStore,
    *,
    name: str,
    base: str | None = None,
    template: str | None = None,
    allow: Sequence[str] = (),
    deny: Sequence[str] = (),
    inspect_tls: bool = False,
    description: str | None = None,
) -> NewProfile:
    """The new profile's file text and the profile it loads as; nothing is written."""
    _check_name(name)
    if (base is None) == (template is None):
        raise UsageError(
            "say what the new profile starts from: --from BASE or --template NAME (one)",
            hint=f"templates: {', '.join(templates())}; bases: {', '.join(BUILTIN_NAMES)}",
        )
    data, origin = _start(store, base) if base else _from_template(template or "")
    for flag, values in (("--allow-domain", allow), ("--deny-domain", deny)):
        for value in values:
            try:
                domains.parse(value)
            except domains.PatternError as exc:
                raise UsageError(f"{flag} {value!r}: {exc}", hint=domains.SYNTAX) from exc
    network = dict(data.get("network") or {})
    if allow:
        network["allow"] = list(dict.fromkeys([*network.get("allow", []), *allow]))
    if deny:
        network["deny"] = list(dict.fromkeys([*network.get("deny", []), *deny]))
    if inspect_tls:
        network["inspect_tls"] = True
    if allow or deny or inspect_tls:
        parent = store.get(str(data["extends"]))
        if not parent.allows_network() or network.get("mode") == "none":
            raise UsageError(
                f"--allow-domain/--deny-domain/--inspect-tls need network, and '{name}' "
                "would have none",
                hint="start from workspace-net, net-read-only or a template",
            )
    if network:
        data["network"] = network
    if description is not None:
        data["description"] = description
    path = store.user_dir() / f"{name}.yaml"
    text = f"# Written by `codex-box profiles new {name}` {origin}.\n" + _dump(data)
    return NewProfile(path=path, text=text, profile=store.check_text(path, text))


def write(new: NewProfile, *, force: bool) -> None:
    """Write through a temporary file: readers see the old file or the new one. Without
    ``force`` an existing profile is never replaced (link(2) refuses atomically)."""
    directory = new.path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = directory / f".{new.path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, new.text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if force:
            os.replace(temp, new.path)
        else:
            os.link(temp, new.path, follow_symlinks=False)
    except FileExistsError:
        raise exists(new.path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def exists(path: Path) -> UsageError:
    return UsageError(f"{path} already exists", hint="pass --force to replace it")


def _check_name(name: str) -> None:
    if name in BUILTIN_NAMES or name in ALIASES:
        raise UsageError(
            f"'{name}' is a built-in profile name", hint="choose another name for yours"
        )
    if not _NAME.match(name):
        raise UsageError(
            f"profile name {name!r} is not a plain name",
            hint="use lower-case letters, digits, '.', '_' and '-' (e.g. py-build)",
        )


def _start(store: ProfileStore, base: str) -> tuple[dict[str, Any], str]:
    profile = store.get(base, source="--from")
    if profile.origin == "builtin":
        return {"extends": profile.name}, f"from {profile.name}"
    # A user profile: user profiles extend built-ins only, so copy its settings.
    parent = store.get(profile.extends or "")
    data: dict[str, Any] = {"description": profile.description, "extends": parent.name}
    for dotted, value in changes(parent, profile).items():
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    return data, f"from {profile.name} ({profile.origin})"


def _from_template(name: str) -> tuple[dict[str, Any], str]:
    known = templates()
    if name not in known:
        raise ConfigError(
            f"unknown template '{name}'",
            hint=f"{did_you_mean(name, known)}templates: {', '.join(known)}",
        )
    found = known[name]
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in found.data.items()}
    return data, f"from template {name}"


def _dump(data: Mapping[str, Any]) -> str:
    import yaml

    order = ("description", "extends", "network", "filesystem", "process", "mcp")
    ordered = {k: data[k] for k in order if k in data}
    return str(yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=1000))
