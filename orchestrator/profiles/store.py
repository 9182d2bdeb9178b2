"""Profiles as data: the built-ins, user profiles and ``.codex-profile`` definitions,
found by name and loaded once.

Owns: ``ProfileStore`` — which file defines a name (built-in, alias, or
``$CODEX_HOME/profiles/NAME.yaml``), reading only that file, and the error for an
unknown name. Does not own: the keys and their orders (``profiles.schema``), parsing and
validating a file (``profiles.parser``, ``profiles.definition``), which profile applies to
a run (``resolve``).

A user profile must ``extends:`` a built-in and may only tighten it or add explicitly
named write grants (``filesystem.writable_paths``): a file that quietly loosens a
built-in is exactly what a security tool must refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestrator.core.errors import ConfigError, did_you_mean
from orchestrator.core.profile import Profile

from . import compiled
from .definition import DefinitionParser
from .parser import ProfileParser, load_file, parse_yaml
from .schema import (
    ALIASES,
    APPARMOR_NAMES,
    BUILTIN_DIR,
    BUILTIN_NAMES,
    DEFAULT_PROFILE,
    canonical_name,
    changes,
    show_value,
    values_of,
)

# Re-exported: the names the rest of codex-box has always imported from here.
__all__ = [
    "ALIASES",
    "APPARMOR_NAMES",
    "BUILTIN_DIR",
    "BUILTIN_NAMES",
    "DEFAULT_PROFILE",
    "ProfileStore",
    "canonical_name",
    "changes",
    "show_value",
    "values_of",
]


class ProfileStore:
    """Built-ins loaded eagerly (they are tiny); user profiles on first use."""

    def __init__(self, *, codex_home: Path) -> None:
        self._user_dir = codex_home / "profiles"
        self._builtins = {
            n: ProfileParser(BUILTIN_DIR / f"{n}.yaml", "", compiled.PROFILES[n], {}).parse()
            for n in BUILTIN_NAMES
        }
        self._users: dict[str, Profile] | None = None

    def builtins(self) -> Mapping[str, Profile]:
        return self._builtins

    def users(self) -> Mapping[str, Profile]:
        if self._users is None:
            self._users = {}
            if self._user_dir.is_dir():
                for path in sorted(self._user_dir.glob("*.yaml")):
                    profile = load_file(path, self._builtins)
                    self._users[profile.name] = profile
        return self._users

    def all(self) -> Mapping[str, Profile]:
        return {**self._builtins, **self.users()}

    def get(self, name: str, *, source: str = "") -> Profile:
        """Only the file that defines ``name`` is read: a broken, unrelated user profile
        must not stop every run (``codex-box profiles`` reads and reports them all)."""
        wanted = canonical_name(name)
        if wanted in self._builtins:
            return self._builtins[wanted]
        path = self._user_dir / f"{wanted}.yaml"
        if "/" not in wanted and path.is_file():
            return load_file(path, self._builtins)
        known = [*self._builtins, *self.user_names(), *ALIASES]
        where = f" (from {source})" if source else ""
        raise ConfigError(
            f"unknown profile '{name}'{where}",
            hint=f"{did_you_mean(name, known)}available: {', '.join(known)}",
        )

    def user_names(self) -> list[str]:
        """User profile names from the file names alone (no file is parsed)."""
        if not self._user_dir.is_dir():
            return []
        return sorted(p.stem for p in self._user_dir.glob("*.yaml"))

    def user_dir(self) -> Path:
        return self._user_dir

    def check_text(self, path: Path, text: str) -> Profile:
        """``text`` as the user profile at ``path`` would load, without writing it
        (``profiles new`` validates before anything reaches the disk)."""
        return ProfileParser(path, text, parse_yaml(path, text), self._builtins).parse()

    def define(self, path: Path, text: str) -> Profile:
        """A ``.codex-profile`` holding a definition: a built-in or user profile, only
        tightened (``DefinitionParser``)."""
        return DefinitionParser(path, text, parse_yaml(path, text), self).parse()
