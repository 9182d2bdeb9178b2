"""Profiles as data: the built-in YAML files, user profiles, aliases, validation.

Owns: turning ``profiles/*.yaml`` (package) and ``$CODEX_HOME/profiles/*.yaml`` into
frozen ``Profile`` values, and every error about them (file, line, key, fix).
Does not own: which profile applies to a run (``resolve``).

A user profile must ``extends:`` a built-in and may only tighten it or add explicitly
named write grants (``filesystem.writable_paths``): a file that quietly loosens a
built-in is exactly what a security tool must refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from . import domains
from .errors import ConfigError, Refused, did_you_mean
from .profile import NEVER_UNPROTECTED, Access, Capabilities, Network, PlantedRepo, Profile
from .profiles import compiled

BUILTIN_DIR = Path(__file__).parent / "profiles"
BUILTIN_NAMES = ("offline", "net-read-only", "workspace", "workspace-net", "trusted")
DEFAULT_PROFILE = "offline"

# Codex's own names (config `sandbox_mode`, `--sandbox`).
ALIASES: Mapping[str, str] = {
    "read-only": "offline",
    "workspace-write": "workspace",
    "danger-full-access": "trusted",
}

SECCOMP_NAMES = ("offline", "default")
# Files in apparmor/, the profile names they load under. Strictness order for user
# profiles: the two without network, then the two with it (each pair is the same
# policy, so a user profile may keep its own pair's first name or tighten).
APPARMOR_NAMES = (
    "codex-box-offline",
    "codex-box-workspace",
    "codex-box-net-read-only",
    "codex-box-workspace-net",
)


@dataclass(frozen=True, slots=True)
class _Field:
    attr: str  # Profile attribute
    kind: type | tuple[type, ...]
    # Strictness order, most restrictive first; None = not ordered (checked otherwise).
    order: tuple[Any, ...] | None = None


_FIELDS: Mapping[str, _Field] = {
    "network.mode": _Field("network", Network, (Network.NONE, Network.READ_ONLY, Network.FULL)),
    # Domain lists (domains.py); their tightening is checked pattern by pattern.
    "network.allow": _Field("allow_domains", tuple),
    "network.deny": _Field("deny_domains", tuple),
    "network.inspect_tls": _Field("inspect_tls", bool, (True, False)),
    "network.allow_local_hosts": _Field("allow_local_hosts", bool, (False, True)),
    "filesystem.root": _Field("rootfs", Access, (Access.READ_ONLY, Access.READ_WRITE)),
    "filesystem.workspace": _Field("workspace", Access, (Access.READ_ONLY, Access.READ_WRITE)),
    "filesystem.private_tmp": _Field("private_tmp", bool, (False, True)),
    "filesystem.writable_paths": _Field("writable_paths", list),
    "filesystem.protected_paths": _Field("protected_paths", list),
    # Default protected names a user profile removes on purpose (checked in
    # _ProfileParser._unprotect; a .codex-profile may never use it).
    "filesystem.unprotect": _Field("unprotected", list),
    "filesystem.on_planted_repo": _Field(
        "on_planted_repo", PlantedRepo, (PlantedRepo.QUARANTINE, PlantedRepo.WARN)
    ),
    "process.sandboxed": _Field("sandboxed", bool, (True, False)),
    "process.seccomp": _Field("seccomp", (str, type(None)), ("offline", "default", None)),
    "process.apparmor": _Field("apparmor", (str, type(None)), (*APPARMOR_NAMES, None)),
    "process.capabilities": _Field(
        "capabilities", Capabilities, (Capabilities.NONE, Capabilities.DEFAULT)
    ),
    "process.requires_opt_in": _Field("requires_opt_in", bool, (True, False)),
}
_TOP_KEYS = ("name", "description", "extends", "network", "filesystem", "process")
_SECTIONS = ("network", "filesystem", "process")
_OPTIONAL_IN_BUILTIN = {"filesystem.writable_paths", "filesystem.protected_paths"}
_OPTIONAL_IN_BUILTIN |= {"filesystem.unprotect", "filesystem.on_planted_repo"}
_OPTIONAL_IN_BUILTIN |= {"network.allow", "network.deny", "network.inspect_tls"}
_OPTIONAL_IN_BUILTIN |= {"network.allow_local_hosts"}
_OPTIONAL_IN_BUILTIN |= {"process.sandboxed", "process.requires_opt_in"}


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


class ProfileStore:
    """Built-ins loaded eagerly (they are tiny); user profiles on first use."""

    def __init__(self, *, codex_home: Path) -> None:
        self._user_dir = codex_home / "profiles"
        self._builtins = {
            n: _ProfileParser(BUILTIN_DIR / f"{n}.yaml", "", compiled.PROFILES[n], {}).parse()
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
                    profile = _load_file(path, self._builtins)
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
            return _load_file(path, self._builtins)
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
        return _ProfileParser(path, text, _parse_yaml(path, text), self._builtins).parse()

    def define(self, path: Path, text: str) -> Profile:
        """A ``.codex-profile`` holding a definition: a built-in or user profile, only
        tightened (``_DefinitionParser``)."""
        return _DefinitionParser(path, text, _parse_yaml(path, text), self).parse()


def values_of(profile: Profile) -> dict[str, Any]:
    """Every profile key (``network.mode`` …) and its value as plain data."""
    return {dotted: _plain(getattr(profile, f.attr)) for dotted, f in _FIELDS.items()}


def changes(base: Profile, profile: Profile) -> dict[str, Any]:
    """The keys whose values ``profile`` changed from ``base``."""
    old, new = values_of(base), values_of(profile)
    return {k: v for k, v in new.items() if old[k] != v}


def show_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return _show(value)


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    return list(value) if isinstance(value, tuple) else value


def _load_file(path: Path, builtins: Mapping[str, Profile]) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read profile {path}: {exc.strerror}", hint="check the file's permissions"
        ) from exc
    return _ProfileParser(path, text, _parse_yaml(path, text), builtins).parse()


def _parse_yaml(path: Path, text: str) -> dict[str, Any]:
    import yaml  # only user profiles need the parser: built-ins load from `compiled`

    try:
        # libyaml's C loader when PyYAML has it.
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{path}{line}: malformed YAML ({problem})", hint="fix the YAML syntax at that line"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a profile must be a YAML mapping, got {type(data).__name__}",
            hint="start the file with 'extends: <built-in>' or 'name: …'",
        )
    return data


class _ProfileParser:
    WHO = "a user profile"  # for hints: who may only tighten

    def __init__(
        self, path: Path, text: str, data: dict[str, Any], builtins: Mapping[str, Profile]
    ) -> None:
        self.path, self.text, self.data, self.builtins = path, text, data, builtins
        self.is_builtin = not builtins

    def fail(self, key: str, problem: str, hint: str) -> ConfigError:
        return ConfigError(
            f"{self.path}{_line_of(self.text, key)}: key '{key}': {problem}", hint=hint
        )

    def flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.data.items():
            if key not in _TOP_KEYS:
                raise self.fail(
                    str(key),
                    "unknown key",
                    f"{did_you_mean(str(key), _TOP_KEYS)}allowed: {', '.join(_TOP_KEYS)}",
                )
            if key == "network" and not isinstance(value, dict | None):
                out["network.mode"] = value  # the short form: `network: read-only`
                continue
            if key in _SECTIONS:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise self.fail(
                        key,
                        f"expected a mapping, got {type(value).__name__}",
                        f"write '{key}:' followed by indented keys",
                    )
                subkeys = [k.split(".", 1)[1] for k in _FIELDS if k.startswith(key + ".")]
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
            dotted: self._convert(dotted, flat[dotted]) for dotted in _FIELDS if dotted in flat
        }
        if self.is_builtin:
            missing = [k for k in _FIELDS if k not in flat and k not in _OPTIONAL_IN_BUILTIN]
            if missing:
                raise self.fail(missing[0], "missing", "built-in profiles define every key")
            description = self._string(flat, "description")
            profile = Profile(
                name=name,
                description=description,
                origin="builtin",
                **{_FIELDS[k].attr: v for k, v in values.items()},
            )
            return profile
        if base is None:  # unreachable: _base returns a profile for user files
            raise self.fail("extends", "missing", "name a built-in to extend")
        self._unprotect(values, base)
        if "filesystem.protected_paths" in values:
            # A list adds to what the base protects: a name left out (say, one that
            # became a default after the file was written) is never unprotected by it.
            values["filesystem.protected_paths"] = tuple(
                dict.fromkeys((*base.protected_paths, *values["filesystem.protected_paths"]))
            )
        for dotted, value in values.items():
            self._check_tightens(dotted, getattr(base, _FIELDS[dotted].attr), value, base)
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
        return replace(
            base,
            name=name,
            description=description,
            extends=base.name,
            origin=str(self.path),
            **{_FIELDS[k].attr: v for k, v in values.items()},
        )

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
        field = _FIELDS[dotted]
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
        if dotted == "filesystem.writable_paths" and not (
            item.startswith("/") or item == "~" or item.startswith("~/")
        ):
            raise self.fail(
                dotted, f"{item!r} is not an absolute path", "write /abs/path or ~/path"
            )

    def _check_tightens(self, dotted: str, old: Any, new: Any, base: Profile) -> None:
        field = _FIELDS[dotted]
        # Lists a tightening may only add to: (verb, what the items are, what base does).
        only_added = {
            "protected_paths": ("removes", "protected path(s)", "protects"),
            "deny_domains": ("drops", "denied domain(s)", "denies"),
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
        if field.order is None:  # writable_paths: explicitly named grants are allowed
            return
        if field.order.index(new) > field.order.index(old):
            raise self.fail(
                dotted,
                f"loosens '{base.name}' ({_show(old)} → {_show(new)})",
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


class _DefinitionParser(_ProfileParser):
    """A profile defined inside a ``.codex-profile``.

    The file lives in a directory a sandboxed command may have been able to write
    (a subdirectory of a writable workspace), so it may only tighten what it extends —
    a built-in or a user profile — and, unlike a user profile, may not even add write
    grants. It can never extend an opt-in profile (``trusted``): only the person at the
    command line may choose one.
    """

    WHO = "a .codex-profile"

    def __init__(self, path: Path, text: str, data: dict[str, Any], store: ProfileStore) -> None:
        super().__init__(path, text, data, store.builtins())
        self.store = store

    def shown_path(self) -> str:
        return str(self.path)

    def _name(self, flat: dict[str, Any], base: Profile | None) -> str:
        if "name" in flat:
            raise self.fail(
                "name",
                "a .codex-profile definition has no name of its own",
                f"drop 'name:'; it is shown as '<extends>+{self.path.name}'",
            )
        return f"{base.name if base else '?'}+{self.path.name}"

    def _base(self, flat: dict[str, Any]) -> Profile:
        if "extends" not in flat:
            raise self.fail(
                "extends",
                "missing",
                "a .codex-profile definition must say which profile it tightens, "
                "e.g. 'extends: workspace'",
            )
        parent = canonical_name(self._string(flat, "extends"))
        user_file = self.store.user_dir() / f"{parent}.yaml"
        if parent in self.builtins:
            base = self.builtins[parent]
        elif "/" not in parent and user_file.is_file():
            base = self.store.get(parent)  # a broken user profile is its own error
        else:
            known = [*self.builtins, *self.store.user_names()]
            raise self.fail(
                "extends",
                f"unknown profile '{parent}'",
                f"{did_you_mean(parent, known)}extend one of: {', '.join(known)}",
            )
        if base.requires_opt_in or not base.sandboxed:
            # An agent that can write one file must never hand itself full access.
            raise Refused(
                f"{self.path}{_line_of(self.text, 'extends')}: key 'extends': "
                f"'{base.name}' needs explicit opt-in, which a .codex-profile may never give",
                hint=f"run with --profile {base.name} --yes-i-trust-this-workspace, "
                "or extend a sandboxed profile",
            )
        return base

    def _unprotect(self, values: dict[str, Any], base: Profile) -> None:
        if "filesystem.unprotect" in values:
            # The sandbox may have written this file: unprotecting .vscode from here
            # would let it plant the tasks the host runs next.
            raise self.fail(
                "filesystem.unprotect",
                "a .codex-profile may never unprotect a path",
                "a .codex-profile may only tighten; unprotect in a user profile "
                "($CODEX_HOME/profiles/NAME.yaml) and extend or name that",
            )

    def _check_tightens(self, dotted: str, old: Any, new: Any, base: Profile) -> None:
        if dotted == "filesystem.writable_paths":
            added = sorted(set(new) - set(old))
            if added:
                raise self.fail(
                    dotted,
                    f"adds writable path(s) {', '.join(added)} that '{base.name}' does not grant",
                    "a .codex-profile may only tighten; name write grants in a user "
                    "profile ($CODEX_HOME/profiles/NAME.yaml) and extend that",
                )
            return
        super()._check_tightens(dotted, old, new, base)


def _show(value: Any) -> str:
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _line_of(text: str, dotted: str) -> str:
    """``":N"`` for the line where ``dotted`` (e.g. ``filesystem.root``) is written."""
    import yaml

    if not text:
        return ""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
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
