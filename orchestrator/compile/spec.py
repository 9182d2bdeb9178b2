"""Profile + request → ``SandboxSpec`` (frozen, absolute, final).

Owns: path resolution, write roots and protected paths, limits parsing, the final
environment, and refusing requests no profile could make safe (a writable ``/``).
Does not own: probing the host or starting anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.brokered import BrokeredSecret, SecretBinding
from orchestrator.core.errors import ConfigError, Refused, SandboxSetupError, UsageError
from orchestrator.core.options import LaunchOptions
from orchestrator.core.paths import inside
from orchestrator.core.profile import Access, Network, Profile
from orchestrator.core.resources import seccomp_dir
from orchestrator.core.spec import (
    DEFAULT_DOCKER_HOST,
    DEFAULT_IMAGE,
    DEFAULT_MEMORY_SHARE,
    DEFAULT_PIDS,
    DEFAULT_PODMAN_HOST,
    READ_METHODS,
    Egress,
    Limits,
    SandboxSpec,
)
from orchestrator.host.gitenv import neutralise
from orchestrator.host.githooks import hooks_path_entry
from orchestrator.sandbox.linux import pinning
from orchestrator.settings.config import NetworkSettings

from .deny_read import codex_home_secrets, expand, expand_deny_read
from .environment import sandbox_environment
from .write_roots import refuse_unsafe


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    argv: tuple[str, ...]
    workspace: str  # as given (absolute or relative to cwd)
    cwd: str
    environ: Mapping[str, str]
    home: str
    codex_home: str
    uid: int
    gid: int
    run_id: str
    session_id: str
    options: LaunchOptions = field(default_factory=LaunchOptions)  # as the caller gave them
    network: NetworkSettings = field(default_factory=NetworkSettings)  # config [network]
    secrets: tuple[SecretBinding, ...] = ()  # config.toml [secrets]


def compile_spec(profile: Profile, request: Request, *, preview: bool = False) -> SandboxSpec:
    """``preview``: the spec a run here would get, for questions that launch nothing
    (``--show-profile``, ``doctor``), so the command may be empty."""
    if not request.argv and not preview:
        raise ConfigError(
            "no command given", hint="put the command after --, e.g. codex-box run -- make test"
        )
    workspace_rw = profile.workspace is Access.READ_WRITE and profile.sandboxed
    workspace, workspace_id = pinned_dir(
        request.workspace, request.cwd, what="workspace", strict=workspace_rw
    )
    identities = {workspace: workspace_id}
    writable: list[str] = [workspace] if workspace_rw else []
    for raw in profile.writable_paths:
        root, identities[root] = pinned_dir(
            _expand(raw, request.home),
            request.cwd,
            what=f"writable path in profile {profile.name}",
            error=ConfigError,  # the profile file is wrong, not the command line
            strict=profile.sandboxed,
        )
        writable.append(root)
    # Protected whenever the workspace is writable at all, also through a wider grant.
    workspace_writable = any(inside(workspace, root) for root in writable)
    names = list(profile.protected_paths)
    if workspace_writable and (hooks := hooks_path_entry(workspace, request.environ)):
        names.append(hooks)  # core.hooksPath (e.g. .husky): run by the host's next commit
    protected = tuple(
        os.path.join(workspace, p) for p in dict.fromkeys(names) if workspace_writable
    )
    for root in writable:
        refuse_unsafe(
            root, protected=protected, codex_home=request.codex_home, user_home=request.home
        )
    extra = {"CODEX_BOX_PROFILE": profile.name, "CODEX_BOX_SESSION": request.session_id}
    if not profile.allows_network():
        extra["CODEX_SANDBOX_NETWORK_DISABLED"] = "1"
    bindings = _bindings(profile, request)
    egress = _egress(profile, request, bindings)
    if egress is not None:
        extra |= proxy_environment(egress)
        extra |= {s.name: s.placeholder for s in egress.secrets}
    if bindings:
        from . import credentials

        credentials.check_passthrough(bindings, request.options.env_names)
    # A devcontainer's containerEnv first: the caller's own --env wins over it, and
    # codex-box's variables (the proxy, the profile) over both.
    if any("=" not in item for item in request.options.container_env):
        # A bare NAME would pass the host's value: only the caller's own --env may.
        raise UsageError("a devcontainer's environment must be NAME=VALUE pairs")
    passthrough = (*request.options.container_env, *request.options.env_names)
    env = sandbox_environment(request.environ, passthrough=passthrough, extra=extra)
    # Defence in depth behind the policy's git checks: no repository config run by a
    # sandboxed git may start an fsmonitor or hooks (appended after the user's own).
    env = neutralise(env)
    deny_read = expand_deny_read(profile, home=request.home, roots=(workspace, *writable))
    if request.options.hide and profile.sandboxed:  # trusted: nothing could mask them
        hidden = expand(
            request.options.hide,
            home=request.home,
            roots=(workspace, *writable),
            profile=profile.name,
        )
        deny_read = tuple(dict.fromkeys((*deny_read, *hidden)))
    if bindings:
        # Where the real values come from stays out of the sandbox: a source variable
        # of an unremarkable name is not passed on, a source file is masked.
        for name in credentials.source_variables(bindings):
            if name not in extra:
                env.pop(name, None)
        files = credentials.source_files(bindings, home=request.home)
        deny_read = tuple(dict.fromkeys((*deny_read, *files)))
    return SandboxSpec(
        run_id=request.run_id,
        session_id=request.session_id,
        profile=profile.name,
        argv=request.argv,
        workspace=workspace,
        env=tuple(sorted(env.items())),
        network=profile.network,
        sandboxed=profile.sandboxed,
        rootfs_read_only=profile.rootfs is Access.READ_ONLY,
        private_tmp=profile.private_tmp and profile.sandboxed,
        writable_roots=tuple(dict.fromkeys(writable)),
        protected_paths=protected,
        seccomp_profile=str(seccomp_dir() / f"{profile.seccomp}.json") if profile.seccomp else None,
        # Its YAML's process.apparmor (a user profile inherits its built-in's); never
        # for an unsandboxed profile (trusted: no confinement of ours, by design).
        apparmor_profile=profile.apparmor if profile.sandboxed else None,
        capabilities=profile.capabilities,
        limits=parse_limits(
            timeout=request.options.timeout,
            memory=request.options.memory,
            pids=request.options.pids,
            cpus=request.options.cpus,
            # trusted runs unconfined by design: only limits the user asks for.
            default_memory=profile.sandboxed,
        ),
        image=_image(request.options.image),
        docker_host=request.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST,
        podman_host=podman_host(request.environ, uid=request.uid),
        tty=request.options.tty,
        uid=request.uid,
        gid=request.gid,
        egress=egress,
        identities=tuple((path, dev, ino) for path, (dev, ino) in identities.items()),
        hidden_paths=(
            os.path.join(os.path.abspath(request.codex_home), "sessions"),
            # Its HMAC keys (deny_read's own part, never removable): made before the
            # sandbox exists like sessions/, so a key written mid-run is hidden too.
            *codex_home_secrets(request.codex_home),
        ),
        deny_read=deny_read,
        **_devcontainer(request.options, profile, (workspace, *writable, *protected, *deny_read)),
    )


def _devcontainer(
    options: LaunchOptions, profile: Profile, bound: tuple[str, ...]
) -> dict[str, Any]:
    if options.devcontainer is None:
        return {}  # the launch path without one loads none of it
    from .container import container_settings

    return container_settings(options, sandboxed=profile.sandboxed, bound=bound)


def _bindings(profile: Profile, request: Request) -> tuple[SecretBinding, ...]:
    """The secrets a run of ``profile`` brokers: its own and config.toml's, each only
    where the profile can reach all its hosts (a .codex-profile that turns the network
    off, or narrows it, leaves a user profile's secret nothing to do)."""
    if not (profile.secrets or request.secrets):
        return ()
    from orchestrator.profiles.secrets import for_profile  # only when there are any

    return for_profile(profile, request.secrets)


def _egress(
    profile: Profile, request: Request, bindings: tuple[SecretBinding, ...]
) -> Egress | None:
    rules = profile.allow_domains or profile.deny_domains or profile.inspect_tls
    if (rules or profile.secrets) and not profile.sandboxed:
        # Refuse rather than quietly run with rules nobody enforces.
        raise ConfigError(
            f"profile {profile.name} names network rules but runs with no sandbox "
            f"({profile.origin}): nothing could enforce them",
            hint="extend workspace-net or net-read-only instead of trusted",
        )
    if not profile.uses_egress_proxy() and not bindings:
        return None
    ca_file = None
    # Brokered secrets need every tunnel terminated: the broker must see each request
    # (to inject, and to catch a placeholder sent where it may not go). So config.toml
    # [secrets] route a full-network profile through the proxy too.
    inspect = profile.inspect_tls or bool(bindings)
    if inspect:
        ca_file = os.path.join(request.codex_home, "run", request.run_id, "egress-ca.pem")
    brokered: tuple[BrokeredSecret, ...] = ()
    if bindings:  # placeholders: only a profile (or config) that brokers secrets
        from .credentials import brokered_secrets

        brokered = brokered_secrets(bindings)
    return Egress(
        allow=profile.allow_domains,
        deny=profile.deny_domains,
        methods=READ_METHODS if profile.network is Network.READ_ONLY else None,
        inspect_tls=inspect,
        allow_local_hosts=profile.allow_local_hosts,
        hosts=request.network.hosts,
        upstream_ca=request.network.ca_bundle,
        ca_file=ca_file,
        secrets=brokered,
    )


# Tools that read a CA bundle from the environment: with inspect_tls every HTTPS peer
# the sandbox sees is the proxy, whose certificates only the session CA signs.
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "PIP_CERT",
    "GIT_SSL_CAINFO",
)


