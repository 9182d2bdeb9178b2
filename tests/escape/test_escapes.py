"""Sandbox-escape attempts, one attack per test, every sandboxed profile; those taking
the ``box`` fixture run on every backend (native, docker, podman), the ``sandbox`` ones
attack what only the native launcher has (its pty, its status pipe, its /run masking).
Where an attack would succeed on an unprotected host, a control run shows it does — so
each pass means the sandbox stopped it, not that the attack was broken.
"""

from __future__ import annotations

import json
import os
import platform
import pty
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.backends import cgroups
from orchestrator.backends.containers.common import kernel_log
from tests.conftest import CODEX_BOX, SANDBOX_PYTHON
from tests.servers import unix_server

SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
EPERM, ENOSYS = 1, 38

# Each probe is a syscall that *succeeds* for uid 0 without capabilities on this kernel
# unless a seccomp filter stops it; the result is 0 on success, else the errno.
SYSCALL_PROBES = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
def call(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(lib.seccomp_syscall_resolve_name(name.encode()),
                     *[ctypes.c_long(a) for a in args])
    return r, (0 if r >= 0 else ctypes.get_errno())
out = {}
out["unshare(CLONE_NEWUSER)"] = call("unshare", 0x10000000)[1]
r, err = call("clone", 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
if r == 0:
    os._exit(0)
if r > 0:
    os.waitpid(r, 0)
out["clone(CLONE_NEWUSER)"] = err
out["clone3"] = call("clone3", 0, 0)[1] if call("clone3", 0, 0)[1] != 14 else 14
params = ctypes.create_string_buffer(120)
r, err = call("io_uring_setup", 4, ctypes.addressof(params))
out["io_uring_setup"] = err
if r >= 0:
    os.close(r)
out["keyctl(GET_KEYRING_ID)"] = call("keyctl", 0, -3 & 0xFFFFFFFF, 0)[1]
out["ptrace(TRACEME)"] = call("ptrace", 0, 0, 0, 0)[1]
out["personality(ADDR_NO_RANDOMIZE)"] = call("personality", 0x0040000)[1]
print(json.dumps(out))
"""


def _probe(sandbox, profile: str) -> dict[str, int]:
    ran = sandbox(profile, SANDBOX_PYTHON, "-I", "-c", SYSCALL_PROBES)
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


@pytest.fixture(scope="module")
def unfiltered(native_available, tmp_path_factory):
    """The same probes with no sandbox: proof that each attack works when unprotected."""
    ran = subprocess.run([SANDBOX_PYTHON, "-I", "-c", SYSCALL_PROBES], capture_output=True,
                         text=True, check=True, cwd=tmp_path_factory.mktemp("probe"))
    return json.loads(ran.stdout)


@pytest.mark.parametrize("profile", SANDBOXED)
def test_namespace_keyring_io_uring_ptrace_and_personality_syscalls_are_denied(
        box, profile, unfiltered):
    inside = _probe(box, profile)
    for name, errno_inside in inside.items():
        expected = ENOSYS if name == "clone3" else EPERM
        assert errno_inside == expected, f"{name}: errno {errno_inside} inside the sandbox"
    worked_outside = [n for n, e in unfiltered.items() if e == 0]
    assert len(worked_outside) >= 5, f"control: unprotected, these work: {unfiltered}"


@pytest.mark.parametrize("profile", SANDBOXED)
def test_unshare_and_mount_tools_fail(box, profile):
    ran = box(profile, "sh", "-c", "unshare -Ur true && echo UNSHARED; "
                  "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; echo end")
    assert "end" in ran.stdout
    assert "UNSHARED" not in ran.stdout and "MOUNTED" not in ran.stdout


# push rbx; mov eax, 310 (i386 unshare); mov ebx, CLONE_NEWUSER; int 0x80; pop rbx; ret
INT80 = r"""
import ctypes, mmap
code = bytes.fromhex("53b836010000bb00000010cd805bc3")
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print("result", fn())
"""

X32 = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(ctypes.c_long(0x40000000 | 272), ctypes.c_long(0x10000000))  # x32 unshare
print("result", r, ctypes.get_errno())
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="i386/x32 ABIs exist on x86_64")
@pytest.mark.parametrize("profile", SANDBOXED)
def test_syscalls_through_the_i386_abi_kill_the_process(box, profile, tmp_path):
    control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", INT80], capture_output=True,
                             text=True, check=False, cwd=tmp_path)
    assert control.stdout.strip() == "result 0", "control: int 0x80 unshare works unprotected"
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", INT80)
    assert "result" not in ran.stdout
    assert ran.returncode == 128 + signal.SIGSYS


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 exists on x86_64 only")
@pytest.mark.parametrize("profile", SANDBOXED)
def test_syscalls_through_the_x32_abi_do_not_get_through(box, profile):
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", X32)
    assert "result 0 " not in ran.stdout
    assert ran.returncode == 128 + signal.SIGSYS or "result -1 38" in ran.stdout


TIOCSTI = r"""
import fcntl, termios
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"#")
    print("INJECTED")
except OSError as exc:
    print("refused", exc.errno)
"""


def _run_on_controlling_pty(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run argv with a fresh pty as stdin *and* controlling terminal (as an agent would be)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(argv, stdin=slave, capture_output=True, text=True, env=env,
                              cwd=cwd, start_new_session=True, timeout=60, check=False,
                              preexec_fn=lambda: __import__("fcntl").ioctl(
                                  0, __import__("termios").TIOCSCTTY, 0))
        return proc.stdout
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.skipif(Path("/proc/sys/dev/tty/legacy_tiocsti").exists()
                    and Path("/proc/sys/dev/tty/legacy_tiocsti").read_text().strip() == "0",
                    reason="this kernel disables TIOCSTI for everyone")
@pytest.mark.parametrize("profile", SANDBOXED)
def test_terminal_input_injection_with_tiocsti_is_refused(native_available, base_env,
                                                           workspace, profile):
    control = _run_on_controlling_pty([SANDBOX_PYTHON, "-I", "-c", TIOCSTI], base_env, workspace)
    assert "INJECTED" in control, "control: TIOCSTI works on a controlling tty unprotected"
    out = _run_on_controlling_pty([CODEX_BOX, "run", "--backend", "native", "--profile",
                                   profile, "--", SANDBOX_PYTHON, "-I", "-c", TIOCSTI],
                                  base_env, workspace)
    assert f"refused {EPERM}" in out


CONNECT_UNIX = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
    print("CONNECTED", s.recv(8))
except OSError as exc:
    print("refused", exc.errno)
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_host_unix_socket_daemons_are_unreachable(box, profile):
    """Like the Docker socket or an SSH agent: a daemon outside is a way out."""
    path = f"/var/tmp/codex-box-daemon-{uuid.uuid4().hex[:8]}.sock"
    with unix_server(path) as server:
        control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", CONNECT_UNIX, path],
                                 capture_output=True, text=True, check=False)
        assert "CONNECTED" in control.stdout
        ran = box(profile, SANDBOX_PYTHON, "-I", "-c", CONNECT_UNIX, path)
        time.sleep(0.2)
    assert "refused" in ran.stdout, ran.stdout + ran.stderr
    assert len(server.hits) == 1, "only the control connected"


ABSTRACT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0" + sys.argv[1])
    print("CONNECTED")
except OSError as exc:
    print("refused", exc.errno)
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_host_abstract_unix_sockets_are_unreachable(box, profile):
    name = f"codex-box-abstract-{uuid.uuid4().hex[:8]}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(4)
    try:
        control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", ABSTRACT, name],
                                 capture_output=True, text=True, check=False)
        assert "CONNECTED" in control.stdout
        ran = box(profile, SANDBOX_PYTHON, "-I", "-c", ABSTRACT, name)
    finally:
        server.close()
    assert "refused" in ran.stdout, ran.stdout + ran.stderr


@pytest.mark.parametrize("profile", SANDBOXED)
def test_host_processes_cannot_be_signalled(box, profile):
    victim = subprocess.Popen(["sleep", "30"])
    try:
        ran = box(profile, "sh", "-c", f"kill -9 {victim.pid}; echo end")
        time.sleep(0.2)
        assert "end" in ran.stdout
        assert victim.poll() is None, "a host process was killed from inside the sandbox"
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("profile", SANDBOXED)
def test_kernel_tunables_and_the_kernel_log_cannot_be_written(box, profile):
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    hostname = Path("/proc/sys/kernel/hostname").read_text()
    marker = f"codex-box-escape-{uuid.uuid4().hex[:12]}"
    ran = box(profile, "sh", "-c",
                  "echo '|/bin/sh -c pwned' > /proc/sys/kernel/core_pattern; "
                  f"echo h > /proc/sysrq-trigger; echo {marker} > /dev/kmsg; "
                  "echo codex-box > /proc/sys/kernel/hostname; echo end")
    assert "end" in ran.stdout
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
    assert Path("/proc/sys/kernel/hostname").read_text() == hostname
    assert ran.stderr.count("cannot create") >= 3, ran.stderr  # core_pattern, sysrq, hostname
    # An engine's /dev is the container's own tmpfs: `> /dev/kmsg` may make a file
    # there. What matters is the host's kernel log.
    assert marker not in _kernel_log(), "the sandbox wrote to the host's kernel log"


def _kernel_log() -> str:
    """The host's kernel ring buffer (as root), through the backend's own bounded reader."""
    return b"".join(kernel_log()).decode(errors="replace")


@pytest.mark.parametrize("profile", SANDBOXED)
def test_seed_shell_escape_through_bash_c_stays_sandboxed(box, profile):
    """Seed: test_sandbox_blocks_shell_escape_bash — nesting shells changes nothing."""
    target = f"/etc/codex-box-escape-{uuid.uuid4().hex[:8]}"
    ran = box(profile, "bash", "-c",
                  f"bash -c \"sh -c 'echo pwned > {target}'\"; "
                  f"exec {SANDBOX_PYTHON} -c \"open('{target}', 'w')\"")
    assert ran.returncode != 0
    assert not Path(target).exists()


@pytest.mark.parametrize("profile", SANDBOXED)
def test_no_launcher_file_descriptor_leaks_into_the_command(sandbox, profile):
    ran = sandbox(profile, SANDBOX_PYTHON, "-I", "-c",
                  "import os; print(sorted(os.listdir('/proc/self/fd')))")
    assert ran.returncode == 0, ran.stderr
    fds = [int(fd) for fd in json.loads(ran.stdout.replace("'", '"'))]
    assert [fd for fd in fds if fd > 2 and fd != max(fds)] == [], fds  # max: listdir's own


FORKED_CHILD_ENVIRON = r"""
import os, sys, time
pid = os.fork()
if pid == 0:
    time.sleep(5)
    os._exit(0)
print(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
os.kill(pid, 9)
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_the_forked_launcher_shows_nothing_of_codex_box_to_the_command(sandbox, profile):
    """The native launcher is a fork of codex-box: its memory starts as a copy of
    codex-box's, host environment and command line included. Pid 1 (its child) must
    show neither: the blocks are zeroed and pid 1 is not dumpable. The control shows a
    plain fork does expose its parent's environment."""
    secret = f"codex-box-parent-{uuid.uuid4().hex}"
    control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", FORKED_CHILD_ENVIRON],
                             env={"PATH": "/usr/bin:/bin", "PARENT_ONLY_TOKEN": secret},
                             capture_output=True, text=True, timeout=30, check=True)
    assert secret in control.stdout, "control: a fork shows its parent's environment"
    ran = sandbox(profile, "sh", "-c",
                  "cat /proc/1/environ; tr '\\0' ' ' < /proc/1/cmdline; "
                  "for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; done; echo end",
                  flags=("--policy-mode", "audit-only"), env={"PARENT_ONLY_TOKEN": secret})
    assert "end" in ran.stdout, ran.stderr
    assert secret not in ran.stdout + ran.stderr
    assert "--profile" not in ran.stdout, "codex-box's own command line is visible"


READ_MEMORY = r"""
import errno, os, sys
pid, secret = int(sys.argv[1]), sys.argv[2].encode()
try:
    maps = open(f"/proc/{pid}/maps").read().splitlines()
    mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
except OSError as exc:
    print("denied", errno.errorcode.get(exc.errno, exc.errno)); sys.exit(0)
found = False
for line in maps:
    start, end = (int(x, 16) for x in line.split()[0].split("-"))
    if "r" not in line.split()[1] or end - start > 1 << 28:
        continue
    try:
        found = found or secret in os.pread(mem, end - start, start)
    except OSError:
        pass
print("found" if found else "not found")
"""
FORK_AND_READ = r"""
import os, subprocess, sys, time
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r); os.write(w, b"x"); time.sleep(30); os._exit(0)
os.read(r, 1)
print(subprocess.run([sys.executable, "-I", "-c", sys.argv[1], str(pid), sys.argv[2]],
                     capture_output=True, text=True).stdout)
os.kill(pid, 9)
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_pid_1_memory_holds_codex_box_secrets_out_of_reach(sandbox, profile):
    """Pid 1 is a fork of codex-box: its heap still holds codex-box's whole environment,
    secrets the profile withholds included. Only its not being dumpable (and the
    command's lack of privilege over it) keeps that memory out of reach; this reads it
    the way a debugger would. The control shows the same read finds a secret in the
    memory of a plain (dumpable) fork."""
    secret = f"codex-box-heap-{uuid.uuid4().hex}"
    control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", FORK_AND_READ, READ_MEMORY, secret],
                             env={"PATH": "/usr/bin:/bin", "PARENT_ONLY_TOKEN": secret},
                             capture_output=True, text=True, timeout=60, check=True)
    assert "found" in control.stdout and "not found" not in control.stdout, control
    ran = sandbox(profile, SANDBOX_PYTHON, "-I", "-c", READ_MEMORY, "1", secret,
                  flags=("--policy-mode", "audit-only"), env={"PARENT_ONLY_TOKEN": secret})
    assert ran.returncode == 0, ran.stderr
    assert "found" not in ran.stdout.replace("not found", ""), ran.stdout
    assert secret not in ran.stdout + ran.stderr


@pytest.mark.parametrize("profile", SANDBOXED)
def test_setuid_binaries_grant_nothing(box, profile, tmp_path):
    ran = box(profile, "sh", "-c", "su -s /bin/sh -c 'echo became-$(id -u)' nobody 2>&1; "
                  "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
    assert "became-" not in ran.stdout, "su switched user inside the sandbox"
    assert "NoNewPrivs:\t1" in ran.stdout
    assert "CapEff:\t0000000000000000" in ran.stdout


VSOCK = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
nr = lib.seccomp_syscall_resolve_name(b"socket")
for family in (40, 40 | (1 << 32)):  # AF_VSOCK, and AF_VSOCK with junk in the high bits
    ctypes.set_errno(0)
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_long(family), ctypes.c_long(1), ctypes.c_long(0))
    print(hex(family), "OPENED" if fd >= 0 else f"refused {ctypes.get_errno()}")
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_vsock_is_refused_even_with_junk_in_the_high_bits(box, profile, tmp_path):
    """The kernel reads the family as an int; a 64-bit compare would let 1<<32|40 through."""
    control = subprocess.run([SANDBOX_PYTHON, "-I", "-c", VSOCK], capture_output=True,
                             text=True, check=False, cwd=tmp_path)
    if "OPENED" not in control.stdout:
        pytest.skip("this host has no AF_VSOCK support: nothing to escape to")
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", VSOCK)
    assert ran.returncode == 0, ran.stderr
    assert "OPENED" not in ran.stdout
    assert ran.stdout.count("refused 97") == 2  # EAFNOSUPPORT from the filter


def test_trusted_still_gets_the_limits_asked_for(cli, native_available):
    hog = ("import subprocess\nn = 0\ntry:\n    for _ in range(40):\n"
           "        subprocess.Popen(['sleep', '3']); n += 1\nexcept OSError:\n    pass\n"
           "print('started', n)")
    if cgroups.why_none():
        # A normal user without a cgroup (the non-root CI leg): --pids is RLIMIT_NPROC,
        # and a trusted run has no user namespace of its own, so the kernel counts every
        # process of this user against it: the limit asked for is in force (read back),
        # and one below what the user already runs stops the command, saying why.
        ran = cli("run", "--backend", "native", "--profile", "trusted",
                  "--yes-i-trust-this-workspace", "--pids", "3000", "--", "grep",
                  "Max processes", "/proc/self/limits")
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split()[2:4] == ["3000", "3000"], ran.stdout
        ran = cli("run", "--backend", "native", "--profile", "trusted",
                  "--yes-i-trust-this-workspace", "--pids", "8", "--", "true")
        assert ran.returncode == 125, ran.stderr
        assert "a trusted run has no user namespace" in ran.stderr, ran.stderr
        return
    ran = cli("run", "--backend", "native", "--profile", "trusted",
              "--yes-i-trust-this-workspace", "--pids", "16", "--", SANDBOX_PYTHON, "-c", hog)
    assert ran.returncode == 0, ran.stderr
    assert int(ran.stdout.split()[-1]) < 16


FORGE_STATUS = r"""
import json, os, sys
victim = int(sys.argv[1])
forged = (json.dumps({"pid1": victim}) + "\n" + json.dumps({"setup_error": "forged"}) + "\n"
          + json.dumps({"exit": 0}) + "\n").encode()
opened = 0
try:  # as a normal user, pid 1's fd directory cannot even be listed
    fds = os.listdir("/proc/1/fd")
except PermissionError:
    fds = []
for fd in fds:
    try:
        w = os.open(f"/proc/1/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
        os.write(w, forged)
        opened += 1
    except OSError:
        pass
print("opened", opened, flush=True)
import time; time.sleep(30)
"""


@pytest.mark.parametrize("profile", SANDBOXED)
def test_the_sandbox_cannot_forge_codex_box_status_messages(sandbox, profile):
    """Pid 1's descriptors are out of reach, and codex-box kills only its launcher's child:
    a forged {"pid1": <host pid>} must not make a timeout kill a host process."""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        ran = sandbox(profile, SANDBOX_PYTHON, "-I", "-c", FORGE_STATUS, str(victim.pid),
                      flags=("--timeout", "2"))
        assert "opened 0" in ran.stdout, ran.stdout
        assert ran.returncode == 124, ran.stderr
        assert "forged" not in ran.stderr
        time.sleep(0.2)
        assert victim.poll() is None, "a forged status message killed a host process"
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("profile", SANDBOXED)
def test_other_terminals_on_the_host_are_not_reachable(box, profile):
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        os.write(master, b"typed-by-the-admin\n")
        ran = box(profile, "sh", "-c", f"head -c 8 < {name}; echo hi > {name}; "
                      "ls /dev/pts; echo end")
        assert "end" in ran.stdout
        assert "typed-by" not in ran.stdout
        assert os.path.basename(name) not in ran.stdout.split("end")[0].split(), ran.stdout
    finally:
        os.close(master)
        os.close(slave)


SETID = r"""
import os, stat, sys
os.close(os.open("plain", os.O_CREAT | os.O_WRONLY, 0o755))
results = {}
for label, call in [
    ("chmod u+s", lambda: os.chmod("plain", 0o4755)),
    ("chmod g+s", lambda: os.chmod("plain", 0o2755)),
    ("fchmod u+s", lambda: os.fchmod(os.open("plain", os.O_RDONLY), 0o4755)),
    ("create u+s", lambda: os.close(os.open("made", os.O_CREAT | os.O_WRONLY, 0o4755))),
    ("mknod u+s", lambda: os.mknod("node", 0o4755 | stat.S_IFREG)),
]:
    try:
        call()
        results[label] = "ALLOWED"
    except OSError as exc:
        results[label] = exc.errno
print(results)
modes = [os.stat(p).st_mode for p in ("plain", "made", "node") if os.path.exists(p)]
print("setid files:", sum(1 for m in modes if m & 0o6000))
"""


@pytest.mark.parametrize("profile", ["workspace", "workspace-net"])
def test_no_set_id_file_can_be_made(box, profile, workspace):
    """Run as root, a setuid file left in the workspace would be root for other users."""
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", SETID)
    assert ran.returncode == 0, ran.stderr
    assert "ALLOWED" not in ran.stdout
    assert "setid files: 0" in ran.stdout
    assert not any(p.stat().st_mode & 0o6000 for p in workspace.iterdir())


@pytest.mark.parametrize("name", [".codex-profile", ".git"])
def test_a_symlinked_protected_path_refuses_the_run(box, workspace, name):
    target = Path(f"/var/tmp/codex-box-link-target-{uuid.uuid4().hex[:8]}")
    target.mkdir()
    try:
        (workspace / name).symlink_to(target)
        ran = box("workspace", "sh", "-c", f"rm {name}; echo workspace-net > {name}")
        assert ran.returncode == 125
        assert f"{name} is a symlink" in ran.stderr
        assert (workspace / name).is_symlink()
    finally:
        target.rmdir()


def test_a_daemon_socket_created_under_run_after_launch_is_unreachable(
        native_available, base_env, workspace):
    """/run is an empty tmpfs inside: sockets that appear there later stay invisible.
    A normal user cannot bind in /run itself; its daemons (rootless Podman, ssh-agent,
    gpg-agent) bind in its runtime directory /run/user/UID, hidden the same way."""
    where = "/run"
    if os.geteuid() != 0:
        where = os.environ.get("XDG_RUNTIME_DIR", "")
        if not where.startswith("/run/") or not os.access(where, os.W_OK):
            pytest.skip("needs root, or a runtime directory under /run (XDG_RUNTIME_DIR) "
                        "this user can write")
    path = f"{where}/codex-box-late-{uuid.uuid4().hex[:8]}.sock"
    client = (f"import socket, time; time.sleep(1.5); s = socket.socket(socket.AF_UNIX)\n"
              f"try:\n    s.connect({path!r}); print('CONNECTED')\n"
              f"except OSError as exc:\n    print('refused', exc.errno)")
    proc = subprocess.Popen([CODEX_BOX, "run", "--backend", "native", "--profile", "workspace",
                             "--", SANDBOX_PYTHON, "-I", "-c", client],
                            stdout=subprocess.PIPE, text=True, cwd=workspace, env=base_env)
    time.sleep(0.5)
    with unix_server(path):
        out, _ = proc.communicate(timeout=30)
    assert "refused 2" in out and "CONNECTED" not in out, out  # ENOENT: not there at all


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")
def test_a_codex_profile_owned_by_another_user_is_refused(cli, native_available, workspace):
    planted = workspace.parent / ".codex-profile"
    planted.write_text("workspace-net\n")
    os.chown(planted, 65534, 65534)
    ran = cli("run", "--backend", "native", "--", "true")
    assert ran.returncode == 126
    assert "owned by uid 65534" in ran.stderr


@pytest.mark.parametrize("profile", SANDBOXED)
def test_dev_holds_only_harmless_devices(box, profile):
    """The host's disks, consoles (/dev/vcs* hold screen contents) and terminals stay out."""
    ran = box(profile, "ls", "/dev")
    assert ran.returncode == 0, ran.stderr
    expected = {"fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                "stdout", "tty", "urandom", "zero"}
    if box.backend != "native":
        expected.add("mqueue")  # the container's own POSIX message queues (its IPC namespace)
    assert set(ran.stdout.split()) == expected
    host = set(os.listdir("/dev"))
    assert host - set(ran.stdout.split()), "control: the host has more in /dev"


@pytest.mark.parametrize("profile", ["offline", "workspace"])
def test_offline_profiles_create_no_socket_but_unix(box, profile):
    """seccomp, not only the network namespace: every family but AF_UNIX is refused."""
    probe = ("import socket\nfor fam, kind in [(socket.AF_INET, socket.SOCK_STREAM), "
             "(socket.AF_INET6, socket.SOCK_DGRAM), (socket.AF_NETLINK, socket.SOCK_RAW), "
             "(socket.AF_PACKET, socket.SOCK_RAW), (socket.AF_UNIX, socket.SOCK_STREAM)]:\n"
             "    try:\n        socket.socket(fam, kind).close(); print(int(fam), 'ok')\n"
             "    except OSError as e:\n        print(int(fam), e.errno)")
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", probe)
    assert ran.returncode == 0, ran.stderr
    results = dict(line.split() for line in ran.stdout.splitlines())
    assert results == {"2": "97", "10": "97", "16": "97", "17": "97", "1": "ok"}
