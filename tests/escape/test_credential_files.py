"""filesystem.deny_read on the native backend: every default entry, made by the test in
a scratch HOME with known contents, shows nothing inside every sandboxed profile (a file
reads empty or is refused, a directory lists empty) — run and exec alike — while
``trusted`` (the control) reads it. Then the ways around a mask: /proc/self/root, a
symlink, a hard link, an ``O_PATH`` descriptor, umount, /proc/PID/root, and (with the
home as a writable workspace) renaming, deleting or writing the masked path.

Everything lives under /var/tmp: write profiles replace /tmp with a private tmpfs, which
would hide a HOME there and make every test pass for the wrong reason. Runs as root and
as a normal user (scripts/ci-nonroot.sh): /etc/shadow's control needs root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.core.profile import DEFAULT_DENY_READ
from tests.conftest import SANDBOX_PYTHON
from tests.escape.conftest import scratch_root, scratch_workspace

SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
MARK = "codex-box-credential-marker"
# How the test makes each default entry: a directory (holding a file) or a file.
KINDS = {
    "~/.ssh": "dir",
    "~/.gnupg": "dir",
    "~/.aws": "dir",
    "~/.azure": "dir",
    "~/.config/gcloud": "dir",
    "~/.kube": "dir",
    "~/.docker/config.json": "file",
    "~/.config/gh/hosts.yml": "file",
    "~/.git-credentials": "file",
    "~/.netrc": "file",
    "~/.npmrc": "file",
    "~/.pypirc": "file",
    "~/.local/share/keyrings": "dir",
    "/etc/shadow": "system",
    "/etc/gshadow": "system",
}
# What the sandbox reports about one path: its listing (a directory) and what reading
# it (or the file inside) gives — the text, or the error's name.
PROBE = r"""
import json, os, sys
path = sys.argv[1]
out = {"exists": os.path.lexists(path)}
def read(p):
    try:
        with open(p, errors="replace") as f:
            return f.read()
    except OSError as e:
        return f"<{type(e).__name__}>"
if os.path.isdir(path):
    out["listing"] = sorted(os.listdir(path))
    out["inner"] = read(os.path.join(path, "secret"))
else:
    out["read"] = read(path)
print(json.dumps(out))
"""


def test_every_default_entry_is_covered_here() -> None:
    assert set(KINDS) == set(DEFAULT_DENY_READ), "a new default entry needs its escape test"


@pytest.fixture
def backend(native_available: None) -> str:  # overrides conftest's: native only
    return "native"


@pytest.fixture
def root() -> Iterator[Path]:
    yield from scratch_root("codex-box-creds")


@pytest.fixture
def home(root: Path) -> Path:  # overrides conftest's: the run's HOME (request.home)
    (root / "home").mkdir()
    return root / "home"


@pytest.fixture
def workspace(root: Path) -> Path:
    return scratch_workspace(root)


def host_path(entry: str, home: Path) -> Path:
    return home / entry[2:] if entry.startswith("~/") else Path(entry)


def make(entry: str, home: Path) -> Path:
    path = host_path(entry, home)
    if KINDS[entry] == "dir":
        path.mkdir(parents=True)
        (path / "secret").write_text(MARK)
    elif KINDS[entry] == "file":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MARK)
    return path


def probe(box, profile: str, path: Path, *flags: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    ran = box(profile, SANDBOX_PYTHON, "-c", PROBE, str(path), flags=flags)
    assert ran.returncode == 0, ran.stderr
    report: dict[str, object] = json.loads(ran.stdout.strip().splitlines()[-1])
    return report


def shows_nothing(report: dict[str, object]) -> bool:
    if "listing" in report:
        return report["listing"] == [] and MARK not in str(report["inner"])
    return report["read"] == "" or report["read"] == "<PermissionError>"


@pytest.mark.parametrize("profile", SANDBOXED)
@pytest.mark.parametrize("entry", list(KINDS))
def test_each_default_entry_shows_nothing_inside_every_sandboxed_profile(
    box, profile: str, entry: str, home: Path, workspace: Path
) -> None:
    path = make(entry, home)
    report = probe(box, profile, path)
    assert report["exists"], "masked, not removed: the path is still there"
    assert shows_nothing(report), report
    if KINDS[entry] != "system":
        assert MARK in (path / "secret" if path.is_dir() else path).read_text(), "host intact"


@pytest.mark.parametrize("entry", list(KINDS))
def test_the_control_trusted_reads_each_entry(box, entry: str, home: Path, workspace: Path) -> None:
    if KINDS[entry] == "system" and os.geteuid() != 0:
        pytest.skip("only root reads /etc/shadow unsandboxed")
    path = make(entry, home)
    report = probe(box, "trusted", path, "--yes-i-trust-this-workspace")
    assert not shows_nothing(report), report
    if KINDS[entry] != "system":
        assert MARK in json.dumps(report)


# CODEX_HOME's key directories (grants/.key signs grants and approvals; cache/policy/.key
# the policy cache; serve/ the API server's token): hidden whatever the profile says. A
# marker file stands in for the key, so codex-box's own use of the real key files is left
# alone.
CODEX_HOME_KEYS = ("grants", "cache/policy", "serve")


@pytest.mark.parametrize("profile", SANDBOXED)
def test_codex_homes_key_directories_show_nothing_inside(
    box, profile: str, codex_home: Path, workspace: Path
) -> None:
    for name in CODEX_HOME_KEYS:
        directory = codex_home / name
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / "secret").write_text(MARK)
        report = probe(box, profile, directory)
        assert report["exists"] and shows_nothing(report), (name, report)
        assert (directory / "secret").read_text() == MARK, "host intact"


def test_the_control_trusted_reads_codex_homes_key_directories(
    box, codex_home: Path, workspace: Path
) -> None:
    for name in CODEX_HOME_KEYS:
        directory = codex_home / name
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / "secret").write_text(MARK)
        report = probe(box, "trusted", directory, "--yes-i-trust-this-workspace")
        assert MARK in json.dumps(report), (name, report)


# --- ways around a mask ------------------------------------------------------------------

AROUND = r"""
import ctypes, json, os, sys
key, ssh, netrc = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
def attempt(name, fn):
    try:
        out[name] = fn()
    except OSError as e:
        out[name] = f"<{type(e).__name__} {e.errno}>"