def proxy_environment(egress: Egress) -> dict[str, str]:
    """The variables that point every common client at the proxy. They are a
    convenience, not the barrier: a client that ignores them has no route at all."""
    url = f"http://127.0.0.1:{egress.port}"
    env: dict[str, str] = {}
    for name, value in (
        ("HTTP_PROXY", url),
        ("HTTPS_PROXY", url),
        ("ALL_PROXY", f"socks5h://127.0.0.1:{egress.port}"),
        ("NO_PROXY", "localhost,127.0.0.1,::1"),
    ):
        env[name] = env[name.lower()] = value
    env |= {"PIP_PROXY": url, "npm_config_proxy": url, "npm_config_https_proxy": url}
    if egress.ca_file:
        env |= dict.fromkeys(CA_VARIABLES, egress.ca_file)
    return env


def podman_host(environ: Mapping[str, str], *, uid: int) -> str:
    """Podman's own convention: CONTAINER_HOST, else the rootful or rootless socket."""
    if environ.get("CONTAINER_HOST"):
        return environ["CONTAINER_HOST"]
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if uid != 0 and runtime_dir:
        return f"unix://{runtime_dir}/podman/podman.sock"
    return DEFAULT_PODMAN_HOST


def _expand(raw: str, home: str) -> str:
    return home + raw[1:] if raw == "~" or raw.startswith("~/") else raw


