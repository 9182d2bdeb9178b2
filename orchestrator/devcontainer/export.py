"""``codex-box devcontainer export``: a devcontainer.json whose container, started by the
Dev Containers CLI itself (``devcontainer up``), is the profile's sandbox.

Owns: what a profile writes into the file (runArgs: the network, a read-only root,
no capabilities, no-new-privileges, the profile's seccomp JSON copied beside the file,
a pids limit, tmpfs for /tmp and for the remote user's home or the CLI's data folder
in it; the workspace mount, read-only for read-only profiles, with the protected names
read-only over a writable one), what it takes out of a file it merges into (every
setting that could loosen the container: privileged, capAdd, securityOpt, mounts,
Features, runArgs not known to be harmless, the host-side initializeCommand,
build.options and cacheFrom — a build without the profile's network gets
``--network=none`` as its options — ports without network, labels the CLI sets itself),
and the refusals: no sandbox (``trusted``), a network only codex-box's egress proxy can
filter, Docker Compose (the CLI ignores runArgs there), a host variable the CLI would
copy in (``${localEnv:NAME}``, ``${env:NAME}``, anywhere in the file as written;
``--env NAME`` without a value), an image whose ``devcontainer.metadata`` label asks
for what runArgs cannot take back (the CLI applies it after them), and a Dockerfile that
writes such a label. Pure. Does not own: reading the file (``config``), keeping its
comments (``jsonc_edit``), asking the engine and what is on disk (``export_files``), the
command line (``cli``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import ConfigError, Refused
from orchestrator.core.profile import Access, Capabilities, Network, Profile
from orchestrator.core.spec import DEFAULT_IMAGE, DEFAULT_PIDS

from . import jsonc_edit
from .findings import refused
from .run_args import read_run_args
from .variables import host_variables, host_variables_in_text

HEADER = "// codex-box devcontainer export --profile {name}:"
SECCOMP_FILE = "codex-box-seccomp-{name}.json"
WORKSPACE = "${localWorkspaceFolder}"
DEFAULT_TARGET = "/workspaces/${localWorkspaceFolderBasename}"
# As the container backends' private /tmp. The home: the CLI writes its lifecycle
# markers under ~/.devcontainer and runs postCreateCommand only when that write works.
TMP_OPTIONS = "rw,nosuid,nodev,mode=1777"
ROOT_HOME_OPTIONS = "rw,nosuid,nodev,exec,mode=0700"
_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
# runArgs a merge keeps: a value of their own, no reach into the host or the kernel.
_KEPT_WITH_VALUE = frozenset(
    {"-e", "--env", "-l", "--label", "--shm-size", "-h", "--hostname",
     "--name", "-w", "--workdir", "--add-host", "--stop-signal", "--stop-timeout",
     "--platform"}
)  # fmt: skip
_KEPT_FLAGS = frozenset({"--init", "--rm", "-t", "--tty", "-i", "--interactive"})
# Keys a merge takes out of the file, and why. The CLI adds a Feature's (or the image
# label's) privileged, capAdd, securityOpt and mounts after runArgs, where no runArg of
# ours can take them back.
_REMOVED = {
    "privileged": "a privileged container is the host's root",
    "capAdd": "the profile's capabilities are none",
    "securityOpt": "the profile decides the security options",
    "mounts": "the container mounts the workspace only",
    "features": "a Feature can make the container privileged or add capabilities, "
    "security options and mounts that runArgs cannot take back",
    "overrideFeatureInstallOrder": "it goes with features",
    "initializeCommand": "it runs on the host, outside any container",
    "workspaceMount": "the profile decides how the workspace is mounted",
}
_NO_NETWORK_REMOVED = ("forwardPorts", "appPort")
# Labels the Dev Containers CLI sets on the container itself (devcontainer.local_folder,
# .config_file, .metadata) and codex-box's own (its sweeps trust them): a file's runArgs
# must not override them.
_OWN_LABELS = ("codex-box.", "devcontainer.")


@dataclass(frozen=True, slots=True)
class Plan:
    """The merged configuration: the file's own keys as they stay (in its order), then
    the profile's."""

    kept: dict[str, Any]
    owned: dict[str, Any]
    notes: tuple[str, ...]

    @property
    def config(self) -> dict[str, Any]:
        return {**self.kept, **self.owned}


def check_exportable(profile: Profile) -> None:
    """Refused (exit 126) unless a plain ``devcontainer up`` can enforce ``profile``."""
    if not profile.sandboxed:
        raise Refused(
            f"profile {profile.name} is no sandbox: there is nothing to export",
            hint="export offline, workspace or workspace-net",
        )
    if profile.uses_egress_proxy():
        raise Refused(
            f"profile {profile.name} filters the network ({_filters(profile)}) through "
            "codex-box's egress proxy, which a plain `devcontainer up` cannot run",
            hint="export a profile without network (offline, workspace) or with open "
            "network (workspace-net), or run the container with codex-box",
        )


