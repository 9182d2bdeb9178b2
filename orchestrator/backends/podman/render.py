"""The Podman request as the libpod API takes it, pure: create kwargs → SpecGenerator body.

Owns: ``render``, the body of ``POST /libpod/containers/create`` for a request from
``translate`` (podman-py's ``containers.create`` keywords, the vocabulary golden files
and ``--print-spec`` show): exactly what podman-py 5 would send for them (its
``CreateMixin._render_payload`` then ``prepare_body``; pinned by a unit test against
podman-py itself), so the service receives the same request as before podman-py left
the run's path (importing it cost ~100-250 ms per launch here).
Does not own: which keywords a spec needs (``translate``) or checking what the service
made of them (``translate.verify_created``, still the judge: a keyword rendered wrong
would fail the run, never weaken it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# keyword → SpecGenerator field, for the keywords that map one to one.
SCALARS = {
    "image": "image",
    "command": "command",
    "entrypoint": "entrypoint",
    "working_dir": "work_dir",
    "user": "user",
    "hostname": "hostname",
    "environment": "env",
    "labels": "labels",
    "tty": "terminal",
    "stdin_open": "stdin",
    "init": "init",
    "privileged": "privileged",
    "read_only": "read_only_filesystem",
    "read_write_tmpfs": "read_write_tmpfs",
    "cap_drop": "cap_drop",
    "no_new_privileges": "no_new_privileges",
    "seccomp_profile_path": "seccomp_profile_path",
    "apparmor_profile": "apparmor_profile",
    "runtime": "oci_runtime",
    "name": "name",
}
# podman-py's mount keys that become options: flags, key=value, and bare values.
_FLAGS = {"read_only": "ro"}
_VALUED = ("consistency", "mode", "size")
_BARE = ("propagation", "relabel")


def render(request: Mapping[str, Any]) -> dict[str, Any]:
    """The libpod create body for ``request``. Raises TypeError for a keyword this
    does not know (a new translate option must be rendered here first)."""
    unknown = set(request) - {
        *SCALARS,
        "mounts",
        "network_mode",
        "pids_limit",
        "mem_limit",
        "memswap_limit",
        "cpu_period",
        "cpu_quota",
        "ulimits",
        "userns_mode",
    }
    if unknown:
        raise TypeError(f"no libpod rendering for {sorted(unknown)}")
    body: dict[str, Any] = {field: request[key] for key, field in SCALARS.items() if key in request}
    body["mounts"] = [_mount(m) for m in request.get("mounts", ())]
    body["r_limits"] = [
        {"type": one["Name"], "hard": one["Hard"], "soft": one["Soft"]}
        for one in request.get("ulimits", ())
    ]
    body["resource_limits"] = {
        "pids": {"limit": request.get("pids_limit")},
        "cpu": {"period": request.get("cpu_period"), "quota": request.get("cpu_quota")},
        "memory": {"limit": request.get("mem_limit"), "swap": request.get("memswap_limit")},
    }
    if "userns_mode" in request:
        body["userns"] = {"nsmode": request["userns_mode"]}
    if "network_mode" in request:
        kind, sep, path = str(request["network_mode"]).partition(":")
        if kind == "ns" and sep and ":" not in path:
            body["netns"] = {"nsmode": "path", "value": path}
        else:
            body["netns"] = {"nsmode": request["network_mode"]}
    return _filtered(body)


def _mount(mount: Mapping[str, Any]) -> dict[str, Any]:
    known = {"type", "source", "target", *_FLAGS, *_VALUED, *_BARE}
    if unknown := {key.lower() for key in mount} - known:
        raise TypeError(f"no libpod rendering for mount keys {sorted(unknown)}")
    options = []
    for key, value in mount.items():
        name = key.lower()
        if name in _FLAGS and value is True:
            options.append(_FLAGS[name])
        elif name in _VALUED:
            options.append(f"{name}={value}")
        elif name in _BARE:
            options.append(value)
    lowered = {key.lower(): value for key, value in mount.items()}
    return {
        "destination": lowered.get("target"),
        "options": options,
        "source": lowered.get("source"),
        "type": lowered.get("type"),
    }


def _filtered(mapping: Mapping[str, Any], *, nested: bool = False) -> dict[str, Any]:
    """podman-py's ``prepare_body``: None and empty values go (an empty string only at
    the top level), None items leave lists, nested mappings are filtered alike."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if value is None or (not nested and _empty(value)):
            continue
        proposal: Any = value
        if isinstance(value, Mapping):
            proposal = _filtered(value, nested=True)
        elif isinstance(value, Iterable) and not isinstance(value, str):
            proposal = [item for item in value if item is not None]
        if proposal in ([], {}) or (not nested and proposal == ""):
            continue
        out[key] = proposal
    return out


def _empty(value: Any) -> bool:
    try:
        return len(value) == 0
    except TypeError:
        return False
