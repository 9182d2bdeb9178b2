"""Process and kernel attacks, every sandboxed profile x every backend: entering other
namespaces, chroot, tracing a sibling or a host process, reading a host process's
environment, loading kernel modules, writing /sys. Each is judged by its effect on the
host (the host process is not traced, its secret is not printed, the /sys value is
unchanged) and, where the host allows it, by an unsandboxed control that succeeds.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import SANDBOX_PYTHON

SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
EPERM, EACCES = 1, 13

NAMESPACES = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(r):
    return 0 if r == 0 else ctypes.get_errno()
for ns in ("net", "mnt", "pid", "uts", "ipc"):
    fd = os.open(f"/proc/self/ns/{ns}", os.O_RDONLY)
    print(f"setns-{ns}", errno_of(libc.setns(fd, 0)))
    os.close(fd)
print("chroot", errno_of(libc.chroot(b"/")))
"""


def _results(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line)}


@pytest.mark.parametrize("profile", SANDBOXED)
def test_setns_and_chroot_are_refused(box, profile, tmp_path):
    # The control needs root (setns and chroot need CAP_SYS_ADMIN / CAP_SYS_CHROOT);
    # without it only the control is left out, the attack still runs.
    if os.geteuid() == 0:
        control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", NAMESPACES],
                                 capture_output=True, text=True, check=True, cwd=tmp_path)
        assert set(_results(control.stdout).values()) == {0}, f"control: {control.stdout}"
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", NAMESPACES)
    got = _results(ran.stdout)
    assert len(got) == 6, ran.stdout + ran.stderr
    assert set(got.values()) == {EPERM}, got
    tools = box(profile, "sh", "-c", "nsenter -t 1 -m -u true && echo ENTERED; "
                "chroot / true && echo CHROOTED; echo end")
    assert "end" in tools.stdout and "ENTERED" not in tools.stdout \
        and "CHROOTED" not in tools.stdout


TRACE = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
SECRET = b"codex-box-sibling-secret"
secret = ctypes.create_string_buffer(SECRET)  # at the same address in the forked sibling
pids = [int(p) for p in sys.argv[1:]]
sibling = os.fork()
if sibling == 0:
    time.sleep(5)
    os._exit(0)
for pid in [sibling, *pids]:
    who = "sibling" if pid == sibling else "host"
    for request in (PTRACE_ATTACH, PTRACE_SEIZE):
        ctypes.set_errno(0)
        r = libc.ptrace(request, pid, None, None)
        print(f"ptrace-{request}-{who}", 0 if r == 0 else ctypes.get_errno())
    # /proc/<pid>/mem is ptrace by another name: read where the sibling keeps SECRET
    # (a mapped address, so a failure is the access check, not an unmapped page).
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(ctypes.addressof(secret))
            got = mem.read(len(SECRET))
        print(f"mem-{who}", 0 if got == SECRET else -1)  # -1: read, not the secret
    except OSError as exc:
        print(f"mem-{who}", exc.errno or 1)
