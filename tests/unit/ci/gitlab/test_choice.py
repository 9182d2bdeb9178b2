"""Which profile each of a job's sessions gets (orchestrator.ci.gitlab.choice): the
runner's --profile under its --max-profile, narrowed (only) by the job's
CODEX_BOX_PROFILE; the runner stages' gitlab-<server> profile."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from orchestrator.ci.gitlab.choice import job_profile, runner_profile
from orchestrator.core.errors import EXIT_REFUSED, CodexBoxError, ConfigError, Refused
from orchestrator.profiles.store import ProfileStore

# --- the job's profile -----------------------------------------------------------------


def _chosen(
    store: ProfileStore,
    flag: str | None = None,
    max_profile: str | None = None,
    asked: str | None = None,
) -> str:
    return job_profile(store, flag=flag, max_profile=max_profile, asked=asked).name


def test_the_default_is_workspace(store: ProfileStore) -> None:
    assert _chosen(store) == "workspace"


@pytest.mark.parametrize("flag", ["offline", "workspace", "workspace-net", "net-read-only"])
def test_the_runner_s_flag_is_the_job_s_profile(store: ProfileStore, flag: str) -> None:
    assert _chosen(store, flag) == flag


def test_the_runner_admin_may_choose_trusted(store: ProfileStore) -> None:
    assert _chosen(store, "trusted") == "trusted"


@pytest.mark.parametrize(
    ("flag", "max_profile"),
    [
        ("workspace", "workspace"),
        ("workspace", "workspace-net"),
        ("offline", "workspace"),
        ("workspace-net", "trusted"),
        (None, "workspace-net"),
    ],
)
def test_a_profile_within_the_ceiling_is_kept(
    store: ProfileStore, flag: str | None, max_profile: str
) -> None:
    assert _chosen(store, flag, max_profile) == (flag or "workspace")


@pytest.mark.parametrize(
    ("flag", "max_profile"),
    [
        ("workspace-net", "workspace"),
        ("trusted", "workspace-net"),
        (None, "offline"),  # the default is wider than offline
        ("net-read-only", "workspace"),  # incomparable counts as wider
    ],
)
def test_a_flag_wider_than_the_ceiling_is_the_admin_s_error(
    store: ProfileStore, flag: str | None, max_profile: str
) -> None:
    with pytest.raises(CodexBoxError, match="wider than its --max-profile") as caught:
        _chosen(store, flag, max_profile)
    assert not isinstance(caught.value, Refused)  # a system failure, not the job's
    assert caught.value.exit_code != EXIT_REFUSED


@pytest.mark.parametrize(
    ("flag", "asked"),
    [
        ("workspace", "offline"),
        ("workspace", "workspace"),
        ("workspace-net", "workspace"),
        ("workspace-net", "net-read-only"),
        ("trusted", "workspace-net"),
        ("trusted", "offline"),
    ],
)
def test_the_job_may_narrow(store: ProfileStore, flag: str, asked: str) -> None:
    assert _chosen(store, flag, asked=asked) == asked


def test_the_job_may_narrow_to_an_alias(store: ProfileStore) -> None:
    assert _chosen(store, "workspace", asked="read-only") == "offline"


@pytest.mark.parametrize(
    ("flag", "asked"),
    [
        ("workspace", "workspace-net"),
        ("offline", "workspace"),
        ("workspace", "net-read-only"),
        ("net-read-only", "workspace-net"),
    ],
)
def test_the_job_may_not_widen(store: ProfileStore, flag: str, asked: str) -> None:
    with pytest.raises(Refused, match=f"CODEX_BOX_PROFILE={asked} is wider than the runner's"):
        _chosen(store, flag, asked=asked)


@pytest.mark.parametrize("asked", ["trusted", "danger-full-access", "almost"])
@pytest.mark.parametrize("flag", ["trusted", "workspace"])
def test_the_job_may_never_choose_an_opt_in_profile(
    store: ProfileStore, write_profile: Callable[[str, str], Path], flag: str, asked: str
) -> None:
    write_profile("almost", "extends: trusted\nnetwork: none\n")
    with pytest.raises(Refused, match="a profile a job cannot choose"):
        _chosen(store, flag, asked=asked)


def test_the_job_may_narrow_to_a_user_profile(
    store: ProfileStore, write_profile: Callable[[str, str], Path]
) -> None:
    write_profile("docs-only", "extends: workspace-net\nnetwork:\n  allow: [docs.example.test]\n")
    assert _chosen(store, "workspace-net", asked="docs-only") == "docs-only"
    with pytest.raises(Refused):
        _chosen(store, "workspace", asked="docs-only")


def test_the_ceiling_still_holds_when_the_job_asks_for_nothing_wider(
    store: ProfileStore,
) -> None:
    with pytest.raises(CodexBoxError, match="--max-profile"):
        _chosen(store, "workspace-net", "workspace", asked="offline")


@pytest.mark.parametrize("asked", ["no-such-profile", "../workspace", "workspace/x"])
def test_an_unknown_asked_profile_is_the_job_s_failure(store: ProfileStore, asked: str) -> None:
    # The job's typo: refused (a build failure), not the runner's ConfigError.
    with pytest.raises(Refused, match="unknown profile") as caught:
        _chosen(store, asked=asked)
    assert caught.value.exit_code == EXIT_REFUSED
    assert not isinstance(caught.value, ConfigError)


@pytest.mark.parametrize("flag", ["no-such-profile", "../workspace"])
def test_an_unknown_runner_profile_is_the_runner_s_error(store: ProfileStore, flag: str) -> None:
    with pytest.raises(ConfigError, match="unknown profile") as caught:
        _chosen(store, flag)
    assert caught.value.exit_code != EXIT_REFUSED
    with pytest.raises(ConfigError, match="unknown profile"):
        _chosen(store, "workspace", max_profile=flag)


def test_an_empty_asked_profile_asks_for_nothing(store: ProfileStore) -> None:
    assert _chosen(store, "workspace-net", asked="") == "workspace-net"


# --- the runner stages' profile -----------------------------------------------------------


def _written(store: ProfileStore, name: str) -> dict[str, object]:
    data = yaml.safe_load((store.user_dir() / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_no_server_means_no_network(store: ProfileStore) -> None:
    assert runner_profile(store, "") == "workspace"
    assert not store.user_dir().exists()


def _digest(server: str) -> str:
    return hashlib.sha256(server.encode()).hexdigest()[:8]


@pytest.mark.parametrize(
    ("server", "slug"),
    [
        ("gitlab.example.test", "gitlab-example-test"),
        ("gitlab.example.test:8443", "gitlab-example-test-8443"),
        ("[2001:db8::1]:8443", "2001-db8-1-8443"),
        ("10.20.30.40", "10-20-30-40"),
        ("GitLab.Example.TEST", "gitlab-example-test"),
    ],
)
def test_the_runner_profile_reaches_the_server_and_nothing_else(
    tmp_path: Path, codex_home: Path, server: str, slug: str
) -> None:
    store = ProfileStore(codex_home=codex_home)
    name = f"gitlab-{slug}-{_digest(server)}"
    assert runner_profile(store, server) == name
    # Loadable by a fresh store, as `codex-box profiles` and the session would load it.
    profile = ProfileStore(codex_home=codex_home).get(name)
    assert profile.name == name
    assert profile.origin != "builtin"
    assert profile.extends == "workspace-net"
    assert profile.allow_domains == (server,)
    assert profile.deny_domains == ()
    assert profile.allows_network()
    data = _written(store, name)
    assert data["extends"] == "workspace-net"
    assert data["network"] == {"allow": [server]}
    assert f"to {server} only" in str(data["description"])


@pytest.mark.parametrize(
    "server",
    [
        "gitlab.example.test",
        "a" * 60 + ".example.test",
        "[2001:db8::1]:1",
        "x",
        "1.2.3.4:65535",
        "ci." * 20 + "test",
        "gitlab--x.example.test:8",
    ],
)
def test_a_runner_profile_name_is_a_readable_slug_and_the_server_s_digest(
    codex_home: Path, server: str
) -> None:
    name = runner_profile(ProfileStore(codex_home=codex_home), server)
    assert re.fullmatch(r"gitlab-[a-z0-9-]{0,40}-[0-9a-f]{8}", name), name
    assert name.endswith(f"-{_digest(server)}")
    slug = name[len("gitlab-") : -9]
    assert not slug.startswith("-")
    assert slug == re.sub(r"[^a-z0-9]+", "-", server.lower()).strip("-")[:40]


def test_writing_the_runner_profile_again_leaves_the_file_alone(codex_home: Path) -> None:
    store = ProfileStore(codex_home=codex_home)
    name = runner_profile(store, "gitlab.example.test")
    path = store.user_dir() / f"{name}.yaml"
    before = path.stat()
    assert runner_profile(ProfileStore(codex_home=codex_home), "gitlab.example.test") == name
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in store.user_dir().iterdir()) == [f"{name}.yaml"]


def test_a_changed_runner_profile_is_written_back(codex_home: Path) -> None:
    store = ProfileStore(codex_home=codex_home)
    name = runner_profile(store, "gitlab.example.test")
    path = store.user_dir() / f"{name}.yaml"
    path.write_text("extends: workspace-net\n")  # network to everywhere
    assert runner_profile(store, "gitlab.example.test") == name
    assert ProfileStore(codex_home=codex_home).get(name).allow_domains == ("gitlab.example.test",)


def test_two_servers_never_share_a_runner_profile(codex_home: Path) -> None:
    # Servers whose slugs are equal (punctuation, case, a cut at 40 characters) must
    # still get distinct profiles: on a runner serving both, each prepare would rewrite
    # the other's (and the policy judge the other job's runner stages against it).
    store = ProfileStore(codex_home=codex_home)
    pairs = [
        ("gitlab.example.test", "gitlab-example.test"),
        ("gitlab.example.test:8080", "gitlab.example.test-8080"),
        ("a" * 48 + ".example.test", "a" * 48 + ".example.org"),
        ("Gitlab.example.test", "gitlab.example.test"),
    ]
    for one, other in pairs:
        first = runner_profile(store, one)
        second = runner_profile(store, other)
        assert first != second, (one, other)
        assert ProfileStore(codex_home=codex_home).get(first).allow_domains == (one,)
        assert ProfileStore(codex_home=codex_home).get(second).allow_domains == (other,)


@pytest.mark.parametrize(
    "server",
    [
        "evil.test\nnetwork:\n  mode: full",
        "evil.test\nextends: trusted",
        "evil.test # comment",
        "evil.test', 'other.test",
        'evil.test", "other.test',
        "*",
        "*.test",
        "evil.test, other.test",
        "[evil.test]",
        "evil.test:0",
        "{a: b}",
        "&anchor evil.test",
        "- item",
    ],
)
def test_a_server_string_cannot_inject_into_the_profile(codex_home: Path, server: str) -> None:
    store = ProfileStore(codex_home=codex_home)
    try:
        name = runner_profile(store, server)
    except CodexBoxError:
        assert not store.user_dir().exists() or not list(store.user_dir().glob("*.yaml"))
        return
    profile = ProfileStore(codex_home=codex_home).get(name)
    assert profile.extends == "workspace-net"
    assert profile.allow_domains == (server,)
    assert _written(store, name)["network"] == {"allow": [server]}