def pinned_dir(
    raw: str,
    cwd: str,
    *,
    what: str,
    strict: bool,
    error: type[ConfigError | UsageError] = UsageError,
) -> tuple[str, tuple[int, int]]:
    """The real path of directory ``raw`` and its (st_dev, st_ino), taken from one
    descriptor so that the name checked and the inode recorded cannot differ.

    ``strict`` (a write root): resolved component by component without following any
    symlink a sandboxed run could have planted — one in a directory that is not `/` or a
    system tree. An earlier run could otherwise replace ``WS/sub`` with a link to any
    directory and have a later ``--workspace WS/sub`` write there; the user passes the
    link's target instead, deciding with eyes open."""
    joined = os.path.join(cwd, raw)
    try:
        if strict:
            fd, path = pinning.resolve_write_root(joined)
        else:
            path = os.path.realpath(joined)
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError as exc:
        try:
            target = os.path.realpath(joined)
        except OSError:  # it is changing as we look: a concurrent sandbox renaming it
            target = "the real directory"
        raise Refused(
            f"{what} {raw!r} crosses a symlink: {exc.strerror}",
            hint=f"if you mean its target, pass it: {target}",
        ) from exc
    except OSError as exc:
        raise error(
            f"{what} {raw!r} is not an existing directory",
            hint="create it or pass another --workspace",
        ) from exc
    try:
        return path, pinning.identity(fd)
    finally:
        os.close(fd)


