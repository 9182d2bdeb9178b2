"""The native launch plan, pure: ``SandboxSpec`` → the JSON the launcher executes.

Owns: ``translate`` (the whole plan — mounts, Landlock rules, seccomp profile, network,
limits — golden-tested) and the plan's version, which the launcher checks.
Does not own: host facts a run adds to the plan (its cgroup, our pid: ``launch``), or
carrying it out (``sandbox.linux.launcher``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.profile import Capabilities, Network
from orchestrator.core.spec import SandboxSpec

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
PLAN_VERSION = 2  # the launcher refuses a plan written for another version


def translate(spec: SandboxSpec) -> dict[str, Any]:
    """Pure: the launch plan for ``spec``. Host facts (cgroup paths, our pid) are added
    by the run (``launch``) as ``cgroup_procs`` and ``parent_pid``."""
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
        "hidden": [*HIDDEN, *spec.hidden_paths],
        "tmpfs_bytes": spec.limits.memory_bytes,
        "protected": list(spec.protected_paths),
        "ca_file": spec.egress.ca_file if spec.egress is not None else None,
        # filesystem.deny_read: each masked by an empty read-only mount (sandbox.masks).
        "deny_read": list(spec.deny_read),
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
