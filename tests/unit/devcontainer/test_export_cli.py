"""``codex-box devcontainer export``: the files it writes, where, the one-line errors and
exit codes, what it protects inside a writable workspace."""

from __future__ import annotations

import dataclasses
import json
import socketserver
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import json5
import pytest

from orchestrator.core.errors import ConfigError, Refused
from orchestrator.core.profile import DEFAULT_PROTECTED
from orchestrator.core.resources import seccomp_dir
from orchestrator.devcontainer.export_files import export, protected_names
from orchestrator.profiles.store import ProfileStore
from tests.conftest import Ran

STORE = ProfileStore(codex_home=Path("/nonexistent-codex-home"))


class FakeEngine:
    """A Docker API on a unix socket that knows ``images`` (name: its labels) and
    answers 404 for any other; ``asked``: the image names asked about."""

    def __init__(self, socket: Path) -> None:
        self.images: dict[str, dict[str, str]] = {
            "codex-box/base": {},
            "debian": {"devcontainer.metadata": '[{"remoteUser": "root"}]'},
        }
        self.asked: list[str] = []
        engine = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline().decode()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                path = line.split()[1]
                name = urllib.parse.unquote(path.removeprefix("/images/").removesuffix("/json"))
                engine.asked.append(name)
                found = engine.images.get(name)
                body = json.dumps({"Config": {"Labels": found}} if found is not None else {})
                status = "200 OK" if found is not None else "404 Not Found"
                self.wfile.write(
                    f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
                )

        self.server = socketserver.ThreadingUnixStreamServer(str(socket), Handler)
        self.server.daemon_threads = True
        self.url = f"unix://{socket}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeEngine]:
    fake = FakeEngine(tmp_path / "docker.sock")
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def cli(cli: Callable[..., Ran], engine: FakeEngine) -> Callable[..., Ran]:
    """The CLI, its Docker the fake one."""

    def run(*args: str, env: dict[str, str] | None = None, **kw: object) -> Ran:
        return cli(*args, env={"DOCKER_HOST": engine.url, **(env or {})}, **kw)

    return run


def test_a_new_file_and_its_seccomp_json_beside_it(
    cli: Callable[..., Ran], workspace: Path
) -> None:
    done = cli("devcontainer", "export", "--profile", "offline")
    assert done.returncode == 0, done.stderr
    file = workspace / ".devcontainer" / "devcontainer.json"
    seccomp = workspace / ".devcontainer" / "codex-box-seccomp-offline.json"
    assert f"wrote {file} for profile offline" in done.stdout
    assert seccomp.read_bytes() == (seccomp_dir() / "offline.json").read_bytes()
    config = json5.loads(file.read_text())
    assert config["image"] == "codex-box/base"
    ref = "--security-opt=seccomp=${localWorkspaceFolder}/.devcontainer/"
    ref += "codex-box-seccomp-offline.json"
    assert ref in config["runArgs"] and "--network=none" in config["runArgs"]
    assert str(workspace) not in file.read_text()  # nothing of this machine's paths


def test_an_existing_file_needs_merge(cli: Callable[..., Ran], workspace: Path) -> None:
    (workspace / ".devcontainer.json").write_text(
        '// mine\n{"image": "debian", "privileged": true}'
    )
    refused = cli("devcontainer", "export", "-p", "workspace")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"codex-box: {workspace}/.devcontainer.json exists — pass --merge to merge the profile "
        "into it, or --output"
    ]
    merged = cli("devcontainer", "export", "-p", "workspace", "--merge", "--json")
    assert merged.returncode == 0, merged.stderr
    report = json.loads(merged.stdout)
    assert report["file"] == str(workspace / ".devcontainer.json")
    assert report["seccomp"] == str(workspace / "codex-box-seccomp-workspace.json")
    assert "removed privileged: a privileged container is the host's root" in report["notes"]
    text = (workspace / ".devcontainer.json").read_text()
    assert "// mine" in text and json5.loads(text)["image"] == "debian"
    # Both files the export wrote are read-only inside the container, as is every
    # protected name (.devcontainer.json among them).
    assert json5.loads(text)["mounts"] == [
        f"type=bind,source=${{localWorkspaceFolder}}/{name},"
        f"target=/workspaces/${{localWorkspaceFolderBasename}}/{name},readonly"
        for name in (*DEFAULT_PROTECTED, "codex-box-seccomp-workspace.json")
    ]


@pytest.mark.parametrize(
    ("profile", "words"),
    [("trusted", "profile trusted is no sandbox"), ("net-read-only", "profile net-read-only")],
)
def test_a_profile_devcontainer_up_cannot_enforce_is_126(
    cli: Callable[..., Ran], workspace: Path, profile: str, words: str
) -> None:
    done = cli("devcontainer", "export", "--profile", profile)
    assert done.returncode == 126
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    assert not (workspace / ".devcontainer").exists()


