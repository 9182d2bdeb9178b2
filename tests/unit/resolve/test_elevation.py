"""Elevation grants as a library: durations, where a grant applies, and every way a
grant file can fail to check out — each ignored (never an error), with a reason.

The clock is injected (``now=``): no test sleeps, and no environment variable can move
the clock (a sandboxed process could set one).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.compile.write_roots import refuse_unsafe
from orchestrator.core.errors import EXIT_USAGE, ConfigError, Refused, UsageError
from orchestrator.profiles.store import ProfileStore
from orchestrator.resolve import approval as profile_approval
from orchestrator.resolve import elevation
from orchestrator.resolve.grant_files import KEY_NAME, grants_dir
from orchestrator.resolve.precedence import Source, resolve_profile
from orchestrator.settings.config import load_config

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    path = tmp_path / "a"
    (path / "b").mkdir(parents=True)
    return path


def make(
    home: Path,
    workspace: Path | str,
    *,
    profile: str = "workspace-net",
    hours: float = 2,
    now: datetime = T0,
) -> elevation.Grant:
    return elevation.create(
        home,
        workspace=str(workspace),
        profile=profile,
        reason="pip install",
        duration=timedelta(hours=hours),
        granted_by="alice",
        now=now,
    )


def rewrite(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def only_ignored(lookup: elevation.Lookup) -> elevation.Ignored:
    assert lookup.grant is None
    (ignored,) = lookup.ignored
    return ignored


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (" 2H ", 7200)],
)
def test_durations_in_seconds_minutes_hours_and_days(text: str, seconds: int) -> None:
    assert elevation.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0m", "no time at all"),
        ("0s", "no time at all"),
        ("-5m", "is not a duration"),
        ("soon", "is not a duration"),
        ("2", "is not a duration"),
        ("2 h", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("", "is not a duration"),
        ("25h", "longer than 24h"),
        ("1d1s", "longer than 24h"),
        ("99999999999999999999d", "longer than 24h"),
    ],
)
def test_zero_negative_garbage_and_over_a_day_are_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        elevation.parse_duration(text)
    assert info.value.exit_code == EXIT_USAGE == 2
    assert problem in info.value.message and info.value.hint


# --- creating -----------------------------------------------------------------------------


def test_a_grant_file_is_named_by_the_workspace_hash_and_holds_every_field(
    codex_home: Path, proj: Path
) -> None:
    grant = make(codex_home, proj)
    assert grant.path == grants_dir(codex_home) / elevation.grant_name(str(proj))
    data = json.loads(grant.path.read_text())
    assert set(data) == {
        "version",
        "workspace",
        "profile",
        "reason",
        "created",
        "expires",
        "granted_by",
        "opt_in",
        "hmac",
    }
    assert data["workspace"] == str(proj) and data["profile"] == "workspace-net"
    assert (data["created"], data["expires"]) == ("2026-03-01T12:00:00Z", "2026-03-01T14:00:00Z")
    assert data["granted_by"] == "alice" and len(data["hmac"]) == 64


def test_the_grants_directory_is_0700_and_the_key_0600_and_32_random_bytes(
    codex_home: Path, proj: Path
) -> None:
    grant = make(codex_home, proj)
    directory = grants_dir(codex_home)
    assert directory.stat().st_mode & 0o777 == 0o700
    key = directory / KEY_NAME
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    assert grant.path.stat().st_mode & 0o777 == 0o600
    first = key.read_bytes()
    make(codex_home, proj / "b")
    assert key.read_bytes() == first  # made once, then reused


@pytest.mark.parametrize(
    ("reason", "problem"),
    [("  ", "--reason is empty"), ("a\nb", "one line"), ("x" * 501, "one line")],
)
def test_a_reason_must_be_one_short_line(
    codex_home: Path, proj: Path, reason: str, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        elevation.create(
            codex_home,
            workspace=str(proj),
            profile="workspace",
            reason=reason,
            duration=timedelta(hours=1),
            granted_by="alice",
            now=T0,
        )


def test_the_root_directory_cannot_be_elevated(codex_home: Path) -> None:
    with pytest.raises(UsageError, match="every directory"):
        make(codex_home, "/")


# --- where a grant applies ----------------------------------------------------------------


def test_a_grant_for_a_applies_to_a_and_below_but_not_to_ab_or_above(
    codex_home: Path, proj: Path, tmp_path: Path
) -> None:
    make(codex_home, proj)
    sibling = tmp_path / "ab"
    sibling.mkdir()
    now = T0 + timedelta(minutes=1)
    assert elevation.find(codex_home, proj, now=now).grant is not None
    found = elevation.find(codex_home, proj / "b", now=now).grant
    assert found is not None and found.workspace == str(proj)
    assert elevation.find(codex_home, sibling, now=now) == elevation.Lookup()
    assert elevation.find(codex_home, tmp_path, now=now) == elevation.Lookup()
    assert elevation.find(codex_home, Path("/"), now=now) == elevation.Lookup()


def test_the_nearest_grant_wins(codex_home: Path, proj: Path) -> None:
    make(codex_home, proj, profile="workspace-net")
    make(codex_home, proj / "b", profile="net-read-only")
    found = elevation.find(codex_home, proj / "b", now=T0).grant
    assert found is not None and found.profile == "net-read-only"


def test_a_grant_counts_from_created_up_to_but_not_including_expires(
    codex_home: Path, proj: Path
) -> None:
    make(codex_home, proj, hours=2)
    assert elevation.find(codex_home, proj, now=T0).grant is not None
    last = T0 + timedelta(hours=2) - timedelta(seconds=1)
    assert elevation.find(codex_home, proj, now=last).grant is not None
    expired = only_ignored(elevation.find(codex_home, proj, now=T0 + timedelta(hours=2)))
    assert "expired at 2026-03-01T14:00:00Z" in expired.why
    assert expired.profile == "workspace-net" and expired.workspace == str(proj)
    early = only_ignored(elevation.find(codex_home, proj, now=T0 - timedelta(seconds=1)))
    assert "created in the future" in early.why


def test_no_grants_directory_means_no_grant_and_nothing_ignored(
    codex_home: Path, proj: Path
) -> None:
    assert elevation.find(codex_home, proj, now=T0) == elevation.Lookup()
    assert not grants_dir(codex_home).exists()  # looking never creates it


# --- tampering: every field, copies, bad files --------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"profile": "trusted"},
        {"expires": "2026-03-01T20:00:00Z"},
        {"created": "2026-03-01T11:00:00Z"},
        {"reason": "something else"},
        {"granted_by": "mallory"},
        {"opt_in": True},
        {"hmac": "0" * 64},
    ],
)
def test_a_grant_edited_in_any_field_is_ignored(
    codex_home: Path, proj: Path, changes: dict[str, str]
) -> None:
    grant = make(codex_home, proj)
    rewrite(grant.path, **changes)
    ignored = only_ignored(elevation.find(codex_home, proj, now=T0))
    assert "HMAC does not match" in ignored.why
    assert ignored.path == grant.path


def test_a_grant_whose_workspace_is_edited_is_ignored(codex_home: Path, proj: Path) -> None:
    grant = make(codex_home, proj)
    rewrite(grant.path, workspace=str(proj / "b"))
    assert "HMAC does not match" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


def test_a_grant_copied_to_another_workspaces_name_is_ignored(
    codex_home: Path, proj: Path, tmp_path: Path
) -> None:
    """Its HMAC is genuine — for the workspace it was made for, which is not this one."""
    grant = make(codex_home, proj)
    other = tmp_path / "other"
    other.mkdir()
    copy = grants_dir(codex_home) / elevation.grant_name(str(other))
    copy.write_bytes(grant.path.read_bytes())
    os.chmod(copy, 0o600)
    ignored = only_ignored(elevation.find(codex_home, other, now=T0))
    assert f"it was made for {proj}, not {other}" in ignored.why
    assert ignored.path == copy


def test_a_grant_made_with_another_key_is_ignored(
    codex_home: Path, proj: Path, tmp_path: Path
) -> None:
    other_home = tmp_path / "other-home"
    foreign = make(other_home, proj)
    make(codex_home, proj / "b")  # gives codex_home its own key
    (grants_dir(codex_home) / foreign.path.name).write_bytes(foreign.path.read_bytes())
    os.chmod(grants_dir(codex_home) / foreign.path.name, 0o600)
    assert "HMAC does not match" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"profile": "trusted"}', "unexpected or missing fields"),
        ("x" * 9000, "larger than 8192 bytes"),
    ],
)
def test_a_grant_file_that_is_not_a_grant_is_ignored(
    codex_home: Path, proj: Path, body: str, problem: str
) -> None:
    grant = make(codex_home, proj)
    grant.path.write_text(body)
    assert problem in only_ignored(elevation.find(codex_home, proj, now=T0)).why


def test_a_symlinked_grant_file_is_ignored_not_followed(
    codex_home: Path, proj: Path, tmp_path: Path
) -> None:
    grant = make(codex_home, proj)
    real = tmp_path / "real.json"
    grant.path.rename(real)
    grant.path.symlink_to(real)
    assert "is a symlink" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


def test_a_grant_file_writable_by_others_is_ignored(codex_home: Path, proj: Path) -> None:
    grant = make(codex_home, proj)
    os.chmod(grant.path, 0o666)  # noqa: S103 -- the attack under test
    assert (
        "writable by group or others" in only_ignored(elevation.find(codex_home, proj, now=T0)).why
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_grant_file_owned_by_someone_else_is_ignored(codex_home: Path, proj: Path) -> None:
    grant = make(codex_home, proj)
    os.chown(grant.path, 4242, 4242)
    assert "owned by uid 4242" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


# --- the key and the directory ------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_a_key_readable_or_writable_by_others_makes_every_grant_ignored(
    codex_home: Path, proj: Path, mode: int
) -> None:
    make(codex_home, proj)
    os.chmod(grants_dir(codex_home) / KEY_NAME, mode)
    ignored = only_ignored(elevation.find(codex_home, proj, now=T0))
    assert "by group or others" in ignored.why and ".key" in ignored.why
    assert "remove it" in ignored.why  # the fix comes with it


def test_a_symlinked_key_is_refused(codex_home: Path, proj: Path, tmp_path: Path) -> None:
    make(codex_home, proj)
    key = grants_dir(codex_home) / KEY_NAME
    stolen = tmp_path / "key"
    stolen.write_bytes(key.read_bytes())
    os.chmod(stolen, 0o600)
    key.unlink()
    key.symlink_to(stolen)
    assert "is a symlink" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_key_owned_by_someone_else_is_refused(codex_home: Path, proj: Path) -> None:
    make(codex_home, proj)
    os.chown(grants_dir(codex_home) / KEY_NAME, 4242, 4242)
    assert "owned by uid 4242" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


def test_a_missing_key_means_no_grant_can_be_verified(codex_home: Path, proj: Path) -> None:
    make(codex_home, proj)
    (grants_dir(codex_home) / KEY_NAME).unlink()
    assert "does not exist" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


def test_a_truncated_key_is_refused(codex_home: Path, proj: Path) -> None:
    make(codex_home, proj)
    (grants_dir(codex_home) / KEY_NAME).write_bytes(b"short")
    assert "is not 32 bytes" in only_ignored(elevation.find(codex_home, proj, now=T0)).why


def test_a_bad_key_refuses_new_grants_too(codex_home: Path, proj: Path) -> None:
    make(codex_home, proj)
    os.chmod(grants_dir(codex_home) / KEY_NAME, 0o644)
    with pytest.raises(ConfigError, match="readable or writable by group or others"):
        make(codex_home, proj / "b")


def test_a_symlinked_grants_directory_is_refused(
    codex_home: Path, proj: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    make(elsewhere, proj)
    grants_dir(codex_home).symlink_to(grants_dir(elsewhere))
    ignored = only_ignored(elevation.find(codex_home, proj, now=T0))
    assert ignored.path == grants_dir(codex_home) and "is a symlink" in ignored.why
    with pytest.raises(ConfigError, match="is a symlink"):
        make(codex_home, proj)


def test_a_grants_directory_writable_by_others_is_refused(codex_home: Path, proj: Path) -> None:
    make(codex_home, proj)
    os.chmod(grants_dir(codex_home), 0o777)  # noqa: S103 -- the attack under test
    assert (
        "writable by group or others" in only_ignored(elevation.find(codex_home, proj, now=T0)).why
    )


def test_an_ignored_grant_on_the_way_up_does_not_hide_a_valid_one_above(
    codex_home: Path, proj: Path
) -> None:
    make(codex_home, proj, profile="workspace")
    near = make(codex_home, proj / "b", profile="workspace-net")
    rewrite(near.path, profile="trusted")
    found = elevation.find(codex_home, proj / "b", now=T0)
    assert found.grant is not None and found.grant.profile == "workspace"
    assert [i.path for i in found.ignored] == [near.path]


# --- precedence (resolve) -----------------------------------------------------------------


def resolve_in(
    codex_home: Path, where: Path, *, flag: str | None = None, env: str = "", now: datetime = T0
) -> object:
    return resolve_profile(
        flag=flag,
        environ={"CODEX_SECURITY_PROFILE": env} if env else {},
        workspace=where,
        config=load_config(codex_home),
        store=ProfileStore(codex_home=codex_home),
        codex_home=codex_home,
        now=now,
    )


def test_a_grant_beats_env_file_and_config_but_not_the_flag(codex_home: Path, proj: Path) -> None:
    (codex_home / "config.toml").write_text('[sandbox]\nmode = "read-only"\n')
    (proj / ".codex-profile").write_text("workspace\n")
    make(codex_home, proj, profile="workspace-net")
    granted = resolve_in(codex_home, proj / "b", env="net-read-only")
    assert granted.profile.name == "workspace-net" and granted.source is Source.GRANT  # type: ignore[attr-defined]
    assert granted.grant is not None and granted.grant.workspace == str(proj)  # type: ignore[attr-defined]
    assert [e.kind for e in granted.chain] == ["built-in", "grant"]  # type: ignore[attr-defined]
    assert "pip install" in granted.chain[-1].note  # type: ignore[attr-defined]
    flagged = resolve_in(codex_home, proj, flag="offline")
    assert flagged.profile.name == "offline" and flagged.grant is None  # type: ignore[attr-defined]


def test_when_the_grant_expires_the_next_source_applies_again_with_a_warning(
    codex_home: Path, proj: Path
) -> None:
    (proj / ".codex-profile").write_text("workspace\n")
    # Wider than the default: it applies once approved (test_profile_approval.py).
    profile_approval.approve(
        codex_home, proj / ".codex-profile", b"workspace\n", profile="workspace", approved_by="t"
    )
    make(codex_home, proj, profile="workspace-net", hours=1)
    later = resolve_in(codex_home, proj, now=T0 + timedelta(hours=1))
    assert later.profile.name == "workspace" and later.source is Source.FILE  # type: ignore[attr-defined]
    (warning,) = later.warnings()  # type: ignore[attr-defined]
    assert warning.startswith("elevation grant ") and "expired at 2026-03-01T13:00:00Z" in warning


def test_a_grant_to_trusted_still_never_lets_a_codex_profile_select_trusted(
    codex_home: Path, proj: Path
) -> None:
    """The grant selects; it does not make a file in the workspace trustworthy."""
    (proj / ".codex-profile").write_text("trusted\n")
    make(codex_home, proj, profile="workspace", hours=1)
    assert resolve_in(codex_home, proj).profile.name == "workspace"  # type: ignore[attr-defined]
    with pytest.raises(Refused):
        resolve_in(codex_home, proj, now=T0 + timedelta(hours=2))


# --- a sandbox can never write a grant ----------------------------------------------------


def test_no_writable_root_can_contain_the_grants_directory(
    codex_home: Path, home: Path, tmp_path: Path
) -> None:
    """What stops a sandboxed command from granting itself anything: it cannot write
    CODEX_HOME/grants, whatever writable root it is given."""
    grants = grants_dir(codex_home)
    grants.mkdir()
    for root in (grants, codex_home, home, home.parent):
        with pytest.raises(Refused):
            refuse_unsafe(str(root), protected=(), codex_home=str(codex_home), user_home=str(home))
    # A workspace that contains CODEX_HOME is allowed only when CODEX_HOME (so the grants
    # too) lies inside one of its protected, read-only paths (e.g. proj/.codex).
    project = tmp_path / "proj2"
    inner_home = project / ".codex"
    (inner_home / "grants").mkdir(parents=True)
    with pytest.raises(Refused, match="contains CODEX_HOME"):
        refuse_unsafe(str(project), protected=(), codex_home=str(inner_home), user_home=str(home))
    refuse_unsafe(
        str(project),
        protected=(str(project / ".codex"),),
        codex_home=str(inner_home),
        user_home=str(home),
    )
    assert (inner_home / "grants").is_relative_to(project / ".codex")


# --- the records of a grant (built by audit.records) ----------------------------------


def test_the_records_of_a_grant_name_its_profile_workspace_and_end(
    codex_home: Path, proj: Path
) -> None:
    from orchestrator.audit import records

    grant = make(codex_home, proj)
    assert records.elevation_granted(
        profile=grant.profile,
        workspace=grant.workspace,
        grant=grant.describe(),
        expires=grant.expires,
    ) == {
        "operation": "elevation",
        "grant_event": "granted",
        "decision": "allowed",
        "target": "workspace-net",
        "profile": "workspace-net",
        "reason": f"granted: workspace-net for {proj} until 2026-03-01T14:00:00Z, "
        "by alice: pip install",
        "workspace": str(proj),
        "expires": "2026-03-01T14:00:00Z",
    }


def test_a_bad_grant_file_describes_itself_by_path_and_why(codex_home: Path, proj: Path) -> None:
    from orchestrator.audit import records

    made = make(codex_home, proj)
    rewrite(made.path, reason="edited")
    found = elevation.nearest(codex_home, proj, now=T0)
    assert isinstance(found, elevation.Ignored)
    assert found.describe() == f"{made.path} ({found.why})"
    revoked = records.elevation_revoked(
        profile=found.profile, workspace=found.workspace, grant=found.describe()
    )
    assert revoked["reason"] == f"revoked: {made.path} ({found.why})"
    assert revoked["decision"] == "allowed" and "expires" not in revoked
