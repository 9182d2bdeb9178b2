"""Frozen, fully resolved data handed to backends: ``SandboxSpec``, ``Limits``, ``RunResult``.

Owns: the contract between ``compile`` and every backend. A backend reads nothing
else — no config file, no ``os.environ`` — so what the spec says is what is enforced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .brokered import BrokeredSecret
from .profile import Capabilities, Network

# Unless --memory says otherwise, a run may use at most half the host's RAM: a memory
# bomb then meets its own cgroup's OOM killer instead of the host's, which could pick
# any process (the engine, the user's editor). A default the host cannot enforce (no
# writable cgroup) is dropped, unlike an explicit --memory, which is then refused.
DEFAULT_MEMORY_SHARE = 0.5
DEFAULT_PIDS = 4096
DEFAULT_IMAGE = "codex-box/base"  # container backends only; built by `make images`
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_PODMAN_HOST = "unix:///run/podman/podman.sock"  # rootful; rootless: $XDG_RUNTIME_DIR


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    timeout_s: float | None = None  # None: no timeout
    memory_bytes: int | None = None  # None: unlimited
    memory_is_default: bool = False  # True: not asked for (best effort where no cgroup)
    pids: int | None = DEFAULT_PIDS  # None: explicitly unlimited (--pids 0)
    cpus: float | None = None  # None: no CPU quota


# The egress proxy's address on the sandbox's own loopback (its network namespace has
# nothing else): one port for HTTP (absolute-form and CONNECT) and SOCKS5 alike.
EGRESS_PORT = 3128
READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True, slots=True, kw_only=True)
class Egress:
    """What the egress proxy enforces for one run (``netproxy``)."""

    allow: tuple[str, ...]  # domains.py patterns; empty: every domain (ports 80/443)
    deny: tuple[str, ...]
    methods: tuple[str, ...] | None  # None: any method; else e.g. READ_METHODS
    inspect_tls: bool
    allow_local_hosts: bool
    # config.toml [network] hosts: names the proxy resolves to these addresses instead
    # of asking DNS (the address checks still apply), and extra CAs it trusts upstream.
    hosts: tuple[tuple[str, str], ...] = ()
    upstream_ca: str | None = None
    # inspect_tls: where the per-session CA certificate is written for the sandbox to
    # trust (the same path inside every backend), created at launch, deleted after.
    ca_file: str | None = None
    port: int = EGRESS_PORT
    # Brokered secrets: the proxy swaps each placeholder for its real value in request
    # headers to the bound hosts only (netproxy.broker); the values are not here.
    secrets: tuple[BrokeredSecret, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSpec:
    run_id: str
    session_id: str
    profile: str
    argv: tuple[str, ...]
    workspace: str  # absolute, symlinks resolved; also the working directory
    env: tuple[tuple[str, str], ...]  # the command's complete environment
    network: Network
    sandboxed: bool  # False only for `trusted`: no sandbox at all
    rootfs_read_only: bool
    private_tmp: bool  # a fresh writable /tmp (and /dev/shm) visible to this run only
    writable_roots: tuple[str, ...]  # absolute; the workspace first when it is writable
    protected_paths: tuple[str, ...]  # absolute; read-only even inside a writable root
    seccomp_profile: str | None  # absolute path of an OCI seccomp JSON
    # The AppArmor profile container backends ask for, where the host has it loaded
    # (a name from apparmor/; None: the engine's default applies).
    apparmor_profile: str | None = None
    capabilities: Capabilities
    limits: Limits = field(default_factory=Limits)
    tty: bool = False
    uid: int
    gid: int
    image: str = DEFAULT_IMAGE  # container backends: the image to run the command in
    docker_host: str = DEFAULT_DOCKER_HOST  # DOCKER_HOST, resolved by compile
    podman_host: str = DEFAULT_PODMAN_HOST  # CONTAINER_HOST, resolved by compile
    # Set: the sandbox gets a network namespace of its own whose only way out is the
    # egress proxy on its loopback (``network`` then says what the proxy lets through).
    egress: Egress | None = None
    # (path, st_dev, st_ino) of the workspace and each write root as compile checked
    # them, reached through no symlink a sandbox could have planted. Every later use
    # (placeholders, binds, the working directory) reopens the path without following
    # symlinks and refuses another inode: a name swapped after the check never counts.
    identities: tuple[tuple[str, int, int], ...] = ()
    # Host directories a sandbox must not see into at all (native: an empty read-only
    # tmpfs over each): CODEX_HOME/sessions, whose control sockets are made after the
    # sandbox starts, so masking the sockets that exist at launch would miss them.
    hidden_paths: tuple[str, ...] = ()
    # filesystem.deny_read, expanded: absolute host paths that exist at launch, which the
    # sandbox finds empty (a directory) or unreadable (a file); see backends.
    deny_read: tuple[str, ...] = ()
    # The command's working directory when it is not the workspace: a session's exec
    # after ``--cwd``. The policy judges relative paths from here (``policy.gate``).
    cwd: str | None = None
    # From a devcontainer.json (container backends only; ``compile.container`` checked
    # them): the file, the image's user to run as instead of uid:gid, the hostname, extra
    # labels, and container paths that get a private tmpfs (its volume mounts).
    devcontainer: str | None = None
    container_user: str | None = None
    hostname: str | None = None
    extra_labels: tuple[tuple[str, str], ...] = ()
    extra_tmpfs: tuple[str, ...] = ()

    def identity_of(self, path: str) -> tuple[int, int] | None:
        for known, dev, ino in self.identities:
            if known == path:
                return (dev, ino)
        return None

    @property
    def workspace_writable(self) -> bool:
        return self.workspace in self.writable_roots

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    exit_code: int
    backend: str
    duration_s: float
    signal: int | None = None  # the signal that ended the command, if any
    timed_out: bool = False
    oom_killed: bool = False
    detail: str = ""  # e.g. "command not found inside the sandbox: foo"
