"""A checkout's .codex-profile in a CI job (orchestrator.ci.gitlab.narrowing): found only
inside the job's builds directory; it may narrow the job's profile, never widen it,
never name an opt-in one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.ci.gitlab.narrowing import narrowed, project_dir
from orchestrator.core.errors import ConfigError, Refused
from orchestrator.profiles.store import ProfileStore

# --- project_dir ----------------------------------------------------------------------


@pytest.fixture
def builds(tmp_path: Path) -> Path:
    path = tmp_path / "root" / "builds"
    (path / "group" / "proj").mkdir(parents=True)
    return path


def _dir(value: str | None, builds: Path) -> Path | None:
    environ = {} if value is None else {"CUSTOM_ENV_CI_PROJECT_DIR": value}
    return project_dir(environ, str(builds))


def test_the_checkout_inside_builds_is_the_project(builds: Path) -> None:
    assert _dir(f"{builds}/group/proj", builds) == builds / "group" / "proj"


def test_a_checkout_not_yet_cloned_inside_builds_is_the_project(builds: Path) -> None:
    assert _dir(f"{builds}/group/later", builds) == builds / "group" / "later"


def test_the_project_is_given_as_its_real_path(builds: Path, tmp_path: Path) -> None:
    link_root = tmp_path / "link"
    link_root.symlink_to(builds.parent)
    assert _dir(f"{link_root}/builds/group/proj", builds) == builds / "group" / "proj"
    assert _dir(f"{builds}/group/./x/../proj", builds) == builds / "group" / "proj"


@pytest.mark.parametrize("value", [None, "", "group/proj", "./group/proj", "builds/group/proj"])
def test_an_unset_or_relative_project_dir_is_none(builds: Path, value: str | None) -> None:
    assert _dir(value, builds) is None


def test_a_project_dir_outside_builds_is_none(builds: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "builds-evil").mkdir()
    for value in (
        str(tmp_path / "elsewhere"),
        "/",
        "/etc",
        str(builds.parent),  # the job's root: its cache is not the checkout
        str(builds),  # builds itself is not a project inside it
        f"{builds}/..",
        f"{builds}/../cache",
        f"{builds}/group/../../cache",
        str(tmp_path / "root" / "builds-evil"),  # a sibling sharing the prefix
    ):
        assert _dir(value, builds) is None, value


def test_a_symlink_inside_builds_leading_outside_is_none(builds: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (builds / "group" / "escape").symlink_to(outside)
    (builds / "group" / "up").symlink_to("../..")
    assert _dir(f"{builds}/group/escape", builds) is None
    assert _dir(f"{builds}/group/up", builds) is None
    assert _dir(f"{builds}/group/escape/sub", builds) is None


def test_a_symlink_inside_builds_leading_inside_is_followed(builds: Path) -> None:
    (builds / "group" / "alias").symlink_to(builds / "group" / "proj")
    assert _dir(f"{builds}/group/alias", builds) == builds / "group" / "proj"


# --- narrowed ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "checkout"
    path.mkdir()
    return path


@pytest.fixture
def logged() -> list[str]:
    return []


def _narrowed(
    store: ProfileStore, current: str, project: Path | None, logged: list[str]
) -> str | None:
    profile = narrowed(store, current, project, logged.append)
    return None if profile is None else profile.name


def _file(project: Path, text: str) -> Path:
    path = project / ".codex-profile"
    path.write_text(text)
    path.chmod(0o644)
    return path


def test_no_project_or_no_file_narrows_nothing(
    store: ProfileStore, project: Path, logged: list[str]
) -> None:
    assert _narrowed(store, "workspace", None, logged) is None
    assert _narrowed(store, "workspace", project, logged) is None
    assert _narrowed(store, "workspace", project / "not-cloned-yet", logged) is None
    _file(project, "# nothing but a comment\n\n")
    assert _narrowed(store, "workspace", project, logged) is None
    assert logged == []


@pytest.mark.parametrize(
    ("current", "named", "result"),
    [
        ("workspace", "offline", "offline"),
        ("workspace-net", "workspace", "workspace"),
        ("workspace-net", "net-read-only", "net-read-only"),
        ("trusted", "workspace-net", "workspace-net"),
        ("workspace", "read-only", "offline"),  # an alias
    ],
)
def test_a_file_naming_a_narrower_profile_narrows(
    store: ProfileStore,
    project: Path,
    logged: list[str],
    current: str,
    named: str,
    result: str,
) -> None:
    _file(project, f"{named}\n")
    assert _narrowed(store, current, project, logged) == result
    assert logged == []


@pytest.mark.parametrize(
    ("current", "named"), [("workspace", "workspace"), ("offline", "read-only")]
)
def test_a_file_naming_the_same_profile_narrows_nothing(
    store: ProfileStore, project: Path, logged: list[str], current: str, named: str
) -> None:
    _file(project, f"{named}  # the same\n")
    assert _narrowed(store, current, project, logged) is None
    assert logged == []


@pytest.mark.parametrize(
    ("current", "named"),
    [
        ("workspace", "workspace-net"),
        ("offline", "workspace"),
        ("workspace", "net-read-only"),  # incomparable
    ],
)
def test_a_file_naming_a_wider_profile_is_ignored_and_said_so(
    store: ProfileStore, project: Path, logged: list[str], current: str, named: str
) -> None:
    path = _file(project, f"{named}\n")
    assert _narrowed(store, current, project, logged) is None
    assert len(logged) == 1
    assert logged[0].startswith(f"{path} asks for {named}, wider than the job's {current} (")
    assert logged[0].endswith("): ignored")


def test_a_file_defining_a_profile_is_ignored_and_said_so(
    store: ProfileStore, project: Path, logged: list[str]
) -> None:
    path = _file(project, "extends: workspace\nnetwork: none\n")
    assert _narrowed(store, "workspace-net", project, logged) is None
    assert logged == [f"{path} defines a profile; only a named one applies in CI: ignored"]


@pytest.mark.parametrize("named", ["trusted", "danger-full-access"])
@pytest.mark.parametrize("current", ["trusted", "workspace"])
def test_a_file_naming_an_opt_in_profile_is_refused(
    store: ProfileStore, project: Path, logged: list[str], named: str, current: str
) -> None:
    _file(project, f"{named}\n")
    with pytest.raises(Refused, match=r"a \.codex-profile may never select"):
        _narrowed(store, current, project, logged)


def test_a_file_naming_a_narrower_user_profile_narrows(
    store: ProfileStore,
    project: Path,
    logged: list[str],
    write_profile: Callable[[str, str], Path],
) -> None:
    write_profile("docs-only", "extends: workspace-net\nnetwork:\n  allow: [docs.example.test]\n")
    _file(project, "docs-only\n")
    assert _narrowed(store, "workspace-net", project, logged) == "docs-only"
    assert _narrowed(store, "docs-only", project, logged) is None


@pytest.mark.parametrize(
    ("text", "match"),
    [("offline workspace\n", "expected one profile name"), ("no-such-one\n", "unknown profile")],
)
def test_a_malformed_file_is_a_config_error(
    store: ProfileStore, project: Path, logged: list[str], text: str, match: str
) -> None:
    _file(project, text)
    with pytest.raises(ConfigError, match=match):
        _narrowed(store, "workspace", project, logged)


def test_a_symlinked_file_is_not_followed(
    store: ProfileStore, project: Path, tmp_path: Path, logged: list[str]
) -> None:
    target = tmp_path / "target"
    target.write_text("offline\n")
    os.symlink(target, project / ".codex-profile")
    with pytest.raises(ConfigError, match="cannot read"):
        _narrowed(store, "workspace", project, logged)


def test_a_file_anyone_may_write_is_refused(
    store: ProfileStore, project: Path, logged: list[str]
) -> None:
    _file(project, "offline\n").chmod(0o666)
    with pytest.raises(Refused, match="writable by every user"):
        _narrowed(store, "workspace", project, logged)