def plan(
    profile: Profile,
    config: dict[str, Any],
    *,
    seccomp_ref: str | None,
    protected: tuple[str, ...] = (),
    image: str | None = None,
    file: str = "devcontainer.json",
    text: str | None = None,
) -> Plan:
    """Pure: ``config`` (the file's, or ``{}`` for a new one; ``text``: the file as
    written) under ``profile``. ``seccomp_ref``: the seccomp JSON as runArgs name it;
    ``protected``: names inside the workspace to mount read-only over a writable one."""
    check_exportable(profile)
    refuse_host_variables(config, text, file)
    if "dockerComposeFile" in config:
        raise Refused(
            f"{file} uses dockerComposeFile: the Dev Containers CLI ignores runArgs for "
            "Docker Compose, so no profile can be applied from devcontainer.json",
            hint="export into a devcontainer.json with image or build",
        )
    notes: list[str] = []
    kept = dict(config)
    for key, why in _REMOVED.items():
        if _given(kept.pop(key, None)):
            notes.append(f"removed {key}: {why}")
    if profile.network is Network.NONE:
        for key in _NO_NETWORK_REMOVED:
            if _given(kept.pop(key, None)):
                notes.append(f"removed {key}: profile {profile.name} has no network")
    if not any(k in kept for k in ("image", "build", "dockerFile")):
        kept = {"image": image or DEFAULT_IMAGE, **kept}
    if "image" not in kept and "dockerFile" in kept and not isinstance(kept.get("build"), dict):
        # The spec's old spelling: build.options below needs the build object.
        old = {"dockerfile": kept.pop("dockerFile"), "context": kept.pop("context", None)}
        kept["build"] = {k: v for k, v in old.items() if v is not None}
        notes.append("moved dockerFile (and context) into build: the build's options are set")
    build = kept.get("build")
    if isinstance(build, dict):
        for key, why in (("options", "they reach the host's image build"),
                         ("cacheFrom", "the build would pull it from a registry")):  # fmt: skip
            if _given(build.get(key)):
                notes.append(f"removed build.{key}: {why}")
        build = {k: v for k, v in build.items() if k not in ("options", "cacheFrom")}
        if profile.network is Network.NONE and "image" not in kept:
            # The CLI passes build.options to docker build: its RUN steps get no network.
            build["options"] = ["--network=none"]
        kept["build"] = build
    requirements = kept.get("hostRequirements")
    if isinstance(requirements, dict) and "gpu" in requirements:
        notes.append("removed hostRequirements.gpu: it hands the host's GPUs to the container")
        kept["hostRequirements"] = {k: v for k, v in requirements.items() if k != "gpu"}
    folder = kept.pop("workspaceFolder", None)
    target = folder if isinstance(folder, str) and folder.startswith("/") else DEFAULT_TARGET
    if folder is not None and target != folder:
        notes.append(f"replaced workspaceFolder {folder!r}: not an absolute path")
    if "," in target:
        raise ConfigError(f"{file}: workspaceFolder {target!r} holds a comma (a mount option)")
    given = _strings(kept.pop("runArgs", None))
    _refuse_host_env_args(given, file)
    user_args, dropped = _harmless(given)
    notes += [f"removed runArgs {arg}: not known to be harmless" for arg in dropped]
    user = kept.get("remoteUser") or kept.get("containerUser")
    home, home_options = _home(user, file)
    if user is None:
        notes.append(
            "no remoteUser or containerUser: the home made writable is /root; if the "
            "image's user is another, set remoteUser and export again (without a "
            "writable home the Dev Containers CLI skips postCreateCommand silently)"
        )
    mount = f"type=bind,source={WORKSPACE},target={target}"
    read_only = profile.workspace is Access.READ_ONLY
    owned: dict[str, Any] = {
        "workspaceFolder": target,  # first: the banner comment goes with it
        "workspaceMount": mount + (",readonly" if read_only else ""),
    }
    owned["runArgs"] = [*user_args, *_run_args(profile, seccomp_ref, home, home_options)]
    if not read_only and protected:
        owned["mounts"] = [
            f"type=bind,source={WORKSPACE}/{name},target={target}/{name},readonly"
            for name in protected
        ]
    return Plan(kept, owned, tuple(notes))


def render(plan: Plan, profile: Profile, original: str | None = None) -> tuple[str, list[str]]:
    """Pure: the file's text (the export's line first, then the file's comments and
    keys as written, then the profile's keys), and a note when comments were lost."""
    header = (
        f"{HEADER.format(name=profile.name)} the security settings below (workspaceMount, "
        "runArgs, mounts) are this profile's; export again after editing the file\n"
    )
    banner = f"codex-box: profile {profile.name}'s settings (rewritten by each export)"
    expected = plan.config
    before = _loads(original) if original is not None else None
    parts = jsonc_edit.split(original) if isinstance(before, dict) and original else None
    if parts is not None and isinstance(before, dict):
        head = _without_header(parts.head)
        added = [(k, v) for k, v in plan.kept.items() if k not in before]
        text = jsonc_edit.rebuild(
            parts,
            keep=plan.kept,
            changed=[k for k, v in plan.kept.items() if k in before and before[k] != v],
            added=[*added, *plan.owned.items()],
            head=header + head,
            banner=banner,
        )
        if _loads(text) == expected:
            return text, []
    head = _without_header(jsonc_edit.leading_comments(original or ""))
    text = f"{header}{head}{jsonc_edit.dumps(expected)}\n"
    lost = ["comments inside the object were not kept"]
    return text, lost if original and jsonc_edit.has_inner_comments(original) else []


