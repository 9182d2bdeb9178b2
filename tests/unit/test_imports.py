"""Import costs: the package and the launcher pull in nothing they do not need."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ENGINE_SDKS = ("docker", "podman", "kubernetes")


def modules_after(imports: str) -> set[str]:
    """The top-level names in sys.modules after ``imports``, in a fresh interpreter."""
    script = "\n".join(
        [
            "import json, sys",
            imports,
            'print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))',
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def test_the_engine_sdks_are_installed_so_the_import_checks_mean_something() -> None:
    assert {"docker", "podman"} <= modules_after("import docker, podman")


def test_importing_the_package_cli_and_runner_pulls_in_no_engine_sdk() -> None:
    loaded = modules_after(
        "import orchestrator, orchestrator.cli.app, orchestrator.runner.pipeline"
    )
    assert {"orchestrator", "typer"} <= loaded  # the imports really happened
    assert not loaded & set(ENGINE_SDKS)


def test_loading_the_native_backend_pulls_in_no_engine_sdk() -> None:
    loaded = modules_after(
        "from orchestrator.backends import base\nfor name in base.REGISTRY: base.load(name)"
    )
    assert not loaded & set(ENGINE_SDKS)


@pytest.mark.parametrize("heavy", ["typer", "loguru", "yaml", "click", "rich"])
def test_the_native_launcher_imports_only_the_standard_library_and_native(heavy: str) -> None:
    loaded = modules_after("import orchestrator.sandbox.linux.launcher")
    assert "orchestrator" in loaded
    assert heavy not in loaded