def reopen_checked(path: str, identity: tuple[int, int] | None) -> int:
    """``pinned_dir``'s directory again: an ``O_PATH`` descriptor reached through no
    symlink and proven to be the inode recorded then (``SandboxSpec.identities``), or
    ``SandboxSetupError`` — every use after compile goes through this, never the name."""
    try:
        return pinning.reopen(path, identity)
    except OSError as exc:
        raise SandboxSetupError(
            f"workspace {path} changed while codex-box launched: {exc.strerror or exc}",
            hint="nothing was run; another process renamed or replaced it "
            "(a concurrent sandbox?) — run again, and check what writes its parent",
        ) from exc


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)


def parse_limits(
    *,
    timeout: str | None,
    memory: str | None,
    pids: str | None,
    cpus: str | None = None,
    default_memory: bool = True,
) -> Limits:
    if memory is not None:
        memory_bytes = _size(memory)
    else:
        memory_bytes = default_memory_bytes() if default_memory else None
    return Limits(
        timeout_s=_duration(timeout) if timeout is not None else None,
        memory_bytes=memory_bytes,
        memory_is_default=memory is None and memory_bytes is not None,
        pids=_count(pids) if pids is not None else DEFAULT_PIDS,
        cpus=_cpus(cpus) if cpus is not None else None,
    )


def default_memory_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """DEFAULT_MEMORY_SHARE of the host's RAM, in whole MiB; None if unknown."""
    try:
        with open(meminfo, encoding="ascii") as lines:
            total_kib = next(int(ln.split()[1]) for ln in lines if ln.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    mib = int(total_kib * DEFAULT_MEMORY_SHARE) // 1024
    return mib * 1024 * 1024 if mib >= 16 else None


def _cpus(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1024:
        raise UsageError(
            f"--cpus {text!r} is not a CPU count", hint="use e.g. 1, 0.5, or 0 for no limit"
        )
    return value or None


_IMAGE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


def _image(name: str | None) -> str:
    if name is None:
        return DEFAULT_IMAGE
    if not _IMAGE.match(name) or ".." in name:
        raise UsageError(
            f"--image {name!r} is not an image reference",
            hint="use e.g. codex-box/base or debian:bookworm (lower case)",
        )
    return name


def _duration(text: str) -> float | None:
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"--timeout {text!r} is not a duration", hint="use e.g. 30, 2.5s, 5m, 1h")
    value = (
        float(match.group(1))
        * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[(match.group(2) or "s").lower()]
    )
    return value or None


def _size(text: str) -> int | None:
    match = _SIZE.match(text)
    if not match:
        raise UsageError(
            f"--memory {text!r} is not a size", hint="use e.g. 512m, 2g, or 0 for no limit"
        )
    exact = float(match.group(1)) * 1024 ** "bkmgt".index((match.group(2) or "b").lower())
    value = int(exact)
    if 0 < exact < 16 * 1024**2:
        raise UsageError(
            f"--memory {text!r} is below 16 MiB",
            hint="nothing useful runs in less; use 0 for no limit",
        )
    return value or None


def _count(text: str) -> int | None:
    if not text.strip().isdecimal() or not text.strip().isascii():
        raise UsageError(
            f"--pids {text!r} is not a whole number", hint="use e.g. 256, or 0 for no limit"
        )
    value = int(text)
    if value > 4_194_304:  # the kernel's pid_max ceiling
        raise UsageError(
            f"--pids {text!r} is more than any kernel allows",
            hint="use at most 4194304, or 0 for no limit",
        )
    if 0 < value < 8:
        raise UsageError(f"--pids {text!r} is too small", hint="allow at least 8 processes, or 0")
    return value or None
