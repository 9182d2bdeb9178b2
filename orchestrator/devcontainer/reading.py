"""A devcontainer configuration as the Dev Containers CLI reads it, or as we do.

Owns: ``load`` — the file as written (``config.read_config``: what ``vetting`` checks
for host variables, since any tool substitutes them) and the configuration to use:
through ``devcontainer read-configuration --include-merged-configuration`` when the
Dev Containers CLI is installed (``$CODEX_BOX_DEVCONTAINER_CLI``, else ``devcontainer``
on PATH) — which merges the image's own ``devcontainer.metadata`` (a feature's
``privileged``, its lifecycle commands), so they are vetted and judged too — else the
file itself. The CLI places the workspace at ``/workspaces/NAME``; codex-box binds it
at its host path, so that path is rewritten to the host's in every value.
Does not own: what may be asked (``vetting``), the launch (``plan``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

from .config import read_config
from .engine import is_local

CLI_ENV = "CODEX_BOX_DEVCONTAINER_CLI"
CLI_TIMEOUT_S = 120.0  # the CLI may inspect (or build the metadata of) the image
# The merged configuration's lifecycle lists, by the file's key.
LIFECYCLE = ("onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand")
_MERGED_KEYS = ("remoteUser", "containerUser", "containerEnv", "remoteEnv", "mounts",
                "capAdd", "privileged", "securityOpt", "forwardPorts")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Loaded:
    file: Path
    workspace: str
    raw: dict[str, Any]  # the file as written
    config: dict[str, Any]  # what to use: merged by the CLI where it ran
    via: str  # "devcontainer CLI" | "json5"
    note: str = ""  # why the CLI was not used, when it was there


def cli_path(environ: dict[str, str]) -> str | None:
    given = environ.get(CLI_ENV)
    if given:
        return given
    return shutil.which("devcontainer", path=environ.get("PATH"))


# What the Dev Containers CLI gets of the caller's environment: it fills ${localEnv:X}
# (in the file, and in an image's metadata label, which no one vetted as written) from
# its own, so a secret it never sees cannot be carried in. Enough to find the engine.
CLI_ENVIRON = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
               "DOCKER_HOST", "CONTAINER_HOST", "XDG_RUNTIME_DIR")  # fmt: skip


def load(
    file: Path,
    workspace: str,
    *,
    environ: dict[str, str],
    engine: str | None = None,
    raw: dict[str, Any] | None = None,
) -> Loaded:
    """``raw``: the file as already read (and vetted as written: the CLI is only asked
    about a file that passed)."""
    raw = read_config(file) if raw is None else raw
    cli = cli_path(environ)
    if cli is None:
        return Loaded(file, workspace, raw, raw, "json5")
    # The merged view inspects the image: only one already here (it would be pulled).
    image = raw.get("image")
    merge = isinstance(image, str) and engine is not None and is_local(engine, image, environ)
    scrubbed = {k: v for k, v in environ.items() if k in CLI_ENVIRON}
    merged, note = _through_cli(cli, file, workspace, scrubbed, engine, merge=merge)
    if merged is None:
        return Loaded(file, workspace, raw, raw, "json5", note)
    return Loaded(file, workspace, raw, merged, "devcontainer CLI")


def _through_cli(
    cli: str,
    file: Path,
    workspace: str,
    environ: dict[str, str],
    engine: str | None,
    *,
    merge: bool,
) -> tuple[dict[str, Any] | None, str]:
    argv = [cli, "read-configuration", "--workspace-folder", workspace, "--config", str(file),
            "--log-level", "info"]  # fmt: skip
    if engine == "podman":
        argv += ["--docker-path", "podman"]
    answer: dict[str, Any] | None = None
    why = ""
    for extra in (["--include-merged-configuration"], []) if merge else ([],):
        try:
            done = subprocess.run(  # the user's own CLI, no shell
                argv + extra,
                capture_output=True,
                timeout=CLI_TIMEOUT_S,
                env=environ,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"the Dev Containers CLI at {cli} did not answer: {exc}"
        if done.returncode == 0:
            try:
                answer = json.loads(done.stdout)
            except ValueError:
                answer = None
            if isinstance(answer, dict) and isinstance(answer.get("configuration"), dict):
                break
        tail = done.stderr.decode(errors="replace").strip().splitlines()
        why = tail[-1][:200] if tail else f"exit {done.returncode}"
        answer = None
    if answer is None:
        raise ConfigError(
            f"{file}: the Dev Containers CLI could not read it ({why})",
            hint=f"fix the file, or unset {CLI_ENV} / remove devcontainer from PATH to read "
            "it without the CLI",
        )
    return _normalised(answer, workspace), ""


def _normalised(answer: dict[str, Any], workspace: str) -> dict[str, Any]:
    config = dict(answer["configuration"])
    config.pop("configFilePath", None)
    merged = answer.get("mergedConfiguration")
    if isinstance(merged, dict):
        for key in _MERGED_KEYS:
            if key in merged:
                config[key] = merged[key]
        for key in LIFECYCLE:
            listed = merged.get(key + "s")
            if isinstance(listed, list):
                # One entry per source (the image's metadata, the file), each a
                # string, an array or an object: as an object of them, in order.
                config[key] = {f"#{i}": c for i, c in enumerate(listed) if c}
    place = (answer.get("workspace") or {}).get("workspaceFolder")
    place = place.rstrip("/") if isinstance(place, str) and place.startswith("/") else ""
    if place not in ("", workspace):  # "/" itself: nothing to rewrite
        config = _rehomed(config, place, workspace)
    return config


def _rehomed(value: Any, place: str, workspace: str) -> Any:
    """``value`` with the CLI's container workspace path replaced by the host's."""
    if isinstance(value, dict):
        return {k: _rehomed(v, place, workspace) for k, v in value.items()}
    if isinstance(value, list):
        return [_rehomed(v, place, workspace) for v in value]
    if isinstance(value, str) and place in value:
        out, i = [], 0
        while (j := value.find(place, i)) >= 0:
            end = j + len(place)
            after = end == len(value) or not (value[end].isalnum() or value[end] in "._-")
            before = j == 0 or not (value[j - 1].isalnum() or value[j - 1] in "._-/")
            out.append(value[i:j] + (workspace if after and before else place))
            i = end
        return "".join(out) + value[i:]
    return value
