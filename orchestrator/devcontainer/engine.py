"""Whether an engine already has an image (a devcontainer build or read pulls nothing).

Owns: ``is_local`` — one bounded request to the engine's API socket (Docker's
``/images/NAME/json``, libpod's ``/images/NAME/exists``); False when it cannot answer.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping

from orchestrator.backends.containers.engine_api import Endpoint
from orchestrator.backends.podman.host import LIBPOD
from orchestrator.compile.spec import podman_host
from orchestrator.core.spec import DEFAULT_DOCKER_HOST


def is_local(engine: str, image: str, environ: Mapping[str, str]) -> bool:
    try:
        if engine == "podman":
            endpoint = Endpoint(podman_host(environ, uid=os.getuid()))
            quoted = urllib.parse.quote(image, safe="")
            return endpoint.request("GET", f"{LIBPOD}/images/{quoted}/exists").status == 204
        return Endpoint(environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST).has_image(image)
    except OSError:
        return False
