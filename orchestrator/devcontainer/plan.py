"""From a vetted devcontainer configuration to what a codex-box launch takes.

Owns: ``plan`` — refuse (exit 126, the first refused key named with its value) or turn
the configuration into ``LaunchOptions`` fields (image or the build to make, the
environment of ``containerEnv``, ``remoteEnv`` and ``--env`` run arguments, the
user ``remoteUser`` or ``containerUser``, hostname, labels, a private tmpfs per volume)
and the lifecycle commands to run in the sandbox, in the spec's order (onCreate,
updateContent, postCreate, postStart), each as an argv the policy then judges.
Does not own: reading (``reading``), vetting (``vetting``), building (``build``),
running anything (the front door, through the runner).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.compile.environment import looks_secret
from orchestrator.core.errors import ConfigError, Refused
from orchestrator.core.profile import Profile

from .findings import Finding, refused, refused_finding
from .reading import LIFECYCLE, Loaded
from .run_args import read_run_args
from .variables import host_variables_in_text, substitute
from .vetting import mounts_of, vet


@dataclass(frozen=True, slots=True)
class Build:
    dockerfile: str  # absolute
    context: str  # absolute
    args: tuple[tuple[str, str], ...] = ()
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    file: str
    image: str | None
    build: Build | None
    env: tuple[str, ...]  # NAME=VALUE
    user: str | None
    hostname: str | None
    labels: tuple[str, ...]
    tmpfs: tuple[str, ...]
    lifecycle: tuple[tuple[str, tuple[str, ...]], ...]  # (key, argv)
    findings: tuple[Finding, ...] = field(default=())


def check_raw(
    file: Path,
    raw: dict[str, Any],
    text: str,
    profile: Profile,
    *,
    home: str,
    codex_home: str,
    workspace: str,
) -> None:
    """Refuse (``Refused``, 126) the file as written, before any tool reads it: the Dev
    Containers CLI fills host variables, pulls images and would run nothing we have not
    vetted."""
    findings = raw_findings(
        file, raw, text, profile, home=home, codex_home=codex_home, workspace=workspace
    )
    _refuse(str(file), findings, profile)


def raw_findings(
    file: Path,
    raw: dict[str, Any],
    text: str,
    profile: Profile,
    *,
    home: str,
    codex_home: str,
    workspace: str,
) -> list[Finding]:
    """What the profile refuses or changes in the file as written (``devcontainer check``)."""
    findings = vet(raw, profile, home=home, codex_home=codex_home, workspace=workspace, raw=raw)
    if profile.sandboxed:
        known = {f.value for f in findings}
        for name in host_variables_in_text(text):
            if f"${{localEnv:{name}}}" not in known:
                why = f"host variable {name} reaches a sandbox only by --env {name}"
                findings.append(refused_finding(file.name, f"${{localEnv:{name}}}", why))
    return findings


def _refuse(file: str, findings: list[Finding], profile: Profile) -> None:
    if bad := refused(findings):
        more = f" (and {len(bad) - 1} more: codex-box devcontainer check)" if len(bad) > 1 else ""
        raise Refused(
            f"{file}: {bad[0].key} {bad[0].value} refused under profile "
            f"{profile.name}: {bad[0].why}{more}",
            hint="remove it from devcontainer.json, or run under a profile that allows it",
        )


def plan(
    loaded: Loaded, profile: Profile, *, home: str, codex_home: str, environ: Mapping[str, str]
) -> Plan:
    """Raises ``Refused`` (126) naming the first refused key, ``ConfigError`` (125) for
    a configuration that names no image or build."""
    config, workspace = loaded.config, loaded.workspace
    findings = vet(
        config, profile, home=home, codex_home=codex_home, workspace=workspace, raw=loaded.raw
    )
    _refuse(str(loaded.file), findings, profile)
    local = {"HOME": home, **{k: v for k, v in environ.items() if not looks_secret(k, v)}}
    container: dict[str, str] = dict(local)

    def sub(text: Any) -> str:
        return substitute(str(text), workspace=workspace, local=local, container=container)

    env: list[str] = []
    applied, _ = read_run_args(_strings(loaded, config, "runArgs"))
    for key in ("containerEnv", "remoteEnv"):
        values = config.get(key) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{loaded.file}: {key} must be an object of strings")
        for name, value in values.items():
            if value is None:  # remoteEnv's way to unset: not set at all here
                continue
            if not isinstance(value, str | int | float | bool):
                raise ConfigError(f"{loaded.file}: {key}.{name} must be a string")
            text = sub(value)
            container[str(name)] = text
            env.append(f"{name}={text}")
    env += [sub(item) for item in applied.env]
    user = _text(loaded, config, "remoteUser") or _text(loaded, config, "containerUser")
    user = sub(user) if user else applied.user and sub(applied.user)
    if user and not any(item.startswith("HOME=") for item in env):
        # The caller's HOME is not this user's. Images made for Dev Containers put a
        # named user's home under /home (the Dev Containers CLI asks the image's passwd;
        # a containerEnv HOME says otherwise).
        name = user.partition(":")[0]
        if not name.isdigit():
            env[:0] = [f"HOME={'/root' if name == 'root' else '/home/' + name}", f"USER={name}"]
    mounts = [m for m in mounts_of(config) if m.kind in ("volume", "tmpfs")]
    return Plan(
        file=str(loaded.file),
        image=_image(config),
        build=_build(config, loaded, sub),
        env=tuple(env),
        user=user or None,
        hostname=applied.hostname,
        labels=tuple(sub(label) for label in applied.labels),
        tmpfs=tuple(sub(m.target) for m in mounts) if profile.sandboxed else (),
        lifecycle=tuple(
            (key, argv) for key in LIFECYCLE for argv in _commands(config.get(key), sub)
        ),
        findings=tuple(findings),
    )


def _image(config: dict[str, Any]) -> str | None:
    image = config.get("image")
    if image is not None and not isinstance(image, str):
        raise ConfigError("the devcontainer.json's image must be a string")
    if image is None and not isinstance(config.get("build"), dict):
        if "dockerFile" in config:  # the spec's old spelling
            return None
        raise ConfigError(
            "the devcontainer.json names neither image nor build",
            hint='add "image": "NAME" or "build": {"dockerfile": "Dockerfile"}',
        )
    return str(image) if image is not None else None


def _build(config: dict[str, Any], loaded: Loaded, sub: Any) -> Build | None:
    build = config.get("build")
    if not isinstance(build, dict):
        if "dockerFile" not in config:
            return None
        build = {"dockerfile": config["dockerFile"], "context": config.get("context", ".")}
    if config.get("image") is not None:
        return None  # image wins, as the CLI has it
    base = os.path.dirname(os.path.abspath(loaded.file))
    dockerfile = build.get("dockerfile") or build.get("dockerFile") or "Dockerfile"
    if not isinstance(dockerfile, str) or not isinstance(build.get("context") or ".", str):
        raise ConfigError(f"{loaded.file}: build.dockerfile and build.context are strings")
    args = build.get("args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{loaded.file}: build.args must be an object of strings")
    target = build.get("target")
    return Build(
        dockerfile=os.path.normpath(os.path.join(base, str(dockerfile))),
        context=os.path.normpath(os.path.join(base, str(build.get("context") or "."))),
        args=tuple((str(k), sub(v)) for k, v in args.items()),
        target=str(target) if target else None,
    )


def _commands(value: Any, sub: Any) -> list[tuple[str, ...]]:
    """A lifecycle key's commands: a string runs in ``/bin/sh -c``, an array is an argv,
    an object is named commands (run one after another here; the CLI runs them at
    once)."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [("/bin/sh", "-c", sub(value))]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [tuple(sub(v) for v in value)]
    if isinstance(value, dict):
        return [argv for item in value.values() for argv in _commands(item, sub)]
    raise ConfigError(f"a lifecycle command must be a string, an array or an object: {value!r}")


def _strings(loaded: Loaded, config: dict[str, Any], key: str) -> list[str]:
    value = config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ConfigError(f"{loaded.file}: {key} must be an array of strings")
    return [str(v) for v in value]


def _text(loaded: Loaded, config: dict[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{loaded.file}: {key} must be a string")
    return value or None
