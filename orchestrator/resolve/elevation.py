"""Temporary elevation: a time-boxed grant of a profile for one workspace and below.

Owns: what a grant is (create, find, verify, revoke), the duration syntax, and why a
grant is ignored. Does not own: the files' safe handling (``grant_files``), where a
grant sits in the precedence (``resolve``), asking the person (``runner.elevate``), or
the audit records of each (``audit.records.elevation_*``, written by the caller).

A grant is ``grants/<sha256 of the workspace realpath>.json``: workspace, profile,
reason, created, expires (UTC), granted_by, opt_in (whether the person said
--yes-i-trust-this-workspace), and an HMAC-SHA256 over the rest under a
random key in ``grants/.key``. The HMAC binds a grant to the workspace it was made for,
so a file copied under another workspace's name (or edited) is ignored. It is *not* a
secret from processes running as you (a sandbox reads the host's files): what keeps a
sandboxed command from granting itself anything is that CODEX_HOME is never writable
inside a sandbox (``write_roots.refuse_unsafe``). A grant file that does not check out
is ignored — a warning and an audit record, never an error — and resolution goes on as
if it were not there: a bad grant never selects anything.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError, UsageError, printable

from . import grant_files as files
from .grant_files import Untrusted, grants_dir

MAX_DURATION = timedelta(hours=24)  # elevation is temporary: a day at most, then ask again
MAX_REASON = 500
VERSION = 1
_FIELDS = (
    "version",
    "workspace",
    "profile",
    "reason",
    "created",
    "expires",
    "granted_by",
    "opt_in",
)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+)([dhms])")
DURATION_HINT = "write e.g. 90s, 30m, 2h, 1h30m or 1d (at most 24h)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    path: Path
    workspace: str
    profile: str
    reason: str
    created: datetime
    expires: datetime
    granted_by: str
    # Made with --yes-i-trust-this-workspace. Only then does the grant stand in for the
    # opt-in: a grant of a user profile that later comes to extend trusted does not.
    opt_in: bool = False

    def describe(self) -> str:
        return (
            f"{self.profile} for {self.workspace} until {iso(self.expires)}, "
            f"by {self.granted_by}: {self.reason}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored:
    """A grant file (or the grants directory, or its key) that does not check out."""

    path: Path
    why: str
    profile: str = "unknown"  # what the file claims, for the audit record's target
    workspace: str = ""  # the directory it would have applied to

    def describe(self) -> str:
        return f"{self.path} ({self.why})"

    def warning(self) -> str:
        return f"elevation grant {self.path} ignored: {self.why}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    grant: Grant | None = None  # the nearest valid grant at or above the workspace
    ignored: tuple[Ignored, ...] = ()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``; more than 0, at most MAX_DURATION."""
    raw = text.strip().lower()
    # findall backtracks over a long run of digits at every start: quadratic (a minute
    # for 50,000 digits). No duration of at most 24h is longer than this.
    parts = _DURATION.findall(raw) if len(raw) <= 40 else []
    if not parts or "".join(n + u for n, u in parts) != raw:
        raise UsageError(f"--for {text!r} is not a duration", hint=DURATION_HINT)
    try:
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    except ValueError:  # a number of 4300+ digits: far longer than a grant may last
        seconds = int(MAX_DURATION.total_seconds()) + 1
    if seconds <= 0:
        raise UsageError(f"--for {text!r} is no time at all", hint=DURATION_HINT)
    if seconds > MAX_DURATION.total_seconds():
        raise UsageError(
            f"--for {text!r} is longer than 24h",
            hint="grant at most 24h; elevate again when it runs out",
        )
    return timedelta(seconds=seconds)


def grant_name(workspace: str) -> str:
    return hashlib.sha256(workspace.encode("utf-8", "surrogateescape")).hexdigest() + ".json"


# --- reading grants ------------------------------------------------------------------


def find(home: Path, workspace: Path, *, now: datetime | None = None) -> Lookup:
    """The nearest valid grant for ``workspace`` (a realpath) or a directory above it,
    and every grant file passed over on the way that did not check out."""
    ignored: list[Ignored] = []
    grant: Grant | None = None
    for found in _along(home, workspace, _now(now)):
        if isinstance(found, Grant):
            grant = found
            break
        ignored.append(found)
    for item in ignored:
        _warn(item.warning())
    return Lookup(grant=grant, ignored=tuple(ignored))


def nearest(home: Path, workspace: Path, *, now: datetime | None = None) -> Grant | Ignored | None:
    """The nearest grant file at or above ``workspace``, valid or not (status, revoke)."""
    return next(_along(home, workspace, _now(now)), None)


def _along(home: Path, workspace: Path, now: datetime) -> Iterator[Grant | Ignored]:
    """Each grant file from ``workspace`` up to /, checked; or the one reason the
    grants directory itself cannot be trusted."""
    try:
        with files.open_dir(home, create=False) as dir_fd:
            if dir_fd is None:
                return
            for directory in (workspace, *workspace.parents):
                found = _inspect(dir_fd, home, str(directory), now)
                if found is not None:
                    yield found
    except Untrusted as exc:
        yield Ignored(path=grants_dir(home), why=exc.one_line())


