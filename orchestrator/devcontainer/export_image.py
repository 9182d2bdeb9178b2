"""What the image a ``devcontainer export`` names brings, vetted before the file is written.

Owns: ``vet_image`` — for ``image``, its ``devcontainer.metadata`` label as the engine has
it (Docker: ``DOCKER_HOST``, else its socket; an image it does not have is refused: the
Dev Containers CLI would pull it and apply its label unvetted); for a build, what the
build reads and fetches (``build.check_inputs``, ``check_fetches``), a syntax frontend
(BuildKit pulls and runs it), a label it would write (``check_dockerfile_labels``), and
each base image's label — and ``check_metadata``: what a label may not ask for, since
the CLI applies it *after* runArgs (privileged, capabilities, security options, mounts,
init) or it reaches the host (initializeCommand, a host variable). Does not own: what
the file says (``export``), writing it (``export_files``).

The engine asked is Docker: the image ``devcontainer up --docker-path podman`` would start
is Podman's copy of that name, which this does not see — vet it with ``codex-box
devcontainer check`` there.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError, Refused
from orchestrator.core.profile import Profile

from .dockerfile import instructions
from .plan import Build
from .variables import host_variables, host_variables_in_text

ENGINE = "docker"
INSPECT_TIMEOUT_S = 10.0
METADATA_LABEL = "devcontainer.metadata"
# BuildKit runs a `# syntax=` frontend image (pulled from a registry; it may fetch
# anything) and reads BUILDKIT_SYNTAX from the build args alike.
_SYNTAX = re.compile(r"^\W*#\s*syntax\s*=", re.IGNORECASE | re.MULTILINE)


METADATA_REFUSED = {
    "privileged": "a privileged container is the host's root",
    "capAdd": "capabilities the profile does not grant",
    "securityOpt": "security options that runArgs cannot take back",
    "mounts": "host mounts besides the workspace",
    "init": "an init the profile does not start",
    "runArgs": "docker run arguments",
    "workspaceMount": "its own workspace mount",
    "appPort": "published ports",
    "initializeCommand": "a command on the host",
    "features": "Features",
}


def vet_image(
    config: dict[str, Any],
    profile: Profile,
    *,
    folder: Path,
    workspace: Path,
    home: str,
    codex_home: str,
    environ: Mapping[str, str],
) -> None:
    """Refuse what the image ``devcontainer up`` would start brings: for ``image``, its
    ``devcontainer.metadata`` label (the engine must have it); for a build, what the
    build reads and fetches (``build.check_inputs``, ``check_fetches``), a label it
    would write, and each base image's label."""
    from .build import check_fetches, check_inputs, read_dockerfile
    from .dockerfile import images

    named = config.get("image")
    if named is not None:
        if not isinstance(named, str):
            raise ConfigError("the devcontainer.json's image must be a string")
        check_metadata(named, _metadata_label(named, environ))
        return
    build = _build(config, folder)
    if build is None:
        return
    check_inputs(build, workspace=str(workspace), profile=profile, home=home, codex_home=codex_home)
    text = read_dockerfile(build.dockerfile)
    if (
        _SYNTAX.search(text)
        or "BUILDKIT_SYNTAX" in text
        or any(name.upper().startswith("BUILDKIT_") for name, _ in build.args)
    ):
        raise Refused(
            f"{build.dockerfile}: a syntax directive (or BUILDKIT_SYNTAX) makes BuildKit "
            "pull and run a frontend image, which may fetch anything on the host's network",
            hint="remove the `# syntax=` line",
        )
    check_dockerfile_labels(build.dockerfile, text)
    network = profile.allows_network() and not profile.uses_egress_proxy()
    check_fetches(ENGINE, build, text, network=network, environ=environ)
    for base in images(text, dict(build.args)):
        check_metadata(base, _metadata_label(base, environ))


def _build(config: dict[str, Any], folder: Path) -> Build | None:
    build = config.get("build")
    if not isinstance(build, dict):
        if "dockerFile" not in config:
            return None
        build = {"dockerfile": config["dockerFile"], "context": config.get("context", ".")}
    dockerfile = build.get("dockerfile") or build.get("dockerFile") or "Dockerfile"
    context = build.get("context") or "."
    args = build.get("args") or {}
    if not isinstance(dockerfile, str) or not isinstance(context, str):
        raise ConfigError("build.dockerfile and build.context are strings")
    if not isinstance(args, dict):
        raise ConfigError("build.args must be an object of strings")
    target = build.get("target")
    return Build(
        dockerfile=os.path.normpath(os.path.join(folder, dockerfile)),
        context=os.path.normpath(os.path.join(folder, context)),
        args=tuple((str(k), str(v)) for k, v in args.items()),
        target=str(target) if target else None,
    )


