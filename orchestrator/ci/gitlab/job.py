"""What the driver knows about one job, and which of it may be trusted.

Owns: reading the job from gitlab-runner's ``JOB_RESPONSE_FILE`` (the job as GitLab
sent it) and the ``CUSTOM_ENV_*`` variables; the job's state between the driver's
separate calls (``$CODEX_HOME/ci/gitlab/<job id>.json``, which no sandbox can read).
Does not own: what the stages do with it (``driver``).

Why the job response first: every ``CUSTOM_ENV_*`` variable can be overridden by the
job's own ``variables:`` (GitLab's precedence), so a job could name another job's id
(and reach its session) or another server (and get network to it). The response file
is written by the runner from what GitLab sent, and only the runner writes it. No
``CUSTOM_ENV_`` value decides anything; without the file the driver refuses.
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

_NUMBER = re.compile(r"[0-9]{1,20}")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")
MAX_RESPONSE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    token: str  # CI_JOB_TOKEN: clones the sources, moves caches and artifacts
    server: str  # host[:port] of the GitLab server (the runner stages' one destination)
    project_id: str = "0"  # GitLab's id of the project (its jobs' directories)
    masked: tuple[str, ...] = ()  # values of masked variables: never in a log or record
    timeout_s: int | None = None  # the job's timeout as GitLab set it

    def secrets(self) -> tuple[str, ...]:
        """Every value that must not reach the job's own stages or the audit log."""
        return tuple(v for v in dict.fromkeys((self.token, *self.masked)) if len(v) >= 4)


def read_job(environ: Mapping[str, str]) -> Job:
    """The job as GitLab sent it. Without a job response (runners before 12.1) the
    driver refuses: the ``CUSTOM_ENV_*`` stand-ins are the job's to set."""
    response = _response(environ)
    if response is None:
        raise ProtocolError(
            "$JOB_RESPONSE_FILE is not set: the job's id, project and server cannot be "
            "known from anything the job cannot change",
            hint="use gitlab-runner 12.1 or later (it writes the job response for drivers)",
        )
    job_id = _text(response.get("id"))
    token = _text(response.get("token"))
    git_info = response.get("git_info") or {}
    server = _server_of(_text(git_info.get("repo_url")) if isinstance(git_info, dict) else "")
    variables = response.get("variables") or []
    masked = tuple(
        _text(v.get("value"))
        for v in (variables if isinstance(variables, list) else [])
        if isinstance(v, dict) and v.get("masked") and _text(v.get("value"))
    )
    info = response.get("job_info") or {}
    project_id = _text(info.get("project_id")) if isinstance(info, dict) else ""
    runner_info = response.get("runner_info") or {}
    timeout = runner_info.get("timeout") if isinstance(runner_info, dict) else None
    for what, value in (("job id", job_id), ("project id", project_id)):
        if not _NUMBER.fullmatch(value):
            raise ProtocolError(
                f"the job response's {what} {value!r} is not a number",
                hint="is $JOB_RESPONSE_FILE gitlab-runner's job response?",
            )
    return Job(
        id=job_id,
        token=token,
        server=server,
        project_id=project_id,
        masked=masked,
        timeout_s=timeout
        if isinstance(timeout, int) and not isinstance(timeout, bool) and 0 < timeout < 30 * 86400
        else None,
    )


def _text(value: object) -> str:
    """A string field of the response ("" for null; numbers as GitLab writes ids)."""
    if isinstance(value, bool) or value is None:
        return ""
    return str(value) if isinstance(value, str | int) else ""


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
    if not host or not _HOST.fullmatch(host):
        raise ProtocolError(f"the GitLab server in {_without_password(url)!r} is not a host name")
    try:
        port = parts.port
    except ValueError as exc:
        raise ProtocolError(f"the GitLab server's port in {_without_password(url)!r}") from exc
    return host.lower() if port is None else f"{host.lower()}:{port}"


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":[MASKED]@", 1)


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
    lifetime_s: float = 8 * 3600.0 + 600


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
