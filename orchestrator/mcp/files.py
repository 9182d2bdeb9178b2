"""The file tools of ``codex-box mcp``: read, write and list inside the workspace only,
as the server's profile allows, each audited (``file_read`` / ``file_write``).

Owns: the workspace-relative path (never above the workspace, never through a symlink:
``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``, ``sandbox.linux.pinning``),
the profile's word on it (a read-only workspace refuses writes; protected paths —
``.git``, ``.codex-profile`` … — refuse writes; ``filesystem.deny_read`` refuses reads,
all as ``compile`` expanded them for this workspace), the size caps, and the records.
Does not own: the profile (``box``), MCP (``server``).
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any

from orchestrator.audit import records
from orchestrator.core.errors import Refused, UsageError
from orchestrator.core.profile import PlantedRepo
from orchestrator.core.spec import SandboxSpec
from orchestrator.runner.context import new_id
from orchestrator.runner.postrun import PostRunCheck, report
from orchestrator.runner.preview import spec_for
from orchestrator.sandbox.linux.pinning import open_beneath

from .box import Box

READ_CAP = 1024 * 1024  # bytes of a file returned; the rest counted, not sent
WRITE_CAP = 8 * 1024 * 1024
LIST_CAP = 1000


def _relative(box: Box, path: str) -> str:
    """``path`` (relative, or absolute inside the workspace) relative to it."""
    joined = os.path.normpath(os.path.join(box.workspace, path or "."))
    if os.path.commonpath([joined, box.workspace]) != box.workspace:
        raise UsageError(
            f"path {path!r} is outside the workspace {box.workspace}",
            hint="give a path relative to the workspace",
        )
    return os.path.relpath(joined, box.workspace)


def _under(path: str, roots: tuple[str, ...]) -> str | None:
    return next((r for r in roots if path == r or path.startswith(r.rstrip("/") + "/")), None)


class Files:
    def __init__(self, box: Box) -> None:
        self.box = box

    def _spec(self) -> SandboxSpec:
        return spec_for(self.box.context, profile=self.box.flag, workspace=self.box.workspace)

    def _record(
        self, op: str, rel: str, *, allowed: bool, reason: str, size: int | None = None
    ) -> None:
        build = records.file_write if op == "write" else records.file_read
        self.box.write(
            build(
                path=os.path.join(self.box.workspace, rel),
                profile=self.box.profile,
                workspace=self.box.workspace,
                allowed=allowed,
                reason=reason,
                size=size,
            )
        )

    def _refuse(self, op: str, rel: str, message: str, hint: str) -> Refused:
        error = Refused(message, hint=hint)
        self._record(op, rel, allowed=False, reason=error.one_line())
        return error

    def _open(self, op: str, rel: str, flags: int) -> int:
        root = os.open(self.box.workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return open_beneath(root, rel, flags=flags)
        except OSError as exc:
            raise self._refuse(
                op,
                rel,
                f"{rel}: {exc.strerror or exc} (symlinks and paths above the workspace are "
                "never followed)",
                hint="give a path of a file inside the workspace, reached without symlinks",
            ) from exc
        finally:
            os.close(root)

    def _readable(self, rel: str) -> None:
        full = os.path.join(self.box.workspace, rel)
        spec = self._spec()
        # CODEX_HOME inside the workspace (its audit log, credentials): never a file
        # tool's to read, whatever the profile lets commands see.
        home = os.path.abspath(str(self.box.context.home))
        denied = (
            _under(full, spec.deny_read) or _under(full, spec.hidden_paths) or _under(full, (home,))
        )
        if denied is not None:
            raise self._refuse(
                "read",
                rel,
                f"{rel} is hidden from commands by profile {self.box.profile} ({denied})",
                hint="the profile hides it from every command; it cannot be read here",
            )

    def read_file(self, path: str) -> dict[str, Any]:
        rel = _relative(self.box, path)
        self._readable(rel)
        # Non-blocking: a FIFO planted in the workspace is refused, not waited on.
        fd = self._open("read", rel, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._refuse(
                "read", rel, f"{rel} is not a regular file", hint="list_dir shows what it is"
            )
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(READ_CAP + 1)
            size = os.fstat(fd).st_size
        kept = data[:READ_CAP]
        self._record(
            "read", rel, allowed=True, reason=f"profile {self.box.profile}", size=len(kept)
        )
        return {
            "path": rel,
            "content": kept.decode("utf-8", "replace"),
            "bytes": max(size, len(data)),
            "truncated": len(data) > READ_CAP,
        }

    def list_dir(self, path: str = ".") -> dict[str, Any]:
        rel = _relative(self.box, path)
        self._readable(rel)
        fd = self._open("read", rel, os.O_RDONLY | os.O_DIRECTORY)
        entries: list[dict[str, Any]] = []
        try:
            with os.scandir(fd) as found:
                for entry in found:
                    if len(entries) >= LIST_CAP:
                        break
                    info = entry.stat(follow_symlinks=False)
                    kind = (
                        "dir"
                        if stat.S_ISDIR(info.st_mode)
                        else ("symlink" if stat.S_ISLNK(info.st_mode) else "file")
                    )
                    entries.append({"name": entry.name, "type": kind, "size": info.st_size})
        finally:
            os.close(fd)
        entries.sort(key=lambda e: str(e["name"]))
        self._record("read", rel, allowed=True, reason=f"listed: profile {self.box.profile}")
        return {"path": rel, "entries": entries, "truncated": len(entries) >= LIST_CAP}

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        rel = _relative(self.box, path)
        data = content.encode()
        spec = self._spec()
        full = os.path.join(self.box.workspace, rel)
        if rel == "." or not spec.workspace_writable:
            raise self._refuse(
                "write",
                rel,
                f"profile {self.box.profile} does not let anything write {full}",
                hint="the workspace is read-only under it; the person starting `codex-box mcp` "
                "chooses a writable profile (--profile workspace)",
            )
        protected = _under(full, spec.protected_paths)
        if protected is not None:
            raise self._refuse(
                "write",
                rel,
                f"{rel} is a protected path ({protected}) of profile {self.box.profile}",
                hint="protected paths (.git, .codex-profile, …) stay read-only in a writable "
                "workspace",
            )
        if len(data) > WRITE_CAP:
            raise self._refuse(
                "write",
                rel,
                f"{rel}: {len(data)} bytes is more than the {WRITE_CAP} a write may be",
                hint="write it in a run instead (run: a command that makes the file)",
            )
        # The check a run gets: what the write plants (a repository's config, a host
        # tool's file) is reported — and quarantined when the profile says so.
        quarantine = self.box.base.on_planted_repo is PlantedRepo.QUARANTINE
        run_id = new_id()
        post = PostRunCheck(spec, quarantine_id=run_id if quarantine else None)
        try:
            self._write(rel, data)
        finally:
            findings, problems = post.finish()
        launch = records.Launch(
            profile=self.box.profile,
            profile_source="flag",
            backend="mcp file tool",
            workspace=self.box.workspace,
        )
        warnings = list(report(findings, problems, write=self.box.write, launch=launch))
        self._record(
            "write", rel, allowed=True, reason=f"profile {self.box.profile}", size=len(data)
        )
        return {"path": rel, "bytes": len(data), **({"warnings": warnings} if warnings else {})}

    def _write(self, rel: str, data: bytes) -> None:
        parent, name = os.path.split(rel)
        dirfd = self._open("write", parent or ".", os.O_PATH | os.O_DIRECTORY)
        try:
            # Not truncated before it is known to be a plain file of its own: a FIFO would
            # block the server, a second hard link may be a file outside the workspace.
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(name, flags, 0o644, dir_fd=dirfd)
            except OSError as exc:
                raise self._refuse(
                    "write",
                    rel,
                    f"{rel}: {exc.strerror}",
                    hint="a symlink, a FIFO or a device is never written through",
                ) from exc
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                os.close(fd)
                raise self._refuse(
                    "write",
                    rel,
                    f"{rel} is not a plain file of its own (a FIFO, a device, or hard-linked)",
                    hint="write a regular file that has no other name",
                )
            os.set_blocking(fd, True)
            os.ftruncate(fd, 0)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        finally:
            with contextlib.suppress(OSError):
                os.close(dirfd)
