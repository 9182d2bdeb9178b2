"""The native Linux backend: ``SandboxSpec`` → launch plan (pure) → launcher process.

Owns: ``translate`` (the whole plan the launcher executes, golden-tested), the
availability probe, and ``run``: cgroup, launcher process, timeout, signals, result.
Does not own: what happens inside the sandbox (``native.launcher``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from orchestrator.backends import cgroups
from orchestrator.backends.base import Availability, Diagnosis, EgressPort
from orchestrator.backends.containers import common as container
from orchestrator.backends.pty_relay import Relay, open_pty
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.profile import Capabilities, Network
from orchestrator.core.spec import RunResult, SandboxSpec
from orchestrator.host.hostinfo import apparmor_enabled, cgroup_layout
from orchestrator.sandbox.linux import landlock
from orchestrator.sandbox.linux.libc import CLONE_NEWUSER, unshare
from orchestrator.sandbox.linux.proctree import kill_tree, parent_of, wait_gone

PRIVATE_TMP = ("/tmp", "/dev/shm")  # noqa: S108 -- fresh tmpfs mounts, private to one run
# Replaced by an empty read-only tmpfs: the host's runtime sockets (Docker, Podman,
# D-Bus, systemd, the user's agents under /run/user) live here, and sockets created
# there after launch could not be masked one by one.
HIDDEN = ("/run", "/var/run")
# Device files every program expects to write (and ioctl, for terminals).
DEVICE_FILES = (
    "/dev/null",
    "/dev/ptmx",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/pts",
)
GRACE_S = 2.0
EGRESS_HANDOVER_S = 10.0
PLAN_VERSION = 2  # the launcher refuses a plan written for another version
STATUS_BUDGET = 256 * 1024  # the launcher writes a few hundred bytes


class LinuxBackend:
    name = "native"

    def availability(self, spec: SandboxSpec | None = None) -> Availability:
        if not sys.platform.startswith("linux"):
            return Availability(False, f"not Linux ({sys.platform})")
        abi = landlock.abi_version()
        if abi < landlock.MIN_ABI:
            return Availability(False, f"Landlock ABI {abi} < {landlock.MIN_ABI}")
        problem = _user_namespace_problem()
        if problem:
            return Availability(False, problem)
        try:
            ctypes.CDLL("libseccomp.so.2")
        except OSError:
            return Availability(False, "libseccomp.so.2 missing (apt-get install libseccomp2)")
        return Availability(True, f"Landlock ABI {abi}, seccomp, namespaces")

    def translate(self, spec: SandboxSpec) -> Mapping[str, Any]:
        return translate(spec)

    def diagnose(self, spec: SandboxSpec) -> Diagnosis:
        availability = self.availability(spec)
        facts = {
            "kernel": os.uname().release,
            "landlock ABI": str(landlock.abi_version()),
            "seccomp": _libseccomp_version(),
            "user namespaces": "no" if _user_namespace_problem() else "yes",
            "cgroups": cgroup_layout(),
            "apparmor": "yes" if apparmor_enabled() else "no (not in this kernel)",
        }
        notes: tuple[str, ...] = ()
        if os.geteuid() != 0:
            notes = ("not root: --memory needs a cgroup codex-box can write, else it is refused",)
        return Diagnosis(
            available=availability.ok, reason=availability.reason, facts=facts, notes=notes
        )

    def run(self, spec: SandboxSpec, *, egress: EgressPort | None = None) -> RunResult:
        if spec.egress is not None and egress is None:  # fail closed: no proxy, no run
            raise SandboxSetupError(
                "this profile's network goes through the egress proxy, but none was given",
                hint="run through codex-box (Runner), which starts the proxy",
            )
        return _Run(spec, egress).execute()

    def gc(self) -> list[str]:
        return cgroups.sweep_stale()


def translate(spec: SandboxSpec) -> dict[str, Any]:
    """Pure: the launch plan for ``spec``. Host facts (cgroup paths, our pid) are added
    by ``run`` as ``cgroup_procs`` and ``parent_pid``."""
    plan: dict[str, Any] = {
        "version": PLAN_VERSION,
        "argv": list(spec.argv),
        "env": spec.env_dict(),
        "cwd": spec.workspace,
        "sandbox": spec.sandboxed,
        "network": spec.network.value,
        "limits": {
            "pids": spec.limits.pids,
            "memory_bytes": spec.limits.memory_bytes,
            "memory_required": not spec.limits.memory_is_default,
        },
        "cgroup_procs": [],
        "parent_pid": 0,
    }
    if not spec.sandboxed:
        return plan
    private_tmp = list(PRIVATE_TMP) if spec.private_tmp else []
    plan["mounts"] = {
        "workspace": spec.workspace,
        "writable_roots": list(spec.writable_roots),
        "private_tmp": private_tmp,
        "hidden": list(HIDDEN),
        "tmpfs_bytes": spec.limits.memory_bytes,
        "protected": list(spec.protected_paths),
        # What compile checked: the launcher refuses another inode at these paths.
        "identities": {path: [dev, ino] for path, dev, ino in spec.identities},
        "require_protected": bool(spec.protected_paths),
        "mask_host_unix_sockets": True,
    }
    plan["landlock"] = {
        "read": ["/"],
        "write": [*spec.writable_roots, *private_tmp],
        "devices": list(DEVICE_FILES),
        "deny_tcp": spec.network is Network.NONE,
        "scope": True,
        # Without a network namespace of its own, scoping is the only barrier.
        "scope_required": spec.network is not Network.NONE and spec.egress is None,
    }
    if spec.egress is not None:
        # A network namespace of its own whose loopback holds the proxy's port: the
        # launcher makes the listener there and hands it to us (SCM_RIGHTS).
        plan["egress_port"] = spec.egress.port
    plan["seccomp"] = spec.seccomp_profile
    if spec.capabilities is not Capabilities.NONE or not spec.rootfs_read_only:
        raise SandboxSetupError(
            f"profile {spec.profile} keeps capabilities or a writable root inside a sandbox",
            hint="the native backend sandboxes with no capabilities and a read-only root; "
            "use `trusted` for no sandbox",
        )
    if spec.seccomp_profile is None:
        raise SandboxSetupError(
            f"profile {spec.profile} is sandboxed but names no seccomp profile",
            hint="set process.seccomp in the profile",
        )
    return plan


class _Run:
    name = LinuxBackend.name

    def __init__(self, spec: SandboxSpec, egress: EgressPort | None = None) -> None:
        self.spec = spec
        self.egress = egress
        self.egress_channel: socket.socket | None = None
        self.pid1: int | None = None
        self.relay: Relay | None = None
        self.messages: list[dict[str, Any]] = []
        self.timed_out = False

    def execute(self) -> RunResult:
        plan = translate(self.spec)
        group = cgroups.create(self.spec.run_id, self.spec.limits)
        plan["cgroup_procs"] = group.procs_files if group else []
        plan["parent_pid"] = os.getpid()
        plan["own_pty"] = self.spec.tty and not os.isatty(0)
        started = time.monotonic()
        try:
            proc = self._spawn(plan)
            self._serve_egress(proc)
            status = self._wait(proc)
        finally:
            oom = False
            if group is not None:
                with contextlib.suppress(OSError, ValueError):  # never hide the real outcome
                    oom = group.oom_killed()
                group.remove()
        return self._result(status, time.monotonic() - started, oom)

    def _serve_egress(self, proc: subprocess.Popen[bytes]) -> None:
        """Take the listener the launcher made in the sandbox's network namespace and
        give it to the proxy, before pid 1 (and so the command) exists."""
        channel = self.egress_channel
        if channel is None or self.egress is None:
            return
        fds: list[int] = []
        error: OSError | None = None
        try:
            channel.settimeout(EGRESS_HANDOVER_S)
            _, fds, _, _ = socket.recv_fds(channel, 16, 1)
        except OSError as exc:
            error = exc
        finally:
            channel.close()
        if not fds:
            self._kill(proc)
            proc.wait()
            raise SandboxSetupError(
                f"the native launcher did not open the egress proxy's port ({error or 'closed'})",
                hint="nothing was run; `codex-box doctor` shows what this host lacks",
            )
        self.egress.serve(socket.socket(fileno=fds[0]))

    def _spawn(self, plan: dict[str, Any]) -> subprocess.Popen[bytes]:
        plan_r, plan_w = os.pipe()
        self.status_r, status_w = os.pipe()
        passed = [plan_r, status_w]
        child_channel = None
        if "egress_port" in plan:
            self.egress_channel, child_channel = socket.socketpair(socket.AF_UNIX)
            plan["egress_fd"] = child_channel.fileno()
            passed.append(child_channel.fileno())
        argv = [
            sys.executable,
            "-I",
            "-m",
            "orchestrator.sandbox.linux.launcher",
            str(plan_r),
            str(status_w),
        ]
        # Values passed with --env may be secrets: the debug log names them only.
        debug("native launch", argv=argv, plan={**plan, "env": sorted(plan["env"])})
        slave = None  # None: the command inherits our stdin/stdout/stderr
        if plan["own_pty"]:
            master, slave = open_pty()
            self.relay = Relay(master)
        try:
            # The launcher's own environment is empty: the command's is in the plan.
            proc = subprocess.Popen(
                argv,
                pass_fds=tuple(passed),
                env={},
                close_fds=True,
                stdin=slave,
                stdout=slave,
                stderr=slave,
            )
        except OSError as exc:
            os.close(plan_w)
            os.close(self.status_r)
            if self.relay is not None:
                os.close(self.relay.master)
            raise SandboxSetupError(
                f"cannot start the native launcher: {exc}", hint="nothing was run"
            ) from exc
        finally:
            os.close(plan_r)
            os.close(status_w)
            if child_channel is not None:
                child_channel.close()
            if slave is not None:
                os.close(slave)
        with os.fdopen(plan_w, "wb") as handle, contextlib.suppress(BrokenPipeError):
            handle.write(json.dumps(plan).encode())
        return proc

    def _wait(self, proc: subprocess.Popen[bytes]) -> int:
        timeout = self.spec.limits.timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout

        def forward(signum: int, _frame: FrameType | None) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            while True:
                try:
                    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                    return self._wait_for(proc, remaining)
                except subprocess.TimeoutExpired:
                    self.timed_out = True
                    deadline = None  # killed once; now wait for it to be gone
                    self._kill(proc)
                except KeyboardInterrupt:
                    self._interrupt(proc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._read_status()
            if self.pid1 is not None:
                wait_gone(self.pid1, timeout_s=5.0)
            if self.relay is not None:
                os.close(self.relay.master)

    def _wait_for(self, proc: subprocess.Popen[bytes], timeout: float | None) -> int:
        if self.relay is not None:
            return self.relay.wait(proc, timeout)
        return proc.wait(timeout=timeout)

    def _interrupt(self, proc: subprocess.Popen[bytes]) -> None:
        """Ctrl-C: the command got SIGINT from the terminal; give it a grace period."""
        for action in (None, signal.SIGTERM, signal.SIGKILL):
            if action is signal.SIGKILL:
                self._kill(proc)
                return
            if action is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, action)
            try:
                self._wait_for(proc, GRACE_S)
                return
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:
                continue

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill the whole run: init dies with the launcher, the kernel empties the pid ns."""
        self._read_status()
        # Pid 1 dies with the launcher anyway (PDEATHSIG); killing it first is quicker.
        # Only ever a pid that is the launcher's own child: never trust a number blindly.
        if self.pid1 is not None and parent_of(self.pid1) == proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
        if not self.spec.sandboxed:
            kill_tree(proc.pid)  # the launcher is the subreaper: every orphan is below it
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)

    def _read_status(self) -> None:
        os.set_blocking(self.status_r, False)
        data = b""
        with contextlib.suppress(BlockingIOError):
            while len(data) < STATUS_BUDGET and (chunk := os.read(self.status_r, 65536)):
                data += chunk
        for line in data.decode(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                message = json.loads(line)
                if not isinstance(message, dict):
                    continue
                self.messages.append(message)
                if self.pid1 is None and isinstance(message.get("pid1"), int):
                    self.pid1 = message["pid1"]

    def _result(self, returncode: int, duration: float, oom: bool) -> RunResult:
        os.close(self.status_r)
        seen = {key: value for message in self.messages for key, value in message.items()}
        if "setup_error" in seen:
            raise SandboxSetupError(
                f"native sandbox setup failed: {seen['setup_error']}",
                hint="nothing was run; the sandbox could not be built as the profile asks",
            )
        if self.spec.sandboxed and "sandboxed" not in seen and not self.timed_out:
            raise SandboxSetupError(
                f"native launcher ended (status {returncode}) before the sandbox was ready",
                hint="nothing was run",
            )
        signum: int | None = seen.get("signal")
        if "exit" in seen:
            code = int(seen["exit"])
        elif returncode < 0:  # killed by a signal (trusted: the launcher became the command)
            signum, code = -returncode, 128 - returncode
        else:
            code = returncode
        detail = ""
        if "exec_errno" in seen:  # the launcher already exited 127/126 for it
            detail = f"{seen['argv0']}: {os.strerror(seen['exec_errno'])} (inside the sandbox)"
        detail = container.ending_detail(self.spec, timed_out=self.timed_out, oom=oom) or detail
        if self.timed_out:
            code = 124
        return RunResult(
            exit_code=code,
            backend=self.name,
            duration_s=duration,
            signal=signum,
            timed_out=self.timed_out,
            oom_killed=oom,
            detail=detail,
        )


def _libseccomp_version() -> str:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return "libseccomp missing"

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return f"libseccomp {v.major}.{v.minor}.{v.micro}"


def _user_namespace_problem() -> str | None:
    """Try it: sysctls, AppArmor (Ubuntu ≥ 23.10) and seccomp'd containers can all
    forbid user namespaces, and only a real unshare tells."""
    pid = os.fork()
    if pid == 0:
        try:
            unshare(CLONE_NEWUSER)
            os._exit(0)
        except OSError as exc:
            os._exit(exc.errno or 1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    return (
        f"cannot create user namespaces ({os.strerror(code)}); check "
        "user.max_user_namespaces, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns"
    )