def _run_args(profile: Profile, seccomp_ref: str | None, home: str, options: str) -> list[str]:
    args = ["--network=none" if profile.network is Network.NONE else "--network=bridge"]
    if profile.rootfs is Access.READ_ONLY:
        args.append("--read-only")
    if profile.capabilities is Capabilities.NONE:
        args.append("--cap-drop=ALL")
    args.append("--security-opt=no-new-privileges")
    if seccomp_ref is not None:
        args.append(f"--security-opt=seccomp={seccomp_ref}")
    args += [
        f"--pids-limit={DEFAULT_PIDS}",
        f"--tmpfs=/tmp:{TMP_OPTIONS}",
        f"--tmpfs={home}:{options}",
    ]
    return args


def _home(user: Any, file: str) -> tuple[str, str]:
    """Where the remote user's home tmpfs goes, and its options. Root: /root, whole. Any
    other user: only the CLI's data folder in the home, world-writable and sticky — the
    OCI runtime gives a tmpfs over an existing directory that directory's mode but
    root's ownership, the user's uid is unknown here, and Docker (uid=) and Podman (U)
    disagree on how to hand a tmpfs to a user."""
    if user is None or user in ("root", "0"):
        return "/root", ROOT_HOME_OPTIONS
    if not isinstance(user, str) or not _USER_NAME.fullmatch(user):
        raise ConfigError(
            f"{file}: remoteUser/containerUser {user!r} is not a user name",
            hint="name the user (e.g. vscode): codex-box finds its home as /home/NAME",
        )
    return f"/home/{user}/.devcontainer", TMP_OPTIONS


def _harmless(args: list[str]) -> tuple[list[str], list[str]]:
    kept: list[str] = []
    dropped: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, sep, _ = arg.partition("=")
        if name in _KEPT_FLAGS and not sep:
            kept.append(arg)
            i += 1
        elif name in _KEPT_WITH_VALUE and (sep or i + 1 < len(args)):
            given = args[i : i + (1 if sep else 2)]
            value = arg[len(name) + 1 :] if sep else args[i + 1]
            if name in ("-l", "--label") and value.startswith(_OWN_LABELS):
                dropped.append(" ".join(given))
            else:
                kept += given
            i += len(given)
        else:
            take = 1 if sep or i + 1 >= len(args) or args[i + 1].startswith("-") else 2
            dropped.append(" ".join(args[i : i + take]))
            i += take
    return kept, dropped


def refuse_host_variables(config: dict[str, Any], text: str | None, file: str) -> None:
    """Refused (126) when the file names a host variable the Dev Containers CLI would
    fill in (``${localEnv:NAME}`` or its alias ``${env:NAME}``, but the user's name and
    home), in any key — the parsed file, and its text as written (another parser may
    read a malformed file differently)."""
    found = [(key, name) for key, name in host_variables(config)]
    found += [(file, name) for name in host_variables_in_text(text or "")]
    if found:
        key, name = found[0]
        raise Refused(
            f"{file}: {key} names the host variable {name}: the Dev Containers CLI would "
            "copy the host's value into the container",
            hint="remove it; pass a value with devcontainer exec --remote-env",
        )


def _refuse_host_env_args(args: list[str], file: str) -> None:
    """``--env NAME`` (``-e=NAME``, ``-eNAME``) without a value: docker copies the
    caller's variable — refused as ``run --devcontainer`` refuses it."""
    _, findings = read_run_args(args)
    for finding in refused(findings):
        number = int(finding.key.rpartition("[")[2].rstrip("]"))
        if args[number].startswith(("-e", "--env")) and not args[number].startswith("--env-"):
            raise Refused(
                f"{file}: runArgs {finding.value} refused: {finding.why}",
                hint="give the variable a value (--env NAME=VALUE), or remove it",
            )


def _filters(profile: Profile) -> str:
    what = []
    if profile.network is Network.READ_ONLY:
        what.append("GET/HEAD/OPTIONS only")
    if profile.allow_domains:
        what.append("a domain allowlist")
    if profile.deny_domains:
        what.append("a domain denylist")
    if profile.inspect_tls:
        what.append("TLS inspection")
    if profile.secrets:
        what.append("injected credentials")
    return ", ".join(what) or "rules"


def _without_header(head: str) -> str:
    lines = head.splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith(HEADER.split(" --")[0])]
    return "".join(kept).lstrip("\n")


def _loads(text: str) -> Any:
    import json5

    try:
        return json5.loads(text)
    except ValueError:
        return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _given(value: Any) -> bool:
    return value not in (None, False, "", [], {})
