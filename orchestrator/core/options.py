"""What the caller asked of one launch beyond the profile.

Owns: ``LaunchOptions`` — the launch knobs (passed variables, limits, image, terminal)
as the front door received them, carried unchanged to ``compile_spec``, which alone
parses and checks them.
Does not own: parsing the values (``compile.limits``/``compile.spec``) or the profile.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchOptions:
    env_names: tuple[str, ...] = ()  # NAME (pass a withheld host variable) or NAME=VALUE
    timeout: str | None = None  # "30", "5m"
    memory: str | None = None  # "512m", "2g"
    pids: str | None = None  # "0" = none
    cpus: str | None = None  # "1.5"
    image: str | None = None  # container backends
    tty: bool = False
