"""A repository's ``.codex-profile`` in a CI job: it may narrow the job's profile,
never widen it, never name ``trusted``.

Owns: finding the file at the root of the job's checkout (``$CI_PROJECT_DIR``, which
must lie inside the job's builds directory) once the sources are there, and judging it
against the profile the runner gave the job. Does not own: reading the file
(``resolve.profile_file``: no link, no foreign owner), what "wider" means
(``profiles.widening``), or restarting the session (``driver``).

Only a file that names a profile applies: the session is started by profile name, and a
definition (``extends:`` plus keys) has none; it is reported in the job log and
ignored, like a file that asks for more than the runner gave.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.core.profile import Profile
from orchestrator.profiles.store import ProfileStore
from orchestrator.profiles.widening import wider
from orchestrator.resolve.precedence import profile_of
from orchestrator.resolve.profile_file import PROFILE_FILE, read_profile_file


def project_dir(environ: Mapping[str, str], builds: str) -> Path | None:
    """The job's checkout, when it is where it must be (a job's variables could point
    CI_PROJECT_DIR anywhere)."""
    raw = environ.get("CUSTOM_ENV_CI_PROJECT_DIR", "")
    if not raw or not os.path.isabs(raw):
        return None
    real, base = os.path.realpath(raw), os.path.realpath(builds)
    return Path(real) if real.startswith(base + os.sep) else None


def narrowed(
    store: ProfileStore, current: str, project: Path | None, log: Callable[[str], None]
) -> Profile | None:
    """The profile the checkout's ``.codex-profile`` narrows ``current`` to; None when
    there is no such file, or it asks for nothing narrower. Raises ``Refused`` for a
    file naming an opt-in profile, ``ConfigError`` for a malformed one."""
    if project is None:
        return None
    found = read_profile_file(project / PROFILE_FILE)
    if found is None:
        return None
    if found.name is None:
        log(f"{found.path} defines a profile; only a named one applies in CI: ignored")
        return None
    profile = profile_of(store, found)
    base = store.get(current)
    if profile.name == base.name:
        return None
    if widened := wider(base, profile):
        log(
            f"{found.path} asks for {profile.name}, wider than the job's {base.name} "
            f"({'; '.join(widened)}): ignored"
        )
        return None
    return profile
