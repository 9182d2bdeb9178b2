"""The compiled-policy cache: a launch whose rule files are unchanged neither imports
nor runs Starlark; it reads the rules back from a verified JSON entry.

Owns: the key, the entries (``$CODEX_HOME/cache/policy/<key>.json``: directory 0700,
files 0600, written atomically, the newest ``MAX_ENTRIES`` kept), verifying one before
a single rule is built from it.
Does not own: which files make up the policy, or evaluating them (``loader``); the
rules' JSON form, field by field (``cache_codec``).

The key is a SHA-256 over the format, codex-box's version, the code that turns files
into rules (``CODE``) and the installed Starlark interpreter, and for each rule file in
load order its path as the loader names it, whether it may only tighten, and the SHA-256
of its bytes: any edit, added or removed file is evaluated again (examples checked,
tighten-only enforced).

Threat model. A sandboxed command may write the workspace (project rules live there) but
not CODEX_HOME: a changed project file changes the key and is evaluated from source, and
nothing in the workspace is ever read as a cache. Entries are still never trusted
unverified: directory, key and entry are opened without following symlinks and must be
ours (effective uid) and writable by nobody else (the key readable by nobody else); the
entry's HMAC-SHA256 under the 32-byte key is checked before its body is parsed, and the
body names the key it was written for. The body is data: JSON read back into the rule
dataclasses explicitly (no pickle, marshal or eval), any other shape or enum refused.
Whatever fails is ignored, the policy evaluated from source and the entry rewritten:
never an error for the user; a read-only CODEX_HOME only means no cache. Whoever can
write CODEX_HOME can write ``$CODEX_HOME/rules/`` anyway; the MAC keeps a copied,
corrupt or half-written entry from ever becoming rules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from orchestrator.core.log import debug

from .cache_codec import FORMAT, Invalid, decode, encode
from .rules import RuleSet

CACHE_DIR = ("cache", "policy")  # under CODEX_HOME
KEY_NAME = ".key"
KEY_BYTES = 32
MAX_ENTRY = 4 << 20  # bytes; the default policy's entry is ~8 KiB
MAX_ENTRIES = 32  # newest kept: one per distinct set of rule files in use
STALE_TEMP_S = 3600  # a temporary file this old was left by a killed writer
# The modules whose code decides what a file's rules are (or whether they load at all).
CODE = ("loader.py", "rules.py", "getopt.py", "decision.py", "cache.py", "cache_codec.py")
_MAC_DOMAIN = b"codex-box policy cache\0"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_code_digest: bytes | None = None
# Rule sets this process already verified or built, by key: a process that launches
# many commands (a session, a server) hashes the files each time but decodes once.
MEMO: dict[str, RuleSet] = {}
MAX_MEMO = 8


class Entry:
    """The cache entry for one launch's rule files: ``(path, tighten_only, bytes)``."""

    def __init__(self, codex_home: Path, files: Sequence[tuple[str, bool, bytes]]) -> None:
        self.directory = codex_home.joinpath(*CACHE_DIR)
        self.codex_home = codex_home
        self.key = cache_key(files)
        self.name = f"{self.key}.json"

    def load(self) -> RuleSet | None:
        """The cached rules, verified; None when there are none that can be trusted."""
        if (rules := MEMO.get(self.key)) is not None:
            return rules
        rules = self._from_disk()
        if rules is not None:
            _remember(self.key, rules)
        return rules

    def _from_disk(self) -> RuleSet | None:
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | _READ)
        except OSError:
            return None
        try:
            _check(dir_fd, "the cache directory", directory=True)
            secret = _key(dir_fd, create=False)
            raw = _read(dir_fd, self.name, "the entry")
            mac, _, body = raw.partition(b"\n")
            if not hmac.compare_digest(mac, sign(secret, body)):
                raise Invalid("the entry's MAC does not verify")
            return decode(json.loads(body), key=self.key)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # Invalid is a ValueError
            debug("policy cache not used", entry=str(self.directory / self.name), why=str(exc))
            return None
        finally:
            os.close(dir_fd)

    def store(self, rules: RuleSet) -> None:
        """Write the entry atomically. Nothing is written when CODEX_HOME is unwritable
        or not ours alone, or the rules would not read back equal: the next launch then
        evaluates from source again."""
        _remember(self.key, rules)
        try:
            body = json.dumps(encode(rules, key=self.key), separators=(",", ":")).encode()
            if decode(json.loads(body), key=self.key) != rules:
                raise Invalid("the rules do not survive their JSON form")
            self.codex_home.mkdir(mode=0o700, parents=True, exist_ok=True)
            if (owner := self.codex_home.stat().st_uid) != os.geteuid():  # sudo, HOME kept:
                raise Invalid(f"CODEX_HOME is owned by uid {owner}")  # leave it no root files
            self.directory.parent.mkdir(mode=0o700, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | _READ)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            debug("policy cache not written", directory=str(self.directory), why=str(exc))
            return
        try:
            _check(dir_fd, "the cache directory", directory=True)
            _write(dir_fd, self.name, sign(_key(dir_fd, create=True), body) + b"\n" + body)
            _prune(dir_fd, keep=self.name)
        except (OSError, ValueError) as exc:
            debug("policy cache not written", directory=str(self.directory), why=str(exc))
        finally:
            os.close(dir_fd)


