"""A devcontainer's container settings, checked before they reach a spec.

Owns: turning ``LaunchOptions``' devcontainer fields (user, hostname, labels, tmpfs
paths) into the spec's, refusing any value an engine would read as more than it says:
a user that is not a plain name or id, a label that would pose as one of codex-box's
own (``codex-box.owner`` decides which containers ``gc`` removes), a tmpfs over the
workspace, a bound or masked path, or the kernel's file systems (it would hide a mask,
or shadow ``/proc``). Does not own: what a devcontainer.json may ask for at all
(``devcontainer.vetting``), how engines apply them (``backends``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any

from orchestrator.core.errors import UsageError
from orchestrator.core.options import LaunchOptions
from orchestrator.core.paths import inside

_NAME_OR_ID = r"(?:[a-z_][a-z0-9_.-]{0,31}|\d{1,10})"
_USER = re.compile(rf"^{_NAME_OR_ID}(?::{_NAME_OR_ID})?$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
OWN_LABELS = "codex-box."
_KERNEL = ("/proc", "/sys", "/dev")


def container_settings(
    options: LaunchOptions, *, sandboxed: bool, bound: Iterable[str]
) -> dict[str, Any]:
    """The spec's devcontainer fields for ``options`` (empty without a devcontainer).
    ``bound``: every host path the container binds (workspace, write roots, masks)."""
    if options.devcontainer is None:
        return {}
    user = options.user
    if user is not None and not _USER.fullmatch(user):
        raise UsageError(
            f"devcontainer user {user!r} is not a user name or id",
            hint="use a plain name (vscode) or uid[:gid]",
        )
    host = options.hostname
    if host is not None and not _HOSTNAME.fullmatch(host):
        raise UsageError(f"devcontainer hostname {host!r} is not a host name")
    labels: list[tuple[str, str]] = []
    for item in options.labels:
        key, _, value = item.partition("=")
        if not _LABEL_KEY.fullmatch(key) or key.lower().startswith(OWN_LABELS) or len(value) > 4096:
            raise UsageError(
                f"devcontainer label {item[:80]!r} refused",
                hint=f"a key of letters, digits, '._/-'; never one of codex-box's ({OWN_LABELS}*)",
            )
        labels.append((key, value))
    tmpfs = tuple(dict.fromkeys(_tmpfs_path(p, tuple(bound)) for p in options.tmpfs))
    if tmpfs and not sandboxed:
        tmpfs = ()  # trusted binds nothing of ours: its volumes are the engine's business
    return {
        "devcontainer": options.devcontainer,
        "container_user": user,
        "hostname": host,
        "extra_labels": tuple(labels),
        "extra_tmpfs": tmpfs,
    }


def _tmpfs_path(path: str, bound: tuple[str, ...]) -> str:
    normal = posixpath.normpath(path) if path.startswith("/") else ""
    if normal.startswith("//"):
        normal = normal[1:]
    why = ""
    if not normal or normal == "/" or "\n" in path or "," in path or ":" in path:
        why = "not an absolute path below /"
    elif any(inside(normal, k) for k in _KERNEL):
        why = "the kernel's file systems are the engine's"
    elif any(inside(normal, b) or inside(b, normal) for b in bound):
        why = "it would cover a directory codex-box binds or masks"
    if why:
        raise UsageError(
            f"devcontainer volume target {path!r} refused: {why}",
            hint="mount volumes outside the workspace, e.g. /home/USER/.cache",
        )
    return normal
