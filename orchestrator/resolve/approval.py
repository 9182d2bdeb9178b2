"""Approving a ``.codex-profile`` that widens what would apply without it (direnv's model).

Owns: the approval files under ``$CODEX_HOME/approvals/`` (approve, check, revoke,
list), how a file was judged (``FileCheck``) and the audit records of approving,
revoking and ignoring one. Does not own: when a profile is wider (``profiles.widening``),
which files are consulted or what applies (``resolve``), printing (``cli.profiles``).

Why: a sandboxed command that may write its workspace may write a *subdirectory's*
``.codex-profile`` (only the root's is kept read-only), and the next run there would
use whatever it named. So a file that would widen the profile counts only once the
person approved that exact content at that exact path (``codex-box profiles allow``).
An approval is ``approvals/<sha256 of the file's realpath>.json``: the path, a SHA-256
over (path, content), who and when, and an HMAC under the elevation grants' key
(``grant_files``). The HMAC binds it to the path, so a file copied to another name or
edited is ignored. It is not a secret from processes running as you; what keeps a
sandbox from approving its own file is that CODEX_HOME is never one of its write roots
(``write_roots.refuse_unsafe``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

from . import grant_files as files
from .elevation import iso
from .grant_files import Untrusted

APPROVALS_DIR = "approvals"
KIND = "codex-profile approval"  # the grants' key signs both: never mistake one for the other
VERSION = 1
_KEYS = ("kind", "version", "path", "sha256", "profile", "approved", "approved_by")

# --- how a .codex-profile was judged --------------------------------------------------

APPROVED, NARROWS, IGNORED = "approved", "narrows", "ignored"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileCheck:
    path: Path
    profile: str  # what the file selects or defines
    state: str  # APPROVED | NARROWS | IGNORED
    base: str = ""  # the profile that applies without it (NARROWS, IGNORED)
    widens: tuple[str, ...] = ()  # how it is wider than base (IGNORED)
    approval: str = ""  # APPROVED: by whom and when; IGNORED: why no approval counted

    def fix(self) -> str:
        return f"codex-box profiles allow {self.path}"

    def why(self) -> str:
        return (
            f"'{self.profile}' is wider than '{self.base}' ({'; '.join(self.widens)}) "
            f"and {self.approval}"
        )

    def warning(self) -> str:
        return f"{self.path} ignored: {self.why()}; if you trust it, run `{self.fix()}`"

    def text(self) -> str:
        if self.state == APPROVED:
            return f"approved ({self.approval})"
        if self.state == NARROWS:
            return f"narrows: not wider than '{self.base}', applies without approval"
        return f"ignored: wider than '{self.base}' ({'; '.join(self.widens)}); run `{self.fix()}`"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "profile": self.profile,
            "state": self.state,
            **({"base": self.base} if self.base else {}),
            **({"widens": list(self.widens)} if self.widens else {}),
            **({"approval": self.approval} if self.approval else {}),
            **({"fix": self.fix()} if self.state == IGNORED else {}),
        }


# --- approval files -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    file: Path  # the approval file
    path: str  # the .codex-profile it approves (a realpath)
    sha256: str  # digest(path, content)
    profile: str
    approved: datetime
    approved_by: str

    def describe(self) -> str:
        return f"by {self.approved_by} at {iso(self.approved)}, sha256 {self.sha256[:12]}"


def approvals_dir(home: Path) -> Path:
    return home / APPROVALS_DIR


def approval_name(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest() + ".json"


def digest(path: str, content: bytes) -> str:
    """What is approved: this content at this path (a NUL cannot be in a path)."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape") + b"\0" + content).hexdigest()


def check(home: Path, path: Path, content: bytes) -> Approval | str:
    """The approval of exactly ``content`` at ``path`` (a realpath), or why none counts."""
    name = approval_name(str(path))
    try:
        with _open_dir(home, create=False) as dir_fd:
            if dir_fd is None:
                return "is not approved"
            data = files.read_json(dir_fd, name)
            approval = _verify(home, name, data)
    except FileNotFoundError:
        return "is not approved"
    except Untrusted as exc:
        return f"its approval does not check out ({exc.message})"
    if approval.path != str(path):
        return f"its approval is for {approval.path} (copied from another file)"
    if not hmac.compare_digest(approval.sha256, digest(str(path), content)):
        return f"was edited after it was approved ({approval.describe()})"
    return approval


