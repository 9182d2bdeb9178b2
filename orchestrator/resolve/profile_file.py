"""Finding and reading ``.codex-profile`` files: the one input to profile resolution
that lives inside the workspace, where a sandboxed command may have written it.

Owns: where the files are looked for (the workspace and each directory above it,
nearest first) and how each is read — never through a symlink, never one owned by
another user or writable by all, at most ``MAX_PROFILE_FILE`` bytes.
Does not own: which file counts or what it selects (``precedence``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import ConfigError, Refused

PROFILE_FILE = ".codex-profile"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileFile:
    path: Path
    text: str
    name: str | None  # the profile it names; None: it defines one (a YAML mapping)


def find_profile_file(workspace: Path) -> ProfileFile | None:
    """The nearest ``.codex-profile`` at or above ``workspace``, approved or not."""
    return next(profile_files(workspace), None)


def profile_files(workspace: Path) -> Iterator[ProfileFile]:
    """Each ``.codex-profile`` at or above ``workspace``, nearest first, read as it is
    reached: a profile name, or a YAML mapping that defines one (``extends:`` plus keys
    that only tighten).

    An empty file (or one holding only comments) selects nothing and the walk goes on.
    """
    for directory in (workspace, *workspace.parents):
        found = read_profile_file(directory / PROFILE_FILE)
        if found is not None:
            yield found


def read_profile_file(path: Path) -> ProfileFile | None:
    """The ``.codex-profile`` at ``path``; None when there is none or it is empty."""
    text = _read_profile_file(path)
    if text is None:
        return None
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [n for n in lines if n]
    if not lines:
        return None
    if any(":" in line for line in lines):  # `extends: workspace`: a definition
        return ProfileFile(path=path, text=text, name=None)
    if len(lines) > 1 or " " in lines[0]:
        raise ConfigError(
            f"{path}: expected one profile name or a YAML definition, got {' '.join(lines)!r}",
            hint="write a single name such as 'workspace', or 'extends: workspace' "
            "followed by keys that tighten it",
        )
    return ProfileFile(path=path, text=text, name=lines[0])


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
            hint="it must be a regular file (not a symlink) holding a profile name or definition",
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{path} is not a regular file",
                hint="it must be a file holding a profile name or definition",
            )
        _refuse_foreign(path, info)
        data = os.read(fd, MAX_PROFILE_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PROFILE_FILE:
        raise ConfigError(
            f"{path} is larger than {MAX_PROFILE_FILE} bytes",
            hint="it holds one profile name or a short definition",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8", hint="write it in UTF-8") from exc


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
