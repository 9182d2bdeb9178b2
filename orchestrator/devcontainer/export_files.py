"""Writing what ``export`` plans: the devcontainer.json and the seccomp JSON beside it.

Owns: where the files go and what is already there (an existing file is merged only
with ``merge``; a filesystem.deny_read path inside the workspace is refused: a
devcontainer.json cannot hide it), the workspace's protected names that exist now,
how runArgs name the seccomp JSON (``${localWorkspaceFolder}``-relative inside the
workspace: the project file names no path of this machine), and writing each file
whole or not at all. Does not own: what goes in the file (``export``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import Refused, UsageError
from orchestrator.core.paths import inside
from orchestrator.core.profile import Access, Profile

from .export import SECCOMP_FILE, WORKSPACE, check_exportable, plan, render


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
    image: str | None = None,
) -> Exported:
    """Write ``output`` (and the seccomp JSON beside it) for ``profile``; merge into
    an existing file only when ``merge``."""
    from orchestrator.compile.deny_read import expand_deny_read
    from orchestrator.core.resources import seccomp_dir

    from .config import read_config

    check_exportable(profile)
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
    config = read_config(output) if exists else {}
    original = output.read_text(encoding="utf-8-sig") if exists else None
    seccomp = None
    if profile.seccomp:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", profile.name)
        seccomp = output.parent / SECCOMP_FILE.format(name=safe)
    ref = None if seccomp is None else _reference(seccomp, workspace)
    protected = protected_names(profile, workspace, (output, *([seccomp] if seccomp else [])))
    done = plan(
        profile, config, seccomp_ref=ref, protected=protected, image=image, file=str(output)
    )
    text, lost = render(done, profile, original)
    output.parent.mkdir(parents=True, exist_ok=True)
    if seccomp is not None:
        _replace(seccomp, (seccomp_dir() / f"{profile.seccomp}.json").read_text(encoding="utf-8"))
    _replace(output, text)
    notes = list(done.notes) + lost
    if ref is not None and not ref.startswith(WORKSPACE):
        notes.append(
            f"the seccomp JSON is named by its absolute path: {output} is outside {workspace}"
        )
    return Exported(output, seccomp, tuple(notes))


def protected_names(
    profile: Profile, workspace: Path, written: tuple[Path, ...]
) -> tuple[str, ...]:
    """The profile's protected names that exist in ``workspace`` now (a bind mount needs
    its source), symlinks left out (a bind would follow one), and where the export's
    own files (``written``) are: the container must not rewrite its next configuration
    or seccomp profile."""
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
        path = workspace / name
        if name in own or (os.path.lexists(path) and not path.is_symlink()):
            found.append(name)
    return tuple(found)


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