def _remember(key: str, rules: RuleSet) -> None:
    MEMO[key] = rules
    while len(MEMO) > MAX_MEMO:
        del MEMO[next(iter(MEMO))]


def cache_key(files: Sequence[tuple[str, bool, bytes]]) -> str:
    digest = hashlib.sha256(b"%d\0%s\0" % (FORMAT, version().encode()) + _code())
    for path, tighten_only, data in files:
        digest.update(os.fsencode(path) + (b"\0tighten\0" if tighten_only else b"\0add\0"))
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def version() -> str:
    """codex-box's version, from the already imported top package: not imported by
    name, as ``orchestrator``'s API names reach up into the runner (row 2)."""
    return str(sys.modules[__name__.split(".")[0]].__version__)


def _interpreter() -> bytes:
    """The installed Starlark interpreter (starlark-pyo3), by its extension module's path,
    size and mtime, found without importing it: an upgrade of it alone evaluates the rule
    files again."""
    import importlib.util

    spec = importlib.util.find_spec("starlark")
    files = [spec.origin] if spec and spec.origin else []
    files += [str(p) for p in Path(files[0]).parent.glob("*.so")] if files else []
    marks = []
    for name in sorted(set(files)):
        try:
            info = os.stat(name)
        except OSError:
            continue
        marks.append(f"{name}\0{info.st_size}\0{info.st_mtime_ns}")
    return "\0".join(marks).encode() or b"no starlark\0"


def _code() -> bytes:
    global _code_digest
    if _code_digest is None:
        here = Path(__file__).parent
        digest = hashlib.sha256()
        for name in CODE:
            try:
                digest.update(hashlib.sha256((here / name).read_bytes()).digest())
            except OSError:  # a sourceless install: its version stands for its code
                digest.update(b"no source\0")
        digest.update(_interpreter())
        _code_digest = digest.digest()
    return _code_digest


def sign(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, _MAC_DOMAIN + body, hashlib.sha256).hexdigest().encode()


# --- files: checked before use, written atomically ---------------------------------------


def _check(fd: int, what: str, *, directory: bool = False, private: bool = False) -> os.stat_result:
    """Ours alone: the right type, owned by the effective user, writable by nobody else
    (a secret readable by nobody else either)."""
    info = os.fstat(fd)
    if not (stat.S_ISDIR if directory else stat.S_ISREG)(info.st_mode):
        raise Invalid(f"{what} is not a {'directory' if directory else 'regular file'}")
    if info.st_uid != os.geteuid():
        raise Invalid(f"{what} is owned by uid {info.st_uid}, not by you")
    if info.st_mode & (0o077 if private else 0o022):
        raise Invalid(f"{what} is open to group or others (mode {info.st_mode & 0o777:04o})")
    return info


def _read(dir_fd: int, name: str, what: str, *, private: bool = False) -> bytes:
    fd = os.open(name, _READ, dir_fd=dir_fd)  # a symlink: ELOOP, an OSError
    try:
        size = _check(fd, what, private=private).st_size
        if size > MAX_ENTRY:
            raise Invalid(f"{what} is larger than {MAX_ENTRY} bytes")
        return os.read(fd, size + 1)  # a short read fails the MAC or the key's length
    finally:
        os.close(fd)


def _key(dir_fd: int, *, create: bool) -> bytes:
    """The secret, made on first use (``create``): written whole to a temporary name,
    then linked into place, so a concurrent reader sees no key or the whole key."""
    try:
        secret = _read(dir_fd, KEY_NAME, "the cache key", private=True)
    except FileNotFoundError:
        if not create:
            raise
        import secrets  # writing only: a hit never loads it

        temp = _temporary(dir_fd, KEY_NAME, secrets.token_bytes(KEY_BYTES))
        try:
            os.link(temp, KEY_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            pass  # another launch made it first: use that one
        finally:
            os.unlink(temp, dir_fd=dir_fd)
        secret = _read(dir_fd, KEY_NAME, "the cache key", private=True)
    if len(secret) != KEY_BYTES:
        raise Invalid(f"the cache key is not {KEY_BYTES} bytes")
    return secret


def _temporary(dir_fd: int, name: str, body: bytes) -> str:
    import secrets

    temp = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, _CREATE, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.unlink(temp, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)
    return temp


def _write(dir_fd: int, name: str, body: bytes) -> None:
    """A reader sees the old entry or the new one, never half of one."""
    temp = _temporary(dir_fd, name, body)
    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def _prune(dir_fd: int, *, keep: str) -> None:
    """Keep the newest MAX_ENTRIES entries (each edit of a project's rules adds one);
    drop what a killed writer left behind."""
    entries, stale = [], []
    for name in os.listdir(dir_fd):
        try:
            mtime = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime
        except FileNotFoundError:  # pruned by a concurrent launch
            continue
        if name.endswith(".json") and name != keep:
            entries.append((mtime, name))
        elif name.endswith(".tmp") and mtime < time.time() - STALE_TEMP_S:
            stale.append(name)
    for name in [n for _, n in sorted(entries, reverse=True)[MAX_ENTRIES - 1 :]] + stale:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            continue
