"""What a profile makes of a ``devcontainer.json``: the keys it refuses, the ones it
changes, the ones that pass.

Owns: the rule that the profile wins on every security setting. Refused under every
profile but ``trusted`` (one line naming the key and its value, exit 126): privileged
containers, added capabilities, security options that loosen, ``runArgs`` that reach
the host (``--privileged``, ``--cap-add``, ``--network=host``, ``--pid/--ipc/--userns/
--uts=host``, ``--device``, ``--security-opt``, ``-v``/``--mount``/``--volume`` of an
engine socket or of ``/``, ``/etc``, the home or CODEX_HOME) and any run argument not
known to be harmless (refused, not ignored: an unknown one may be the next
``--privileged``); mounts of the same places; ``forwardPorts`` without network.
Harmless run arguments pass (``--env``, ``--label``, ``--init``, ``--shm-size``,
``--hostname``, ``--name``, ``--workdir``, ``--user``). Changed: a network setting of
the file's is replaced by the profile's, a writable workspace mount becomes read-only
under a read-only profile. Does not own: reading the file (``config``), running
anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.core.profile import Access, Network, Profile

REFUSED, CHANGED = "refused", "changed"
# runArgs that take a value and do no harm (a value of their own, or none).
_HARMLESS_WITH_VALUE = frozenset(
    {"-e", "--env", "--env-file", "-l", "--label", "--shm-size", "-h", "--hostname",
     "--name", "-w", "--workdir", "-u", "--user", "--add-host", "--stop-signal",
     "--stop-timeout", "--platform"}
)  # fmt: skip
_HARMLESS_FLAGS = frozenset({"--init", "--rm", "-t", "--tty", "-i", "--interactive"})
_HOST_NAMESPACES = ("--network", "--net", "--pid", "--ipc", "--userns", "--uts", "--cgroupns")
_LOOSENING_OPTS = ("seccomp=unconfined", "apparmor=unconfined", "label=disable")
_ENGINE_SOCKETS = ("docker.sock", "podman.sock", "containerd.sock", "crio.sock", "buildkitd.sock")


@dataclass(frozen=True, slots=True)
class Finding:
    key: str  # the devcontainer.json key, e.g. "runArgs[2]"
    value: str  # its value as written (shortened)
    action: str  # refused | changed
    why: str

    def line(self) -> str:
        return f"{self.key} {self.value}: {self.action} — {self.why}"


def vet(config: dict[str, Any], profile: Profile, *, home: str, codex_home: str) -> list[Finding]:
    """Every key of ``config`` the profile refuses or changes, in file order."""
    if not profile.sandboxed:
        return []  # trusted: the file's own settings apply, as the opt-in said
    found: list[Finding] = []
    if config.get("privileged") is True:
        found.append(_refused("privileged", True, "a privileged container is the host's root"))
    for i, cap in enumerate(_strings(config.get("capAdd"))):
        found.append(_refused(f"capAdd[{i}]", cap, "the profile's capabilities are none"))
    for i, opt in enumerate(_strings(config.get("securityOpt"))):
        if _loosens(opt):
            found.append(_refused(f"securityOpt[{i}]", opt, "it turns a confinement off"))
    places = _places(home, codex_home)
    found += _run_args(_strings(config.get("runArgs")), places, home)
    for i, mount in enumerate(config.get("mounts") or []):
        text = mount if isinstance(mount, str) else _mount_text(mount)
        if (why := _dangerous_mount(text, places, home)) is not None:
            found.append(_refused(f"mounts[{i}]", text, why))
    ports = config.get("forwardPorts") or []
    if ports and profile.network is Network.NONE:
        found.append(
            _refused("forwardPorts", _short(ports), f"profile {profile.name} has no network")
        )
    if profile.workspace is Access.READ_ONLY and "workspaceMount" in config:
        mount = str(config["workspaceMount"])
        if "readonly" not in mount and "ro" not in mount.split(","):
            found.append(
                Finding("workspaceMount", _short(mount), CHANGED, f"read-only under {profile.name}")
            )
    return found


def _run_args(args: list[str], places: tuple[str, ...], home: str) -> Iterator[Finding]:
    i = 0
    while i < len(args):
        arg, key = args[i], f"runArgs[{i}]"
        name, sep, inline = arg.partition("=")
        value = inline if sep else (args[i + 1] if i + 1 < len(args) else "")
        takes_next = not sep and i + 1 < len(args) and not args[i + 1].startswith("-")
        if name in _HARMLESS_FLAGS:
            i += 1
            continue
        if name in _HARMLESS_WITH_VALUE:
            i += 1 if sep else 2
            continue
        if name == "--privileged":
            yield _refused(key, arg, "a privileged container is the host's root")
        elif name in ("--cap-add",):
            yield _refused(key, _pair(arg, value, sep), "the profile's capabilities are none")
        elif name in _HOST_NAMESPACES:
            shown = _pair(arg, value, sep)
            if value.startswith(("host", "container:")):
                yield _refused(key, shown, "it shares a namespace of the host or another container")
            else:
                yield Finding(key, shown, CHANGED, "the profile decides the network")
        elif name in ("--device", "--gpus", "--device-cgroup-rule"):
            yield _refused(key, _pair(arg, value, sep), "it hands a host device to the container")
        elif name == "--security-opt":
            yield _refused(key, _pair(arg, value, sep), "the profile decides the security options")
        elif name in ("-v", "--volume", "--mount"):
            why = _dangerous_mount(value, places, home) or "a mount outside the workspace"
            yield _refused(key, _pair(arg, value, sep), why)
        else:
            yield _refused(key, arg, "a run argument codex-box does not know to be harmless")
        i += 2 if takes_next and name not in ("--privileged", "--init") else 1


def _dangerous_mount(text: str, places: tuple[str, ...], home: str) -> str | None:
    parts: dict[str, str] = {}
    for piece in text.replace(" ", "").split(","):
        name, _, value = piece.partition("=")
        parts[name] = value
    source = parts.get("source") or parts.get("src") or text.split(":", 1)[0]
    # The spec's variables: the home as written in the host's environment is the home;
    # any other host variable could name anything.
    for variable in ("${localEnv:HOME}", "${localEnv:USERPROFILE}"):
        source = source.replace(variable, home)
    if "${localEnv:" in source:
        return "a path from the host's environment"
    if any(source.endswith(sock) for sock in _ENGINE_SOCKETS) or source in (
        "/var/run",
        "/run",
    ):
        return "a container engine's socket: whoever reaches it owns the host"
    real = os.path.normpath(source) if source.startswith("/") else source
    for place in places:
        if real == place or (place != "/" and real.startswith(place + "/")):
            return f"{place} is the host's, not the workspace"
    return None


def _places(home: str, codex_home: str) -> tuple[str, ...]:
    return tuple(
        os.path.normpath(p) for p in ("/", "/etc", home, codex_home) if p and p.startswith("/")
    )


def _loosens(opt: str) -> bool:
    squeezed = opt.replace(" ", "").lower().replace(":", "=")
    return any(squeezed.endswith(bad) or squeezed == bad for bad in _LOOSENING_OPTS) or (
        "no-new-privileges=false" in squeezed or squeezed.startswith("systempaths=unconfined")
    )


def _mount_text(mount: Any) -> str:
    if isinstance(mount, dict):
        return ",".join(f"{k}={v}" for k, v in mount.items())
    return str(mount)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _pair(arg: str, value: str, sep: str) -> str:
    return arg if sep else f"{arg} {value}".strip()


def _refused(key: str, value: Any, why: str) -> Finding:
    return Finding(key, _short(value), REFUSED, why)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def refused(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.action == REFUSED]
