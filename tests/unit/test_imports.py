"""Import costs: the package and the launcher pull in nothing they do not need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
        "import orchestrator, orchestrator.cli.tree, orchestrator.runner.pipeline"
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


# What a launch loads, pinned (issue 19: start-up time is mostly imports). The command
# line runs for real in a fresh interpreter, twice (the first warms the policy cache),
# with only the kernel calls stubbed: the native probe and the launch itself.
HOT_PATH = r"""
import json, os, sys
from orchestrator.cli import app
argv = json.loads(sys.argv[1])
if argv[0] == "run":
    from orchestrator.backends import result
    from orchestrator.backends.native import backend, host, launch

    host.probe = lambda quick=False: host.NativeFacts(
        available=True, reason="stub", landlock_abi=7, user_namespaces=None, libseccomp=True)
    launch.Launch.execute = lambda self: result.finished(
        self.spec, backend="native", exit_code=0, duration_s=0.0, signal=None,
        timed_out=False, oom_killed=False)

def report(code):
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
    sys.stdout.flush()
    os._exit(0)

app._exit_now = report
sys.argv = ["codex-box", *argv]
app.main()
"""
NATIVE_RUN_MODULES = [
    "orchestrator.audit",
    "orchestrator.audit.chain",
    "orchestrator.audit.identity",
    "orchestrator.audit.log",
    "orchestrator.audit.patterns",
    "orchestrator.audit.quoting",
    "orchestrator.audit.records",
    "orchestrator.audit.redact",
    "orchestrator.audit.sinks",
    "orchestrator.backends",
    "orchestrator.backends.base",
    "orchestrator.backends.cgroups",
    "orchestrator.backends.native",
    "orchestrator.backends.native.backend",
    "orchestrator.backends.native.forking",
    "orchestrator.backends.native.host",
    "orchestrator.backends.native.launch",
    "orchestrator.backends.native.plan",
    "orchestrator.backends.pty_relay",
    "orchestrator.backends.result",
    "orchestrator.cli",
    "orchestrator.cli.app",
    "orchestrator.cli.argv_scan",
    "orchestrator.cli.fast",
    "orchestrator.cli.launch",
    "orchestrator.cli.output",
    "orchestrator.compile",
    "orchestrator.compile.deny_read",
    "orchestrator.compile.environment",
    "orchestrator.compile.placeholders",
    "orchestrator.compile.spec",
    "orchestrator.compile.write_roots",
    "orchestrator.core",
    "orchestrator.core.brokered",
    "orchestrator.core.domains",
    "orchestrator.core.errors",
    "orchestrator.core.failpoints",  # the fault suite's kill points: one env lookup
    "orchestrator.core.log",
    "orchestrator.core.options",
    "orchestrator.core.paths",
    "orchestrator.core.profile",
    "orchestrator.core.resources",
    "orchestrator.core.secrets",
    "orchestrator.core.spec",
    "orchestrator.host",
    "orchestrator.host.gitconfig",
    "orchestrator.host.gitenv",
    "orchestrator.host.githooks",
    "orchestrator.host.gitrepo",
    "orchestrator.host.hostinfo",
    "orchestrator.host.user",
    "orchestrator.policy",
    "orchestrator.policy.cache",
    "orchestrator.policy.cache_codec",
    "orchestrator.policy.context",
    "orchestrator.policy.decision",
    "orchestrator.policy.engine",
    "orchestrator.policy.gate",
    "orchestrator.policy.getopt",
    "orchestrator.policy.loader",
    "orchestrator.policy.lookup",
    "orchestrator.policy.optin",
    "orchestrator.policy.paths",
    "orchestrator.policy.rules",
    "orchestrator.policy.shell",
    "orchestrator.policy.wrappers",
    "orchestrator.profiles",
    "orchestrator.profiles.compiled",
    "orchestrator.profiles.definition",
    "orchestrator.profiles.deny_read",
    "orchestrator.profiles.parser",
    "orchestrator.profiles.schema",
    "orchestrator.profiles.store",
    "orchestrator.profiles.yaml_text",
    "orchestrator.resolve",
    "orchestrator.resolve.elevation",
    "orchestrator.resolve.grant_files",
    "orchestrator.resolve.precedence",
    "orchestrator.resolve.profile_file",
    "orchestrator.runner",
    "orchestrator.runner.context",
    "orchestrator.runner.pipeline",
    "orchestrator.runner.postrun",
    "orchestrator.runner.selection",
    "orchestrator.sandbox",
    "orchestrator.sandbox.linux",
    "orchestrator.sandbox.linux.caps",
    "orchestrator.sandbox.linux.filesystem",
    "orchestrator.sandbox.linux.landlock",
    "orchestrator.sandbox.linux.launcher",
    "orchestrator.sandbox.linux.libc",
    "orchestrator.sandbox.linux.masks",
    "orchestrator.sandbox.linux.mounts",
    "orchestrator.sandbox.linux.pinning",
    "orchestrator.sandbox.linux.proctree",
    "orchestrator.sandbox.linux.seccomp",
    # A forked launcher imports nothing after the fork, so pid 1's session loop (and
    # its framing) is loaded with the launcher, though a one-shot run never serves it.
    "orchestrator.sandbox.linux.session_root",
    "orchestrator.sandbox.linux.supervisor",
    "orchestrator.sandbox.linux.wire",
    "orchestrator.settings",
    "orchestrator.settings.config",
]
NEVER_ON_THE_HOT_PATH = (
    "typer", "click", "rich", "yaml", "loguru", "starlark", "tree_sitter", "tree_sitter_bash",
    "docker", "podman", "kubernetes", "requests", "urllib3", "asyncio", "ssl", "cryptography",
    "idna", "publicsuffixlist", "orchestrator.netproxy", "orchestrator.hardening",
    "orchestrator.backends.docker", "orchestrator.backends.podman",
    "orchestrator.backends.containers", "orchestrator.backends.kubernetes",
)


def loaded_by(argv: list[str], tmp_path: Path) -> set[str]:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CODEX_HOME": str(tmp_path / "cx")}
    modules: set[str] = set()
    for _ in range(2):  # the second run: the compiled policy comes from its cache
        proc = subprocess.run([sys.executable, "-c", HOT_PATH, json.dumps(argv)], cwd=workspace,
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        ran = json.loads(proc.stdout.splitlines()[-1])
        assert ran["code"] == 0, proc.stderr
        modules = set(ran["modules"])
    return modules


def forbidden_in(modules: set[str], extra: tuple[str, ...] = ()) -> set[str]:
    return {m for m in modules for bad in (*NEVER_ON_THE_HOT_PATH, *extra)
            if m == bad or m.startswith(bad + ".")}


def test_a_native_run_loads_only_its_own_path(tmp_path: Path) -> None:
    modules = loaded_by(["run", "--backend", "native", "--profile", "offline", "--", "true"],
                        tmp_path)
    assert "orchestrator.sandbox.linux.launcher" in modules  # the run really got there
    assert not forbidden_in(modules, extra=("orchestrator.cli.tree", "orchestrator.cli.run",
                                            "orchestrator.policy.loader_starlark"))
    ours = sorted(m for m in modules if m.startswith("orchestrator."))
    assert ours == NATIVE_RUN_MODULES, "a new module on the launch path: is it needed there?"


def test_check_builds_only_its_own_verb(tmp_path: Path) -> None:
    modules = loaded_by(["check", "--", "true"], tmp_path)
    assert "typer" in modules and "orchestrator.cli.policy" in modules
    other_verbs = ("orchestrator.cli.run", "orchestrator.cli.profiles", "orchestrator.cli.audit",
                   "orchestrator.cli.elevate", "orchestrator.cli.approvals",
                   "orchestrator.cli.system", "orchestrator.backends.native",
                   "orchestrator.sandbox.linux.launcher")
    allowed_there = ("typer", "click", "rich")
    assert not {m for m in forbidden_in(modules, extra=other_verbs)
                if m.split(".")[0] not in allowed_there}


# ``codex-box exec`` as users run it, with every import it makes listed (-X importtime).
EXEC_MAIN = "import sys; from orchestrator.cli.app import main; sys.argv[0] = 'codex-box'; main()"


def imported_by(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", EXEC_MAIN, *argv],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    return proc.returncode, names


def test_exec_loads_no_typer_no_runner_and_no_policy(tmp_path: Path) -> None:
    """An exec's start-up is reaching the keeper, which already holds the profile, the
    policy and the audit log: the client loads none of them (nor Typer). Checked against
    a live native session when this host can make one, else against an unknown one."""
    home = tmp_path / "cx"
    home.mkdir()
    (home / "config.toml").write_text('[policy]\nmode = "audit-only"\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CODEX_HOME": str(home)}
    codex_box = [sys.executable, "-c", EXEC_MAIN]
    started = subprocess.run([*codex_box, "session", "start", "--backend", "native",
                              "--profile", "offline"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    session = started.stdout.strip() if started.returncode == 0 else "000000000000"
    try:
        code, modules = imported_by(["exec", "-s", session, "--", "true"], env, tmp_path)
    finally:
        if started.returncode == 0:
            subprocess.run([*codex_box, "session", "stop", session], cwd=tmp_path, env=env,
                           capture_output=True, timeout=120, check=False)
    assert code == (0 if started.returncode == 0 else 125), started.stderr
    assert "orchestrator.runner.sessions.client" in modules  # the exec really got there
    heavy = {m for m in modules for bad in ("typer", "click", "rich", "orchestrator.policy",
                                            "orchestrator.runner.pipeline")
             if m == bad or m.startswith(bad + ".")}
    assert not heavy, f"exec loads {sorted(heavy)}"
    # Control: the same listing does see Typer where a verb needs it.
    _, listed = imported_by(["session", "ls"], env, tmp_path)
    assert "typer" in listed


WEB = ("fastapi", "starlette", "uvicorn", "pydantic", "prometheus_client", "anyio")


def test_the_cli_and_the_api_client_load_no_web_framework() -> None:
    """Only `codex-box serve` pays for the server's stack: a run, an exec or a client
    through `--server` (orchestrator.client) loads none of it."""
    loaded = modules_after(
        "import orchestrator, orchestrator.cli.tree, orchestrator.cli.remote, orchestrator.client"
    )
    assert {"orchestrator", "http"} <= loaded
    assert not loaded & set(WEB), loaded & set(WEB)
    assert set(WEB) - {"anyio"} <= modules_after("import orchestrator.serve.server")