def _metadata_label(image: str, environ: Mapping[str, str]) -> str | None:
    """The image's ``devcontainer.metadata`` label as the engine has it (None without
    one); Refused when the engine does not have the image, or cannot be asked."""
    from orchestrator.backends.containers.engine_api import Endpoint
    from orchestrator.core.spec import DEFAULT_DOCKER_HOST

    endpoint = Endpoint(environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)
    quoted = urllib.parse.quote(image, safe="")
    hint = f"{ENGINE} pull {image}, vet it (codex-box devcontainer check), then export again"
    try:
        answer = endpoint.request("GET", f"/images/{quoted}/json", timeout=INSPECT_TIMEOUT_S)
    except OSError as exc:
        raise Refused(
            f"cannot ask {ENGINE} at {endpoint.url} about image {image} ({exc}): its "
            "devcontainer.metadata label, which devcontainer up applies, cannot be vetted",
            hint=hint,
        ) from None
    if answer.status == 404:
        raise Refused(
            f"image {image} is not in {ENGINE}: devcontainer up would pull it, and apply "
            "its devcontainer.metadata label unvetted",
            hint=hint,
        )
    data = answer.data()
    if answer.status != 200 or not isinstance(data, dict):
        raise Refused(f"{ENGINE} did not describe image {image} (HTTP {answer.status})", hint=hint)
    labels = (data.get("Config") or {}).get("Labels") or {}
    label = labels.get(METADATA_LABEL) if isinstance(labels, dict) else None
    return None if label is None else str(label)


def check_metadata(image: str, label: str | None) -> None:
    """Refused (126) when ``image``'s ``devcontainer.metadata`` label (``label``, None
    without one) asks for what the Dev Containers CLI applies after runArgs, or names a
    host variable; or when it cannot be read as the CLI reads it (JSON, an array of
    objects or one object)."""
    if label is None:
        return
    where = f"image {image}'s devcontainer.metadata label"
    hint = "use another image, or rebuild it without these; codex-box devcontainer check"

    def reject(constant: str) -> Any:
        raise ValueError(constant)

    try:
        data = json.loads(label, parse_constant=reject)
    except (ValueError, RecursionError):
        raise Refused(f"{where} is not JSON: cannot tell what it asks for", hint=hint) from None
    entries = data if isinstance(data, list) else [data]
    for entry in entries:
        if not isinstance(entry, dict):
            raise Refused(f"{where} holds {type(entry).__name__}, not an object", hint=hint)
        for key, why in METADATA_REFUSED.items():
            if _given(entry.get(key)):
                raise Refused(f"{where} asks for {key} ({why}): the CLI applies it", hint=hint)
        requirements = entry.get("hostRequirements")
        if isinstance(requirements, dict) and _given(requirements.get("gpu")):
            raise Refused(f"{where} asks for hostRequirements.gpu (the host's GPUs)", hint=hint)
    names = [name for _, name in host_variables(data)] + host_variables_in_text(label)
    if names:
        raise Refused(
            f"{where} names the host variable {names[0]}: the CLI would copy it in", hint=hint
        )


def check_dockerfile_labels(dockerfile: str, text: str) -> None:
    """Refused (126) when the Dockerfile may write a ``devcontainer.metadata`` label
    (the CLI reads it from the image): any LABEL naming it — also split by a line
    continuation — or whose keys come from a variable."""
    squeezed = re.sub(r"[\s\\`\"']", "", text).lower()
    if "devcontainer.metadata" in squeezed:
        raise Refused(
            f"{dockerfile} writes a devcontainer.metadata label: the Dev Containers CLI "
            "would apply what it asks for after runArgs",
            hint="remove that LABEL",
        )
    for word, rest in instructions(text):
        if word == "ONBUILD":
            word, _, rest = rest.partition(" ")
        if word.upper() == "LABEL" and "$" in rest:
            raise Refused(
                f"{dockerfile}: LABEL {rest[:60]} uses a variable: cannot tell which label "
                "it writes (a devcontainer.metadata one is applied after runArgs)",
                hint="write the label's key and value out",
            )


def _given(value: Any) -> bool:
    return value not in (None, False, "", [], {})
