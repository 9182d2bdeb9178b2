"""A profile defined inside a ``.codex-profile``: it may only tighten what it extends
(a built-in or a user profile), may not even add a write grant or ``unprotect`` a
name, and can never extend an opt-in profile.

Owns: ``DefinitionParser``. Does not own: the user-profile parser it builds on
(``profiles.parser``) or whether a file applies (``resolve``, ``resolve.approval``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import Refused, did_you_mean
from orchestrator.core.profile import Profile

from .parser import ProfileParser, line_of
from .schema import canonical_name

if TYPE_CHECKING:
    from pathlib import Path

    from .store import ProfileStore


class DefinitionParser(ProfileParser):
    """A profile defined inside a ``.codex-profile``.

    The file lives in a directory a sandboxed command may have been able to write
    (a subdirectory of a writable workspace), so it may only tighten what it extends —
    a built-in or a user profile — and, unlike a user profile, may not even add write
    grants. It can never extend an opt-in profile (``trusted``): only the person at the
    command line may choose one.
    """

    WHO = "a .codex-profile"
    MAY_DECLARE_SECRETS = False

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
                f"{self.path}{line_of(self.text, 'extends')}: key 'extends': "
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

    def _deny_read(self, values: dict[str, Any], base: Profile) -> None:
        removed = [e for e in values.get("filesystem.deny_read", ()) if e.startswith("!")]
        if removed:
            # The sandbox may have written this file: unmasking ~/.ssh from here would
            # let the next run read the keys.
            raise self.fail(
                "filesystem.deny_read",
                f"a .codex-profile may only add deny_read entries, not remove {removed[0]}",
                "remove entries in a user profile ($CODEX_HOME/profiles/NAME.yaml) "
                "and extend or name that",
            )
        super()._deny_read(values, base)

    def _check_tightens(self, dotted: str, old: Any, new: Any, base: Profile) -> None:
        if dotted == "filesystem.deny_read" and set(old) - set(new):  # defence in depth
            raise self.fail(dotted, "drops a deny_read entry", "a .codex-profile may only add")
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
