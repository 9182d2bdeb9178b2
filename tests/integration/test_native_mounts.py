"""Making every mount read-only when mountinfo lists mounts no path reaches.

A native sandbox remounts each mount of its namespace read-only. mountinfo also lists
mounts that their path no longer leads to — one covered by a later mount on a parent
(with a directory of the same name inside the cover), or a container overlay the host
unmounted while the sandbox was starting (a CI run failed on exactly that: EINVAL on
``…/merged``). Such a mount must be skipped, never abort the launch; a mount the path
does lead to must still be made read-only, and a real failure on one must still fail.

Each case runs in a child process with its own mount namespace (and its own user
namespace when not root), so nothing here touches the host's mounts.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.sandbox.linux import mounts

_CHILD = textwrap.dedent(
    """
    import errno, os, sys
    from orchestrator.sandbox.linux import libc, mounts

    base = sys.argv[1]
    uid, gid = os.getuid(), os.getgid()
    flags = libc.CLONE_NEWNS
    if uid != 0:
        flags |= libc.CLONE_NEWUSER
    libc.unshare(flags)
    if uid != 0:
        with open("/proc/self/setgroups", "w") as f: f.write("deny")
        with open("/proc/self/uid_map", "w") as f: f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f: f.write(f"0 {gid} 1")
    mounts.make_private()
    os.makedirs(f"{base}/inner")
    libc.mount("tmpfs", f"{base}/inner", "tmpfs", 0)
    libc.mount("tmpfs", base, "tmpfs", 0)        # covers the tmpfs on base/inner
    os.makedirs(f"{base}/inner")                 # the same path, now inside the cover
    listed = mounts.mountpoints()
    assert f"{base}/inner" in listed and base in listed, listed
    mounts.make_everything_read_only(except_under=[])
    try:
        open(f"{base}/inner/probe", "w")
    except OSError as exc:
        print("write:", errno.errorcode[exc.errno])
    else:
        print("write: allowed")
    """
)


def test_a_covered_mount_is_skipped_and_the_cover_is_made_read_only(tmp_path: Path) -> None:
    base = tmp_path / "base"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(base)],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "write: EROFS"


def test_einval_on_a_mount_the_path_does_lead_to_still_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "/" is listed in mountinfo and the path leads to that very mount: an EINVAL on it
    # is a real failure, and skipping it would leave the root writable.
    def refuse(path: str, *, read_only: bool) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)

    monkeypatch.setattr(mounts, "mountpoints", lambda: ["/"])
    monkeypatch.setattr(mounts, "remount", refuse)
    with pytest.raises(OSError) as raised:
        mounts.make_everything_read_only(except_under=[])
    assert raised.value.errno == errno.EINVAL