def test_an_output_outside_the_workspace_names_its_seccomp_json_absolutely(
    cli: Callable[..., Ran], workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "elsewhere" / "dc.json"
    done = cli("devcontainer", "export", "-p", "offline", "-o", str(out))
    assert done.returncode == 0, done.stderr
    args = json5.loads(out.read_text())["runArgs"]
    assert f"--security-opt=seccomp={out.parent}/codex-box-seccomp-offline.json" in args
    assert "named by its absolute path" in done.stdout


def test_an_unknown_profile_and_a_broken_file_are_one_line_each(
    cli: Callable[..., Ran], workspace: Path
) -> None:
    unknown = cli("devcontainer", "export", "-p", "ofline")
    assert unknown.returncode == 125 and "offline" in unknown.stderr
    (workspace / ".devcontainer.json").write_text('{"image": ')
    broken = cli("devcontainer", "export", "-p", "offline", "--merge")
    assert broken.returncode == 125 and "not valid JSONC" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1


def test_protected_names_are_all_the_profiles_and_the_exports_own(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".envrc").write_text("")
    out = tmp_path / "conf" / "devcontainer.json"
    assert protected_names(STORE.get("workspace"), tmp_path, (out,)) == (*DEFAULT_PROTECTED, "conf")
    assert protected_names(STORE.get("offline"), tmp_path, (out,)) == ()
    # A missing nested name: its first missing component is what is made and bound.
    nested = dataclasses.replace(STORE.get("workspace"), protected_paths=(".git/hooks", "a/b/c"))
    assert protected_names(nested, tmp_path, ()) == (".git/hooks", "a")


def test_a_symlinked_protected_name_is_refused(tmp_path: Path) -> None:
    """A bind would follow it, and the container could replace the link itself."""
    (tmp_path / ".vscode").symlink_to("/etc")
    with pytest.raises(Refused, match=r"protected name \.vscode is a symlink"):
        protected_names(STORE.get("workspace"), tmp_path, ())


def test_missing_protected_names_get_permanent_placeholders_bound_read_only(
    cli: Callable[..., Ran], workspace: Path
) -> None:
    (workspace / ".envrc").write_text("mine\n")
    done = cli("devcontainer", "export", "-p", "workspace")
    assert done.returncode == 0, done.stderr
    assert "(empty, permanent)" in done.stdout
    for name in DEFAULT_PROTECTED:
        path = workspace / name
        assert path.is_file() if name in (".codex-profile", ".mcp.json", ".devcontainer.json",
                                          ".envrc") else path.is_dir(), name  # fmt: skip
    assert (workspace / ".envrc").read_text() == "mine\n"  # what was there stays
    assert (workspace / ".devcontainer.json").read_bytes() == b""
    mounts = json5.loads((workspace / ".devcontainer" / "devcontainer.json").read_text())["mounts"]
    assert [m.split(",")[1].removeprefix("source=${localWorkspaceFolder}/") for m in mounts] == [
        *DEFAULT_PROTECTED
    ]
    assert all(m.endswith(",readonly") for m in mounts)
    again = cli("devcontainer", "export", "-p", "workspace", "--merge")
    assert again.returncode == 0, again.stderr
    assert "(empty, permanent)" not in again.stdout


def test_a_devcontainer_folder_that_resolves_outside_the_workspace_is_refused(
    cli: Callable[..., Ran], workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / ".devcontainer").symlink_to(outside)
    for flags in ((), ("-o", ".devcontainer/devcontainer.json")):
        done = cli("devcontainer", "export", "-p", "workspace", *flags)
        assert done.returncode == 126, done.stderr
        assert "outside the workspace" in done.stderr and len(done.stderr.splitlines()) == 1
    assert list(outside.iterdir()) == []
    # A folder inside the workspace reached through a symlink: the container could
    # rewrite the export at the link's target, which no bind covers.
    (workspace / "real").mkdir()
    (workspace / "conf").symlink_to("real")
    done = cli("devcontainer", "export", "-p", "workspace", "-o", "conf/devcontainer.json")
    assert done.returncode == 126 and "conf is a symlink" in done.stderr
    assert list((workspace / "real").iterdir()) == []


def test_a_symlinked_devcontainer_json_is_replaced_not_read_through(
    cli: Callable[..., Ran], workspace: Path, tmp_path: Path
) -> None:
    host_file = tmp_path / "config.json"
    host_file.write_text('{"auths": {"r.example": {"auth": "c2VjcmV0"}}}')
    (workspace / ".devcontainer").mkdir()
    link = workspace / ".devcontainer" / "devcontainer.json"
    link.symlink_to(host_file)
    assert cli("devcontainer", "export", "-p", "workspace").returncode == 2  # exists
    done = cli("devcontainer", "export", "-p", "workspace", "--merge")
    assert done.returncode == 0, done.stderr
    assert "replaced the symlink" in done.stdout
    assert not link.is_symlink() and "auths" not in link.read_text()
    assert host_file.read_text() == '{"auths": {"r.example": {"auth": "c2VjcmV0"}}}'


def test_the_image_is_vetted_by_its_metadata_label(
    cli: Callable[..., Ran], workspace: Path, engine: FakeEngine
) -> None:
    engine.images["loose"] = {"devcontainer.metadata": '[{"capAdd": ["SYS_ADMIN"]}]'}
    (workspace / ".devcontainer.json").write_text('{"image": "loose"}')
    done = cli("devcontainer", "export", "-p", "offline", "--merge")
    assert done.returncode == 126 and "asks for capAdd" in done.stderr
    (workspace / ".devcontainer.json").write_text('{"image": "somewhere/else:1"}')
    done = cli("devcontainer", "export", "-p", "offline", "--merge")
    assert done.returncode == 126 and "not in docker" in done.stderr
    assert "codex-box devcontainer check" in done.stderr
    assert engine.asked[-1] == "somewhere/else:1"
    gone = cli("devcontainer", "export", "-p", "offline", "--merge",
               env={"DOCKER_HOST": "unix:///nonexistent.sock"})  # fmt: skip
    assert gone.returncode == 126 and "cannot ask docker" in gone.stderr
    assert "somewhere/else" in (workspace / ".devcontainer.json").read_text()  # unchanged


def _build(workspace: Path, dockerfile: str, build: str = '"dockerfile": "Dockerfile"') -> None:
    (workspace / ".devcontainer").mkdir(exist_ok=True)
    (workspace / ".devcontainer" / "devcontainer.json").write_text(f'{{"build": {{{build}}}}}')
    (workspace / ".devcontainer" / "Dockerfile").write_text(dockerfile)


@pytest.mark.parametrize(
    ("dockerfile", "build", "profile", "words"),
    [("FROM codex-box/base\n", '"dockerfile": "Dockerfile", "context": "../.."', "workspace",
      "build.context .* is outside the workspace"),
     ("FROM codex-box/base\nADD http://127.0.0.1:9/x /x\n", '"dockerfile": "Dockerfile"',
      "offline", "fetches http://127.0.0.1:9/x on the host's network"),
     ("# syntax=evil/frontend\nFROM codex-box/base\n", '"dockerfile": "Dockerfile"',
      "workspace-net", "syntax directive"),
     ("FROM codex-box/base\n", '"args": {"BUILDKIT_SYNTAX": "evil/frontend"}', "workspace-net",
      "BUILDKIT_SYNTAX"),
     ("FROM codex-box/base\nLABEL devcontainer.metadata=[]\n", '"dockerfile": "Dockerfile"',
      "workspace", "writes a devcontainer.metadata label"),
     ("FROM loose\n", '"dockerfile": "Dockerfile"', "workspace", "image loose's .* capAdd"),
     ("FROM codex-box/base\n" + "#\n" * (1 << 20), '"dockerfile": "Dockerfile"', "offline",
      "over 1024 KiB")],
)  # fmt: skip
def test_a_build_is_vetted_as_run_vets_it(
    cli: Callable[..., Ran],
    workspace: Path,
    engine: FakeEngine,
    dockerfile: str,
    build: str,
    profile: str,
    words: str,
) -> None:
    engine.images["loose"] = {"devcontainer.metadata": '{"capAdd": ["SYS_ADMIN"]}'}
    _build(workspace, dockerfile, build)
    done = cli("devcontainer", "export", "-p", profile, "--merge")
    assert done.returncode == 126, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert __import__("re").search(words, done.stderr), done.stderr


def test_a_build_whose_base_images_are_here_and_plain_is_exported(
    cli: Callable[..., Ran], workspace: Path, engine: FakeEngine
) -> None:
    _build(workspace, "FROM codex-box/base AS a\nFROM debian\nCOPY --from=a /x /x\n")
    done = cli("devcontainer", "export", "-p", "offline", "--merge")
    assert done.returncode == 0, done.stderr
    assert {"codex-box/base", "debian"} <= set(engine.asked)
    _build(workspace, "FROM nothere:1\n")
    missing = cli("devcontainer", "export", "-p", "offline", "--merge")
    assert missing.returncode == 125 and "codex-box pulls nothing" in missing.stderr
    with pytest.raises(ConfigError, match=r"cannot read build\.dockerfile"):
        (workspace / ".devcontainer" / "Dockerfile").unlink()
        export(STORE.get("offline"), workspace=workspace,
               output=workspace / ".devcontainer" / "devcontainer.json", merge=True,
               home="/nonexistent", environ={"DOCKER_HOST": engine.url})  # fmt: skip


def test_a_deny_read_path_inside_the_workspace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key.pem").write_text("k")
    profile = dataclasses.replace(STORE.get("workspace"), deny_read=("secrets/*.pem",))
    out = tmp_path / ".devcontainer" / "devcontainer.json"
    with pytest.raises(Refused, match=r"hides .*key\.pem \(filesystem\.deny_read\)"):
        export(profile, workspace=tmp_path, output=out, merge=False, home="/nonexistent")
    assert not out.exists()
