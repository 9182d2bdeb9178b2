"""The pure parts of a container session: its container's request and each exec's.

Owns: re-aiming a run's create request at a session (``docker_request``,
``podman_request``: the helper bound read-only and pausing as pid 1, no
environment of the container's own, owner and role labels), each exec's create body
and command line (``exec_body``, ``exec_argv``: the helper first), the helper's own
(``helper_body``), where an engine takes exec calls (``exec_paths``), and finding
the built helper (``helper_source``).
Does not own: calling the engine (``session``) or the helper itself (``supervise.c``).

Why the helper, not the engine's init, is pid 1: a command can kill its own exec's
supervisor; its tree is then re-parented to pid 1, which must kill it (the engines'
inits would keep it running into later execs). See ``supervise.c``.
Why no environment on the container: engines merge an exec's Env onto the
container's, so anything there would reach every exec past the profile's filter,
which the keeper applies to each exec's own environment.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.session import ExecCall
from orchestrator.core.spec import SandboxSpec

from . import common as container

# What the helper passes on to a command (supervise.c's `forwarded`); others never
# reach it, so no default action ends the helper.
FORWARDED = frozenset(
    {
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    }
)
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "codex-box-supervise")
HELPER_TARGET = "/.codex-box/supervise"  # engines make the mountpoint, also on a read-only root
ROLE = "session"


def helper_source() -> str:
    """The built helper on this host; fails closed with the fix when it is missing."""
    if not os.access(HELPER, os.X_OK):
        raise SandboxSetupError(
            f"the container session helper is not built ({HELPER})",
            hint="run `make install`; it needs gcc and libc6-dev (apt-get install gcc libc6-dev)",
        )
    return HELPER


EXIT_NO_CWD = 125  # the helper's status when it cannot enter -C DIR (supervise.c)


def exec_argv(call: ExecCall) -> list[str]:
    """The exec's command line: the helper (``-i`` names it for ``--signal``; ``-C``:
    it enters the working directory itself, so a missing one is told apart from the
    command's own failure, the same on both engines), then argv."""
    timeout = ["-t", f"{call.timeout_s:g}"] if call.timeout_s else []
    detach = ["-d"] if call.detach else []
    cwd = ["-C", call.cwd]
    return [HELPER_TARGET, "-i", call.exec_id, *cwd, *timeout, *detach, "--", *call.argv]


def exec_body(call: ExecCall, spec: SandboxSpec) -> dict[str, Any]:
    """``POST .../containers/{id}/exec``, the same on Docker and libpod. The whole
    environment is the exec's (the engines merge it onto the container's, which holds
    only the image's own: ``docker_request``)."""
    return {
        # A detached exec's output is still attached (and dropped): its stream's end
        # is how the end of its tree is known (Podman's inspect of a detached exec
        # keeps saying Running).
        "AttachStdin": not call.detach,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Env": [f"{key}={value}" for key, value in call.env],
        "Cmd": exec_argv(call),
        "User": container.user(spec),  # the run's user, never the image's default
        "WorkingDir": "/",  # the helper's -C enters the exec's
        "Privileged": False,
    }


def helper_body(spec: SandboxSpec, argv: tuple[str, ...]) -> dict[str, Any]:
    """The helper once more (``--signal``), detached, as the session's user: inside the
    container it reaches only the session's processes."""
    return {
        **dict.fromkeys(("AttachStdin", "AttachStdout", "AttachStderr", "Tty"), False),
        "Cmd": [HELPER_TARGET, *argv],
        "User": container.user(spec),
        "Privileged": False,
    }


def exec_paths(prefix: str, box: str) -> dict[str, str]:
    """Where an engine takes exec calls: ``prefix`` is "" (Docker) or libpod's."""
    return {
        "create": f"{prefix}/containers/{box}/exec",
        "start": prefix + "/exec/{id}/start",
        "inspect": prefix + "/exec/{id}/json",
        "container": f"{prefix}/containers/{box}/json",
    }


def _helper_mount(helper: str) -> Mapping[str, Any]:
    return {"source": helper, "target": HELPER_TARGET, "read_only": True}


def docker_request(
    body: Mapping[str, Any], helper: str, owner: Mapping[str, str]
) -> dict[str, Any]:
    """The session container from a run's create body: the helper pauses as its pid 1
    (no engine init), nothing attached, no environment beyond the image's."""
    host = dict(body["HostConfig"])
    host["Init"] = False  # the helper is pid 1: it kills what a dead supervisor left
    mount = _helper_mount(helper)
    host["Mounts"] = [
        *host["Mounts"],
        {
            "Type": "bind",
            "Source": mount["source"],
            "Target": mount["target"],
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rprivate"},
        },
    ]
    return {
        **body,
        "Cmd": [HELPER_TARGET, "--pause"],
        "Env": [],
        "Labels": {**body["Labels"], **owner, container.LABEL_ROLE: ROLE},
        "Tty": False,
        **dict.fromkeys(("OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout"), False),
        "AttachStderr": False,
        "HostConfig": host,
    }


def podman_request(
    kwargs: Mapping[str, Any], helper: str, owner: Mapping[str, str]
) -> dict[str, Any]:
    """As ``docker_request``, in podman-py's create keywords."""
    mount = {"type": "bind", **_helper_mount(helper), "propagation": "rprivate"}
    return {
        **kwargs,
        "command": [HELPER_TARGET, "--pause"],
        "init": False,  # as ``docker_request``: the helper is pid 1
        "environment": {},
        "labels": {**kwargs["labels"], **owner, container.LABEL_ROLE: ROLE},
        "tty": False,
        "stdin_open": False,
        "mounts": [*kwargs["mounts"], mount],
    }
