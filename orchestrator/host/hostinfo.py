"""Facts about this host's kernel that more than one backend reports or decides on.

Owns: whether AppArmor is enabled and which cgroup layout is mounted, read from sysfs.
Does not own: any backend's use of them.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled", encoding="ascii") as flag:
            return flag.read().strip() == "Y"
    except OSError:
        return False


def cgroup_layout() -> str:
    """ "v2" (unified), "v1 hybrid" (v1 controllers, v2 mounted beside them) or "v1"."""
    if os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
        return "v2"
    return "v1 hybrid" if os.path.isdir(f"{CGROUP_ROOT}/unified") else "v1"
