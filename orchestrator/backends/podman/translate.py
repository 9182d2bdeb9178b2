"""The Podman request, pure: ``SandboxSpec`` + probed service → podman-py create kwargs.

Owns: ``translate`` (the whole ``containers.create`` keyword set, golden-tested), what
a service cannot enforce (``cannot_enforce``: then the run is refused, never weakened),
joining a filtered-egress run's network holder, and ``verify_created``: checking the
created container against the request (podman-py and Podman 4 silently drop some
options: a sandbox must notice).
Does not own: probing the service (``host``), calling it (``ops``), or what all
container engines share (``containers.common``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.backends.containers import common as container
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.profile import Capabilities
from orchestrator.core.spec import SandboxSpec
from orchestrator.hardening import apparmor

from .host import PodmanHost

CPU_PERIOD_US = 100_000
ENGINE_DEFAULT = "containers-default"  # the AppArmor profile Podman applies when none is asked
INIT_PATH = "/run/podman-init"  # where Podman mounts catatonit in the container


def translate(spec: SandboxSpec, host: PodmanHost) -> dict[str, Any]:
    """Pure: the keyword arguments of podman-py's ``containers.create`` for ``spec`` on
    ``host``. Only keywords podman-py really maps are used (``nano_cpus`` and ``tmpfs``
    are silently dropped or refused by it; see ENVIRONMENT.md; ``security_opt`` becomes
    SELinux options, so AppArmor goes by ``apparmor_profile``)."""
    armor = apparmor.decide(
        spec.apparmor_profile, host.apparmor_host(), engine_default=ENGINE_DEFAULT
    )
    request: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.argv),
        # The command is ours, not an argument of the image's entrypoint. Podman reads an
        # empty list as "unset" (the image's entrypoint runs, our argv as its arguments);
        # [""] is its "no entrypoint" (`podman run --entrypoint ""`).
        "entrypoint": [""],
        "working_dir": spec.workspace,
        "user": container.user(spec),
        "environment": dict(spec.env),
        "labels": container.labels(spec, armor),
        "tty": spec.tty,
        "stdin_open": True,
        "init": True,  # zombies are reaped; signals reach the command
        "privileged": False,
        "network_mode": container.network_mode(spec),
        "read_only": spec.rootfs_read_only,
        # Podman's own /tmp, /run... tmpfs on a read-only rootfs would be writable holes.
        "read_write_tmpfs": False,
        "mounts": [
            *(
                {
                    "type": "bind",
                    "source": b.source,
                    "target": b.target,
                    "read_only": b.read_only,
                    "propagation": "rprivate",
                }
                for b in container.binds(spec)
            ),
            # podman-py drops a tmpfs mount's "options"; it maps "mode" (Podman adds
            # nosuid,nodev itself — checked from inside by the behavioural suite).
            *(
                {"type": "tmpfs", "source": "tmpfs", "target": target, "mode": container.TMP_MODE}
                for target in container.tmpfs(spec)
            ),
        ],
    }
    if spec.hostname:
        request["hostname"] = spec.hostname
    if host.rootless:
        # Rootless Podman maps the container's uids onto the user's subordinate range:
        # uid:gid above would be a subordinate uid on the host, and a writable workspace
        # (the user's) would not be writable. keep-id maps the user's own uid to itself.
        request["userns_mode"] = "keep-id"
    if spec.capabilities is Capabilities.NONE:
        request["cap_drop"] = ["ALL"]
    if spec.sandboxed:
        request["no_new_privileges"] = True
        if spec.seccomp_profile:
            request["seccomp_profile_path"] = spec.seccomp_profile  # a path on the server
        if armor.profile:
            request["apparmor_profile"] = armor.profile
    limits = spec.limits
    if limits.pids is not None:
        request["pids_limit"] = limits.pids
    memory = container.memory_limit(spec, spec.podman_host, cgroup_limits=not _ignores_limits(host))
    if memory is not None:
        request["mem_limit"] = memory
        request["memswap_limit"] = memory  # swap must not stretch the limit
    if limits.cpus is not None:
        request["cpu_period"] = CPU_PERIOD_US
        request["cpu_quota"] = int(limits.cpus * CPU_PERIOD_US)
    if ulimits := host.ulimits():
        request["ulimits"] = ulimits
    if runtime := host.runtime_choice():
        request["runtime"] = runtime
    return request


def cannot_enforce(spec: SandboxSpec, host: PodmanHost) -> str | None:
    """Why ``host`` would run ``spec`` with less than it asks (then we do not run it)."""
    if spec.sandboxed and host.seccomp is False:
        return "has no seccomp support"
    if host.rootless and spec.container_user:
        # keep-id maps only the invoking uid into the container: any other user of the
        # image is a subordinate uid on the host, and could not write the workspace.
        return (
            f"is rootless: it maps only your own uid, not devcontainer user "
            f"{spec.container_user!r}; use --backend docker, or drop remoteUser"
        )
    limits = spec.limits
    # The default memory cap is not asked for there (container.memory_limit): only a
    # limit the user gave makes the run unenforceable.
    memory = limits.memory_bytes is not None and not limits.memory_is_default
    limited = limits.pids is not None or memory or limits.cpus
    if host.rootless and host.tun is False and container.network_mode(spec) == "bridge":
        # slirp4netns, rootless Podman's network, cannot open /dev/net/tun: the start
        # fails, and the failure read as catatonit's would say "command not found".
        return "is rootless and this user cannot open /dev/net/tun: no network for it"
    if _ignores_limits(host) and limited:
        # Podman then only warns "resource limits are not supported and ignored".
        return (
            "is rootless on cgroup v1, where it ignores pids/memory/cpu limits (rootless "
            "Podman applies them only on cgroup v2 with those controllers delegated to the "
            "user); use --backend native"
        )
    return None


def _ignores_limits(host: PodmanHost) -> bool:
    return host.rootless and host.cgroups == "v1"


def join_holder(request: Mapping[str, Any], pid: int) -> dict[str, Any]:
    """podman-py sends ``container:NAME`` as an unknown network name; a namespace path
    is its documented form (``ns:PATH``), so the command joins the holder by pid."""
    return {**request, "network_mode": f"ns:/proc/{pid}/ns/net"}


def _process_argv(inspected: Mapping[str, Any]) -> list[str]:
    """The argv the container will exec (after its init, if it has one)."""
    path, args = inspected.get("Path"), list(inspected.get("Args") or [])
    if path == INIT_PATH:
        return args[1:] if args[:1] == ["--"] else args
    return [str(path), *args]


def verify_created(request: Mapping[str, Any], inspected: Mapping[str, Any]) -> None:
    """Fail closed when the created container is not what was asked for: podman-py and
    older Podman services ignore some options without an error."""
    host = inspected.get("HostConfig") or {}
    problems = []
    if bool(host.get("ReadonlyRootfs")) != bool(request["read_only"]):
        problems.append(f"read-only rootfs {host.get('ReadonlyRootfs')}")
    wanted_net = request["network_mode"]
    if wanted_net == "none" and host.get("NetworkMode") != "none":
        problems.append(f"network mode {host.get('NetworkMode')!r}")
    if wanted_net.startswith("ns:") and host.get("NetworkMode") != wanted_net:
        problems.append(f"network mode {host.get('NetworkMode')!r} instead of {wanted_net!r}")
    if request.get("no_new_privileges") and "no-new-privileges" not in (
        host.get("SecurityOpt") or []
    ):
        problems.append("no-new-privileges missing")
    if "cap_drop" in request and (inspected.get("EffectiveCaps") or host.get("CapAdd")):
        problems.append(f"capabilities {inspected.get('EffectiveCaps') or host.get('CapAdd')}")
    if request.get("pids_limit") is not None and host.get("PidsLimit") != request["pids_limit"]:
        problems.append(f"pids limit {host.get('PidsLimit')}")
    if request.get("mem_limit") is not None and host.get("Memory") != request["mem_limit"]:
        problems.append(f"memory limit {host.get('Memory')}")
    if (
        request.get("apparmor_profile")
        and inspected.get("AppArmorProfile") != request["apparmor_profile"]
    ):
        problems.append(f"AppArmor profile {inspected.get('AppArmorProfile')!r}")
    if request.get("runtime") and inspected.get("OCIRuntime") != request["runtime"]:
        problems.append(
            f"OCI runtime {inspected.get('OCIRuntime')!r} instead of {request['runtime']!r}"
        )
    if (process := _process_argv(inspected)) != list(request["command"]):
        problems.append(f"command {process!r} instead of {list(request['command'])!r}")
    if problems:
        raise SandboxSetupError(
            "Podman created the container without what was asked: " + "; ".join(problems),
            hint="nothing was run; upgrade Podman/podman-py or use --backend docker|native",
        )
