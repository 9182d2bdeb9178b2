"""The API's request and response bodies (pydantic): the OpenAPI document is generated from
these, and every request is validated against them before anything runs.

Owns: field names, types and bounds. Does not own: what a field means beyond its shape
(``compile`` parses limits and durations, as for the CLI).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A bounded string: an argument, a value. The bounds keep one request from making the
# server hold megabytes per field (the wire to the runner allows 4 MiB in all).
Arg = Annotated[str, Field(max_length=65536)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Amount = Annotated[str, Field(min_length=1, max_length=32, examples=["30", "5m", "512m", "1.5"])]
ENV_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)
MAX_STDIN = 16 * 1024 * 1024
# In all (the runner's wire carries argv and env with the server's environment, 4 MiB).
MAX_ARGV_BYTES = 1024 * 1024
MAX_ENV_BYTES = 256 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Launch(Strict):
    """What every launch (a run, an exec) may set."""

    argv: list[Arg] = Field(
        min_length=1, max_length=4096, description="The command and its arguments."
    )
    env: list[Arg] = Field(
        default=[],
        max_length=1024,
        description="NAME=VALUE each. (A bare NAME, which the CLI passes from the caller's "
        "environment, is refused: the server's environment is not the client's.)",
    )
    timeout: Amount | None = Field(default=None, description="Kill after this long (exit 124).")
    approve: bool = Field(default=False, description="Run a command the policy cannot verify.")
    stdin: str | None = Field(default=None, max_length=MAX_STDIN, description="Fed to the command.")

    @field_validator("env")
    @classmethod
    def _assignments(cls, entries: list[str]) -> list[str]:
        if sum(len(e.encode()) for e in entries) > MAX_ENV_BYTES:
            raise ValueError(f"env is over {MAX_ENV_BYTES} bytes in all")
        for entry in entries:
            if not ENV_ENTRY.fullmatch(entry) or "\0" in entry:
                raise ValueError(f"{entry[:40]!r} is not NAME=VALUE")
        return entries

    @field_validator("argv")
    @classmethod
    def _no_nul(cls, argv: list[str]) -> list[str]:
        if any("\0" in arg for arg in argv) or not argv[0]:
            raise ValueError("arguments may not contain NUL, and the command may not be empty")
        if sum(len(a.encode()) for a in argv) > MAX_ARGV_BYTES:
            raise ValueError(f"argv is over {MAX_ARGV_BYTES} bytes in all")
        return argv


class RunBody(Launch):
    profile: Name | None = None
    backend: Literal["auto", "native", "docker", "podman"] | None = None
    image: Name | None = None
    workspace: Arg | None = Field(
        default=None,
        description="A host directory (a cold start). None: a fresh, empty workspace — from "
        "the warm pool of this profile/backend when there is one.",
    )
    memory: Amount | None = None
    pids: Amount | None = None
    cpus: Amount | None = None
    policy_mode: Literal["enforce", "audit-only", "off"] | None = None
    trust: bool = Field(default=False, description="Opt in to a profile that needs it.")


class ExecBody(Launch):
    cwd: Arg | None = None


class SessionBody(Strict):
    profile: Name | None = None
    backend: Literal["auto", "native", "docker", "podman"] | None = None
    image: Name | None = None
    workspace: Arg | None = Field(
        default=None, description="A host directory; None: a fresh one (from a warm pool)."
    )
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")] | None = None
    idle_timeout: Amount = "30m"
    max_lifetime: Amount = "8h"
    memory: Amount | None = None
    pids: Amount | None = None
    cpus: Amount | None = None
    policy_mode: Literal["enforce", "audit-only", "off"] | None = None
    trust: bool = False


class CheckBody(Strict):
    argv: list[Arg] = Field(min_length=1, max_length=4096)
    profile: Name | None = None
    workspace: Arg | None = None

    @field_validator("argv")
    @classmethod
    def _bounded(cls, argv: list[str]) -> list[str]:
        if sum(len(a.encode()) for a in argv) > MAX_ARGV_BYTES:
            raise ValueError(f"argv is over {MAX_ARGV_BYTES} bytes in all")
        return argv


class Result(BaseModel):
    """A finished run or exec: what ``codex-box run --json`` prints (the result contract,
    ``runner/result.schema.json``), and its output."""

    version: int = 1
    run_id: str
    session_id: str | None = None
    profile: str | None = None
    backend: str
    exit_code: int
    signal: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    duration_ms: int
    detail: str = ""
    session: str | None = None
    decision: str | None = None
    audit: list[int] = []
    warnings: list[str] = []
    cancelled: bool = False
    pooled: bool = False
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False


class SessionInfo(BaseModel):
    id: str
    name: str | None = None
    profile: str
    backend: str
    workspace: str
    created: str
    expires: str
    idle_timeout_s: float
    max_lifetime_s: float
    image: str | None = None
    live: bool = True
    pooled: bool = False


class Problem(BaseModel):
    """RFC 9457 problem details; ``exit_code`` is what the CLI would exit with."""

    type: str
    title: str
    status: int
    detail: str
    exit_code: int
    hint: str | None = None


class Health(BaseModel):
    status: Literal["ok", "stopping"]
    version: str
    running: int
    queued: int
    pools: dict[str, dict[str, Any]]


class AuditPage(BaseModel):
    records: list[dict[str, Any]]
    truncated: bool
