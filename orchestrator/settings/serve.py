"""``[serve]`` and ``[serve.pools]`` of config.toml: what ``codex-box serve`` keeps ready.

    [serve]
    max_concurrent = 8          # runs and execs at once; more wait in the queue
    max_queue = 64              # waiting beyond this: 429 with Retry-After
    workspaces = "/var/tmp/codex-box-serve-0"   # where pooled and scratch workspaces live

    [serve.pools]
    "offline/native" = 8        # "<profile>/<backend>" = how many sandboxes to keep ready
    "workspace/docker" = 4

Owns: parsing and bounding those values. Does not own: whether a pool's profile exists
(the profile store, asked when ``serve`` starts) or the pools themselves (``runner.pools``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError, did_you_mean, printable

SERVE_KEYS = ("max_concurrent", "max_queue", "workspaces", "pools")
POOL_BACKENDS = ("native", "docker", "podman")
MAX_POOL = 64  # per pool: each is a live sandbox (and for native, a keeper process)
MAX_CONCURRENT = 256


def default_workspaces() -> str:
    """Outside CODEX_HOME (a workspace may not be inside it) and per user."""
    # Checked before use (owned.workspace_root): ours, a directory, writable by no one else.
    return f"/var/tmp/codex-box-serve-{os.getuid()}"  # noqa: S108


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeSettings:
    max_concurrent: int = 8
    max_queue: int = 64
    workspaces: str = ""  # "": default_workspaces()
    pools: tuple[tuple[str, str, int], ...] = ()  # (profile, backend, size)

    @property
    def workspace_root(self) -> str:
        return self.workspaces or default_workspaces()


def parse(path: Path, table: Any) -> ServeSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'serve' must be a table", hint="write [serve] on its own line")
    for key in table:
        if key not in SERVE_KEYS:
            raise ConfigError(
                printable(f"{path}: unknown key {f'serve.{key}'!r}"),
                hint=f"{did_you_mean(str(key), SERVE_KEYS)}allowed: {', '.join(SERVE_KEYS)}",
            )
    defaults = ServeSettings()
    concurrent = _whole(path, "max_concurrent", table.get("max_concurrent"), 1, MAX_CONCURRENT)
    queue = _whole(path, "max_queue", table.get("max_queue"), 0, 100_000)
    workspaces = table.get("workspaces", "")
    if not isinstance(workspaces, str) or (workspaces and not os.path.isabs(workspaces)):
        raise ConfigError(
            printable(f"{path}: 'serve.workspaces' must be an absolute path, got {workspaces!r}"),
            hint='e.g. workspaces = "/var/tmp/codex-box-serve"',
        )
    return ServeSettings(
        max_concurrent=defaults.max_concurrent if concurrent is None else concurrent,
        max_queue=defaults.max_queue if queue is None else queue,
        workspaces=workspaces,
        pools=_pools(path, table.get("pools", {})),
    )


def _pools(path: Path, pools: Any) -> tuple[tuple[str, str, int], ...]:
    if not isinstance(pools, dict):
        raise ConfigError(
            f"{path}: 'serve.pools' must be a table",
            hint='write [serve.pools] then e.g. "offline/native" = 8',
        )
    found = []
    for key, size in pools.items():
        profile, _, backend = str(key).partition("/")
        if not profile or backend not in POOL_BACKENDS:
            raise ConfigError(
                printable(f'{path}: serve.pools key {key!r} is not "<profile>/<backend>"'),
                hint=f'e.g. "offline/native" = 8; backends: {", ".join(POOL_BACKENDS)}',
            )
        count = _whole(path, f"pools.{key}", size, 0, MAX_POOL)
        if count:
            found.append((profile, backend, count))
    return tuple(sorted(found))


def _whole(path: Path, key: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            printable(
                f"{path}: 'serve.{key}' must be a whole number from {low} to {high}, got {value!r}"
            ),
            hint='e.g. max_concurrent = 8, "offline/native" = 4',
        )
    return value
