"""The composition root: what one front door knows about the host, built once.

Owns: ``HostContext`` — the environment snapshot, the working directory, CODEX_HOME,
config.toml, the profile store, the audit log with its sinks, the user's name and ids —
and the two decisions every front door needs from them: which profile applies
(``resolve``) and which backend was asked for (``backend_choice``).
Does not own: reading ``os.environ`` (the front door passes it in), running anything.

Why one object: CODEX_HOME, config, store, audit log and user name used to be rebuilt in
seven places, and two user-name helpers disagreed, so run and elevation records were
sanitized differently. Everything here is derived from the one ``environ`` snapshot
(the user's name and home fall back to the password database, never to the process's
own environment); only the working directory is the process's, read when first asked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from orchestrator.audit.log import LOG_NAME, AuditLog, Sanitizer
from orchestrator.audit.sinks import sinks_for
from orchestrator.core.errors import ConfigError
from orchestrator.host.user import home_of, user_name
from orchestrator.profiles.store import ProfileStore
from orchestrator.resolve.precedence import Resolution, resolve_profile
from orchestrator.settings.config import AuditSettings, Config, codex_home, load_config

SESSION_ENV = "CODEX_BOX_SESSION"  # runs of one agent session share its id
BACKEND_ENV = "CODEX_BOX_BACKEND"


def new_id() -> str:
    return os.urandom(6).hex()  # as random as uuid4().hex[:12], without importing uuid


@dataclass(frozen=True, kw_only=True)
class HostContext:
    environ: Mapping[str, str]
    home: Path  # CODEX_HOME
    user_home: str  # $HOME
    user: str
    uid: int
    gid: int
    session_id: str
    given_cwd: str | None = None  # None: the process's, read on first use

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, cwd: str | None = None) -> HostContext:
        snapshot = MappingProxyType(dict(environ))
        return cls(
            environ=snapshot,
            given_cwd=cwd,
            home=codex_home(snapshot),
            user_home=home_of(snapshot),
            user=user_name(snapshot),
            uid=os.getuid(),
            gid=os.getgid(),
            session_id=snapshot.get(SESSION_ENV) or new_id(),
        )

    @cached_property
    def cwd(self) -> str:
        """Read on first use: a verb that needs none (`audit`, `profiles`) still works
        from a directory that was deleted."""
        return self.given_cwd if self.given_cwd is not None else os.getcwd()

    @cached_property
    def config(self) -> Config:
        """config.toml, loaded on first use (raises ConfigError naming the file; a failure
        is not cached). A malformed one is an error of what needs it, not of start-up."""
        return load_config(self.home)

    @cached_property
    def store(self) -> ProfileStore:
        return ProfileStore(codex_home=self.home)

    def audit_log(self, *, strict: bool = True) -> AuditLog:
        """The audit log with config.toml's [audit] settings and sinks. ``strict``: a
        config.toml that does not load is the caller's error (nothing is granted or
        revoked whose record would miss the configured sinks); otherwise the defaults,
        so the refusal of a run that follows is still recorded."""
        try:
            settings = self.config.audit
        except ConfigError:
            if strict:
                raise
            settings = AuditSettings()
        return AuditLog(
            self.home / LOG_NAME,
            sanitizer=Sanitizer(user=self.user, home=self.user_home),
            max_bytes=settings.max_bytes,
            keep=settings.keep,
            sinks=sinks_for(syslog=settings.syslog, jsonl=settings.jsonl),
        )

    def workspace_path(self, workspace: str | None) -> str:
        """The workspace as given, made absolute against cwd (not resolved: compile
        resolves it itself, refusing a planted symlink)."""
        if workspace and os.path.isabs(workspace):
            return workspace  # the working directory is not needed (it may be gone)
        return os.path.join(self.cwd, workspace or ".")

    def resolved_workspace(self, workspace: str | None) -> str:
        """The workspace a run or question is about, symlinks resolved."""
        return os.path.realpath(self.workspace_path(workspace))

    def resolve(self, flag: str | None, workspace: str | Path) -> Resolution:
        """The profile that applies to ``workspace`` (a resolved path) and why."""
        return resolve_profile(
            flag=flag,
            environ=self.environ,
            workspace=Path(workspace),
            config=self.config,
            store=self.store,
            codex_home=self.home,
        )

    def backend_choice(self, flag: str | None) -> str:
        """The backend asked for: --backend > CODEX_BOX_BACKEND > config.toml > auto."""
        return flag or self.environ.get(BACKEND_ENV) or self.config.backend or "auto"
