"""What the caller asked of one launch beyond the profile, and how it answers questions.

Owns: ``LaunchOptions`` — the launch knobs (passed variables, limits, image, terminal)
as the front door received them, carried unchanged to ``compile_spec``, which alone
parses and checks them — and ``Confirm``, how a front door asks its user yes or no.
Does not own: parsing the values (``compile.spec``) or the profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# How a front door asks the person at it a yes/no question; None: nobody can be asked
# (no terminal). Passed down so no lower layer ever reads a terminal itself.
Confirm = Callable[[str], bool | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchOptions:
    env_names: tuple[str, ...] = ()  # NAME (pass a withheld host variable) or NAME=VALUE
    timeout: str | None = None  # "30", "5m"
    memory: str | None = None  # "512m", "2g"
    pids: str | None = None  # "0" = none
    cpus: str | None = None  # "1.5"
    image: str | None = None  # container backends
    tty: bool = False
    # Host paths this launch masks besides the profile's deny_read: a front door's own
    # files that its commands must not read (a CI driver's job response and scripts).
    hide: tuple[str, ...] = ()
    # A devcontainer.json's settings for the container (``orchestrator.devcontainer``,
    # after the profile vetted them); container backends only. ``devcontainer``: the
    # file they came from (a run with one never falls back to the native sandbox).
    devcontainer: str | None = None
    container_env: tuple[str, ...] = ()  # NAME=VALUE, under every --env of the caller
    user: str | None = None  # the image's user to run as (remoteUser / containerUser)
    hostname: str | None = None
    labels: tuple[str, ...] = ()  # key=value, never one of codex-box's own keys
    tmpfs: tuple[str, ...] = ()  # container paths given a private, empty tmpfs
