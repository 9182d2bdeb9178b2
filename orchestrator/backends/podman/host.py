"""What the Podman service on this host can do, probed (never assumed).

Owns: one bounded probe of a Podman API socket (``GET /libpod/info`` plus, for a local
socket, the service process's own capabilities and rlimits read through the socket's
peer credentials), the host quirks derived from it (explicit ulimits when the OCI
runtime cannot raise rlimits, runc instead of crun on hybrid cgroups), and
``PodmanFacts``: what the backend's probe hands to its translate and run.
Does not own: deciding availability (``backend``) or the create request (``translate``).

Why probe the service process: runc/crun run as its descendants, so they inherit its
rlimits and capabilities. Without CAP_SYS_RESOURCE the runtime cannot raise an rlimit
above the service's hard limit, and Podman's default (nofile=1048576) then fails every
container start with "error setting rlimits".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import urllib.parse
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.backends.base import HostFacts
from orchestrator.backends.containers.engine_api import PROBE_TIMEOUT_S, Endpoint
from orchestrator.core.errors import BackendUnavailable
from orchestrator.hardening.apparmor import HostAppArmor, loaded_profiles
from orchestrator.host.hostinfo import apparmor_enabled, cgroup_layout

LIBPOD = "/v4.0.0/libpod"  # accepted by Podman 4 and 5
START_HINT = "start it: podman system service --time=0 {url} &"
CAP_SYS_RESOURCE = 24
RLIMITS = {"nofile": "Max open files", "nproc": "Max processes"}
CRUN_PATHS = ("/usr/bin/crun", "/usr/local/bin/crun", "/usr/libexec/crun", "/usr/sbin/crun")
INIT_PATHS = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit", "/usr/libexec/catatonit")


@dataclass(frozen=True, slots=True, kw_only=True)
class PodmanHost:
    version: str
    runtime: str | None  # the service's default OCI runtime; None: not asked (no crun here)
    runtime_version: str
    cgroups: str  # "v1" or "v2"
    hybrid_cgroups: bool  # v1 with a v2 hierarchy mounted beside it
    seccomp: bool | None  # None: not asked
    apparmor: bool  # Podman applies AppArmor (never rootless: Podman does not there)
    rootless: bool
    # None when the service is not local (its process cannot be inspected).
    can_raise_rlimits: bool | None = None
    rlimits: tuple[tuple[str, int, int], ...] = ()  # the service's own (name, soft, hard)
    runc: str | None = None  # runc on this host, for when crun cannot work here
    init: bool = True  # catatonit present (containers get an init that reaps zombies)
    # AppArmor profiles the kernel enforces, read locally (empty for a remote service).
    apparmor_loaded: tuple[str, ...] | None = ()  # None: unreadable (not root)
    # Rootless only: /dev/net/tun can be opened (slirp4netns needs it for a network);
    # None: not asked (rootful, or a remote service).
    tun: bool | None = None

    def apparmor_host(self) -> HostAppArmor:
        return HostAppArmor(enabled=self.apparmor, loaded=self.apparmor_loaded)

    def ulimits(self) -> list[dict[str, Any]]:
        """Explicit ulimits at the service's own hard limits, when the runtime could not
        raise Podman's defaults; none otherwise (the engine's defaults then work)."""
        if self.can_raise_rlimits is not False:
            return []
        return [{"Name": name, "Soft": hard, "Hard": hard} for name, _soft, hard in self.rlimits]

    def runtime_choice(self) -> str | None:
        """runc where crun is the default but fails on hybrid cgroups (crun cannot
        apply rlimits/cgroups here); None keeps the service's default."""
        if self.runtime == "crun" and self.cgroups == "v1" and self.runc:
            return "runc"
        return None

    def quirks(self) -> list[str]:
        """Plain sentences for `doctor`: what codex-box does differently here, and why."""
        notes = []
        if self.can_raise_rlimits is False:
            limits = ", ".join(f"{n}={h}" for n, _s, h in self.rlimits)
            notes.append(
                "the OCI runtime cannot raise rlimits (the service lacks CAP_SYS_RESOURCE): "
                f"containers get explicit ulimits {limits}"
            )
        if self.runtime_choice():
            notes.append("crun fails on hybrid cgroups: containers use runc")
        if self.hybrid_cgroups:
            notes.append("cgroups: hybrid (v1 controllers, v2 mounted beside them)")
        if not self.init:
            notes.append("catatonit missing: install it (apt-get install catatonit)")
        if self.rootless and self.cgroups == "v1":
            notes.append(
                "rootless on cgroup v1: Podman ignores pids/memory/cpu limits, so codex-box "
                "refuses every run that has one (the default --pids 4096 is one)"
            )
        if self.rootless and self.tun is False:
            notes.append(
                "rootless: /dev/net/tun cannot be opened by this user (udev normally makes "
                "it 0666), so slirp4netns gives no container a network: workspace-net and "
                "trusted fail"
            )
        return notes


@dataclass(frozen=True, slots=True, kw_only=True)
class PodmanFacts(HostFacts):
    url: str  # the service's socket
    host: PodmanHost | None  # None: the service did not answer
    error: str = ""  # why it did not answer

    def require_host(self) -> PodmanHost:
        """The probed service, or ``BackendUnavailable`` saying why there is none."""
        if self.host is None:
            raise BackendUnavailable(
                f"Podman service not usable at {self.url}: {self.error}",
                hint=START_HINT.format(url=self.url) + ", or use --backend docker|native",
            )
        return self.host


