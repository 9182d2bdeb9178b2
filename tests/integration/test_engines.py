"""What both container engines must do the same way, whatever the image says."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

IMAGE = "codex-box/entrypoint-test"


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    """An engine holding IMAGE: codex-box/test with an ENTRYPOINT and a CMD of its own."""
    name = str(request.param)
    request.getfixturevalue(f"{name}_available")
    tar = tmp_path_factory.mktemp("image") / "rootfs.tar"
    box = subprocess.run([name, "create", "codex-box/test", "true"], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        subprocess.run([name, "export", "-o", str(tar), box], check=True)
    finally:
        subprocess.run([name, "rm", box], capture_output=True, check=False)
    subprocess.run([name, "import", "--change", 'ENTRYPOINT ["/bin/echo", "IMAGE-ENTRYPOINT"]',
                    "--change", 'CMD ["IMAGE-CMD"]', str(tar), IMAGE],
                   capture_output=True, check=True)
    yield name
    subprocess.run([name, "rmi", IMAGE], capture_output=True, check=False)


def test_an_images_entrypoint_never_wraps_the_command(engine, cli, workspace: Path):
    ran = cli("run", "--backend", engine, "--image", IMAGE, "--profile", "offline", "--",
              "sh", "-c", 'echo "ran:$0:$*"', "zero", "one", "two")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "ran:zero:one two\n"
    assert "IMAGE-ENTRYPOINT" not in ran.stdout and "IMAGE-CMD" not in ran.stdout
