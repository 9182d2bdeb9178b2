"""The runner container hooks' protocol, read and answered (pure).

Owns: parsing the JSON the runner writes on the hook's stdin (``{command,
responseFile, args, state}``, as ``actions/runner``'s ``HookInput.cs`` and
``actions/runner-container-hooks``' ``hooklib/interfaces.ts`` define it), a step's
command line, working directory and environment in host terms, the job's
image (``createOptions``, a job choosing its own sandbox, ignored), the ``prepare_job``
response, and the ``docker run`` of a container step under ``trusted``.
Does not own: mounts and paths (``mounts``), running anything (``hook``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.options import LaunchOptions

from .mounts import PathPlan

COMMANDS = ("prepare_job", "run_script_step", "run_container_step", "cleanup_job")
PROFILE_VAR = "CODEX_BOX_PROFILE"  # runner's env: the ceiling; job container's env: a wish
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProtocolError(ValueError):
    """The hook input is not what the documented protocol describes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HookInput:
    command: str
    response_file: str | None
    args: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)


def parse_input(text: str) -> HookInput:
    """The runner writes one JSON object (hooklib reads the last line of stdin)."""
    import json

    try:
        data = json.loads(text)
    except ValueError:
        # hooklib keeps the last line of stdin: whatever came before it is not the input.
        lines = [line for line in text.splitlines() if line.strip()] or [""]
        try:
            data = json.loads(lines[-1])
        except ValueError as exc:
            raise ProtocolError(f"the hook's stdin is not one JSON object ({exc})") from exc
    if not isinstance(data, dict):
        raise ProtocolError("the hook's stdin must be a JSON object")
    command = data.get("command")
    if command not in COMMANDS:
        raise ProtocolError(
            f"unknown hook command {command!r}; expected one of {', '.join(COMMANDS)}"
        )
    response = data.get("responseFile")
    args, state = data.get("args") or {}, data.get("state") or {}
    if not isinstance(args, dict) or not isinstance(state, dict):
        raise ProtocolError("the hook input's args and state must be objects")
    if response is not None and not isinstance(response, str):
        raise ProtocolError("the hook input's responseFile must be a path")
    return HookInput(command=command, response_file=response or None, args=args, state=state)


def string_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{what} must be an object of strings")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def string_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProtocolError(f"{what} must be a list of strings")
    return [str(v) for v in value if v is not None]


def valid_env(env: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Variables a sandbox can be given, and one note per name dropped (the name only:
    a value may be a secret)."""
    good = {k: v for k, v in env.items() if _NAME.match(k) and "\0" not in v}
    return good, tuple(
        f"dropped the variable {k!r}: not a valid name or value" for k in env if k not in good
    )


def launch_options(container: Mapping[str, Any]) -> tuple[LaunchOptions, tuple[str, ...]]:
    """The job container's image; one note per part of the request not used. The
    registry credentials are never used (nor logged)."""
    image = container.get("image")
    notes = []
    if container.get("createOptions"):
        notes.append(
            f"ignored createOptions {str(container['createOptions'])!r}: the runner's "
            "profile decides the sandbox and its limits, not the job"
        )
    if container.get("registry"):
        notes.append("registry credentials not used: the engine pulls with its own")
    if container.get("portMappings"):
        notes.append("ports not published: a session's network is its profile's")
    return LaunchOptions(image=str(image) if image else None), tuple(notes)


def choose_profile(ceiling: str, wish: str | None, widens: Sequence[str]) -> str:
    """The job's profile: the runner's (``ceiling``) unless the job container's env asks
    for one that is not wider (``widens``: how the wish is wider, empty when it is not)."""
    if not wish:
        return ceiling
    if widens:
        raise PermissionError(
            f"the job asks for profile '{wish}' ({PROFILE_VAR} in its container env), "
            f"wider than this runner's '{ceiling}' ({'; '.join(widens)}); "
            f"a job can only tighten it — ask the runner's administrator"
        )
    return wish


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    argv: tuple[str, ...]
    cwd: str | None
    env: dict[str, str]
    notes: tuple[str, ...] = ()


def script_step(
    args: Mapping[str, Any], *, plan: PathPlan, job_env: Mapping[str, str], base_path: str
) -> Step:
    """``run_script_step``: ``entryPoint`` + ``entryPointArgs`` with the job's env, the
    step's env over it and ``prependPath`` before ``PATH``, all in host paths."""
    entry = args.get("entryPoint")
    if not isinstance(entry, str) or not entry:
        raise ProtocolError("run_script_step needs args.entryPoint")
    # The runner splits its argument string on single spaces: empty words are not args.
    words = [w for w in string_list(args.get("entryPointArgs"), "args.entryPointArgs") if w]
    env = {**job_env, **string_map(args.get("environmentVariables"), "args.environmentVariables")}
    env = {k: plan.to_host(v) for k, v in env.items()}
    env, notes = valid_env(env)
    prepend = [plan.to_host(p) for p in string_list(args.get("prependPath"), "args.prependPath")]
    if prepend:
        env["PATH"] = ":".join([*prepend, env.get("PATH") or base_path])
    workdir = args.get("workingDirectory")
    return Step(
        argv=(plan.to_host(entry), *(plan.to_host(w) for w in words)),
        cwd=plan.to_host(workdir) if isinstance(workdir, str) and workdir else None,
        env=env,
        notes=notes,
    )


def prepare_response(*, session_id: str, network: str, alpine: bool) -> dict[str, Any]:
    """What ``PrepareJobResponse`` (HookResponse.cs) reads: the state the runner hands
    back to every later command, the job context, and ``isAlpine`` (required whenever
    there is a job container)."""
    return {
        "state": {"session": session_id},
        "context": {"container": {"id": session_id, "network": network}, "services": []},
        "isAlpine": alpine,
    }


def container_step_argv(args: Mapping[str, Any], *, name: str) -> list[list[str]]:
    """``trusted`` only: the ``docker`` commands of a container step as the runner's own
    docker path would run them (a build first when it names a Dockerfile)."""
    image = args.get("image")
    commands: list[list[str]] = []
    dockerfile = args.get("dockerfile")
    if isinstance(dockerfile, str) and dockerfile:
        context = dockerfile.rsplit("/", 1)[0] if "/" in dockerfile else "."
        image = f"codex-box-github-step:{name}"
        commands.append(["docker", "build", "-t", image, "-f", dockerfile, context])
    if not isinstance(image, str) or not image:
        raise ProtocolError("run_container_step needs args.image or args.dockerfile")
    run = ["docker", "run", "--rm"]
    for mount in [*(args.get("systemMountVolumes") or []), *(args.get("userMountVolumes") or [])]:
        if isinstance(mount, Mapping) and mount.get("sourceVolumePath"):
            ro = ":ro" if mount.get("readOnly") else ""
            run += ["-v", f"{mount['sourceVolumePath']}:{mount['targetVolumePath']}{ro}"]
    for key in string_map(args.get("environmentVariables"), "args.environmentVariables"):
        run += ["-e", key]  # by name: the value travels in the environment, not argv
    if isinstance(args.get("workingDirectory"), str) and args["workingDirectory"]:
        run += ["-w", args["workingDirectory"]]
    if isinstance(args.get("entryPoint"), str) and args["entryPoint"]:
        run += ["--entrypoint", args["entryPoint"]]
    run += [
        image,
        *(w for w in string_list(args.get("entryPointArgs"), "args.entryPointArgs") if w),
    ]
    return [*commands, run]
