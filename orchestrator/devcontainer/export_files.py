"""Writing what ``export`` plans: the devcontainer.json and the seccomp JSON beside it.

Owns: where the files go and what is already there (an existing file is merged only
with ``merge``; a devcontainer.json that is a symlink is never read through — a link to
a host file would copy it into the workspace — but replaced; a folder that resolves
outside the workspace is refused: the export writes and binds inside it only; a
filesystem.deny_read path inside the workspace is refused: a devcontainer.json cannot
hide it), what the image brings (``export_image.vet_image``), the workspace's protected
names —
a missing one gets a permanent empty placeholder, so that the read-only bind over it
keeps the container from creating it — how runArgs name the seccomp JSON
(``${localWorkspaceFolder}``-relative inside the workspace: the project file names no
path of this machine), and writing each file whole or not at all. Does not own: what
goes in the file (``export``).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError, Refused, UsageError
from orchestrator.core.paths import inside
from orchestrator.core.profile import PROTECTED_FILE_NAMES, Access, Profile

from .export import SECCOMP_FILE, WORKSPACE, check_exportable, plan, render
from .export_image import vet_image


@dataclass(frozen=True, slots=True)
class Exported:
    file: Path
    seccomp: Path | None
    notes: tuple[str, ...]


def export(
    profile: Profile,
    *,
    workspace: Path,
    output: Path,
    merge: bool,
    home: str,
    codex_home: str = "",
    environ: Mapping[str, str] | None = None,
    image: str | None = None,
) -> Exported:
    """Write ``output`` (and the seccomp JSON beside it) for ``profile``; merge into
    an existing file only when ``merge``."""
    from orchestrator.compile.deny_read import expand_deny_read
    from orchestrator.core.resources import seccomp_dir

    environ = os.environ if environ is None else environ
    check_exportable(profile)
    check_output(output, workspace)
    exists = os.path.lexists(output)
    if exists and not merge:
        raise UsageError(
            f"{output} exists", hint="pass --merge to merge the profile into it, or --output"
        )
    for path in expand_deny_read(profile, home=home, roots=(str(workspace),)):
        if inside(path, str(workspace)):
            raise Refused(
                f"profile {profile.name} hides {path} (filesystem.deny_read), inside the "
                "workspace: a devcontainer.json cannot hide it",
                hint="run the container with codex-box, or export another workspace",
            )
    linked = output.is_symlink()
    # A symlink is never read through (a link to ~/.docker/config.json would copy its
    # credentials into the workspace): it is replaced by a file of the profile's keys.
    config, original = read_output(output) if exists and not linked else ({}, None)
    seccomp = None
    if profile.seccomp:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", profile.name)
        seccomp = output.parent / SECCOMP_FILE.format(name=safe)
    ref = None if seccomp is None else _reference(seccomp, workspace)
    written = (output, *([seccomp] if seccomp else []))
    names = protected_names(profile, workspace, written)
    done = plan(
        profile,
        config,
        seccomp_ref=ref,
        protected=names,
        image=image,
        file=str(output),
        text=original,
    )
    vet_image(
        done.kept,
        profile,
        folder=output.parent,
        workspace=workspace,
        home=home,
        codex_home=codex_home,
        environ=environ,
    )
    text, lost = render(done, profile, original)
    own = {p.relative_to(workspace).parts[0] for p in written if inside(str(p), str(workspace))}
    made = make_placeholders(workspace, tuple(n for n in names if n not in own))
    output.parent.mkdir(parents=True, exist_ok=True)
    check_output(output, workspace)  # nothing swapped in meanwhile
    if seccomp is not None:
        _replace(seccomp, (seccomp_dir() / f"{profile.seccomp}.json").read_text(encoding="utf-8"))
    _replace(output, text)
    notes = list(done.notes) + lost
    if linked:
        notes.append(
            f"replaced the symlink {output} by a file of its own: what it pointed at was "
            "not read (it may be a host file); merge that file's keys in by hand if it was "
            "your configuration"
        )
    if made:
        notes.append(
            f"created {', '.join(made)} (empty, permanent): read-only in the container, so it "
            "cannot create them; remove them yourself if you do not want them"
        )
    if ref is not None and not ref.startswith(WORKSPACE):
        notes.append(
            f"the seccomp JSON is named by its absolute path: {output} is outside {workspace}"
        )
    return Exported(output, seccomp, tuple(notes))


def check_output(output: Path, workspace: Path) -> None:
    """Refused when ``output`` is inside the workspace by name but its folder resolves
    outside it (the export would write there, and bind it), or a folder on the way is a
    symlink (the container could rewrite the export through where it points)."""
    if inside(str(output), str(workspace)):
        real = os.path.realpath(output.parent)
        if not inside(real, os.path.realpath(workspace)):
            raise Refused(
                f"{output.parent} resolves to {real}, outside the workspace {workspace}: "
                "the export would write there and bind it into the container",
                hint="make it a real folder inside the workspace, or pass --output",
            )
        for part in _parts(output.parent, workspace):
            if part.is_symlink():
                raise Refused(
                    f"{part} is a symlink: the container could rewrite the export through "
                    "the folder it points at, which no read-only bind covers",
                    hint="make it a real folder, or pass --output",
                )


def read_output(output: Path) -> tuple[dict[str, Any], str]:
    """The file to merge into and its text, opened through no symlink."""
    from .config import read_config_text

    try:
        fd = os.open(output, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read {output}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{output} is not a regular file")
        config, text = read_config_text(f"/proc/self/fd/{fd}")
    except ConfigError as exc:
        raise ConfigError(
            exc.message.replace(f"/proc/self/fd/{fd}", str(output)), hint=exc.hint
        ) from None
    finally:
        os.close(fd)
    return config, text


def protected_names(
    profile: Profile, workspace: Path, written: tuple[Path, ...]
) -> tuple[str, ...]:
    """What to bind read-only over a writable workspace: each of the profile's
    protected names — or, when it is missing, its first missing component, which
    ``make_placeholders`` creates (a bind needs its source) — and where the export's
    own files (``written``) are: the container must not rewrite its next configuration
    or seccomp profile. Refused when one is a symlink: a bind would follow it."""
    from orchestrator.host.githooks import hooks_path_entry

    if profile.workspace is not Access.READ_WRITE:
        return ()
    names = list(profile.protected_paths)
    if hooks := hooks_path_entry(str(workspace)):
        names.append(hooks)
    own = [p.relative_to(workspace).parts[0] for p in written if inside(str(p), str(workspace))]
    found = []
    for name in dict.fromkeys([*names, *own]):
        if name.startswith("/") or ".." in Path(name).parts or "," in name:
            continue
        bound = Path()
        for part in Path(name).parts:
            bound /= part
            path = workspace / bound
            if path.is_symlink():
                raise Refused(
                    f"protected name {bound} is a symlink: a read-only bind would follow it, "
                    "and the link itself could be replaced",
                    hint="replace it with the real file or folder, or export a read-only profile",
                )
            if not os.path.lexists(path):
                break
        found.append(bound.as_posix())
    return tuple(dict.fromkeys(found))


def make_placeholders(workspace: Path, names: tuple[str, ...]) -> list[str]:
    """Create each missing name, relative to one descriptor of the workspace and never
    through a symlink: an empty folder, or an empty file for the protected names that
    are files. Permanent (no run ends to remove them). The names created. Refused when
    one turned into a symlink meanwhile (a bind would follow it)."""
    from orchestrator.sandbox.linux import pinning

    if not names:
        return []
    made = []
    try:
        root = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot open the workspace {workspace}: {exc.strerror}") from exc
    try:
        for name in names:
            directory, _, last = name.rpartition("/")
            try:
                parent = pinning.open_beneath(
                    root, directory or ".", flags=os.O_PATH | os.O_DIRECTORY
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot reach {workspace / directory} (to protect {name}): "
                    f"{exc.strerror or exc}",
                    hint="it must be a real folder inside the workspace, not a symlink",
                ) from exc
            try:
                with contextlib.suppress(FileExistsError):
                    if last in PROTECTED_FILE_NAMES:
                        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                        os.close(os.open(last, flags | os.O_CLOEXEC, 0o644, dir_fd=parent))
                    else:
                        os.mkdir(last, 0o755, dir_fd=parent)
                    made.append(name)
                info = os.stat(last, dir_fd=parent, follow_symlinks=False)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create placeholder {workspace / name}: {exc.strerror or exc}",
                    hint="a protected name must exist to be bound read-only",
                ) from exc
            finally:
                os.close(parent)
            if stat.S_ISLNK(info.st_mode):
                raise Refused(f"protected name {name} became a symlink while exporting")
    finally:
        os.close(root)
    return made


def _parts(folder: Path, workspace: Path) -> list[Path]:
    relative = folder.relative_to(workspace).parts if folder != workspace else ()
    return [workspace.joinpath(*relative[: n + 1]) for n in range(len(relative))]


def _reference(seccomp: Path, workspace: Path) -> str:
    if inside(str(seccomp), str(workspace)):
        return f"{WORKSPACE}/{seccomp.relative_to(workspace).as_posix()}"
    return str(seccomp)


def _replace(path: Path, text: str) -> None:
    """``path`` holds ``text``, or what it held before: never half of it."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