def _inspect(dir_fd: int, home: Path, directory: str, now: datetime) -> Grant | Ignored | None:
    name = grant_name(directory)
    path = grants_dir(home) / name
    try:
        data = files.read_json(dir_fd, name)
    except FileNotFoundError:
        return None
    except Untrusted as exc:
        return Ignored(path=path, why=exc.message, workspace=directory)
    claimed = data.get("profile")
    profile = claimed if isinstance(claimed, str) and claimed else "unknown"
    try:
        key = files.load_key(dir_fd, home, create=False)
    except Untrusted as exc:
        return Ignored(path=path, why=exc.one_line(), profile=profile, workspace=directory)
    why = _verify(data, key, directory, now)
    if why:
        return Ignored(path=path, why=why, profile=profile, workspace=directory)
    return Grant(
        path=path,
        workspace=data["workspace"],
        profile=data["profile"],
        reason=data["reason"],
        created=_parse_time(data["created"]),
        expires=_parse_time(data["expires"]),
        granted_by=data["granted_by"],
        opt_in=data["opt_in"],
    )


def _verify(data: dict[str, Any], key: bytes, directory: str, now: datetime) -> str:
    """Why the grant does not count, or "" when it does."""
    payload = {k: v for k, v in data.items() if k != "hmac"}
    if sorted(payload) != sorted(_FIELDS) or not isinstance(data.get("hmac"), str):
        return "not a grant made by `codex-box elevate` (unexpected or missing fields)"
    if not files.signature_matches(key, data):
        return "its HMAC does not match: the file was edited, or made with another key"
    strings = [k for k in _FIELDS if k not in ("version", "opt_in")]
    if (
        data["version"] != VERSION
        or not isinstance(data["opt_in"], bool)
        or not all(isinstance(data[k], str) for k in strings)
    ):
        return f"not a version-{VERSION} grant"
    if data["workspace"] != directory:
        made_for = printable(data["workspace"])  # a warning is one line, whatever the file says
        return f"it was made for {made_for}, not {directory} (copied from another workspace)"
    try:
        created, expires = _parse_time(data["created"]), _parse_time(data["expires"])
    except (TypeError, ValueError):
        return "its times are not UTC ISO timestamps"
    if not timedelta(0) < expires - created <= MAX_DURATION:
        return f"it lasts {expires - created}, outside (0, 24h]"
    if now < created:
        return f"it was created in the future ({iso(created)}); check the clock"
    if now >= expires:
        return f"it expired at {iso(expires)} — `codex-box elevate --revoke` removes it"
    return ""


def _parse_time(text: Any) -> datetime:
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def _warn(message: str) -> None:
    """A warning for loguru sinks, if anyone configured loguru (the CLI's --debug, or an
    application embedding codex-box). Importing loguru costs 50-110 ms (``log``), so a
    plain CLI run surfaces the same text through ``Resolution.warnings()`` instead."""
    if "loguru" in sys.modules:
        from loguru import logger

        logger.opt(depth=1).warning("{}", message)


# --- writing and removing grants -----------------------------------------------------


def create(
    home: Path,
    *,
    workspace: str,
    profile: str,
    reason: str,
    duration: timedelta,
    granted_by: str,
    opt_in: bool = False,
    now: datetime | None = None,
) -> Grant:
    """Write (or replace) the grant for ``workspace`` (a realpath of a directory)."""
    moment = _now(now)
    reason = check_reason(reason)
    check_workspace(workspace)
    if not timedelta(0) < duration <= MAX_DURATION:
        raise UsageError(f"a grant must last (0, 24h], not {duration}", hint=DURATION_HINT)
    payload = {
        "version": VERSION,
        "workspace": workspace,
        "profile": profile,
        "reason": reason,
        "created": iso(moment),
        "expires": iso(moment + duration),
        "granted_by": granted_by,
        "opt_in": opt_in,
    }
    name = grant_name(workspace)
    try:
        with files.open_dir(home, create=True) as dir_fd:
            if dir_fd is None:  # unreachable: create=True made it
                raise FileNotFoundError(errno.ENOENT, "it vanished")
            key = files.load_key(dir_fd, home, create=True)
            files.write_atomically(dir_fd, name, files.signed(key, payload))
    except OSError as exc:
        raise ConfigError(
            f"cannot write a grant in {grants_dir(home)}: {exc.strerror}",
            hint="elevate from your own shell: inside a sandbox CODEX_HOME is read-only",
        ) from exc
    return Grant(
        path=grants_dir(home) / name,
        workspace=workspace,
        profile=profile,
        reason=reason,
        created=moment,
        expires=moment + duration,
        granted_by=granted_by,
        opt_in=opt_in,
    )


def check_workspace(workspace: str) -> None:
    if workspace == "/":
        raise UsageError(
            "refusing to elevate /: the grant would apply to every directory",
            hint="pass the project directory as --workspace",
        )
    if not os.path.isdir(workspace):
        raise UsageError(f"--workspace {workspace} is not a directory", hint="pass a project")


def check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise UsageError("--reason is empty", hint="say why, e.g. --reason 'pip install -r …'")
    if len(text) > MAX_REASON or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(
            f"--reason must be one line of at most {MAX_REASON} characters",
            hint="shorten it; no newlines or control characters",
        )
    return text


def revoke(home: Path, found: Grant | Ignored) -> None:
    """Remove the grant file ``nearest`` found (a symlink is removed, not followed)."""
    if isinstance(found, Ignored) and found.path == grants_dir(home):
        raise ConfigError(found.why, hint="fix or remove the grants directory by hand")
    with files.open_dir(home, create=False) as dir_fd:
        if dir_fd is not None:
            files.remove(dir_fd, found.path.name)
