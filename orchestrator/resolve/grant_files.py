"""The files behind elevation grants: ``$CODEX_HOME/grants/``, its key, its grant files.

Owns: opening them safely — the directory and every file in it must be yours, not a
symlink, not writable by group or others (the key not even readable by them) — reading
a grant's JSON, signing it with the key (``signed``, ``signature_matches``; approvals
of a ``.codex-profile`` use the same directory checks, key and signature), writing one
atomically, removing one. Files are opened relative to a
descriptor on the checked directory, so the directory checked is the directory read.
Does not own: what a grant means or whether it is valid (``elevation``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

GRANTS_DIR = "grants"
KEY_NAME = ".key"
KEY_BYTES = 32
MAX_GRANT_FILE = 8192
_AGAIN = "then elevate again"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Untrusted(ConfigError):
    """A grant file, the grants directory or its key may not be trusted."""


def grants_dir(home: Path) -> Path:
    return home / GRANTS_DIR


@contextlib.contextmanager
def open_dir(home: Path, *, create: bool) -> Iterator[int | None]:
    """A descriptor on the grants directory (``open_checked_dir``)."""
    with open_checked_dir(grants_dir(home), home=home, create=create, again=_AGAIN) as fd:
        yield fd


@contextlib.contextmanager
def open_checked_dir(path: Path, *, home: Path, create: bool, again: str) -> Iterator[int | None]:
    """A descriptor on ``path`` (a directory under CODEX_HOME holding signed files);
    None when there is none (and not ``create``). Raises Untrusted for a symlink, or a
    directory that is not yours or that group or others may write (they could swap
    signed files in and out). ``again``: how the user redoes what it held."""
    if create:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    except OSError as exc:
        why = (
            "is a symlink"
            if path.is_symlink()
            else "is not a directory"
            if exc.errno == errno.ENOTDIR
            else f"cannot be opened ({exc.strerror})"
        )
        raise Untrusted(
            f"{path} {why}", hint=f"it must be a directory you own (mode 0700): remove it, {again}"
        ) from exc
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise Untrusted(
                f"{path} is not yours alone: owned by uid {info.st_uid}",
                hint=f"remove it; {again}",
            )
        if info.st_mode & 0o022:
            raise Untrusted(
                f"{path} is not yours alone: writable by group or others",
                hint=f"chmod 700 {path}",
            )
        yield fd
    finally:
        os.close(fd)


def load_key(dir_fd: int, home: Path, *, create: bool) -> bytes:
    """The HMAC key, made on first use (``create``) from 32 random bytes, mode 0600."""
    path = grants_dir(home) / KEY_NAME
    try:
        fd = os.open(KEY_NAME, _READ, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise Untrusted(
                f"key {path} does not exist, so no grant can be verified",
                hint="revoke the grant, or elevate again",
            ) from None
        return _new_key(dir_fd, home)
    except OSError as exc:
        why = "is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise Untrusted(f"key {path} {why}", hint=f"remove it; {_AGAIN}") from exc
    try:
        _check(fd, f"key {path}", hint=f"remove it; {_AGAIN}")
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise Untrusted(
                f"key {path} is readable or writable by group or others (mode {mode:04o})",
                hint=f"remove it, {_AGAIN} (someone else may have read it)",
            )
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise Untrusted(f"key {path} is not {KEY_BYTES} bytes", hint=f"remove it; {_AGAIN}")
    return key


def _new_key(dir_fd: int, home: Path) -> bytes:
    import secrets  # writing only: a run that merely reads grants need not load it

    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(KEY_NAME, _CREATE, 0o600, dir_fd=dir_fd)
    except FileExistsError:  # a concurrent elevate made it first: use that one
        return load_key(dir_fd, home, create=False)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def read_json(dir_fd: int, name: str) -> dict[str, Any]:
    """A grant file's JSON object. FileNotFoundError when there is none; Untrusted
    (the message says why) for anything else that is not a small regular file of ours."""
    try:
        fd = os.open(name, _READ, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        why = "is a symlink" if exc.errno == errno.ELOOP else f"is unreadable ({exc.strerror})"
        raise Untrusted(f"the grant file {why}") from exc
    try:
        _check(fd, "the grant file", hint="")
        raw = os.read(fd, MAX_GRANT_FILE + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_GRANT_FILE:
        raise Untrusted(f"the grant file is larger than {MAX_GRANT_FILE} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise Untrusted(f"the grant file is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise Untrusted("the grant file is not a JSON object")
    return data


def _check(fd: int, what: str, *, hint: str) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Untrusted(f"{what} is not a regular file", hint=hint)
    if info.st_uid != os.getuid():
        raise Untrusted(f"{what} is owned by uid {info.st_uid}, not by you", hint=hint)
    if info.st_mode & 0o022:
        raise Untrusted(f"{what} is writable by group or others", hint=hint)


def signed(key: bytes, payload: dict[str, Any]) -> bytes:
    """The file body for ``payload``: its JSON with an ``hmac`` over the canonical form
    (sorted keys, no spaces), so the same fields in any layout verify alike."""
    return (json.dumps({**payload, "hmac": _mac(key, payload)}, indent=2) + "\n").encode()


def signature_matches(key: bytes, data: dict[str, Any]) -> bool:
    """Whether ``data`` (a file's JSON) carries the HMAC of the rest of its fields."""
    mac = data.get("hmac")
    payload = {k: v for k, v in data.items() if k != "hmac"}
    return isinstance(mac, str) and hmac.compare_digest(mac.encode(), _mac(key, payload).encode())


def _mac(key: bytes, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a workspace path that is not UTF-8 (and any "\udcff" a damaged file
    # holds) must be signed or checked, never crash the resolution; valid text encodes
    # exactly as before, so existing grants still verify.
    return hmac.new(key, body.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def write_atomically(dir_fd: int, name: str, body: bytes) -> None:
    """Write a temporary file (0600), fsync it, rename it over ``name``: a reader sees
    the old grant or the new one, never half of one."""
    import secrets

    temp = f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, _CREATE, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def remove(dir_fd: int, name: str) -> None:
    """Unlink ``name`` in the grants directory (a symlink is removed, not followed)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
    os.fsync(dir_fd)
