"""Shared fixtures.

Kernel-dependent tests get their marker from the fixture they use (``native``): skipped
when the kernel lacks a feature locally, a *failure* when CODEX_BOX_REQUIRE_ENGINES=1
(as in CI), so a missing feature can never turn into a quietly green suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REQUIRE = os.environ.get("CODEX_BOX_REQUIRE_ENGINES") == "1"
# The console script, as users run it (`python -m` would put the cwd on sys.path).
CODEX_BOX = str(Path(sys.executable).parent / "codex-box")
# A Python for commands *inside* sandboxes: the system's, because the repository (and
# its venv) may live under /tmp, which write profiles replace with a private tmpfs.
SANDBOX_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


AUDIT_ONLY_CONFIG = '[policy]\nmode = "audit-only"\n'


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _clean_env(home: Path, codex_home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TERM")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), CODEX_HOME=str(codex_home), PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def codex_home(home: Path) -> Path:
    """A fresh CODEX_HOME whose config puts the execution policy in audit-only mode:
    the sandbox suites test the sandbox alone (their attacks are commands the policy
    would refuse before any sandbox started). tests/unit/test_policy_*.py test the policy
    in enforce mode, by flag or by their own config."""
    path = home / ".codex"
    path.mkdir()
    (path / "config.toml").write_text(AUDIT_ONLY_CONFIG)
    return path


AUDIT_SCHEMA = REPO / "orchestrator" / "audit" / "record.schema.json"


def audit_schema_errors(codex_home: Path) -> list[str]:
    """Every record codex-box wrote under ``codex_home`` checked against the shipped
    JSON Schema (hand-written test lines, without ``seq``, are not codex-box's)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(AUDIT_SCHEMA.read_text()))
    errors = []
    for log in sorted(p for p in codex_home.glob("audit.log*") if p.is_file()):
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "seq" in record:
                found = validator.iter_errors(record)
                errors += [f"{log.name}:{number}: {e.message}" for e in found]
    return errors


@pytest.fixture(autouse=True)
def _audit_records_match_the_schema(request: pytest.FixtureRequest) -> Iterator[None]:
    # Asked for before the test runs, so it is torn down after this check.
    home = request.getfixturevalue("codex_home") if "codex_home" in request.fixturenames else None
    yield
    if home is not None:
        errors = audit_schema_errors(home)
        assert not errors, "audit records that break the schema:\n" + "\n".join(errors[:10])


@contextlib.contextmanager
def small_tmpfs(at: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``at`` (root only): a disk that fills or goes
    read-only on demand, without touching the machine's real filesystems."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    at.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(at)], check=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", "-l", str(at)], check=True)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    path.mkdir()
    return path


@pytest.fixture
def base_env(home: Path, codex_home: Path) -> dict[str, str]:
    return _clean_env(home, codex_home)


@pytest.fixture
def cli(base_env: dict[str, str], workspace: Path) -> Callable[..., Ran]:
    """Run the installed CLI (``.venv/bin/codex-box``) in a subprocess, cwd = workspace."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None, timeout: float = 60) -> Ran:
        proc = subprocess.run(
            [CODEX_BOX, *args],
            cwd=cwd or workspace, env={**base_env, **(env or {})}, input=input,
            capture_output=True, text=True, timeout=timeout,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    return run


def _native_missing() -> str | None:
    if not sys.platform.startswith("linux"):
        return "not Linux"
    from orchestrator.backends.native.backend import LinuxBackend

    availability = LinuxBackend().availability()
    return None if availability.ok else availability.reason


@pytest.fixture(scope="session")
def native_available() -> Iterator[None]:
    missing = _native_missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"native sandbox required (CODEX_BOX_REQUIRE_ENGINES=1) but: {missing}")
        pytest.skip(f"native sandbox unavailable: {missing}")
    yield


@pytest.fixture
def sandbox(native_available: None, cli: Callable[..., Ran]) -> Callable[..., Ran]:
    """``sandbox("workspace", "sh", "-c", "...")`` runs through the CLI on the native backend."""

    def run(profile: str, *argv: str, flags: tuple[str, ...] = (), **kw: object) -> Ran:
        return cli("run", "--backend", "native", "--profile", profile, *flags, "--", *argv,
                   **kw)  # type: ignore[arg-type]

    return run


BACKENDS = ("native", "docker", "podman")
TEST_IMAGES = ("codex-box/base", "codex-box/test")


def _docker_missing() -> str | None:
    from orchestrator.backends.containers.engine_api import Endpoint
    from orchestrator.core.spec import DEFAULT_DOCKER_HOST

    endpoint = Endpoint(os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)
    try:
        endpoint.ping()
    except OSError as exc:
        return f"no Docker engine at {endpoint.url} ({exc}); run scripts/start-dockerd.sh"
    missing = [image for image in TEST_IMAGES if not endpoint.has_image(image)]
    return f"images missing in Docker: {', '.join(missing)}; run `make images`" if missing else None


@pytest.fixture(scope="session")
def docker_available() -> Iterator[None]:
    missing = _docker_missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"Docker required (CODEX_BOX_REQUIRE_ENGINES=1) but: {missing}")
        pytest.skip(missing)
    yield


def _podman_missing() -> str | None:
    from orchestrator.backends.containers.engine_api import Endpoint
    from orchestrator.backends.podman.host import LIBPOD
    from orchestrator.compile.spec import podman_host

    endpoint = Endpoint(podman_host(os.environ, uid=os.getuid()))
    try:
        endpoint.ping()
    except OSError as exc:
        return (f"no Podman service at {endpoint.url} ({exc}); run scripts/start-podman.sh")
    missing = [image for image in TEST_IMAGES
               if endpoint.request("GET", f"{LIBPOD}/images/{image.replace('/', '%2F')}/exists")
               .status != 204]
    return f"images missing in Podman: {', '.join(missing)}; run `make images`" if missing else None


@pytest.fixture(scope="session")
def podman_available() -> Iterator[None]:
    missing = _podman_missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"Podman required (CODEX_BOX_REQUIRE_ENGINES=1) but: {missing}")
        pytest.skip(missing)
    yield


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each behavioural test runs on every backend; an absent engine skips locally and
    fails in CI."""
    request.getfixturevalue(f"{request.param}_available")
    return str(request.param)


@pytest.fixture
def via() -> str:
    """How ``box`` runs a command: ``run`` (one-shot). tests/escape/conftest.py
    overrides it with both ``run`` and ``exec`` (in a session), so every attack there is
    tried through a session as well."""
    return "run"


# Flags that fix a session when it starts (``session start``); the rest go to ``exec``.
SESSION_FLAGS = {"--profile", "--backend", "--image", "--memory", "--pids", "--cpus",
                 "--policy-mode", "--workspace"}
SESSION_SWITCHES = {"--yes-i-trust-this-workspace"}
EXEC_FLAGS = {"--env", "-e", "--timeout", "--cwd"}
EXEC_SWITCHES = {"--approve", "--json", "--detach"}


def split_flags(flags: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``run``'s flags → (``session start``'s, ``exec``'s). An unknown flag fails the
    test: silently dropping it could turn an attack into a no-op."""
    start: list[str] = []
    exec_: list[str] = []
    items = list(flags)
    while items:
        flag = items.pop(0)
        name, has_value, _ = flag.partition("=")
        if name in SESSION_SWITCHES:
            start.append(flag)
        elif name in EXEC_SWITCHES:
            exec_.append(flag)
        elif name in SESSION_FLAGS or name in EXEC_FLAGS:
            into = start if name in SESSION_FLAGS else exec_
            into.append(flag)
            if not has_value:
                into.append(items.pop(0))
        else:
            raise AssertionError(f"box(via='exec') does not know run's flag {flag!r}")
    return tuple(start), tuple(exec_)


@pytest.fixture
def box(backend: str, via: str, cli: Callable[..., Ran]) -> Iterator[Callable[..., Ran]]:
    """``box("workspace", "sh", "-c", "...")`` on the current backend. Containers run
    codex-box/base unless ``image=`` says otherwise (codex-box/test is busybox only).
    With ``via == "exec"`` the command runs through ``codex-box exec`` in a session
    started for it (one per profile and session flags, stopped after the test); a
    session that could not start answers as ``run`` would have: its exit code and
    stderr."""
    sessions: dict[tuple[str, ...], str] = {}
    started_env: dict[tuple[str, ...], dict[str, str] | None] = {}

    def run(profile: str, *argv: str, flags: tuple[str, ...] = (), image: str | None = None,
            **kw: object) -> Ran:
        extra = ("--image", image) if image and backend != "native" else ()
        if via == "run":
            return cli("run", "--backend", backend, "--profile", profile, *extra, *flags,
                       "--", *argv, **kw)  # type: ignore[arg-type]
        start_flags, exec_flags = split_flags(tuple(flags))
        key = (profile, *extra, *start_flags)
        env = kw.get("env")
        if key not in sessions:
            started = cli("session", "start", "--backend", backend, "--profile", profile,
                          *extra, *start_flags, env=env, cwd=kw.get("cwd"))  # type: ignore[arg-type]
            if started.returncode != 0:
                return started
            sessions[key] = started.stdout.strip()
            started_env[key] = env  # type: ignore[assignment]
        return cli("exec", "--session", sessions[key], *exec_flags, "--", *argv,
                   **kw)  # type: ignore[arg-type]

    run.backend = backend  # type: ignore[attr-defined]
    run.via = via  # type: ignore[attr-defined]
    yield run
    for key, session_id in sessions.items():
        stopped = cli("session", "stop", session_id, env=started_env[key])
        assert stopped.returncode == 0, f"session {session_id} did not stop: {stopped.stderr}"


# --- Which backends this leg has (CODEX_BOX_BACKENDS) ---------------------------------
# CI runs the suite twice: as root with every backend, and as a normal user (issue 21,
# scripts/ci-nonroot.sh) where there is no Docker (the user may not reach the root
# engine's socket) and Podman is only rootless. CODEX_BOX_BACKENDS=native[,docker]
# [,podman] names the backends a leg has (default: all three). A test that needs a
# backend the leg does not name is *deselected* — reported as not part of this leg,
# counted apart from skips — never skipped, so CODEX_BOX_REQUIRE_ENGINES=1 still fails
# when a backend the leg does name is missing.


def _leg_backends() -> frozenset[str]:
    raw = os.environ.get("CODEX_BOX_BACKENDS", "")
    if not raw.strip():
        return frozenset(BACKENDS)
    named = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if unknown := named - set(BACKENDS):
        raise pytest.UsageError(
            f"CODEX_BOX_BACKENDS names {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
    return named


LEG_BACKENDS = _leg_backends()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_backend_outside_leg(name): runs only where CODEX_BOX_BACKENDS "
        "leaves NAME out (a refusal that only exists where the backend cannot work)")


def _backends_needed(item: pytest.Item) -> set[str]:
    """The backends ``item`` runs on: its ``*_available`` fixtures, and the value of a
    ``backend``/``engine`` parameter (those fixtures ask for ``*_available`` only at
    run time, through ``getfixturevalue``)."""
    names = set(getattr(item, "fixturenames", ()))
    needed = {b for b in BACKENDS if f"{b}_available" in names}
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        needed |= {str(callspec.params[key]) for key in ("backend", "engine")
                   if callspec.params.get(key) in BACKENDS}
    return needed


def _outside_leg(item: pytest.Item) -> str | None:
    if missing := sorted(_backends_needed(item) - LEG_BACKENDS):
        return f"needs {', '.join(missing)}"
    marker = item.get_closest_marker("needs_backend_outside_leg")
    if marker is not None and marker.args[0] in LEG_BACKENDS:
        return f"only where {marker.args[0]} is not in the leg"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        (dropped if _outside_leg(item) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    _DESELECTED.update(item.nodeid for item in dropped)
    if hasattr(config, "workeroutput"):  # an xdist worker: tell the controller
        config.workeroutput["codex_box_deselected"] = sorted(_DESELECTED)


_DESELECTED: set[str] = set()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """(xdist's controller) The workers' deselections: the controller collects nothing,
    so without this its summary would not count them."""
    _DESELECTED.update(getattr(node, "workeroutput", {}).get("codex_box_deselected", ()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if set(BACKENDS) != LEG_BACKENDS:
        left_out = ", ".join(b for b in BACKENDS if b not in LEG_BACKENDS)
        terminalreporter.write_line(
            f"CODEX_BOX_BACKENDS={','.join(b for b in BACKENDS if b in LEG_BACKENDS)}: "
            f"{len(_DESELECTED)} deselected, not part of this leg (they need {left_out}); "
            "not skips")
    elif _DESELECTED:
        terminalreporter.write_line(
            f"{len(_DESELECTED)} deselected: they run only where a backend is left out of "
            "the leg (CODEX_BOX_BACKENDS)")

# The fixtures of a real `codex-box serve` (tests/serve_helpers.py), for any suite.
pytest_plugins = ["tests.serve_helpers", "tests.devcontainer_cli"]
