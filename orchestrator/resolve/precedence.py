"""Which profile applies, where that choice came from, and which files shaped it.

Owns: the precedence ``--profile`` > elevation grant > ``CODEX_SECURITY_PROFILE`` >
``.codex-profile`` (the nearest at or above the workspace that counts) >
``$CODEX_HOME/config.toml`` > ``offline``; the rule that a file inside the workspace can
never select an opt-in profile; the rule that a ``.codex-profile`` wider than what
applies without it counts only once approved; and the chain of files behind the result
(``profiles explain``, the audit). Does not own: asking for the opt-in itself
(``policy.optin``), grant files (``elevation``), approval files and what "wider" means
(``approval``, ``profiles.widening``), parsing profile YAML (``profiles``).

Reading the files themselves (refusing a link, a foreign owner, a file writable by
all) is ``profile_file``.

Which ``.codex-profile`` counts (direnv's model): a sandboxed command that may write its
workspace may write a subdirectory's ``.codex-profile`` (only the workspace root's is
kept read-only). So the nearest file applies if ``codex-box profiles allow`` approved
its exact content at its path, or if it is not wider than what applies without it —
the next file up, judged the same way, else config.toml, else ``offline`` (the flag, a
grant and the environment outrank every file, so they are never the comparison). A
file that is neither is ignored (a warning and an audit record) and resolution goes on
as if it were absent.

Why a grant sits between the flag and the environment: the flag is the person at the
command line deciding for this one run; a grant is that same person deciding at the
command line for this workspace, for a bounded time, with a reason on the record
(``codex-box elevate``). The environment variable, a ``.codex-profile`` and config.toml
are ambient — set once in a shell profile, CI or a wrapper, or (the file) written by
whatever could write the workspace — so a deliberate, time-boxed grant outranks them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.core.errors import Refused
from orchestrator.core.profile import Profile
from orchestrator.profiles.store import (
    BUILTIN_DIR,
    DEFAULT_PROFILE,
    ProfileStore,
    changes,
    values_of,
)
from orchestrator.settings.config import Config

from . import elevation
from .profile_file import (
    PROFILE_FILE,
    ProfileFile,
    profile_files,
)

if TYPE_CHECKING:  # loaded only where a .codex-profile is found (start-up time)
    from .approval import FileCheck

ENV_PROFILE = "CODEX_SECURITY_PROFILE"


class Source(StrEnum):
    FLAG = "flag"
    GRANT = "grant"  # an elevation grant (codex-box elevate)
    ENV = "env"
    FILE = "file"  # a .codex-profile
    CONFIG = "config"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEntry:
    """One file or setting that shaped the effective profile."""

    kind: str  # built-in | user profile | .codex-profile | grant | config | env | flag | default
    where: str  # a file path, or the flag / variable
    profile: str  # the profile this entry defines or selects
    changes: Mapping[str, object]  # the keys it set (a built-in: every key)
    selects: bool = False  # this entry chose the profile (rather than defining it)
    note: str = ""  # a grant: for whom, until when, why

    def text(self) -> str:
        if self.selects:
            note = f" ({self.note})" if self.note else ""
            return f"{self.kind} {self.where} selects {self.profile}{note}"
        keys = "every key" if self.kind == "built-in" else ", ".join(self.changes) or "nothing"
        return f"{self.kind} {self.where} sets {keys}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    profile: Profile
    source: Source
    detail: str  # the flag text, env var, file path, grant or "built-in default"
    chain: tuple[ChainEntry, ...] = ()  # most general first
    grant: elevation.Grant | None = None
    ignored_grants: tuple[elevation.Ignored, ...] = ()
    # The .codex-profile files judged, nearest first: each one ignored on the way, then
    # the one that applied (if one did).
    files: tuple[FileCheck, ...] = ()

    def describe(self) -> str:
        return f"{self.source.value} ({self.detail})"

    def chain_text(self) -> str:
        return " → ".join(entry.text() for entry in self.chain)

    @property
    def ignored_files(self) -> tuple[FileCheck, ...]:
        if not self.files:
            return ()
        from .approval import IGNORED

        return tuple(check for check in self.files if check.state == IGNORED)

    def warnings(self) -> tuple[str, ...]:
        return (
            *(ignored.warning() for ignored in self.ignored_grants),
            *(ignored.warning() for ignored in self.ignored_files),
        )


def resolve_profile(
    *,
    flag: str | None,
    environ: Mapping[str, str],
    workspace: Path,
    config: Config,
    store: ProfileStore,
    codex_home: Path | None = None,
    now: datetime | None = None,
) -> Resolution:
    """``codex_home``: where elevation grants and .codex-profile approvals live (None:
    neither is consulted, so a wider .codex-profile is ignored). ``now``: the clock
    grants are checked against (tests inject one)."""
    if flag:
        profile = store.get(flag, source="--profile")
        return _resolved(store, profile, Source.FLAG, f"--profile {flag}", kind="flag")
    lookup = elevation.find(codex_home, workspace, now=now) if codex_home else elevation.Lookup()
    ignored = lookup.ignored
    if lookup.grant is not None:
        grant = lookup.grant
        # Made at the command line, so it may select an opt-in profile; whether it also
        # stands in for the opt-in is the grant's opt_in (runner).
        profile = store.get(grant.profile, source=str(grant.path))
        return _resolved(
            store,
            profile,
            Source.GRANT,
            grant.describe(),
            kind="grant",
            grant=grant,
            where=str(grant.path),
            ignored_grants=ignored,
        )
    env_value = environ.get(ENV_PROFILE, "").strip()
    if env_value:
        profile = store.get(env_value, source=ENV_PROFILE)
        return _resolved(
            store,
            profile,
            Source.ENV,
            ENV_PROFILE,
            kind="env",
            where=f"{ENV_PROFILE}={env_value}",
            ignored_grants=ignored,
        )
    return _through_files(
        profile_files(workspace),
        _Context(config=config, store=store, home=codex_home, ignored_grants=ignored),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    config: Config
    store: ProfileStore
    home: Path | None  # None: no approval is consulted, so every wider file is ignored
    ignored_grants: tuple[elevation.Ignored, ...]


def _through_files(files: Iterator[ProfileFile], ctx: _Context) -> Resolution:
    """The nearest file that counts, else config.toml, else the default. Files further
    up are read only when a nearer one needs something to be compared with."""
    found = next(files, None)
    if found is None:
        return _fallback(ctx)
    from orchestrator.profiles.widening import wider

    from . import (
        approval as profile_approval,  # only once a .codex-profile is found (start-up time)
    )
    from .approval import APPROVED, IGNORED, NARROWS, FileCheck

    path = found.path
    profile = profile_of(ctx.store, found)
    approval = (
        profile_approval.check(ctx.home, path, found.text.encode())
        if ctx.home is not None
        else "is not approved (no CODEX_HOME to look in)"
    )
    if isinstance(approval, profile_approval.Approval):
        check = FileCheck(
            path=path, profile=profile.name, state=APPROVED, approval=approval.describe()
        )
    else:
        without = _through_files(files, ctx)  # what applies if this file were absent
        widens = wider(without.profile, profile)
        if widens:
            ignored = FileCheck(
                path=path,
                profile=profile.name,
                state=IGNORED,
                base=without.profile.name,
                widens=widens,
                approval=approval,
            )
            return replace(without, files=(ignored, *without.files))
        check = FileCheck(path=path, profile=profile.name, state=NARROWS, base=without.profile.name)
    resolution = _resolved(
        ctx.store,
        profile,
        Source.FILE,
        str(path),
        kind=PROFILE_FILE,
        defines=found.name is None,
        ignored_grants=ctx.ignored_grants,
    )
    return replace(resolution, files=(check,))


def without_file(
    path: Path, *, config: Config, store: ProfileStore, codex_home: Path | None
) -> Resolution:
    """What applies in the directory of the ``.codex-profile`` at ``path`` were it absent:
    the files above it, judged the same way, then config.toml, then the default."""
    above = path.parent.parent
    files = profile_files(above) if above != path.parent else iter(())
    return _through_files(
        files, _Context(config=config, store=store, home=codex_home, ignored_grants=())
    )


def profile_of(store: ProfileStore, found: ProfileFile) -> Profile:
    """The profile a ``.codex-profile`` selects or defines; never an opt-in one."""
    if found.name is None:
        profile = store.define(found.path, found.text)
    else:
        profile = store.get(found.name, source=str(found.path))
    if profile.requires_opt_in or not profile.sandboxed:
        # An agent that can write one file must never be able to hand itself full
        # access: only the person at the command line can choose an opt-in profile.
        # No approval changes that (`profiles allow` refuses such a file too).
        raise Refused(
            f"{found.path} selects '{profile.name}', which a .codex-profile may never select",
            hint=f"run with --profile {profile.name} --yes-i-trust-this-workspace, "
            "or change the file",
        )
    return profile


def _fallback(ctx: _Context) -> Resolution:
    config, store, ignored = ctx.config, ctx.store, ctx.ignored_grants
    if config.profile:
        profile = store.get(config.profile, source=str(config.path))
        return _resolved(
            store, profile, Source.CONFIG, str(config.path), kind="config", ignored_grants=ignored
        )
    profile = store.get(DEFAULT_PROFILE)
    return _resolved(
        store,
        profile,
        Source.DEFAULT,
        "built-in default",
        kind="default",
        where="(nothing else chose one)",
        ignored_grants=ignored,
    )


def _resolved(
    store: ProfileStore,
    profile: Profile,
    source: Source,
    detail: str,
    *,
    kind: str,
    where: str | None = None,
    defines: bool = False,
    grant: elevation.Grant | None = None,
    ignored_grants: tuple[elevation.Ignored, ...] = (),
) -> Resolution:
    lineage = lineage_of(store, profile)
    if not defines:  # a .codex-profile definition is itself the last link, and the chooser
        selector = ChainEntry(
            kind=kind,
            where=where or detail,
            profile=profile.name,
            changes={},
            selects=True,
            note=grant.describe() if grant else "",
        )
        lineage = (*lineage, selector)
    return Resolution(
        profile=profile,
        source=source,
        detail=detail,
        chain=lineage,
        grant=grant,
        ignored_grants=ignored_grants,
    )


def lineage_of(store: ProfileStore, profile: Profile) -> tuple[ChainEntry, ...]:
    """The files that define ``profile``, most general first: its built-in's YAML, then
    each profile that tightened it (a user profile, a .codex-profile definition)."""
    entries: list[ChainEntry] = []
    current = profile
    while current.origin != "builtin" and current.extends:
        base = store.get(current.extends)
        kind = PROFILE_FILE if current.origin.endswith(PROFILE_FILE) else "user profile"
        entries.append(
            ChainEntry(
                kind=kind,
                where=current.origin,
                profile=current.name,
                changes=changes(base, current),
            )
        )
        current = base
    entries.append(
        ChainEntry(
            kind="built-in",
            where=str(BUILTIN_DIR / f"{current.name}.yaml"),
            profile=current.name,
            changes=values_of(current),
        )
    )
    return tuple(reversed(entries))
