"""Profile templates and `codex-box profiles new`: a user profile written only after it
loads like any other (it may only tighten its built-in), never over an existing one
without --force, never under a built-in's name, never with an over-broad domain."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.core.profile import Network
from orchestrator.profiles import templates
from orchestrator.profiles.store import ProfileStore
from tests.conftest import REPO, Ran

Cli = Callable[..., Ran]
WriteProfile = Callable[[str, str], Path]

EXPECTED = {
    "python-packages": ("workspace-net", ("pypi.org", "files.pythonhosted.org")),
    "node-packages": ("workspace-net", ("registry.npmjs.org", "registry.yarnpkg.com")),
    "github-read": (
        "net-read-only",
        (
            "github.com",
            "api.github.com",
            "codeload.github.com",
            "raw.githubusercontent.com",
            "objects.githubusercontent.com",
        ),
    ),
}


def test_the_shipped_templates_extend_what_they_say_and_allow_only_their_domains() -> None:
    found = templates.templates()
    assert {n: (t.extends, t.allow) for n, t in found.items()} == EXPECTED
    assert all(t.description and not t.deny for t in found.values())


def test_templates_live_inside_the_package_so_the_wheel_ships_them() -> None:
    assert templates.TEMPLATE_DIR.is_relative_to(REPO / "orchestrator")
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert wheel["targets"]["wheel"]["packages"] == ["orchestrator"]
    assert "exclude" not in wheel["targets"]["wheel"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_template_becomes_a_user_profile_that_loads(
    cli: Cli, store: ProfileStore, name: str
) -> None:
    ran = cli("profiles", "new", "mine", "--template", name)
    assert ran.returncode == 0, ran.stderr
    profile = ProfileStore(codex_home=store.user_dir().parent).get("mine")
    base, allow = EXPECTED[name]
    assert profile.extends == base and profile.allow_domains == allow
    assert profile.uses_egress_proxy()


def test_profiles_templates_lists_each_with_its_domains(cli: Cli) -> None:
    ran = cli("profiles", "templates")
    assert ran.returncode == 0
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("github-read") and "extends net-read-only" in lines[0]
    assert any(
        ln.startswith("python-packages") and "allow: pypi.org, files.pythonhosted.org" in ln
        for ln in lines
    )
    data = json.loads(cli("profiles", "templates", "--json").stdout)
    assert [t["name"] for t in data] == ["github-read", "node-packages", "python-packages"]
    assert data[2]["allow"] == ["pypi.org", "files.pythonhosted.org"]


def test_new_from_a_template_prints_the_path_the_file_and_the_effective_profile(
    cli: Cli, codex_home: Path
) -> None:
    ran = cli(
        "profiles", "new", "py", "--template", "python-packages", "--deny-domain", "upload.pypi.org"
    )
    assert ran.returncode == 0, ran.stderr
    path = codex_home / "profiles" / "py.yaml"
    assert ran.stdout.startswith(f"wrote {path}:\n")
    assert "effective profile 'py':" in ran.stdout
    assert "network.allow              [pypi.org, files.pythonhosted.org]" in ran.stdout
    assert "network.deny               [upload.pypi.org]" in ran.stdout
    text = path.read_text()
    assert text.startswith(
        "# Written by `codex-box profiles new py` from template python-packages."
    )
    profile = ProfileStore(codex_home=codex_home).get("py")
    assert profile.deny_domains == ("upload.pypi.org",) and profile.origin == str(path)
    assert [p.name for p in path.parent.iterdir()] == ["py.yaml"]  # no temporary file left


def test_new_from_a_built_in_with_flags(cli: Cli, codex_home: Path) -> None:
    ran = cli(
        "profiles",
        "new",
        "docs",
        "--from",
        "net-read-only",
        "--allow-domain",
        "docs.python.org",
        "--allow-domain",
        "*.python.org",
        "--inspect-tls",
        "--description",
        "read the docs",
    )
    assert ran.returncode == 0, ran.stderr
    profile = ProfileStore(codex_home=codex_home).get("docs")
    assert profile.network is Network.READ_ONLY and profile.inspect_tls
    assert profile.allow_domains == ("docs.python.org", "*.python.org")
    assert profile.description == "read the docs"


def test_new_from_a_user_profile_copies_its_settings(
    cli: Cli, codex_home: Path, write_profile: WriteProfile
) -> None:
    write_profile("py", "extends: workspace-net\nnetwork:\n  allow: [pypi.org]\n")
    ran = cli("profiles", "new", "py2", "--from", "py", "--allow-domain", "files.pythonhosted.org")
    assert ran.returncode == 0, ran.stderr
    profile = ProfileStore(codex_home=codex_home).get("py2")
    assert profile.extends == "workspace-net"
    assert profile.allow_domains == ("pypi.org", "files.pythonhosted.org")


def test_new_from_a_user_profile_keeps_its_mcp_tool_lists(
    cli: Cli, codex_home: Path, write_profile: WriteProfile
) -> None:
    write_profile("tools", "extends: offline\nmcp:\n  deny_tools: [delete_*]\n")
    ran = cli("profiles", "new", "tools2", "--from", "tools")
    assert ran.returncode == 0, ran.stderr
    assert ProfileStore(codex_home=codex_home).get("tools2").mcp_deny_tools == ("delete_*",)


def test_an_existing_profile_is_kept_without_force_and_replaced_with_it(
    cli: Cli, codex_home: Path
) -> None:
    assert cli("profiles", "new", "py", "--template", "python-packages").returncode == 0
    path = codex_home / "profiles" / "py.yaml"
    before = path.read_text()
    ran = cli("profiles", "new", "py", "--template", "node-packages")
    assert ran.returncode == 2 and f"{path} already exists — pass --force" in ran.stderr
    assert path.read_text() == before
    assert cli("profiles", "new", "py", "--template", "node-packages", "--force").returncode == 0
    assert "registry.npmjs.org" in path.read_text()


def test_write_never_replaces_a_file_that_appeared_meanwhile(
    store: ProfileStore, codex_home: Path
) -> None:
    made = templates.render(store, name="py", template="python-packages")
    made.path.parent.mkdir(parents=True, exist_ok=True)
    made.path.write_text("extends: offline\n")  # another writer got there first
    with pytest.raises(templates.UsageError, match="already exists"):
        templates.write(made, force=False)
    assert made.path.read_text() == "extends: offline\n"
    assert [p.name for p in made.path.parent.iterdir()] == ["py.yaml"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("offline", "--from", "workspace"), "'offline' is a built-in profile name"),
        (("read-only", "--from", "workspace"), "'read-only' is a built-in profile name"),
        (("../evil", "--from", "workspace"), "is not a plain name"),
        (("My Profile", "--from", "workspace"), "is not a plain name"),
        (("x",), "--from BASE or --template NAME"),
        (("x", "--from", "workspace", "--template", "node-packages"), "(one)"),
        (("x", "--from", "workspace-net", "--allow-domain", "*"), "allows every host"),
        (("x", "--from", "workspace-net", "--allow-domain", "*.com"), "is over-broad"),
        (("x", "--from", "workspace-net", "--deny-domain", "*.co.uk"), "is over-broad"),
        (("x", "--from", "workspace", "--allow-domain", "pypi.org"), "would have none"),
        (("x", "--from", "offline", "--inspect-tls"), "would have none"),
    ],
)
def test_refused_new_profiles_are_usage_errors_and_write_nothing(
    cli: Cli, codex_home: Path, args: tuple[str, ...], problem: str
) -> None:
    ran = cli("profiles", "new", *args)
    assert ran.returncode == 2, ran.stderr
    assert problem in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    assert not (codex_home / "profiles").exists()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("x", "--template", "python-package"), "did you mean 'python-packages'?"),
        (("x", "--from", "ofline"), "did you mean 'offline'?"),
    ],
)
def test_an_unknown_template_or_base_exits_125_with_a_suggestion(
    cli: Cli, args: tuple[str, ...], problem: str
) -> None:
    ran = cli("profiles", "new", *args)
    assert ran.returncode == 125 and problem in ran.stderr


def test_a_profile_from_trusted_keeps_needing_the_opt_in(cli: Cli, codex_home: Path) -> None:
    assert cli("profiles", "new", "t2", "--from", "trusted").returncode == 0
    assert ProfileStore(codex_home=codex_home).get("t2").requires_opt_in
