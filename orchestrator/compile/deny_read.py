"""``filesystem.deny_read`` entries → the absolute host paths a run masks.

Owns: expanding each entry at launch — ``~/…`` from the invoking user's home, ``/abs``
as written, a relative entry inside the workspace and each write root — with glob
components (``*``, ``?``, ``[…]``, and ``**`` for any depth) at bounded cost; keeping
only paths that exist, symlinks resolved (the mask goes where a read would land); and
refusing an entry that would hide the workspace or a write root, or that nothing
sandboxes. Also which of CODEX_HOME's own directories hold keys (``codex_home_secrets``).
Does not own: checking the entries' syntax (``profiles.parser``) or masking (the
backends: native mounts, container binds).

Cost: an entry without glob characters costs one ``lstat`` (plus ``realpath`` when it
exists), so the default list adds a few dozen syscalls to a launch. A glob lists only
the directories its components reach; ``**`` walks below its directory without
following symlinks. Each entry may look at ``MAX_VISITED`` directory entries and match
``MAX_MATCHES`` paths: past either the launch is refused (one line naming the entry)
rather than run with some matches left readable or walk an enormous tree.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator

from orchestrator.core.errors import ConfigError
from orchestrator.core.paths import inside
from orchestrator.core.profile import Profile

MAX_VISITED = 50_000  # directory entries one entry's glob may look at
MAX_MATCHES = 256  # paths one entry may mask
# CODEX_HOME's directories a sandbox must never read, masked whatever the profile says:
# grants/.key signs elevation grants and approvals (a sandbox that read it could approve
# its own .codex-profile), cache/policy/.key authenticates the policy cache, and serve/
# holds the API's bearer token (a sandbox on the host's loopback with the token could ask
# the server for a wider profile).
# ci/ holds the CI drivers' job state (which session is whose job).
CODEX_HOME_SECRETS = ("grants", os.path.join("cache", "policy"), "serve", "ci")
# Rebuilt fresh inside every sandbox, and no credential store: a symlink into them
# (~/.netrc → /dev/null) must not mask the sandbox's own /dev/null.
_NEVER_MASKED = ("/proc", "/sys", "/dev")
_MAGIC = frozenset("*?[")


def codex_home_secrets(codex_home: str) -> tuple[str, ...]:
    home = os.path.abspath(codex_home)
    return tuple(os.path.join(home, name) for name in CODEX_HOME_SECRETS)


def expand_deny_read(profile: Profile, *, home: str, roots: Iterable[str]) -> tuple[str, ...]:
    """The paths a run of ``profile`` masks: none without a sandbox (``trusted``), and a
    list nothing would enforce is refused rather than quietly ignored."""
    if not profile.sandboxed:
        if profile.deny_read:
            raise ConfigError(
                f"profile {profile.name} lists filesystem.deny_read but runs with no "
                f"sandbox ({profile.origin}): nothing could enforce it",
                hint="extend a sandboxed profile (offline, workspace, ...) instead of trusted",
            )
        return ()
    return expand(profile.deny_read, home=home, roots=roots, profile=profile.name)


def expand(
    entries: Iterable[str],
    *,
    home: str,
    roots: Iterable[str],
    profile: str,
) -> tuple[str, ...]:
    """The existing host paths ``entries`` name, resolved and without duplicates.
    ``roots``: the workspace and write roots (where relative entries apply, and what no
    entry may hide)."""
    roots = tuple(roots)
    found: dict[str, None] = {}
    for entry in entries:
        matches = 0
        for base, rest in _bases(entry, home, roots):
            for path in _glob(base, rest, entry):
                real = os.path.realpath(path)
                if any(inside(real, skip) for skip in _NEVER_MASKED) or not os.path.exists(real):
                    continue
                _refuse_hiding_roots(real, entry, roots, profile)
                matches += 1
                if matches > MAX_MATCHES:
                    raise _too_wide(entry, f"matches more than {MAX_MATCHES} paths")
                found[real] = None
    return tuple(found)


def _bases(entry: str, home: str, roots: tuple[str, ...]) -> Iterator[tuple[str, list[str]]]:
    if entry.startswith("~/"):
        yield home, entry[2:].split("/")
    elif entry.startswith("/"):
        yield "/", entry[1:].split("/")
    else:  # relative: inside the workspace and each write root
        for root in dict.fromkeys(roots):
            yield root, entry.split("/")


def _glob(base: str, parts: list[str], entry: str) -> list[str]:
    if not any(_MAGIC & set(part) for part in parts):
        path = os.path.join(base, *parts)
        return [path] if os.path.lexists(path) else []
    budget = [MAX_VISITED]
    paths = [base]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        reached: list[str] = []
        for path in paths:
            if part == "**":
                reached.extend(_below(path, budget, entry))
            elif not _MAGIC & set(part):
                candidate = os.path.join(path, part)
                if os.path.lexists(candidate):
                    reached.append(candidate)
            else:
                reached.extend(
                    os.path.join(path, name)
                    for name, is_dir in _listing(path, budget, entry)
                    if (last or is_dir) and fnmatch.fnmatchcase(name, part)
                )
        paths = list(dict.fromkeys(reached))
        if len(paths) > MAX_VISITED:  # unreachable with the budget; a second fence
            raise _too_wide(entry, f"reaches more than {MAX_VISITED} paths")
    return paths


def _below(top: str, budget: list[int], entry: str) -> Iterator[str]:
    """``top`` and every directory beneath it, symlinks not followed."""
    stack = [top]
    while stack:
        here = stack.pop()
        yield here
        stack.extend(
            os.path.join(here, name) for name, is_dir in _listing(here, budget, entry) if is_dir
        )


def _listing(path: str, budget: list[int], entry: str) -> Iterator[tuple[str, bool]]:
    try:
        with os.scandir(path) as listing:
            for item in listing:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _too_wide(entry, f"looks at more than {MAX_VISITED} directory entries")
                try:
                    is_dir = item.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                yield item.name, is_dir
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return


def _refuse_hiding_roots(path: str, entry: str, roots: tuple[str, ...], profile: str) -> None:
    for root in roots:
        if inside(root, path):
            raise ConfigError(
                f"filesystem.deny_read entry {entry!r} of profile {profile} would hide "
                f"{root}, which this run uses ({path})",
                hint="run in another directory, or remove the entry in a user profile "
                f'(filesystem.deny_read: ["!{entry}"])',
            )


def _too_wide(entry: str, what: str) -> ConfigError:
    return ConfigError(
        f"filesystem.deny_read entry {entry!r} {what}",
        hint="narrow it (e.g. config/.env instead of **/.env) so a launch stays quick; "
        "nothing was run",
    )
