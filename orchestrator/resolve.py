"""Which profile applies, and where that choice came from.

Owns: the precedence ``--profile`` > ``CODEX_SECURITY_PROFILE`` > ``.codex-profile``
(walking up from the workspace) > ``$CODEX_HOME/config.toml`` > ``offline``, and the
rule that a file inside the workspace can never select an opt-in profile.
Does not own: asking for the opt-in itself (``runner``/``cli``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .config import Config
from .errors import ConfigError, Refused
from .profile import Profile
from .profile_store import DEFAULT_PROFILE, ProfileStore

PROFILE_FILE = ".codex-profile"
ENV_PROFILE = "CODEX_SECURITY_PROFILE"


class Source(StrEnum):
    FLAG = "flag"
    ENV = "env"
    FILE = "file"  # a .codex-profile
    CONFIG = "config"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    profile: Profile
    source: Source
    detail: str  # the flag text, env var, file path or "built-in default"

    def describe(self) -> str:
        return f"{self.source.value} ({self.detail})"


def resolve_profile(
    *,
    flag: str | None,
    environ: Mapping[str, str],
    workspace: Path,
    config: Config,
    store: ProfileStore,
) -> Resolution:
    if flag:
        return Resolution(
            profile=store.get(flag, source="--profile"),
            source=Source.FLAG,
            detail=f"--profile {flag}",
        )
    env_value = environ.get(ENV_PROFILE, "").strip()
    if env_value:
        return Resolution(
            profile=store.get(env_value, source=ENV_PROFILE), source=Source.ENV, detail=ENV_PROFILE
        )
    found = find_profile_file(workspace)
    if found is not None:
        path, name = found
        profile = store.get(name, source=str(path))
        if profile.requires_opt_in:
            # An agent that can write one file must never be able to hand itself full
            # access: only the person at the command line can choose an opt-in profile.
            raise Refused(
                f"{path} selects '{name}', which a .codex-profile may never select",
                hint=f"run with --profile {profile.name} --yes-i-trust-this-workspace, "
                "or change the file",
            )
        return Resolution(profile=profile, source=Source.FILE, detail=str(path))
    if config.profile:
        return Resolution(
            profile=store.get(config.profile, source=str(config.path)),
            source=Source.CONFIG,
            detail=str(config.path),
        )
    return Resolution(
        profile=store.get(DEFAULT_PROFILE), source=Source.DEFAULT, detail="built-in default"
    )


def find_profile_file(workspace: Path) -> tuple[Path, str] | None:
    """The nearest ``.codex-profile`` at or above ``workspace`` and the name in it.

    An empty file (or one holding only comments) selects nothing and the walk goes on.
    """
    for directory in (workspace, *workspace.parents):
        path = directory / PROFILE_FILE
        text = _read_profile_file(path)
        if text is None:
            continue
        names = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        names = [n for n in names if n]
        if not names:
            continue
        if len(names) > 1 or " " in names[0]:
            raise ConfigError(
                f"{path}: expected one profile name, got {' '.join(names)!r}",
                hint="write a single name such as 'workspace'",
            )
        return path, names[0]
    return None


MAX_PROFILE_FILE = 4096


def _read_profile_file(path: Path) -> str | None:
    """The file's text, or None when there is none. A sandboxed command may have put
    anything under this name in a directory it could write: a FIFO (a read would hang),
    a link to /dev/zero (it would never end), a symlink elsewhere. Only a small regular
    file that you or root own, and nobody else may write, is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}",
            hint="it must be a regular file (not a symlink) holding a profile name",
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{path} is not a regular file", hint="it must be a file holding a profile name"
            )
        _refuse_foreign(path, info)
        data = os.read(fd, MAX_PROFILE_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PROFILE_FILE:
        raise ConfigError(
            f"{path} is larger than {MAX_PROFILE_FILE} bytes", hint="it holds one profile name"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8", hint="write the name in UTF-8") from exc


def _refuse_foreign(path: Path, info: os.stat_result) -> None:
    """Another user must not choose your profile: a .codex-profile counts only if you
    or root own it and nobody else may write it (think /tmp/.codex-profile)."""
    if info.st_uid not in (os.getuid(), 0):
        raise Refused(
            f"{path} is owned by uid {info.st_uid}, not by you or root",
            hint="remove it, or chown it to yourself if you wrote it",
        )
    if info.st_mode & 0o002:
        raise Refused(f"{path} is writable by every user", hint=f"chmod o-w {path}")