def approve(home: Path, path: Path, content: bytes, *, profile: str, approved_by: str) -> Approval:
    """Write (or replace) the approval of ``content`` at ``path`` (a realpath)."""
    payload: dict[str, Any] = {
        "kind": KIND,
        "version": VERSION,
        "path": str(path),
        "sha256": digest(str(path), content),
        "profile": profile,
        "approved": iso(datetime.now(UTC)),
        "approved_by": approved_by,
    }
    name = approval_name(str(path))
    try:
        key = _key(home, create=True)
        with _open_dir(home, create=True) as dir_fd:
            if dir_fd is None:  # unreachable: create=True made it
                raise FileNotFoundError(2, "it vanished")
            files.write_atomically(dir_fd, name, files.signed(key, payload))
    except OSError as exc:
        raise ConfigError(
            f"cannot write an approval in {approvals_dir(home)}: {exc.strerror}",
            hint="approve from your own shell: inside a sandbox CODEX_HOME is read-only",
        ) from exc
    return _approval_of(home, name, payload)


def revoke(home: Path, path: Path) -> bool:
    """Remove the approval of ``path``; False when there was none."""
    name = approval_name(str(path))
    with _open_dir(home, create=False) as dir_fd:
        if dir_fd is None:
            return False
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        files.remove(dir_fd, name)
    return True


def listing(home: Path) -> list[Approval | tuple[Path, str]]:
    """Every approval file: an Approval, or (file, why it does not check out)."""
    found: list[Approval | tuple[Path, str]] = []
    with _open_dir(home, create=False) as dir_fd:
        if dir_fd is None:
            return found
        for name in sorted(os.listdir(dir_fd)):
            if name.startswith(".") or not name.endswith(".json"):
                continue  # write_atomically's temporary files
            try:
                found.append(_verify(home, name, files.read_json(dir_fd, name)))
            except (FileNotFoundError, Untrusted) as exc:
                why = exc.message if isinstance(exc, Untrusted) else "vanished"
                found.append((approvals_dir(home) / name, why))
    return found


def _verify(home: Path, name: str, data: dict[str, Any]) -> Approval:
    payload = {k: v for k, v in data.items() if k != "hmac"}
    if sorted(payload) != sorted(_KEYS) or not isinstance(data.get("hmac"), str):
        raise Untrusted("not an approval made by `codex-box profiles allow`")
    if not files.signature_matches(_key(home), data):
        raise Untrusted("its HMAC does not match: it was edited, or made with another key")
    if payload["kind"] != KIND or payload["version"] != VERSION:
        raise Untrusted(f"not a version-{VERSION} approval")
    if not all(isinstance(payload[k], str) for k in _KEYS if k != "version"):
        raise Untrusted(f"not a version-{VERSION} approval")
    if approval_name(payload["path"]) != name:
        raise Untrusted(f"it was made for {payload['path']} and copied to another name")
    try:
        return _approval_of(home, name, payload)
    except ValueError as exc:
        raise Untrusted("its time is not a UTC ISO timestamp") from exc


def _approval_of(home: Path, name: str, payload: dict[str, Any]) -> Approval:
    return Approval(
        file=approvals_dir(home) / name,
        path=payload["path"],
        sha256=payload["sha256"],
        profile=payload["profile"],
        approved=datetime.fromisoformat(payload["approved"].rstrip("Z")).replace(tzinfo=UTC),
        approved_by=payload["approved_by"],
    )


def _key(home: Path, *, create: bool = False) -> bytes:
    """The elevation grants' key (grants/.key): one secret, one set of checks on it."""
    with files.open_dir(home, create=create) as dir_fd:
        if dir_fd is None:
            raise Untrusted(f"{files.grants_dir(home) / files.KEY_NAME} does not exist")
        return files.load_key(dir_fd, home, create=create)


@contextlib.contextmanager
def _open_dir(home: Path, *, create: bool) -> Iterator[int | None]:
    """The approvals directory, checked as the grants directory is."""
    with files.open_checked_dir(
        approvals_dir(home), home=home, create=create, again="then approve again"
    ) as fd:
        yield fd
