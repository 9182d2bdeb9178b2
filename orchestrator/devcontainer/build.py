"""Building a devcontainer's image from its Dockerfile, locally, with the engine's CLI.

Owns: ``build_image`` — ``docker build`` / ``podman build`` of ``build.dockerfile`` in
``build.context`` with its ``args`` and ``target``, tagged by the workspace, never
pulling (no registry: a base image must be there already), and what may go into it:
the Dockerfile and context lie inside the workspace (a context of ``../..`` would copy
the host's files into an image the sandbox reads), no path the profile masks
(``filesystem.deny_read``, CODEX_HOME's secrets) lies inside the context, no ``.in``
file (Podman preprocesses it with the host's cpp), every image it starts or copies from
is already here (``dockerfile``: docker's builder would pull it), and without an open
network no ``ADD`` of a URL or git repository (the engine downloads those itself, on the
host's network). The build's ``RUN`` steps run under the engine's own build confinement,
not the profile's: its network is none unless the profile has an open network (an
allowlist cannot be enforced on a build; they get none). Does not own: what the image
then runs (``plan``, the runner).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping

from orchestrator.compile.deny_read import codex_home_secrets, expand_deny_read
from orchestrator.core.errors import ConfigError, Refused, SandboxSetupError
from orchestrator.core.paths import inside
from orchestrator.core.profile import Profile

from .engine import is_local, onbuild
from .plan import Build

BUILD_TIMEOUT_S = 1800.0
MAX_DOCKERFILE = 1 << 20
TAG_PREFIX = "codex-box-devcontainer/"


def image_tag(workspace: str) -> str:
    digest = hashlib.sha256(os.path.realpath(workspace).encode()).hexdigest()[:16]
    return f"{TAG_PREFIX}{digest}:latest"


def build_argv(engine: str, build: Build, tag: str, *, network: bool) -> list[str]:
    argv = [engine, "build", "--tag", tag, "--file", build.dockerfile]
    argv += ["--pull=never"] if engine == "podman" else []  # docker's legacy builder: no --pull
    argv += [] if network else ["--network", "none"]
    for name, value in build.args:
        argv += ["--build-arg", f"{name}={value}"]
    if build.target:
        argv += ["--target", build.target]
    return [*argv, build.context]


def check_inputs(
    build: Build, *, workspace: str, profile: Profile, home: str, codex_home: str
) -> None:
    """Refuse a build that would carry into the image what the sandbox may not read."""
    real_ws = os.path.realpath(workspace)
    for what, path in (("build.dockerfile", build.dockerfile), ("build.context", build.context)):
        if not inside(os.path.realpath(path), real_ws):
            raise Refused(
                f"{what} {path} is outside the workspace {workspace}: the build would copy "
                "host files into an image the sandbox reads",
                hint="keep the Dockerfile and its context inside the workspace",
            )
    if build.dockerfile.lower().endswith(".in"):
        # Podman runs a *.in Containerfile through the host's cpp: #include reads any
        # host file into the build.
        raise Refused(
            f"build.dockerfile {build.dockerfile}: a .in file is preprocessed on the host "
            "(#include reads host files)",
            hint="name it Dockerfile or Containerfile",
        )
    context = os.path.realpath(build.context)
    # deny_read entries are the workspace's (as compile expands them), whatever the context.
    roots = (workspace, real_ws)
    masked = (*expand_deny_read(profile, home=home, roots=roots), os.path.abspath(codex_home))
    masked += codex_home_secrets(codex_home)
    for path in masked:
        if inside(os.path.realpath(path), context) and os.path.lexists(path):
            raise Refused(
                f"build.context {build.context} holds {path}, which profile {profile.name} "
                "masks: the build would copy it into the image",
                hint="narrow build.context, or move the file out of it",
            )


def check_fetches(
    engine: str, build: Build, text: str, *, network: bool, environ: Mapping[str, str]
) -> None:
    """Refuse what the engine itself would fetch on the host's network — beside the
    build's RUN steps, which ``--network none`` confines: ``ADD`` of a URL or a git
    repository (no open network: a host-only service or the cloud's metadata address
    would end up in the image), and any image not already here (the engine pulls it)."""
    from .dockerfile import fetches, images

    if not network and (remote := fetches(text)):
        raise Refused(
            f"build.dockerfile {build.dockerfile} fetches {remote[0]} on the host's network "
            "(ADD of a URL or git repository), and the profile has none",
            hint="COPY the file from the workspace instead",
        )
    for image in images(text, dict(build.args)):
        if "$" in image:
            raise Refused(
                f"build.dockerfile {build.dockerfile}: cannot tell which image {image} names",
                hint="give the ARG a default, or the build arg in devcontainer.json",
            )
        if not is_local(engine, image, environ):
            raise ConfigError(
                f"build.dockerfile {build.dockerfile} starts from {image}, which {engine} "
                "does not have: codex-box pulls nothing",
                hint=f"{engine} pull {image} (or load it) first, if you trust it",
            )
        if network:
            continue
        # A base image's ONBUILD triggers run in this build: an ADD of a URL among them
        # is fetched on the host's network as well.
        try:
            triggers = onbuild(engine, image, environ)
        except OSError as exc:
            raise SandboxSetupError(
                f"cannot read {image}'s ONBUILD triggers: {exc}",
                hint="nothing was built; is the engine answering?",
            ) from exc
        if remote := fetches("\n".join(f"ONBUILD {t}" for t in triggers)):
            raise Refused(
                f"{image}, a base of {build.dockerfile}, has an ONBUILD trigger that fetches "
                f"{remote[0]} on the host's network, and the profile has none",
                hint="build from an image without such triggers",
            )


def read_dockerfile(path: str) -> str:
    """The Dockerfile's text, whole or not at all (an ADD past a cut would be missed);
    ConfigError when it cannot be read, Refused when it is over ``MAX_DOCKERFILE``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_DOCKERFILE + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read build.dockerfile {path}: {exc.strerror or exc}",
            hint="dockerfile is relative to the devcontainer.json's folder",
        ) from exc
    if len(data) > MAX_DOCKERFILE:
        raise Refused(
            f"build.dockerfile {path} is over {MAX_DOCKERFILE >> 10} KiB",
            hint="a devcontainer's Dockerfile is short; split what it does into scripts",
        )
    return data.decode("utf-8", "replace")


def build_image(
    engine: str,
    build: Build,
    *,
    workspace: str,
    profile: Profile,
    home: str,
    codex_home: str,
    environ: Mapping[str, str],
) -> str:
    """Build it; its tag. ``SandboxSetupError`` (125) with the build's last lines when
    the engine fails, ``ConfigError`` for a Dockerfile that is not there."""
    if engine not in ("docker", "podman"):
        raise ConfigError(f"a devcontainer build needs docker or podman, not {engine}")
    check_inputs(build, workspace=workspace, profile=profile, home=home, codex_home=codex_home)
    if not os.path.isfile(build.dockerfile):
        raise ConfigError(
            f"build.dockerfile {build.dockerfile} does not exist",
            hint="dockerfile is relative to the devcontainer.json's folder",
        )
    network = profile.allows_network() and not profile.uses_egress_proxy()
    text = read_dockerfile(build.dockerfile)
    check_fetches(engine, build, text, network=network, environ=environ)
    tag = image_tag(workspace)
    argv = build_argv(engine, build, tag, network=network)
    try:
        done = subprocess.run(  # the engine's own CLI, no shell
            argv,
            capture_output=True,
            timeout=BUILD_TIMEOUT_S,
            # The legacy builder: BuildKit would fetch a `# syntax=` frontend image.
            env={**environ, "DOCKER_BUILDKIT": "0"} if engine == "docker" else dict(environ),
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise SandboxSetupError(
            f"cannot build the devcontainer image: no {engine} command",
            hint=f"install the {engine} CLI, or set image in devcontainer.json",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxSetupError(
            f"the devcontainer image build took over {BUILD_TIMEOUT_S:.0f} s"
        ) from exc
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        tail = " | ".join(line.strip() for line in lines[-3:])[:400]
        raise SandboxSetupError(
            f"{engine} build of {build.dockerfile} failed (exit {done.returncode}): {tail}",
            hint="the build pulls nothing (base images must be local)"
            + ("" if network else f" and has no network under profile {profile.name}"),
        )
    return tag
