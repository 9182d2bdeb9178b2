"""A `.codex-profile` wider than what applies without it is ignored until approved
(direnv's model), because a sandboxed command may write a subdirectory's file: every
key that can widen, narrowing that applies without approval, approvals of exact content
at an exact path, and approvals that were edited, copied, forged or revoked."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.errors import Refused
from orchestrator.core.profile import DEFAULT_PROTECTED, Access, Capabilities, Network, Profile
from orchestrator.profiles.store import ProfileStore
from orchestrator.profiles.widening import wider
from orchestrator.resolve import approval as profile_approval
from orchestrator.resolve.precedence import PROFILE_FILE, Resolution, Source, resolve_profile
from orchestrator.settings.config import load_config
from tests.conftest import AUDIT_ONLY_CONFIG
from tests.unit.helpers import audit_records
from tests.unit.stub_runs import stub_run

Resolve = Callable[..., Resolution]
WriteProfile = Callable[[str, str], Path]


@pytest.fixture
def resolve(workspace: Path, codex_home: Path) -> Resolve:
    def run(*, where: Path | None = None, env: str = "") -> Resolution:
        return resolve_profile(
            flag=None,
            environ={"CODEX_SECURITY_PROFILE": env} if env else {},
            workspace=where or workspace,
            config=load_config(codex_home),
            store=ProfileStore(codex_home=codex_home),
            codex_home=codex_home,
        )

    return run


def set_config(codex_home: Path, profile: str) -> None:
    (codex_home / "config.toml").write_text(
        AUDIT_ONLY_CONFIG + f'[sandbox]\nprofile = "{profile}"\n'
    )


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROFILE_FILE
    path.write_text(text)
    return path


def approve(codex_home: Path, path: Path) -> profile_approval.Approval:
    return profile_approval.approve(
        codex_home, path, path.read_bytes(), profile="(test)", approved_by="alice"
    )


@pytest.fixture
def builtins(codex_home: Path) -> dict[str, Profile]:
    return dict(ProfileStore(codex_home=codex_home).builtins())


# --- wider, key by key --------------------------------------------------------------------

PROTECTED = "[" + ", ".join(DEFAULT_PROTECTED) + "]"
# A user profile `tight` = workspace-net tightened in one key (config.toml selects it);
# the .codex-profile names workspace-net: wider in exactly that key.
TIGHTENINGS = [
    ("network: read-only\n", "network.mode read-only → full"),
    ("network: none\n", "network.mode none → full"),
    ("network:\n  allow: [pypi.org]\n", "network.allow [pypi.org] → every domain"),
    ("network:\n  deny: [evil.example]\n", "network.deny no longer denies evil.example"),
    ("network:\n  inspect_tls: true\n", "network.inspect_tls true → false"),
    ("filesystem:\n  workspace: read-only\n", "filesystem.workspace read-only → read-write"),
    ("filesystem:\n  private_tmp: false\n", "filesystem.private_tmp false → true"),
    (
        f"filesystem:\n  protected_paths: {PROTECTED[:-1]}, .env]\n",
        "filesystem.protected_paths no longer protects .env",
    ),
    (
        "filesystem:\n  on_planted_repo: quarantine\n",
        "filesystem.on_planted_repo quarantine → warn",
    ),
    ("process:\n  seccomp: offline\n", "process.seccomp offline → default"),
    (
        "process:\n  apparmor: codex-box-offline\n",
        "process.apparmor codex-box-offline → codex-box-workspace-net",
    ),
]


@pytest.mark.parametrize(("tightening", "widens"), TIGHTENINGS, ids=[w for _, w in TIGHTENINGS])
def test_a_codex_profile_wider_in_any_one_key_is_ignored_until_its_content_is_approved(
    resolve: Resolve,
    workspace: Path,
    codex_home: Path,
    write_profile: WriteProfile,
    tightening: str,
    widens: str,
) -> None:
    write_profile("tight", "extends: workspace-net\n" + tightening)
    set_config(codex_home, "tight")
    path = write(workspace, "workspace-net\n")
    ignored = resolve()
    assert (ignored.profile.name, ignored.source) == ("tight", Source.CONFIG)
    (check,) = ignored.ignored_files
    assert check.path == path and check.base == "tight" and check.profile == "workspace-net"
    assert widens in check.widens
    if not widens.startswith("network.mode none"):  # none → full also changes seccomp, …
        assert check.widens == (widens,)
    approve(codex_home, path)
    applied = resolve()
    assert (applied.profile.name, applied.source) == ("workspace-net", Source.FILE)
    assert applied.warnings() == () and applied.files[0].state == profile_approval.APPROVED


def test_a_codex_profile_naming_a_profile_with_more_writable_paths_is_wider(
    resolve: Resolve, workspace: Path, codex_home: Path, write_profile: WriteProfile
) -> None:
    write_profile("cache", 'extends: workspace-net\nfilesystem:\n  writable_paths: ["/srv/c"]\n')
    set_config(codex_home, "workspace-net")
    write(workspace, "cache\n")
    (check,) = resolve().ignored_files
    assert check.widens == ("filesystem.writable_paths adds /srv/c",)


def test_a_codex_profile_naming_a_profile_that_unprotects_a_path_is_wider(
    resolve: Resolve, workspace: Path, codex_home: Path, write_profile: WriteProfile
) -> None:
    write_profile("vsc", "extends: workspace-net\nfilesystem:\n  unprotect: [.vscode]\n")
    set_config(codex_home, "workspace-net")
    write(workspace, "vsc\n")
    (check,) = resolve().ignored_files
    assert "filesystem.protected_paths no longer protects .vscode" in check.widens


@pytest.mark.parametrize(
    ("key", "old", "new", "phrase"),
    [
        ("network", Network.NONE, Network.READ_ONLY, "network.mode none → read-only"),
        ("network", Network.READ_ONLY, Network.FULL, "network.mode read-only → full"),
        ("rootfs", Access.READ_ONLY, Access.READ_WRITE, "filesystem.root read-only → read-write"),
        ("allow_local_hosts", False, True, "network.allow_local_hosts false → true"),
        ("inspect_tls", True, False, "network.inspect_tls true → false"),
        ("capabilities", Capabilities.NONE, Capabilities.DEFAULT, "none → default"),
        ("sandboxed", True, False, "process.sandboxed true → false"),
        ("seccomp", "default", None, "process.seccomp default → null"),
        ("apparmor", "codex-box-workspace", None, "codex-box-workspace → null"),
        ("private_tmp", False, True, "filesystem.private_tmp false → true"),
        ("workspace", Access.READ_ONLY, Access.READ_WRITE, "read-only → read-write"),
        ("writable_paths", (), ("~/.ssh",), "filesystem.writable_paths adds ~/.ssh"),
        ("allow_domains", ("pypi.org",), (), "network.allow [pypi.org] → every domain"),
        ("allow_domains", ("pypi.org",), ("pypi.org", "evil.example"), "admits evil.example"),
        ("allow_domains", ("a.pypi.org",), ("*.pypi.org",), "admits *.pypi.org"),
        ("deny_domains", ("evil.example",), (), "no longer denies evil.example"),
        ("protected_paths", (".git", ".env"), (".git",), "no longer protects .env"),
    ],
)
def test_every_key_that_gives_more_access_makes_a_profile_wider_and_its_reverse_does_not(
    builtins: dict[str, Profile], key: str, old: object, new: object, phrase: str
) -> None:
    # workspace-net: full network, so its network rules count.
    base = replace(builtins["workspace-net"], **{key: old})
    loose = replace(base, **{key: new})
    assert any(phrase in how for how in wider(base, loose)), wider(base, loose)
    assert wider(loose, base) == ()


def test_a_narrower_allow_list_or_a_broader_deny_pattern_is_not_wider(
    builtins: dict[str, Profile],
) -> None:
    base = replace(builtins["workspace-net"], allow_domains=("*.pypi.org",))
    assert wider(base, replace(base, allow_domains=("files.pypi.org",))) == ()
    denies = replace(base, deny_domains=("upload.pypi.org",))
    assert wider(denies, replace(base, deny_domains=("*.pypi.org",))) == ()
    assert wider(replace(base, allow_domains=()), base) == ()  # any list narrows "every domain"


def test_with_the_network_off_its_rules_decide_nothing(builtins: dict[str, Profile]) -> None:
    py = replace(builtins["workspace-net"], allow_domains=("pypi.org",), inspect_tls=True)
    assert wider(py, builtins["workspace"]) == ()


def test_a_profile_wider_on_one_axis_and_narrower_on_another_counts_as_wider(
    builtins: dict[str, Profile],
) -> None:
    # net-read-only: network on, workspace read-only; workspace: the reverse.
    assert "filesystem.workspace read-only → read-write" in wider(
        builtins["net-read-only"], builtins["workspace"]
    )
    assert "network.mode none → read-only" in wider(
        builtins["workspace"], builtins["net-read-only"]
    )


def test_nothing_sandboxed_is_wider_than_no_sandbox_nor_the_opt_in_question_itself(
    builtins: dict[str, Profile],
) -> None:
    assert wider(builtins["trusted"], builtins["workspace"]) == ()
    everything = replace(builtins["workspace-net"], rootfs=Access.READ_WRITE, private_tmp=False)
    assert wider(everything, replace(everything, private_tmp=True, writable_paths=("/x",))) == ()
    assert wider(builtins["workspace"], builtins["workspace"]) == ()


# --- narrowing applies without approval ------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "file"),
    [
        ("workspace-net", "workspace\n"),
        ("workspace-net", "net-read-only\n"),
        ("workspace", "offline\n"),
        ("workspace", "workspace\n"),  # the same profile
        ("workspace", "extends: workspace\nfilesystem:\n  workspace: read-only\n"),
        ("workspace-net", "extends: workspace-net\nnetwork:\n  allow: [pypi.org]\n"),
    ],
)
def test_a_codex_profile_that_only_narrows_applies_without_approval(
    resolve: Resolve, workspace: Path, codex_home: Path, config: str, file: str
) -> None:
    set_config(codex_home, config)
    path = write(workspace, file)
    resolution = resolve()
    assert resolution.source is Source.FILE and resolution.detail == str(path)
    (check,) = resolution.files
    assert check.state == profile_approval.NARROWS and check.base == config
    assert resolution.warnings() == ()
    assert not profile_approval.approvals_dir(codex_home).exists()


def test_without_a_config_a_file_is_compared_with_the_offline_default(
    resolve: Resolve, workspace: Path
) -> None:
    write(workspace, "workspace\n")
    resolution = resolve()
    assert (resolution.profile.name, resolution.source) == ("offline", Source.DEFAULT)
    assert resolution.ignored_files[0].base == "offline"


def test_a_file_is_compared_with_the_file_above_it_that_counts(
    resolve: Resolve, workspace: Path, codex_home: Path
) -> None:
    set_config(codex_home, "workspace")
    approve(codex_home, write(workspace, "workspace-net\n"))
    sub = workspace / "sub"
    write(sub, "workspace-net\n")  # no wider than what applies in sub without it
    assert resolve(where=sub).files[0].state == profile_approval.NARROWS
    write(sub, "offline\n")
    assert resolve(where=sub).profile.name == "offline"


def test_an_ignored_file_is_skipped_as_if_absent_so_the_file_above_it_applies(
    resolve: Resolve, workspace: Path, codex_home: Path
) -> None:
    set_config(codex_home, "workspace-net")
    top = write(workspace, "workspace\n")  # narrows: applies
    sub = workspace / "sub"
    planted = write(sub, "workspace-net\n")  # wider than the file above it
    resolution = resolve(where=sub)
    assert resolution.profile.name == "workspace" and resolution.detail == str(top)
    assert [(c.path, c.state) for c in resolution.files] == [
        (planted, profile_approval.IGNORED),
        (top, profile_approval.NARROWS),
    ]


def test_the_flag_environment_and_a_grant_outrank_every_file_so_none_is_judged(
    resolve: Resolve, workspace: Path
) -> None:
    write(workspace, "workspace-net\n")
    resolution = resolve(env="workspace")
    assert resolution.source is Source.ENV and resolution.files == () and not resolution.warnings()


# --- approvals: exact content, exact path, the key ----------------------------------------


@pytest.fixture
def planted(workspace: Path, codex_home: Path) -> Path:
    """The attack: config selects workspace; sub/.codex-profile names workspace-net."""
    set_config(codex_home, "workspace")
    return write(workspace / "sub", "workspace-net\n")


def test_an_edited_file_needs_approval_again(
    resolve: Resolve, planted: Path, codex_home: Path
) -> None:
    approve(codex_home, planted)
    assert resolve(where=planted.parent).profile.name == "workspace-net"
    planted.write_text("workspace-net\n# harmless?\n")
    resolution = resolve(where=planted.parent)
    assert resolution.profile.name == "workspace"
    assert "was edited after it was approved (by alice at " in resolution.ignored_files[0].approval


def test_an_approval_copied_to_another_files_name_is_ignored(
    resolve: Resolve, planted: Path, codex_home: Path, workspace: Path
) -> None:
    made = approve(codex_home, planted)
    other = write(workspace / "other", "workspace-net\n")
    assert resolve(where=other.parent).profile.name == "workspace"  # same content, new path
    copy = profile_approval.approvals_dir(codex_home) / profile_approval.approval_name(str(other))
    shutil.copy(made.file, copy)
    resolution = resolve(where=other.parent)
    assert resolution.profile.name == "workspace"
    assert "copied to another name" in resolution.ignored_files[0].approval


def test_an_approved_workspace_copied_elsewhere_is_not_approved_there(
    resolve: Resolve, planted: Path, codex_home: Path, workspace: Path
) -> None:
    approve(codex_home, planted)
    clone = workspace.parent / "clone"
    shutil.copytree(workspace, clone)
    assert resolve(where=clone / "sub").profile.name == "workspace"


def test_a_forged_approval_file_is_ignored(
    resolve: Resolve, planted: Path, codex_home: Path
) -> None:
    made = approve(codex_home, planted)  # makes the directory and the key
    data = json.loads(made.file.read_text())
    data["hmac"] = "0" * 64
    made.file.write_text(json.dumps(data))
    check = resolve(where=planted.parent).ignored_files[0]
    assert "its approval does not check out (its HMAC does not match" in check.approval


def test_an_approval_made_under_another_key_is_ignored(
    resolve: Resolve, planted: Path, codex_home: Path, tmp_path: Path
) -> None:
    approve(codex_home, planted)
    elsewhere = tmp_path / "other-home"
    forged = approve(elsewhere, planted)  # a well-formed approval, someone else's key
    shutil.copy(forged.file, profile_approval.approvals_dir(codex_home) / forged.file.name)
    assert resolve(where=planted.parent).profile.name == "workspace"


def test_an_approval_without_the_key_is_ignored(
    resolve: Resolve, planted: Path, codex_home: Path
) -> None:
    approve(codex_home, planted)
    (codex_home / "grants" / ".key").unlink()
    check = resolve(where=planted.parent).ignored_files[0]
    assert "does not check out" in check.approval


def test_an_approvals_directory_others_may_write_is_not_trusted(
    resolve: Resolve, planted: Path, codex_home: Path
) -> None:
    approve(codex_home, planted)
    profile_approval.approvals_dir(codex_home).chmod(0o777)
    check = resolve(where=planted.parent).ignored_files[0]
    assert "is not yours alone" in check.approval


def test_revoking_an_approval_ignores_the_file_again(
    resolve: Resolve, planted: Path, codex_home: Path
) -> None:
    approve(codex_home, planted)
    assert profile_approval.revoke(codex_home, planted) is True
    assert resolve(where=planted.parent).profile.name == "workspace"
    assert profile_approval.revoke(codex_home, planted) is False


def test_no_approval_lets_a_codex_profile_select_trusted(
    resolve: Resolve, workspace: Path, codex_home: Path
) -> None:
    path = write(workspace, "trusted\n")
    approve(codex_home, path)  # even a valid approval, made behind the CLI's back
    with pytest.raises(Refused, match=r"which a \.codex-profile may never select"):
        resolve()


def test_the_warning_names_the_file_why_and_the_fix_on_one_line(
    resolve: Resolve, planted: Path
) -> None:
    (warning,) = resolve(where=planted.parent).warnings()
    assert warning == (
        f"{planted} ignored: 'workspace-net' is wider than 'workspace' (network.mode none → "
        "full; process.seccomp offline → default; process.apparmor codex-box-workspace → "
        "codex-box-workspace-net) and is not approved; if you trust it, run "
        f"`codex-box profiles allow {planted}`"
    )
    assert "\n" not in warning


def test_a_run_records_each_ignored_file_as_a_denied_profile_resolve(
    planted: Path, codex_home: Path, base_env: dict[str, str]
) -> None:
    outcome = stub_run(base_env, planted.parent)
    assert outcome.prepared.spec.profile == "workspace"
    (ignored,) = [r for r in audit_records(codex_home) if r.get("approval_event") == "ignored"]
    assert ignored["operation"] == "profile_resolve" and ignored["decision"] == "denied"
    assert ignored["target"] == str(planted) and ignored["workspace"] == str(planted.parent)
    assert ignored["reason"].startswith(f"ignored {planted}: 'workspace-net' is wider than")
