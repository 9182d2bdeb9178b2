"""What the driver knows about one job, and which of it may be trusted.

Owns: reading the job from gitlab-runner's ``JOB_RESPONSE_FILE`` (the job as GitLab
sent it) and the ``CUSTOM_ENV_*`` variables; the job's state between the driver's
separate calls (``$CODEX_HOME/ci/gitlab/<job id>.json``, which no sandbox can read).
Does not own: what the stages do with it (``driver``).

Why the job response first: every ``CUSTOM_ENV_*`` variable can be overridden by the
job's own ``variables:`` (GitLab's precedence), so a job could name another job's id
(and reach its session) or another server (and get network to it). The response file
is written by the runner from what GitLab sent, and only the runner writes it. The
``CUSTOM_ENV_`` values are used only where a runner does not provide the file, and
are checked as strictly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .protocol import ProtocolError

_JOB_ID = re.compile(r"^[0-9]{1,20}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")
MAX_RESPONSE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    token: str  # CI_JOB_TOKEN: clones the sources, moves caches and artifacts
    server: str  # host[:port] of the GitLab server (the runner stages' one destination)
    masked: tuple[str, ...] = ()  # values of masked variables: never in a log or record

    def secrets(self) -> tuple[str, ...]:
        """Every value that must not reach the job's own stages or the audit log."""
        return tuple(v for v in dict.fromkeys((self.token, *self.masked)) if len(v) >= 4)


def read_job(environ: Mapping[str, str]) -> Job:
    response = _response(environ)
    if response is not None:
        job_id = str(response.get("id", ""))
        token = str(response.get("token", ""))
        git_info = response.get("git_info") or {}
        server = _server_of(str(git_info.get("repo_url", "")) if isinstance(git_info, dict) else "")
        variables = response.get("variables") or []
        masked = tuple(
            str(v.get("value", ""))
            for v in variables
            if isinstance(v, dict) and v.get("masked") and v.get("value")
        )
    else:
        job_id = environ.get("CUSTOM_ENV_CI_JOB_ID", "")
        token = environ.get("CUSTOM_ENV_CI_JOB_TOKEN", "")
        server = _server_of(environ.get("CUSTOM_ENV_CI_SERVER_URL", ""))
        masked = ()
    if not _JOB_ID.match(job_id):
        raise ProtocolError(
            f"the job id {job_id!r} is not a number",
            hint="gitlab-runner provides it in $JOB_RESPONSE_FILE (runner 12.1 and later)",
        )
    return Job(id=job_id, token=token, server=server, masked=masked)


def _response(environ: Mapping[str, str]) -> dict[str, Any] | None:
    path = environ.get("JOB_RESPONSE_FILE")
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RESPONSE_BYTES + 1)
        data = json.loads(raw) if len(raw) <= MAX_RESPONSE_BYTES else None
    except (OSError, ValueError) as exc:
        raise ProtocolError(
            f"cannot read the job response {path}: {exc}",
            hint="gitlab-runner writes it for each stage; is the driver run by the runner?",
        ) from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"the job response {path} is not a JSON object")
    return data


def _server_of(url: str) -> str:
    """host[:port] of the server the sources come from ("" when none is known: the
    runner stages then get no network at all)."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if not host or not _HOST.match(host):
        raise ProtocolError(f"the GitLab server in {_without_password(url)!r} is not a host name")
    try:
        port = parts.port
    except ValueError as exc:
        raise ProtocolError(f"the GitLab server's port in {_without_password(url)!r}") from exc
    return host.lower() if port is None else f"{host.lower()}:{port}"


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return url if parts.password is None else url.replace(parts.password, "[MASKED]")


@dataclass(slots=True)
class JobState:
    """What ``prepare`` decided, for the ``run`` and ``cleanup`` calls that follow."""

    job_id: str
    profile: str  # the job's stages
    runner_profile: str | None  # the runner's stages (None: they get no network)
    backend: str | None
    image: str | None
    root: str
    builds: str
    cache: str
    sessions: dict[str, str] = field(default_factory=dict)  # role → session id
    approve: bool = True
    policy_mode: str | None = None
    pass_job_token: bool = False
    idle_timeout: str = "1h"


def state_dir(home: Path) -> Path:
    return home / "ci" / "gitlab"


def state_path(home: Path, job_id: str) -> Path:
    return state_dir(home) / f"{job_id}.json"


def save(home: Path, state: JobState) -> None:
    directory = state_dir(home)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_path(home, state.job_id)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(state), f)
    os.replace(temp, path)


def load(home: Path, job_id: str) -> JobState | None:
    try:
        with open(state_path(home, job_id), encoding="utf-8") as f:
            data = json.load(f)
        return JobState(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ProtocolError(
            f"the state of job {job_id} ({state_path(home, job_id)}) is unreadable: {exc}",
            hint="`codex-box ci gitlab cleanup` for the job removes it",
        ) from exc


def load_quietly(home: Path, job_id: str) -> JobState | None:
    """``load`` for cleanup, which must go on whatever the state file holds."""
    try:
        return load(home, job_id)
    except ProtocolError:
        return None


def forget(home: Path, job_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_path(home, job_id))