def probe(url: str, *, full: bool = False, quick: bool = False) -> PodmanHost:
    """One bounded look at the service. Raises OSError when it does not answer.

    ``/libpod/info`` costs the service ~150 ms here (it gathers storage and host
    statistics), a third of a whole run. A local service (its process found through
    the socket) on a host without crun is probed with ``_ping`` and ``/proc`` instead:
    the only decision info would change is "crun → runc". ``full`` (doctor) always asks.
    ``quick`` (the backend was named): a local service is not even pinged — its process
    answered the connection, and the run's first call fails closed if it does not
    answer HTTP; the facts translate needs are the process's own.
    """
    local = _service_process(url)
    if not full and local is not None and not _crun_installed():
        return _local_probe(url, local, ping=not quick)
    info = Endpoint(url).call("GET", f"{LIBPOD}/info", timeout=PROBE_TIMEOUT_S)
    host, version = info.get("host", {}), info.get("version", {})
    runtime = host.get("ociRuntime") or {}
    security = host.get("security") or {}
    return PodmanHost(
        version=str(version.get("Version", "?")),
        runtime=str(runtime.get("name", "?")),
        runtime_version=str(runtime.get("version", "?")).splitlines()[0],
        cgroups=str(host.get("cgroupVersion", "?")),
        hybrid_cgroups=host.get("cgroupVersion") == "v1" and cgroup_layout() == "v1 hybrid",
        seccomp=bool(security.get("seccompEnabled")),
        apparmor=bool(security.get("apparmorEnabled")),
        rootless=bool(security.get("rootless")),
        tun=_tun_usable() if local is not None and security.get("rootless") else None,
        can_raise_rlimits=None if local is None else _has_capability(local, CAP_SYS_RESOURCE),
        rlimits=() if local is None else _rlimits(local),
        runc=shutil.which("runc"),
        init=any(os.path.exists(path) for path in INIT_PATHS),
        apparmor_loaded=loaded_profiles() if local is not None else (),
    )


def _local_probe(url: str, pid: int, *, ping: bool = True) -> PodmanHost:
    # Sent first, read last: the service answers while /proc is read.
    api = Endpoint(url)
    pending = api.send("GET", f"{LIBPOD}/_ping", timeout=PROBE_TIMEOUT_S) if ping else None
    try:
        host = _process_facts(pid)
        if pending is None:
            return host
        response = pending.response()
    finally:
        if pending is not None:
            pending.close()
    if response.status != 200:
        raise OSError(f"Podman at {url} answered HTTP {response.status} to _ping")
    return replace(host, version=response.headers.get("libpod-api-version", "?"))


def _process_facts(pid: int) -> PodmanHost:
    """What the service process ``pid`` (local, without crun) tells without asking it."""
    layout = cgroup_layout()
    rootless = os.stat(f"/proc/{pid}").st_uid != 0
    # As /libpod/info reports it: Podman applies no AppArmor when rootless.
    armored = apparmor_enabled() and not rootless
    return PodmanHost(
        version="?",  # not asked (a quick probe); the ping's header says it
        runtime=None,  # not asked: crun is not installed, so no choice depends on it
        runtime_version="",
        cgroups=layout.split()[0],
        hybrid_cgroups=layout == "v1 hybrid",
        seccomp=None,  # not asked: the suite checks the filter from inside every backend
        apparmor=armored,
        rootless=rootless,
        tun=_tun_usable() if rootless else None,
        can_raise_rlimits=_has_capability(pid, CAP_SYS_RESOURCE),
        rlimits=_rlimits(pid),
        runc=shutil.which("runc"),
        init=any(os.path.exists(path) for path in INIT_PATHS),
        apparmor_loaded=loaded_profiles() if armored else (),
    )


def _tun_usable() -> bool:
    """Whether this user can open /dev/net/tun, as the rootless service's slirp4netns
    must (a local rootless service runs as the same user as codex-box)."""
    return os.access("/dev/net/tun", os.R_OK | os.W_OK)


def _crun_installed() -> bool:
    return shutil.which("crun") is not None or any(os.path.exists(p) for p in CRUN_PATHS)


def _service_process(url: str) -> int | None:
    """The pid listening on a local unix socket (SO_PEERCRED), or None."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "unix":
        return None
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(PROBE_TIMEOUT_S)
        sock.connect(parsed.path)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, _uid, _gid = struct.unpack("3i", creds)
        return pid if pid > 0 and os.path.exists(f"/proc/{pid}") else None
    return None


def _has_capability(pid: int, cap: int) -> bool | None:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    return None


def _rlimits(pid: int) -> tuple[tuple[str, int, int], ...]:
    out = []
    with contextlib.suppress(OSError), open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        rows = {line[:26].strip(): line[26:].split() for line in limits}
        for name, label in RLIMITS.items():
            soft, hard = rows.get(label, ["unlimited", "unlimited"])[:2]
            if soft.isdigit() and hard.isdigit():
                out.append((name, int(soft), int(hard)))
    return tuple(out)