def read(p):
    with open(p, errors="replace") as f:
        return f.read()
attempt("proc_root", lambda: read("/proc/self/root" + key))
attempt("proc_root_netrc", lambda: read("/proc/self/root" + netrc))
def via_symlink():
    os.symlink(key, "link-made-inside")
    return read("link-made-inside")
attempt("symlink_inside", via_symlink)
attempt("symlink_planted", lambda: read("planted-link"))
def via_hardlink():
    os.link(netrc, "hard-made-inside")
    return read("hard-made-inside")
attempt("hardlink", via_hardlink)
def via_o_path():
    fd = os.open(ssh, os.O_PATH)
    inner = os.open("id_ed25519", os.O_RDONLY, dir_fd=fd)
    return os.read(inner, 4096).decode(errors="replace")
attempt("o_path", via_o_path)
libc = ctypes.CDLL(None, use_errno=True)
for name, target in (("umount_dir", ssh), ("umount_file", netrc)):
    rc = libc.umount2(target.encode(), 2)  # MNT_DETACH
    out[name] = rc if rc == 0 else f"<errno {ctypes.get_errno()}>"
attempt("after_umount", lambda: read(key) + read(netrc))
seen = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for p in (key, netrc):
            try:
                seen.append(read(f"/proc/{pid}/root{p}"))
            except OSError:
                pass
out["proc_pid_roots"] = seen
print(json.dumps(out))
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_no_way_around_the_mask(box, profile: str, home: Path, workspace: Path) -> None:
    ssh = make("~/.ssh", home)
    (ssh / "id_ed25519").write_text(MARK)
    netrc = make("~/.netrc", home)
    (workspace / "planted-link").symlink_to(ssh / "id_ed25519")  # shipped with the repo
    ran = box(profile, SANDBOX_PYTHON, "-c", AROUND, str(ssh / "id_ed25519"), str(ssh), str(netrc))
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert MARK not in ran.stdout, report
    assert str(report["umount_dir"]).startswith("<errno"), report  # no CAP_SYS_ADMIN
    assert str(report["umount_file"]).startswith("<errno"), report
    assert str(report["hardlink"]).startswith("<"), report  # EXDEV or EROFS: no link made
    assert report["proc_root"] == "<FileNotFoundError 2>", report
    assert report["o_path"] == "<FileNotFoundError 2>", report
    assert MARK in (ssh / "id_ed25519").read_text() and MARK in netrc.read_text()


RESHAPE = r"""
import json, os
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "done"
    except OSError as e:
        out[name] = f"<{type(e).__name__} {e.errno}>"
attempt("rename_dir", lambda: os.rename("keys", "keys-moved"))
attempt("rmdir", lambda: os.rmdir("keys"))
attempt("unlink_file", lambda: os.unlink(".env"))
attempt("rename_file", lambda: os.rename(".env", "env-moved"))
attempt("write_inside", lambda: open("keys/new", "w").close())
attempt("truncate_file", lambda: open(".env", "w").close())
attempt("rename_parent", lambda: os.rename("cfg", "cfg-moved"))
try:
    with open("cfg-moved/gh/hosts.yml") as f:
        out["moved_parent_read"] = f.read()
except OSError as e:
    out["moved_parent_read"] = f"<{type(e).__name__}>"
print(json.dumps(out))
"""


@pytest.mark.parametrize("profile", ("workspace", "workspace-net"))
def test_a_masked_path_inside_a_writable_workspace_cannot_be_replaced(
    box, profile: str, workspace: Path, codex_home: Path
) -> None:
    """A user profile masks paths inside the writable workspace (relative entries)."""
    (codex_home / "profiles").mkdir()
    (codex_home / "profiles" / "masked.yaml").write_text(
        f"extends: {profile}\nfilesystem:\n  deny_read: [keys, .env, cfg/gh/hosts.yml]\n"
    )
    (workspace / "keys").mkdir()
    (workspace / "keys" / "secret").write_text(MARK)
    (workspace / ".env").write_text(MARK)
    (workspace / "cfg" / "gh").mkdir(parents=True)
    (workspace / "cfg" / "gh" / "hosts.yml").write_text(MARK)
    ran = box("masked", SANDBOX_PYTHON, "-c", RESHAPE)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    for name in ("rename_dir", "rmdir", "unlink_file", "rename_file"):
        assert report[name] == "<OSError 16>", report  # EBUSY: a mount point
    assert report["write_inside"].startswith("<OSError 30"), report  # EROFS
    assert report["truncate_file"].startswith("<OSError 30"), report
    assert report["rename_parent"] == "done", report  # allowed: the mount moves along
    assert MARK not in report["moved_parent_read"], report
    assert (workspace / "keys" / "secret").read_text() == MARK
    assert (workspace / ".env").read_text() == MARK
    assert (workspace / "cfg-moved" / "gh" / "hosts.yml").read_text() == MARK
