"""What a profile makes of a ``devcontainer.json``: the keys it refuses, the ones it
changes, the ones that pass.

Owns: the rule that the profile wins on every security setting. Refused under every
profile but ``trusted`` (one line naming the key and its value, exit 126): privileged
containers, added capabilities, security options that loosen, ``runArgs`` that reach
the host (``run_args``), mounts of an engine socket or of ``/``, ``/etc``, the home or
CODEX_HOME, and any bind of a host directory outside the workspace (the profile grants
the workspace only); ``${localEnv:NAME}`` of anything but the user's name and home (it
would carry a host secret past the profile's filter); ``initializeCommand`` (it runs on
the host, outside any sandbox); ``features`` and ``build.options`` (they reach the
engine's build); Compose configurations; ``forwardPorts``/``appPort`` without network.
Changed: the workspace stays at its host path (``workspaceFolder``/``workspaceMount``);
volumes become private tmpfs; a bind inside the workspace is not made again (it is
there already); harmless run arguments codex-box decides itself. Does not own: reading
the file (``config``, ``reading``), turning what passes into a launch (``plan``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from orchestrator.core.paths import inside
from orchestrator.core.profile import Access, Network, Profile

from .findings import (
    CHANGED,
    REFUSED,
    Finding,
    changed_finding,
    refused,
    refused_finding,
)
from .run_args import read_run_args
from .variables import host_variables

__all__ = ["CHANGED", "REFUSED", "Finding", "Mount", "mounts_of", "refused", "vet"]

_LOOSENING_OPTS = ("seccomp=unconfined", "apparmor=unconfined", "label=disable")
_ENGINE_SOCKETS = ("docker.sock", "podman.sock", "containerd.sock", "crio.sock", "buildkitd.sock")
_HOST_COMMAND = "initializeCommand"


class Mount:
    """One entry of ``mounts`` as the engine would read it."""

    __slots__ = ("kind", "source", "target", "text")

    def __init__(self, raw: Any) -> None:
        parts: dict[str, str] = {}
        if isinstance(raw, dict):
            parts = {str(k).lower(): str(v) for k, v in raw.items()}
            self.text = ",".join(f"{k}={v}" for k, v in raw.items())
        else:
            self.text = str(raw)
            for piece in self.text.split(","):
                name, _, value = piece.strip().partition("=")
                parts[name.lower()] = value
        self.kind = parts.get("type") or "volume"  # docker --mount's default
        self.source = parts.get("source") or parts.get("src") or ""
        self.target = parts.get("target") or parts.get("dst") or parts.get("destination") or ""


def mounts_of(config: dict[str, Any]) -> list[Mount]:
    listed = config.get("mounts") or []
    return [Mount(m) for m in listed] if isinstance(listed, list) else []


def vet(
    config: dict[str, Any],
    profile: Profile,
    *,
    home: str,
    codex_home: str,
    workspace: str = "",
    raw: dict[str, Any] | None = None,
) -> list[Finding]:
    """Every key of ``config`` the profile refuses or changes, in file order. ``raw``:
    the file as written, before any tool substituted its variables (default: config)."""
    if not profile.sandboxed:
        return []  # trusted: the file's own settings apply, as the opt-in said
    found: list[Finding] = []
    for key, name in host_variables(raw if raw is not None else config):
        why = f"host variable {name} reaches a sandbox only by --env {name}"
        found.append(refused_finding(key, f"${{localEnv:{name}}}", why))
    if config.get(_HOST_COMMAND):
        why = "it runs on the host, outside any sandbox: run it yourself, then remove it"
        found.append(refused_finding(_HOST_COMMAND, config[_HOST_COMMAND], why))
    if config.get("features"):
        why = "build them with `devcontainer build --image-name N`, then use image N"
        found.append(refused_finding("features", config["features"], why))
    if "dockerComposeFile" in config:
        why = "Compose configurations are not supported: use image or build"
        found.append(refused_finding("dockerComposeFile", config["dockerComposeFile"], why))
    build = config.get("build")
    if isinstance(build, dict) and build.get("options"):
        why = "build options reach the engine's build (--network=host, secrets)"
        found.append(refused_finding("build.options", build["options"], why))
    found += _security_keys(config)
    applied, from_args = read_run_args(_strings(config.get("runArgs")))
    found += from_args
    del applied  # the plan applies them
    places = _places(home, codex_home)
    for i, mount in enumerate(mounts_of(config)):
        found += _mount(f"mounts[{i}]", mount, places, home, workspace, profile)
    for key in ("forwardPorts", "appPort"):
        ports = config.get(key)
        if ports and profile.network is Network.NONE:
            found.append(refused_finding(key, ports, f"profile {profile.name} has no network"))
        elif ports:
            why = "not forwarded: codex-box publishes no port (reach it from inside)"
            found.append(changed_finding(key, ports, why))
    for key in ("workspaceFolder", "workspaceMount"):
        if key in config and (raw is None or key in raw):
            why = f"the workspace is at its host path {workspace or '(the workspace)'}"
            if profile.workspace is Access.READ_ONLY:
                why += f", read-only under {profile.name}"
            found.append(changed_finding(key, config[key], why))
    return found


def _security_keys(config: dict[str, Any]) -> Iterator[Finding]:
    if config.get("privileged") is True:
        yield refused_finding("privileged", True, "a privileged container is the host's root")
    for i, cap in enumerate(_strings(config.get("capAdd"))):
        yield refused_finding(f"capAdd[{i}]", cap, "the profile's capabilities are none")
    for i, opt in enumerate(_strings(config.get("securityOpt"))):
        if _loosens(opt):
            yield refused_finding(f"securityOpt[{i}]", opt, "it turns a confinement off")
        else:
            yield changed_finding(f"securityOpt[{i}]", opt, "the profile decides them")


def _mount(
    key: str, mount: Mount, places: tuple[str, ...], home: str, workspace: str, profile: Profile
) -> Iterator[Finding]:
    if not mount.target.startswith("/"):
        yield refused_finding(key, mount.text, "no absolute target")
        return
    if mount.kind == "bind":
        source = mount.source.replace("${localEnv:HOME}", home)
        source = source.replace("${localEnv:USERPROFILE}", home)
        if workspace:
            source = source.replace("${localWorkspaceFolder}", workspace)
        within = workspace and source.startswith("/")
        if within and inside(os.path.normpath(source), workspace) and not _socket(source):
            why = "already in the sandbox at its host path; not bound again"
            yield changed_finding(key, mount.text, why)
        elif (danger := _dangerous(source, places)) is not None:
            yield refused_finding(key, mount.text, danger)
        else:
            why = "a host directory outside the workspace: the profile grants the workspace only"
            yield refused_finding(key, mount.text, why)
    elif mount.kind in ("volume", "tmpfs"):
        if not profile.private_tmp:
            yield refused_finding(key, mount.text, f"profile {profile.name} writes no scratch")
        else:
            why = f"a private tmpfs at {mount.target}: nothing persists between sandboxes"
            yield changed_finding(key, mount.text, why)
    else:
        yield refused_finding(key, mount.text, f"a mount of type {mount.kind!r}")


def _dangerous(source: str, places: tuple[str, ...]) -> str | None:
    if "${localEnv:" in source or "${env:" in source:
        return "a path from the host's environment"
    if _socket(source):
        return "a container engine's socket: whoever reaches it owns the host"
    real = os.path.normpath(source) if source.startswith("/") else source
    for place in places:
        if real == place or (place != "/" and real.startswith(place + "/")):
            return f"{place} is the host's, not the workspace"
    return None


def _socket(source: str) -> bool:
    trimmed = source.rstrip("/")
    return trimmed.endswith(_ENGINE_SOCKETS) or trimmed in ("/var/run", "/run")


def _places(home: str, codex_home: str) -> tuple[str, ...]:
    return tuple(
        os.path.normpath(p) for p in ("/", "/etc", home, codex_home) if p and p.startswith("/")
    )


def _loosens(opt: str) -> bool:
    squeezed = opt.replace(" ", "").lower().replace(":", "=")
    return any(squeezed.endswith(bad) or squeezed == bad for bad in _LOOSENING_OPTS) or (
        "no-new-privileges=false" in squeezed or squeezed.startswith("systempaths=unconfined")
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []
