"""Whether an engine already has an image (a devcontainer build or read pulls nothing).

Owns: ``is_local`` — one bounded request to the engine's API socket (Docker's
``/images/NAME/json``, libpod's ``/images/NAME/exists``); False when it cannot answer.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping

from orchestrator.backends.containers.engine_api import Endpoint
from orchestrator.backends.podman.host import LIBPOD
from orchestrator.compile.spec import podman_host
from orchestrator.core.spec import DEFAULT_DOCKER_HOST


def _endpoint(engine: str, environ: Mapping[str, str]) -> Endpoint:
    if engine == "podman":
        return Endpoint(podman_host(environ, uid=os.getuid()))
    return Endpoint(environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)


def onbuild(engine: str, image: str, environ: Mapping[str, str]) -> list[str]:
    """The ``ONBUILD`` triggers of a local image (run by a build that starts from it);
    ``OSError`` when the engine cannot tell (the Docker-compatible inspect, on both)."""
    quoted = urllib.parse.quote(image, safe="")
    answer = _endpoint(engine, environ).request("GET", f"/images/{quoted}/json")
    if answer.status != 200:
        raise OSError(f"{engine} cannot inspect {image} (HTTP {answer.status})")
    data = json.loads(answer.body or b"{}")
    triggers = (data.get("Config") or {}).get("OnBuild") or []
    return [str(t) for t in triggers] if isinstance(triggers, list) else []


def is_local(engine: str, image: str, environ: Mapping[str, str]) -> bool:
    try:
        if engine == "podman":
            endpoint = Endpoint(podman_host(environ, uid=os.getuid()))
            quoted = urllib.parse.quote(image, safe="")
            return endpoint.request("GET", f"{LIBPOD}/images/{quoted}/exists").status == 204
        return Endpoint(environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST).has_image(image)
    except OSError:
        return False
