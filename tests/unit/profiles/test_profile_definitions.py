"""A .codex-profile that defines a profile in place: `extends:` a built-in or user
profile, plus keys that may only tighten it — never loosen, never add write grants,
never reach an opt-in profile. `profiles explain` shows the chain of files behind it.

A sandboxed command may be able to write a subdirectory's .codex-profile, so every way
of loosening is tried here, each refused with file:line, key and fix.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.audit.redact import Redactor
from orchestrator.core.errors import EXIT_REFUSED, EXIT_SETUP, ConfigError, Refused
from orchestrator.core.profile import Access, Network
from orchestrator.host.user import home_of, user_name
from orchestrator.profiles.store import BUILTIN_DIR, ProfileStore
from orchestrator.resolve import approval as profile_approval
from orchestrator.resolve.precedence import PROFILE_FILE, Resolution, Source, resolve_profile
from orchestrator.settings.config import load_config
from tests.conftest import Ran
from tests.unit.helpers import audit_records
from tests.unit.stub_runs import stub_run

WriteProfile = Callable[[str, str], Path]
PY_USER = "extends: workspace-net\nnetwork:\n  allow: [pypi.org, files.pythonhosted.org]\n"
Cli = Callable[..., Ran]


@pytest.fixture
def resolve(workspace: Path, codex_home: Path, store: ProfileStore) -> Callable[..., Resolution]:
    def run(*, where: Path | None = None, flag: str | None = None, env: str = "") -> Resolution:
        return resolve_profile(
            flag=flag,
            environ={"CODEX_SECURITY_PROFILE": env} if env else {},
            workspace=where or workspace,
            config=load_config(codex_home),
            store=store,
            codex_home=codex_home,
        )

    return run


def define(directory: Path, text: str) -> Path:
    path = directory / PROFILE_FILE
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def approve(codex_home: Path, path: Path) -> Path:
    """`codex-box profiles allow PATH`: these tests are about what a definition may say,
    not about approving one wider than the default (test_profile_approval.py)."""
    profile_approval.approve(
        codex_home, path, path.read_bytes(), profile="(test)", approved_by="test"
    )
    return path


def refused_with(resolve: Callable[..., Resolution], error: type[Exception]) -> ConfigError:
    with pytest.raises(error) as info:
        resolve()
    assert isinstance(info.value, ConfigError | Refused)
    assert info.value.hint, "every error carries a fix"
    return info.value  # type: ignore[return-value]


# --- what a definition may do ------------------------------------------------------------


def test_a_definition_tightens_a_built_in_and_is_named_after_it(
    resolve: Callable[..., Resolution], workspace: Path, codex_home: Path
) -> None:
    path = define(
        workspace,
        """
        # this project needs PyPI and nothing else
        extends: workspace-net
        network:
          allow: [pypi.org, files.pythonhosted.org]
          deny: [upload.pypi.org]
          inspect_tls: true
        filesystem:
          protected_paths: [.git, .codex, .codex-profile, .env]
        """,
    )
    approve(codex_home, path)
    resolution = resolve()
    profile = resolution.profile
    assert profile.name == "workspace-net+.codex-profile"
    assert profile.extends == "workspace-net" and profile.origin == str(path)
    assert profile.allow_domains == ("pypi.org", "files.pythonhosted.org")
    assert profile.deny_domains == ("upload.pypi.org",)
    assert profile.inspect_tls and ".env" in profile.protected_paths
    assert profile.workspace is Access.READ_WRITE  # inherited
    assert resolution.source is Source.FILE and resolution.detail == str(path)
    assert str(path) in profile.description


def test_a_definition_may_extend_a_user_profile_and_narrow_it_further(
    resolve: Callable[..., Resolution],
    workspace: Path,
    write_profile: WriteProfile,
    codex_home: Path,
) -> None:
    write_profile(
        "py", "extends: workspace-net\nnetwork:\n  allow: [pypi.org, '*.pythonhosted.org']\n"
    )
    approve(
        codex_home, define(workspace, "extends: py\nnetwork:\n  allow: [files.pythonhosted.org]\n")
    )
    profile = resolve().profile
    assert profile.name == "py+.codex-profile" and profile.extends == "py"
    assert profile.allow_domains == ("files.pythonhosted.org",)


def test_a_definition_may_switch_the_network_off_and_the_workspace_read_only(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    define(
        workspace, "extends: workspace-net\nnetwork: none\nfilesystem:\n  workspace: read-only\n"
    )
    profile = resolve().profile
    assert profile.network is Network.NONE and profile.workspace is Access.READ_ONLY


def test_a_definition_keeps_user_profile_write_grants_it_inherits(
    resolve: Callable[..., Resolution],
    workspace: Path,
    write_profile: WriteProfile,
    codex_home: Path,
) -> None:
    write_profile("cache", 'extends: workspace\nfilesystem:\n  writable_paths: ["/srv/cache"]\n')
    path = define(workspace, 'extends: cache\nfilesystem:\n  writable_paths: ["/srv/cache"]\n')
    approve(codex_home, path)
    assert resolve().profile.writable_paths == ("/srv/cache",)
    approve(codex_home, define(workspace, "extends: cache\nfilesystem:\n  writable_paths: []\n"))
    assert resolve().profile.writable_paths == ()  # dropping a grant tightens


def test_the_nearest_file_wins_whether_it_names_or_defines(
    resolve: Callable[..., Resolution], workspace: Path, codex_home: Path
) -> None:
    inner = workspace / "pkg"
    inner.mkdir()
    (workspace / PROFILE_FILE).write_text("workspace-net\n")
    approve(codex_home, workspace / PROFILE_FILE)
    define(inner, "extends: workspace-net\nnetwork: none\n")
    assert resolve(where=inner).profile.network is Network.NONE
    assert resolve().profile.name == "workspace-net"


def test_flag_and_environment_still_beat_a_definition(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    define(workspace, "extends: workspace\n")
    assert resolve(flag="offline").profile.name == "offline"
    assert resolve(env="net-read-only").profile.name == "net-read-only"


# --- every way of loosening is refused -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("extends: workspace\nnetwork: full\n", "network.mode", "loosens 'workspace'"),
        ("extends: net-read-only\nnetwork:\n  mode: full\n", "network.mode", "loosens"),
        (
            "extends: workspace-net\nnetwork:\n  allow_local_hosts: true\n",
            "network.allow_local_hosts",
            "loosens 'workspace-net' (false → true)",
        ),
        (
            "extends: offline\nfilesystem:\n  workspace: read-write\n",
            "filesystem.workspace",
            "loosens",
        ),
        ("extends: workspace\nfilesystem:\n  root: read-write\n", "filesystem.root", "loosens"),
        (
            'extends: workspace\nfilesystem:\n  writable_paths: ["/srv/x"]\n',
            "filesystem.writable_paths",
            "adds writable path(s) /srv/x that 'workspace' does not grant",
        ),
        ("extends: workspace\nprocess:\n  sandboxed: false\n", "process.sandboxed", "loosens"),
        ("extends: offline\nprocess:\n  seccomp: default\n", "process.seccomp", "loosens"),
        (
            "extends: offline\nprocess:\n  capabilities: default\n",
            "process.capabilities",
            "loosens",
        ),
    ],
)
def test_a_definition_that_loosens_a_built_in_is_refused_naming_file_line_and_key(
    resolve: Callable[..., Resolution], workspace: Path, text: str, key: str, problem: str
) -> None:
    path = define(workspace, text)
    error = refused_with(resolve, ConfigError)
    assert error.exit_code == EXIT_SETUP
    assert error.message.startswith(f"{path}:"), error.message
    assert f"key '{key}'" in error.message and problem in error.message
    assert "a .codex-profile may only" in error.hint


def test_the_error_points_at_the_line_of_the_loosening_key(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    path = define(workspace, "# comment\nextends: workspace\nfilesystem:\n  root: read-write\n")
    assert refused_with(resolve, ConfigError).message.startswith(f"{path}:4: key 'filesystem.root'")


@pytest.fixture
def narrow_user_profile(write_profile: WriteProfile) -> None:
    write_profile(
        "narrow",
        """
        extends: workspace-net
        network:
          allow: [pypi.org]
          deny: [upload.pypi.org]
          inspect_tls: true
        """,
    )


@pytest.mark.parametrize(
    ("network", "key", "problem"),
    [
        ("allow: [pypi.org, evil.example]", "network.allow", "'evil.example' is not within"),
        ("allow: ['*.pypi.org']", "network.allow", "'*.pypi.org' is not within"),
        ("deny: [other.example]", "network.deny", "drops denied domain(s) upload.pypi.org"),
        ("inspect_tls: false", "network.inspect_tls", "loosens 'narrow' (true → false)"),
    ],
)
def test_a_definition_cannot_widen_the_network_rules_of_a_user_profile(
    resolve: Callable[..., Resolution],
    workspace: Path,
    narrow_user_profile: None,
    network: str,
    key: str,
    problem: str,
) -> None:
    define(workspace, f"extends: narrow\nnetwork:\n  {network}\n")
    error = refused_with(resolve, ConfigError)
    assert f"key '{key}'" in error.message and problem in error.message


@pytest.mark.parametrize("base", ["trusted", "danger-full-access", "almost-trusted"])
def test_a_definition_can_never_extend_an_opt_in_profile(
    resolve: Callable[..., Resolution],
    workspace: Path,
    write_profile: WriteProfile,
    base: str,
) -> None:
    write_profile("almost-trusted", "extends: trusted\nnetwork: none\n")
    path = define(workspace, f"extends: {base}\nnetwork: none\nfilesystem:\n  root: read-only\n")
    error = refused_with(resolve, Refused)
    assert error.exit_code == EXIT_REFUSED == 126
    assert error.message.startswith(f"{path}:1: key 'extends'")
    assert "needs explicit opt-in, which a .codex-profile may never give" in error.message
    assert "--yes-i-trust-this-workspace" in error.hint


def test_a_definition_that_asks_for_opt_in_itself_is_refused(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    define(workspace, "extends: workspace\nprocess:\n  requires_opt_in: true\n")
    assert refused_with(resolve, Refused).exit_code == 126


# --- malformed definitions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("extends: workspace\nnetwork: [none\n", ":3: malformed YAML"),
        ("extends: workspace\nnetwrk: none\n", ":2: key 'netwrk': unknown key"),
        ("extends: workspace\nfilesystem:\n  rot: read-only\n", ":3: key 'filesystem.rot'"),
        ("network: none\n", ": key 'extends': missing"),
        ("extends: worksapce\n", ":1: key 'extends': unknown profile 'worksapce'"),
        ("extends: workspace\nname: mine\n", ":2: key 'name': a .codex-profile definition"),
        ("extends: workspace\nnetwork:\n  allow: ['*']\n", ":3: key 'network.allow'"),
        ("extends: workspace-net\nnetwork:\n  allow: ['*.com']\n", "over-broad"),
    ],
)
def test_a_malformed_definition_names_file_line_and_key(
    resolve: Callable[..., Resolution], workspace: Path, text: str, expected: str
) -> None:
    path = define(workspace, text)
    error = refused_with(resolve, ConfigError)
    assert error.exit_code == EXIT_SETUP
    assert error.message.startswith(str(path)) and expected in error.message, error.message


def test_a_misspelt_base_gets_a_suggestion(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    define(workspace, "extends: worksapce\n")
    assert "did you mean 'workspace'?" in refused_with(resolve, ConfigError).hint


def test_a_symlinked_definition_is_refused_not_followed(
    resolve: Callable[..., Resolution], workspace: Path, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("extends: workspace\n")
    (workspace / PROFILE_FILE).symlink_to(target)
    assert "cannot read" in refused_with(resolve, ConfigError).message


# --- the chain (profiles explain, the audit) ----------------------------------------------


def test_the_chain_runs_from_the_built_in_through_the_user_profile_to_the_definition(
    resolve: Callable[..., Resolution],
    workspace: Path,
    write_profile: WriteProfile,
    codex_home: Path,
) -> None:
    user = write_profile("py", PY_USER)
    path = approve(codex_home, define(workspace, "extends: py\nnetwork:\n  allow: [pypi.org]\n"))
    chain = resolve().chain
    assert [e.kind for e in chain] == ["built-in", "user profile", ".codex-profile"]
    assert chain[0].where.endswith("orchestrator/profiles/workspace-net.yaml")
    assert chain[0].changes["network.mode"] == "full"  # a built-in defines every key
    assert chain[1].where == str(user)
    assert dict(chain[1].changes) == {"network.allow": ["pypi.org", "files.pythonhosted.org"]}
    assert chain[2].where == str(path) and dict(chain[2].changes) == {"network.allow": ["pypi.org"]}
    assert not any(e.selects for e in chain)  # the definition is also what chose it


def test_a_name_in_the_file_is_a_selecting_link_after_the_definitions(
    resolve: Callable[..., Resolution], workspace: Path, codex_home: Path
) -> None:
    (workspace / PROFILE_FILE).write_text("workspace\n")
    approve(codex_home, workspace / PROFILE_FILE)
    chain = resolve().chain
    assert [(e.kind, e.selects) for e in chain] == [("built-in", False), (".codex-profile", True)]
    assert chain[1].where == str(workspace / PROFILE_FILE) and chain[1].profile == "workspace"


def test_explain_prints_the_chain_most_general_first_and_the_effective_values(
    cli: Cli, workspace: Path, write_profile: WriteProfile, codex_home: Path
) -> None:
    user = write_profile("py", PY_USER)
    path = approve(codex_home, define(workspace, "extends: py\nnetwork:\n  allow: [pypi.org]\n"))
    ran = cli("profiles", "explain")
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout
    assert out.splitlines()[0] == f"py+.codex-profile  (workspace {workspace})"
    assert out.index("workspace-net.yaml") < out.index(str(user)) < out.index(str(path))
    assert "network.allow = [pypi.org, files.pythonhosted.org]" in out
    assert "network.allow = [pypi.org]" in out
    effective = out.split("effective:\n", 1)[1]
    assert "network.allow              [pypi.org]\n" in effective
    assert "filesystem.workspace       read-write\n" in effective


def test_explain_json_and_profile_flag(cli: Cli, codex_home: Path) -> None:
    (codex_home / "config.toml").write_text('[sandbox]\nmode = "workspace-write"\n')
    data = json.loads(cli("profiles", "explain", "--json").stdout)
    assert data["source"] == "config" and data["profile"] == "workspace"
    assert [c["kind"] for c in data["chain"]] == ["built-in", "config"]
    assert data["chain"][1] == {
        "kind": "config",
        "where": str(codex_home / "config.toml"),
        "profile": "workspace",
        "selects": True,
        "sets": {},
    }
    assert data["effective"]["filesystem.workspace"] == "read-write"
    flagged = json.loads(cli("profiles", "explain", "--profile", "offline", "--json").stdout)
    assert flagged["chain"][-1]["where"] == "--profile offline"


def test_explain_reports_a_loosening_definition_with_exit_125(cli: Cli, workspace: Path) -> None:
    path = define(workspace, "extends: workspace\nnetwork: full\n")
    ran = cli("profiles", "explain")
    assert ran.returncode == 125
    assert f"{path}:2: key 'network.mode': loosens 'workspace' (none → full)" in ran.stderr


def test_a_run_under_a_loosening_definition_launches_nothing_and_is_audited(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    define(workspace, "extends: offline\nfilesystem:\n  workspace: read-write\n")
    marker = workspace / "launched"
    ran = cli("run", "--", "touch", str(marker))
    assert ran.returncode == 125 and "key 'filesystem.workspace': loosens" in ran.stderr
    assert not marker.exists()
    assert [r["decision"] for r in audit_records(codex_home)] == ["denied"]


def test_the_profile_resolve_record_carries_the_chain(
    base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    path = define(
        workspace,
        "extends: workspace\nfilesystem:\n"
        "  protected_paths: [.git, .codex, .codex-profile, .env]\n",
    )
    approve(codex_home, path)
    outcome = stub_run(base_env, workspace)
    assert outcome.prepared.spec.profile == "workspace+.codex-profile"
    (record,) = [r for r in audit_records(codex_home) if r["operation"] == "profile_resolve"]
    assert record["target"] == "workspace+.codex-profile" and record["profile_source"] == "file"
    # Through the audit log's own redaction: a checkout under the user's home (the
    # non-root CI leg's /home/codexci/codex-box) names the login, which becomes [USER].
    redact = Redactor(user_name(base_env), home_of(base_env))
    assert record["reason"] == redact(
        f"file ({workspace}/.codex-profile); chain: built-in "
        f"{BUILTIN_DIR}/workspace.yaml sets every key → .codex-profile "
        f"{workspace}/.codex-profile sets filesystem.protected_paths"
    )


# --- filesystem.unprotect and filesystem.on_planted_repo ----------------------------------


def test_a_definition_may_never_unprotect_a_path(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    path = define(workspace, "extends: workspace\nfilesystem:\n  unprotect: [.vscode]\n")
    error = refused_with(resolve, ConfigError)
    assert error.message.startswith(f"{path}:3: key 'filesystem.unprotect'"), error.message
    assert "may never unprotect" in error.message
    assert "a .codex-profile may only tighten" in error.hint


def test_a_definition_inherits_what_a_user_profile_unprotected_and_may_protect_it_again(
    store: ProfileStore, workspace: Path, write_profile: WriteProfile
) -> None:
    write_profile("ide", "extends: workspace\nfilesystem:\n  unprotect: [.vscode]\n")
    path = define(workspace, "extends: ide\n")
    inherited = store.define(path, path.read_text())
    assert ".vscode" not in inherited.protected_paths
    assert inherited.unprotected == (".vscode",)
    path = define(workspace, "extends: ide\nfilesystem:\n  protected_paths: [.vscode]\n")
    again = store.define(path, path.read_text())
    assert ".vscode" in again.protected_paths and again.unprotected == ()


def test_a_definition_may_tighten_on_planted_repo_to_quarantine(
    store: ProfileStore, workspace: Path
) -> None:
    path = define(workspace, "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n")
    assert store.define(path, path.read_text()).on_planted_repo == "quarantine"


def test_a_definition_may_not_relax_quarantine_to_warn(
    resolve: Callable[..., Resolution], workspace: Path, write_profile: WriteProfile
) -> None:
    write_profile("strict", "extends: workspace\nfilesystem:\n  on_planted_repo: quarantine\n")
    path = define(workspace, "extends: strict\nfilesystem:\n  on_planted_repo: warn\n")
    error = refused_with(resolve, ConfigError)
    assert error.message.startswith(f"{path}:3: key 'filesystem.on_planted_repo'")
    assert "loosens 'strict' (quarantine → warn)" in error.message


def test_a_definition_listing_fewer_protected_paths_still_protects_them_all(
    store: ProfileStore, workspace: Path
) -> None:
    path = define(workspace, "extends: workspace\nfilesystem:\n  protected_paths: [.git]\n")
    protected = store.define(path, path.read_text()).protected_paths
    assert {".git", ".codex", ".codex-profile", ".vscode"} <= set(protected)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("mcp:\n  allow_tools: [read, write]\n", "mcp.allow_tools", "admits write"),
        ("mcp:\n  allow_tools: []\n", "mcp.allow_tools", "admits every tool"),
        ("mcp:\n  deny_tools: []\n", "mcp.deny_tools", "drops denied tool(s) delete"),
    ],
)
def test_a_definition_cannot_widen_the_mcp_tools_it_inherits(
    resolve: Callable[..., Resolution],
    workspace: Path,
    write_profile: WriteProfile,
    text: str,
    key: str,
    problem: str,
) -> None:
    write_profile(
        "tools", "extends: offline\nmcp:\n  allow_tools: [read]\n  deny_tools: [delete]\n"
    )
    define(workspace, "extends: tools\n" + text)
    error = refused_with(resolve, ConfigError)
    assert f"key '{key}'" in error.message and problem in error.message, error.message
