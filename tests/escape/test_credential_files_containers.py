"""filesystem.deny_read on the container backends: they see only what they bind, so a
profile's entries apply inside the workspace — ``**/.env`` (a file: bound to /dev/null)
and ``**/secrets`` (a directory: an empty tmpfs) show nothing in the container, while
the rest of the workspace reads as usual, and the host keeps its bytes."""

from __future__ import annotations

import pytest

MARK = "codex-box-credential-marker"
SCRIPT = (
    "cat README; echo; cat .env sub/.env 2>&1; ls -A secrets; cat secrets/key 2>&1; "
    "echo x > .env 2>&1; echo end"
)


@pytest.fixture(params=("docker", "podman"))
def backend(request: pytest.FixtureRequest) -> str:  # overrides conftest's: engines only
    request.getfixturevalue(f"{request.param}_available")
    return str(request.param)


@pytest.mark.parametrize("profile", ("offline", "workspace"))
def test_env_files_and_a_secrets_directory_named_by_a_profile_are_masked(
    box, profile, workspace, codex_home
) -> None:
    (codex_home / "profiles").mkdir()
    (codex_home / "profiles" / "masked.yaml").write_text(
        f'extends: {profile}\nfilesystem:\n  deny_read: ["**/.env", "**/secrets"]\n'
    )
    (workspace / "README").write_text("workspace-readable\n")
    (workspace / ".env").write_text(MARK)
    (workspace / "sub").mkdir()
    (workspace / "sub" / ".env").write_text(MARK)
    (workspace / "secrets").mkdir()
    (workspace / "secrets" / "key").write_text(MARK)
    ran = box("masked", "sh", "-c", SCRIPT, image="codex-box/test")
    assert "end" in ran.stdout, ran.stdout + ran.stderr
    assert "workspace-readable" in ran.stdout, "positive control: the workspace is bound"
    assert MARK not in ran.stdout + ran.stderr
    for path in (workspace / ".env", workspace / "sub" / ".env", workspace / "secrets" / "key"):
        assert path.read_text() == MARK, f"{path} changed on the host"