os.kill(sibling, signal.SIGKILL)
"""


def _trace(box, profile: str, host_pid: int) -> dict[str, int]:
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", TRACE, str(host_pid))
    got = _results(ran.stdout)
    assert set(got) == {f"{kind}-{who}" for who in ("sibling", "host")
                        for kind in ("ptrace-16", f"ptrace-{0x4206}", "mem")}, \
        ran.stdout + ran.stderr
    return got


@pytest.fixture(scope="module")
def trace_control(tmp_path_factory) -> dict[str, int]:
    """TRACE unsandboxed, on the sibling only (attaching to a host process would stop
    it): a parent may trace its child and read the secret from its memory."""
    ran = subprocess.run([SANDBOX_PYTHON, "-I", "-c", TRACE], capture_output=True, text=True,
                         check=True, cwd=tmp_path_factory.mktemp("trace"))
    control = _results(ran.stdout)
    assert control["ptrace-16-sibling"] == 0 and control["mem-sibling"] == 0, \
        f"control: unsandboxed, the sibling can be traced and its memory read: {control}"
    return control


@pytest.mark.parametrize("profile", SANDBOXED)
def test_ptrace_of_a_sibling_or_a_host_process_is_refused(box, profile, trace_control):
    host = subprocess.Popen(["sleep", "30"])
    try:
        got = _trace(box, profile, host.pid)
        assert all(got[k] == EPERM for k in got if k.startswith("ptrace-")), got
        # /proc/<host pid> is not even visible (own pid namespace): reading its memory fails
        assert got["mem-host"] != 0, got
        status = Path(f"/proc/{host.pid}/status").read_text()
        assert "TracerPid:\t0" in status and "State:\tS" in status, status
    finally:
        host.kill()
        host.wait()


@pytest.mark.parametrize("profile", SANDBOXED)
def test_proc_pid_mem_reaches_no_process_outside_the_sandbox(box, profile, trace_control):
    """/proc/<pid>/mem is ptrace by another name (the same PTRACE_MODE_ATTACH check).
    A host process is out of reach (own pid namespace: not even visible). The sandboxed
    process's own child stays readable, as it is for any parent: same uid, same sandbox,
    same seccomp filter and capabilities, so no boundary is crossed (README: Honest
    limits). The control shows the probe reads the secret where access is allowed."""
    host = subprocess.Popen(["sleep", "30"])
    try:
        got = _trace(box, profile, host.pid)
    finally:
        host.kill()
        host.wait()
    assert got["mem-host"] in (2, 3, EPERM, EACCES), got  # ENOENT/ESRCH: not visible
    assert got["mem-sibling"] in (0, EPERM, EACCES), got  # never a half-read (-1)


@pytest.mark.parametrize("profile", SANDBOXED)
def test_a_host_process_environment_cannot_be_read(box, profile):
    secret = f"codex-box-secret-{uuid.uuid4().hex}"
    env = {**os.environ, "HOST_ONLY_SECRET": secret}
    host = subprocess.Popen(["sleep", "30"], env=env)
    try:
        deadline = time.monotonic() + 5  # until the child has exec'd sleep
        while b"HOST_ONLY" not in (control := Path(f"/proc/{host.pid}/environ").read_bytes()) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        assert secret.encode() in control, "control: the host can read it"
        ran = box(profile, "sh", "-c", f"cat /proc/{host.pid}/environ; "
                  "cat /proc/[0-9]*/environ; cat /proc/1/environ; "
                  "tr '\\0' '\\n' < /proc/self/environ; echo end")
        assert "end" in ran.stdout, ran.stderr
        assert secret not in ran.stdout + ran.stderr
    finally:
        host.kill()
        host.wait()


MODULE = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fd = os.open("/dev/null", os.O_RDONLY)
for name, number in (("finit_module", 313), ("init_module", 175)):
    ctypes.set_errno(0)
    if name == "finit_module":
        r = libc.syscall(ctypes.c_long(number), ctypes.c_long(fd), ctypes.c_char_p(b""), 0)
    else:
        r = libc.syscall(ctypes.c_long(number), ctypes.c_char_p(b"\0" * 64), 64,
                         ctypes.c_char_p(b""))
    print(name, 0 if r == 0 else ctypes.get_errno())
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")
@pytest.mark.parametrize("profile", SANDBOXED)
def test_kernel_modules_cannot_be_loaded(box, profile, tmp_path):
    """Refused by the seccomp filter before the kernel looks at the image (EPERM);
    unsandboxed, root gets past that check to the image itself (a different errno).
    This kernel has no module support, so no real module can serve as the control."""
    control = _results(subprocess.run([SANDBOX_PYTHON, "-I", "-c", MODULE],
                                      capture_output=True, text=True, check=True,
                                      cwd=tmp_path).stdout)
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", MODULE)
    assert _results(ran.stdout) == {"finit_module": EPERM, "init_module": EPERM}, \
        ran.stdout + ran.stderr
    if os.geteuid() == 0:
        assert EPERM not in control.values(), f"control: root passes the check {control}"
    tools = box(profile, "sh", "-c", "insmod /dev/null && echo LOADED; "
                "modprobe dummy && echo LOADED; echo end")
    assert "end" in tools.stdout and "LOADED" not in tools.stdout


KSM = Path("/sys/kernel/mm/ksm")
# Host-wide KSM knobs: harmless to set back, and writable by root unsandboxed.
SYS_TARGETS = (KSM / "pages_to_scan", KSM / "run", KSM / "sleep_millisecs")

SYS_WRITE = r"""
import sys
for target, value in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        with open(target, "w") as knob:
            knob.write(value + "\n")
        print(target, "WRITTEN")
    except OSError as exc:
        print(target, "refused", exc.errno)
"""


def _sys_write(argv: list[str]) -> list[str]:
    return [a for path, value in argv for a in (str(path), value)]


@pytest.mark.skipif(not all(t.exists() for t in SYS_TARGETS), reason="needs KSM's /sys knobs")
@pytest.mark.parametrize("profile", SANDBOXED)
def test_sys_cannot_be_written(box, profile, tmp_path):
    before = {t: t.read_text() for t in SYS_TARGETS}
    # A value each knob does not hold now (run: 0 stops, 1 starts KSM; never 2, which
    # unmerges every page), so a write that got through would show on the host.
    wanted = {t: str(int(v) + 7) for t, v in before.items()}
    wanted[KSM / "run"] = "0" if before[KSM / "run"].strip() == "1" else "1"
    try:
        if os.geteuid() == 0:  # control: root writes each knob (its own value: no change)
            control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", SYS_WRITE, *_sys_write(
                [(t, v.strip()) for t, v in before.items()])], capture_output=True,
                text=True, check=True, cwd=tmp_path).stdout
            for target in SYS_TARGETS:
                assert f"{target} WRITTEN" in control, f"control: root writes {target}\n{control}"
        ran = box(profile, SANDBOX_PYTHON, "-I", "-c", SYS_WRITE,
                  *_sys_write(list(wanted.items())))
        for target in SYS_TARGETS:  # each one attempted, each one refused
            assert f"{target} refused" in ran.stdout, ran.stdout + ran.stderr
            assert target.read_text() == before[target], f"the sandbox changed {target}"
        assert "WRITTEN" not in ran.stdout, ran.stdout
    finally:
        for target, value in before.items():  # only if the attack worked: put it back
            if target.read_text() != value:
                target.write_text(value)
