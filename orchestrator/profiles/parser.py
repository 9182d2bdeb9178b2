"""Reading a profile file: YAML → ``Profile``, checked key by key against the schema,
with every error naming the file, line, key and fix.

Owns: the user-profile parser (extends a built-in, may only tighten it or add named
write grants and ``unprotect`` names); the ``.codex-profile`` definition parser builds
on it (``profiles.definition``).
Does not own: the keys and their orders (``profiles.schema``), finding or caching
profiles (``profiles.store``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from orchestrator.core import domains
from orchestrator.core.errors import ConfigError, did_you_mean, printable
from orchestrator.core.profile import DEFAULT_DENY_READ, NEVER_UNPROTECTED, Profile

from . import deny_read
from .schema import (
    ALIASES,
    APPARMOR_NAMES,
    BUILTIN_NAMES,
    FIELDS,
    OPTIONAL_IN_BUILTIN,
    SECCOMP_NAMES,
    SECTIONS,
    TOP_KEYS,
    canonical_name,
    show_scalar,
)
from .yaml_text import line_of, parse_yaml

__all__ = ["ProfileParser", "line_of", "load_file", "parse_yaml"]


def load_file(path: Path, builtins: Mapping[str, Profile]) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read profile {path}: {exc.strerror}", hint="check the file's permissions"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read profile {path}: not UTF-8", hint="write it in UTF-8"
        ) from exc
    return ProfileParser(path, text, parse_yaml(path, text), builtins).parse()


class ProfileParser:
    WHO = "a user profile"  # for hints: who may only tighten
    MAY_DECLARE_SECRETS = True

    def __init__(
        self, path: Path, text: str, data: dict[str, Any], builtins: Mapping[str, Profile]
    ) -> None:
        self.path, self.text, self.data, self.builtins = path, text, data, builtins
        self.is_builtin = not builtins

    def fail(self, key: str, problem: str, hint: str) -> ConfigError:
        # Keys and values are the file's: shown escaped, so the error stays one line
        # and a file a sandbox wrote cannot forge lines on the user's terminal.
        return ConfigError(
            printable(f"{self.path}{line_of(self.text, key)}: key '{key}': {problem}"),
            hint=printable(hint),
        )

    def flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.data.items():
            if key not in TOP_KEYS:
                raise self.fail(
                    str(key),
                    "unknown key",
                    f"{did_you_mean(str(key), TOP_KEYS)}allowed: {', '.join(TOP_KEYS)}",
                )
            if key == "network" and not isinstance(value, dict | None):
                out["network.mode"] = value  # the short form: `network: read-only`
                continue
            if key in SECTIONS:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise self.fail(
                        key,
                        f"expected a mapping, got {type(value).__name__}",
                        f"write '{key}:' followed by indented keys",
                    )
                subkeys = [k.split(".", 1)[1] for k in FIELDS if k.startswith(key + ".")]
                for sub, subvalue in value.items():
                    if sub not in subkeys:
                        raise self.fail(
                            f"{key}.{sub}",
                            "unknown key",
                            f"{did_you_mean(str(sub), subkeys)}allowed: {', '.join(subkeys)}",
                        )
                    out[f"{key}.{sub}"] = subvalue
            else:
                out[key] = value
        return out

    def parse(self) -> Profile:
        flat = self.flat()
        base = self._base(flat)
        name = self._name(flat, base)
        values = {
            dotted: self._convert(dotted, flat[dotted]) for dotted in FIELDS if dotted in flat
        }
        if self.is_builtin:
            missing = [k for k in FIELDS if k not in flat and k not in OPTIONAL_IN_BUILTIN]
            if missing:
                raise self.fail(missing[0], "missing", "built-in profiles define every key")
            description = self._string(flat, "description")
            if "filesystem.deny_read" not in values and values.get("process.sandboxed", True):
                values["filesystem.deny_read"] = DEFAULT_DENY_READ  # every sandboxed built-in
            profile = Profile(
                name=name,
                description=description,
                origin="builtin",
                **{FIELDS[k].attr: v for k, v in values.items()},
            )
            return profile
        if base is None:  # unreachable: _base returns a profile for user files
            raise self.fail("extends", "missing", "name a built-in to extend")
        self._unprotect(values, base)
        self._deny_read(values, base)
        if "filesystem.protected_paths" in values:
            # A list adds to what the base protects: a name left out (say, one that
            # became a default after the file was written) is never unprotected by it.
            values["filesystem.protected_paths"] = tuple(
                dict.fromkeys((*base.protected_paths, *values["filesystem.protected_paths"]))
            )
        for dotted, value in values.items():
            self._check_tightens(dotted, getattr(base, FIELDS[dotted].attr), value, base)
        dropping = values.get("filesystem.unprotect", ())
        listed = values.get("filesystem.protected_paths", base.protected_paths)
        protected = tuple(p for p in listed if p not in dropping)
        values["filesystem.protected_paths"] = protected
        # Inherited removals stay on record unless this file protects the name again.
        values["filesystem.unprotect"] = tuple(
            dict.fromkeys(p for p in (*base.unprotected, *dropping) if p not in protected)
        )
        description = (
            self._string(flat, "description")
            if "description" in flat
            else (f"{base.description} (tightened by {self.shown_path()})")
        )
        profile = replace(
            base,
            name=name,
            description=description,
            extends=base.name,
            origin=str(self.path),
            **{FIELDS[k].attr: v for k, v in values.items()},
        )
        if "secrets" not in flat:
            return profile
        if not self.MAY_DECLARE_SECRETS:
            raise self.fail(
                "secrets",
                f"{self.WHO} may not declare secrets",
                "declare them in a user profile ($CODEX_HOME/profiles/NAME.yaml): a file "
                "a sandbox may have written must not choose where credentials go",
            )
        from . import secrets  # only a profile that declares secrets needs the parser

        return replace(profile, secrets=secrets.parse(flat["secrets"], profile, self.fail))

    def shown_path(self) -> str:
        return self.path.name

    def _name(self, flat: dict[str, Any], base: Profile | None) -> str:
        name = self._string(flat, "name") if "name" in flat else self.path.stem
        if not self.is_builtin and (name in self.builtins or name in ALIASES):
            raise self.fail(
                "name",
                f"'{name}' is a built-in profile name",
                "choose another name; built-ins cannot be redefined",
            )
        if not self.is_builtin and name != self.path.stem:
            raise self.fail(
                "name",
                f"'{name}' does not match the file name '{self.path.name}'",
                f"rename the file to {name}.yaml or drop 'name:'",
            )
        return name

    def _base(self, flat: dict[str, Any]) -> Profile | None:
        if self.is_builtin:
            return None
        if "extends" not in flat:
            raise self.fail(
                "extends",
                "missing",
                "a user profile must say which built-in it "
                f"tightens, e.g. 'extends: workspace' ({', '.join(BUILTIN_NAMES)})",
            )
        parent = canonical_name(self._string(flat, "extends"))
        if parent not in self.builtins:
            raise self.fail(
                "extends",
                f"'{parent}' is not a built-in profile",
                f"{did_you_mean(parent, BUILTIN_NAMES)}extend one of: {', '.join(BUILTIN_NAMES)}",
            )
        return self.builtins[parent]

    def _string(self, flat: dict[str, Any], key: str) -> str:
        value = flat.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {value!r}", "quote the value")
        return value

    def _convert(self, dotted: str, value: Any) -> Any:
        field = FIELDS[dotted]
        if isinstance(field.kind, type) and issubclass(field.kind, StrEnum):
            choices = [m.value for m in field.kind]
            if not isinstance(value, str) or value not in choices:
                raise self.fail(
                    dotted,
                    f"expected one of {', '.join(choices)}, got {value!r}",
                    f"{did_you_mean(str(value), choices)}use one of the listed values",
                )
            return field.kind(value)
        if field.kind is bool:
            if not isinstance(value, bool):
                raise self.fail(
                    dotted,
                    f"expected true or false, got {value!r}",
                    "write true or false (unquoted)",
                )
            return value
        if field.kind is tuple:
            return self._domains(dotted, value)
        if field.kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise self.fail(
                    dotted,
                    f"expected a list of strings, got {value!r}",
                    'write a YAML list, e.g. ["~/.cache/pip"]',
                )
            for item in value:
                self._check_path(dotted, item)
            return tuple(value)
        kind, names, where = (
            ("AppArmor", APPARMOR_NAMES, "apparmor/")
            if dotted == "process.apparmor"
            else ("seccomp", SECCOMP_NAMES, "seccomp-profiles/")
        )
        if value is not None and value not in names:
            raise self.fail(
                dotted,
                f"unknown {kind} profile {value!r}",
                f"{did_you_mean(str(value), names)}use one of: "
                f"{', '.join(names)} (files in {where})",
            )
        return value

    def _domains(self, dotted: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(
                dotted,
                f"expected a non-empty list of domain patterns, got {value!r}",
                'write e.g. ["pypi.org", "*.pythonhosted.org"]; omit the key for no rule',
            )
        for item in value:
            try:
                domains.parse(item)
            except domains.PatternError as exc:
                raise self.fail(dotted, str(exc), domains.SYNTAX) from exc
        return tuple(value)

    def _check_path(self, dotted: str, item: str) -> None:
        if dotted in ("filesystem.protected_paths", "filesystem.unprotect") and (
            "/" in item or item in (".", "..") or "\0" in item
        ):
            raise self.fail(
                dotted,
                f"{item!r} is not a name inside the workspace",
                "list single names such as .github (no slashes, not . or ..)",
            )
        if dotted == "filesystem.deny_read":
            deny_read.check_entry(item, removal_allowed=not self.is_builtin, fail=self.fail)
        if dotted == "filesystem.writable_paths" and not (
            item.startswith("/") or item == "~" or item.startswith("~/")
        ):
            raise self.fail(
                dotted, f"{item!r} is not an absolute path", "write /abs/path or ~/path"
            )

    def _check_tightens(self, dotted: str, old: Any, new: Any, base: Profile) -> None:
        field = FIELDS[dotted]
        # Lists a tightening may only add to: (verb, what the items are, what base does).
        only_added = {
            "protected_paths": ("removes", "protected path(s)", "protects"),
            "deny_domains": ("drops", "denied domain(s)", "denies"),
            "mcp_deny_tools": ("drops", "denied tool(s)", "denies"),
        }
        if field.attr in only_added:
            verb, items, does = only_added[field.attr]
            dropped = sorted(set(old) - set(new))
            if dropped:
                raise self.fail(
                    dotted,
                    f"{verb} {items} {', '.join(dropped)} that '{base.name}' {does}",
                    f"list them again; {self.WHO} may only add {items.replace('(s)', 's')}",
                )
            return
        if field.attr == "allow_domains":
            self._check_narrower_allow(dotted, old, new, base)
            return
        if field.attr == "mcp_allow_tools":
            added = [t for t in new if t not in old] if old else []
            if added or (old and not new):
                raise self.fail(
                    dotted,
                    f"admits {', '.join(added) or 'every tool'} beyond what '{base.name}' "
                    f"allows ({', '.join(old)})",
                    f"{self.WHO} may only narrow the allowed tools it inherits",
                )
            return
        if field.order is None:  # writable_paths: explicitly named grants are allowed
            return
        if field.order.index(new) > field.order.index(old):
            raise self.fail(
                dotted,
                f"loosens '{base.name}' ({show_scalar(old)} → {show_scalar(new)})",
                f"{self.WHO} may only tighten the profile it extends; "
                "extend a more permissive one instead",
            )

    def _unprotect(self, values: dict[str, Any], base: Profile) -> None:
        """``filesystem.unprotect``: a named, deliberate loosening (like writable_paths)
        of the names ``base`` protects — never of codex-box's own three."""
        names: tuple[str, ...] = values.get("filesystem.unprotect", ())
        key = "filesystem.unprotect"
        for name in names:
            if name in NEVER_UNPROTECTED:
                raise self.fail(
                    key,
                    f"{name} can never be unprotected",
                    f"{', '.join(NEVER_UNPROTECTED)} keep the sandbox from planting git "
                    "hooks, rewriting its own config or choosing its next profile; "
                    "drop it from the list",
                )
            if name not in base.protected_paths:
                raise self.fail(
                    key,
                    f"{name} is not protected by '{base.name}'",
                    f"{did_you_mean(name, base.protected_paths)}unprotect one of: "
                    f"{', '.join(base.protected_paths)}",
                )
            if name in values.get("filesystem.protected_paths", ()):
                raise self.fail(
                    key,
                    f"{name} is both protected (filesystem.protected_paths) and unprotected",
                    "list it in only one of the two",
                )

    def _deny_read(self, values: dict[str, Any], base: Profile) -> None:
        deny_read.merge(values, base, self.fail)  # a .codex-profile refuses removals first

    def _check_narrower_allow(
        self, dotted: str, old: tuple[str, ...], new: tuple[str, ...], base: Profile
    ) -> None:
        """An empty allow list admits every domain, so any list narrows it; otherwise
        each new pattern must admit nothing the old list does not."""
        if not old:
            return
        olds = [domains.parse(p) for p in old]
        for text in new:
            pattern = domains.parse(text)
            if not any(o.covers(pattern) for o in olds):
                raise self.fail(
                    dotted,
                    f"'{text}' is not within what '{base.name}' allows ({', '.join(old)})",
                    f"{self.WHO} may only narrow the allow list it inherits",
                )
