"""codex-box's own AppArmor profiles (``apparmor/``): whether a container gets one on
this host, and compiling or loading the files.

Owns: the shipped profile files, reading what the kernel has loaded, the pure decision
a container backend makes from those host facts (``decide``), what ``doctor`` says
about it, and running ``apparmor_parser`` (compile-only check; load as root).
Does not own: which AppArmor profile a codex-box profile names (its YAML's
``process.apparmor``, carried by ``compile`` into ``SandboxSpec.apparmor_profile``),
putting the decision into an engine's request (``backends/docker.py``,
``backends/podman/translate.py``), the native backend (it confines with Landlock and seccomp), or
printing (``cli``).

Why only where the profile is loaded: an engine asked for a profile the kernel does not
have fails to start the container. Where AppArmor is on but ours is not loaded (or the
list of loaded profiles is unreadable: it is root's only), the engine applies its own
default (docker-default, containers-default). That default differs from ours (it lacks
our network denials for the no-network profiles; ours keeps docker-default's /proc and
/sys denials) but is not nothing, and the seccomp filter, capabilities and namespaces
are the same either way: the run goes ahead and the decision says so in the
``codex-box.apparmor`` label and in ``doctor`` instead of failing it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core import resources
from orchestrator.core.errors import AppArmorError
from orchestrator.core.log import debug
from orchestrator.host.hostinfo import apparmor_enabled
from orchestrator.profiles.store import APPARMOR_NAMES

# By absolute path only: `install` runs it as root, where a planted PATH entry would win.
PARSER_PATHS = ("/usr/sbin/apparmor_parser", "/sbin/apparmor_parser")
LOADED_FILE = "/sys/kernel/security/apparmor/profiles"
# Debian's pinned policy features: a check compiled against them needs no AppArmor in
# the kernel and answers the same on every machine (else the parser probes the kernel).
FEATURES_FILE = "/usr/share/apparmor-features/features"
INSTALL_HINT = "run `codex-box apparmor install` as root"
UNREADABLE = "which profiles are loaded is unknown (not root)"
TIMEOUT_S = 120.0
EXIT_CHECK_FAILED = 1  # `apparmor check`: a profile does not compile (a lint verdict)
_PARSER_ERROR = re.compile(
    r"^AppArmor parser error for .*? in profile (?P<file>.+?) at line (?P<line>\d+): (?P<what>.*)$"
)


def profiles_dir() -> Path:
    """``apparmor/``: inside the package when installed from a wheel, else the repo's."""
    return resources.apparmor_dir()


def shipped() -> list[Path]:
    """The profile files (one per sandboxed built-in; the file name is the profile name)."""
    return sorted(p for p in profiles_dir().glob("codex-box-*") if p.is_file())


def host_enforces() -> bool:
    return apparmor_enabled()


def loaded_profiles(path: str = LOADED_FILE) -> tuple[str, ...] | None:
    """Profiles the kernel enforces, sorted (lines "name (mode)"); None when the list
    cannot be read (it is readable by root only). One in complain mode is left out: it
    only logs, which is weaker than the engine default used instead."""
    try:
        with open(path, encoding="utf-8") as listing:
            lines = listing.read().splitlines()
    except FileNotFoundError:
        return ()
    except OSError:
        return None
    split = (line.rsplit(" (", 1) for line in lines if line.endswith(")"))
    return tuple(sorted(parts[0] for parts in split if parts[-1] == "enforce)"))


@dataclass(frozen=True, slots=True, kw_only=True)
class HostAppArmor:
    """What an engine's host does with AppArmor: the input of ``decide``."""

    enabled: bool
    loaded: tuple[str, ...] | None = ()  # profiles in enforce mode; None: unreadable


def probe(engine_url: str) -> HostAppArmor:
    """This host's AppArmor, for an engine on a local socket. An engine reached over
    TCP runs where we cannot read the loaded profiles: none of ours is asked for there
    (its own default applies if that host has AppArmor)."""
    if not engine_url.startswith("unix://"):
        return HostAppArmor(enabled=False)
    enabled = host_enforces()
    return HostAppArmor(enabled=enabled, loaded=loaded_profiles() if enabled else ())


@dataclass(frozen=True, slots=True)
class Decision:
    profile: str | None  # ask the engine for this AppArmor profile
    # AppArmor is on but ours cannot be used: what the container gets instead, and why.
    note: str | None = None


def decide(name: str | None, host: HostAppArmor, *, engine_default: str) -> Decision:
    """Pure: the AppArmor profile to ask the engine for. Ours when the host enforces
    AppArmor and has it loaded; else none, with a note when the engine's default
    applies instead of ours."""
    if name is None or not host.enabled:
        return Decision(None)
    if host.loaded is None:
        return Decision(None, f"{engine_default} ({UNREADABLE}: {name} not asked for)")
    if name in host.loaded:
        return Decision(name)
    return Decision(None, f"{engine_default} ({name} is not loaded: {INSTALL_HINT})")


def diagnosis(host: HostAppArmor, *, engine_default: str) -> tuple[str, str | None]:
    """``doctor``'s ``apparmor`` fact and, unless every profile of ours is loaded, the
    note that says what containers get instead and how to fix it."""
    if not host.enabled:
        return "no (not in this kernel)", None
    if host.loaded is None:
        return f"yes; {UNREADABLE}", (
            f"AppArmor is on but {LOADED_FILE} is readable by root only: containers get "
            f"{engine_default}, not codex-box's profiles; run codex-box as root to use them"
        )
    loaded = [n for n in APPARMOR_NAMES if n in host.loaded]
    missing = [n for n in APPARMOR_NAMES if n not in host.loaded]
    fact = f"yes; codex-box profiles loaded: {', '.join(loaded) or 'none'}"
    if not missing:
        return fact, None
    return fact, (
        f"AppArmor is on but {', '.join(missing)} not loaded: those containers get "
        f"{engine_default} instead; {INSTALL_HINT}"
    )


def parser() -> str:
    for path in PARSER_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise AppArmorError(
        f"apparmor_parser not found (looked for {', '.join(PARSER_PATHS)})",
        hint="install Debian's apparmor package: apt-get install apparmor",
    )


def compile_check(path: Path) -> None:
    """Compile ``path`` without loading anything; raise with the first error's file:line."""
    features = ["--features-file", FEATURES_FILE] if os.path.isfile(FEATURES_FILE) else []
    argv = [parser(), "--skip-kernel-load", "--skip-cache", "--quiet", *features]
    _run([*argv, "-I", str(profiles_dir()), str(path)], path)


def check(paths: Iterable[Path] | None = None) -> list[str]:
    """Each problem as "file:line: what"; empty when every profile (default: the shipped
    ones) compiles. Raises AppArmorError when there is no parser to check with."""
    parser()
    targets = list(paths) if paths is not None else shipped()
    if not targets:
        return [f"{profiles_dir()}: no codex-box-* profiles found"]
    problems = []
    for path in targets:
        try:
            compile_check(path)
        except AppArmorError as exc:
            problems.append(exc.message)
    return problems


def install() -> list[str]:
    """Load (or replace) every shipped profile into the kernel and its cache; the names
    loaded. Until the next boot: the AppArmor service loads /etc/apparmor.d only."""
    if not host_enforces():
        raise AppArmorError(
            "this kernel has no AppArmor (/sys/module/apparmor/parameters/enabled is not "
            "Y): nothing to load the profiles into",
            hint="this host's engines run containers without AppArmor; "
            "`codex-box apparmor check` compiles the profiles without loading them",
        )
    binary = parser()
    if os.geteuid() != 0:
        raise AppArmorError(
            "loading AppArmor profiles needs root", hint="run: sudo codex-box apparmor install"
        )
    files = shipped()
    refuse_unsafe_files([profiles_dir(), profiles_dir() / "abstractions", *files])
    loaded = []
    for path in files:
        _run([binary, "--replace", "--write-cache", "-I", str(profiles_dir()), str(path)], path)
        loaded.append(path.name)
    return loaded


def refuse_unsafe_files(paths: Iterable[Path]) -> None:
    """Loading a profile as root trusts its text with every container's confinement:
    refuse files (or their directories, or included abstractions) that someone other
    than root could have written."""
    abstractions = profiles_dir() / "abstractions"
    extra = sorted(abstractions.iterdir()) if abstractions.is_dir() else []
    for path in [*paths, *extra]:
        try:
            info = path.stat()
        except OSError as exc:
            raise AppArmorError(f"{path}: cannot be read ({exc.strerror})") from exc
        if info.st_uid != 0 or info.st_mode & 0o022:
            raise AppArmorError(
                f"{path}: owned by uid {info.st_uid} with mode {info.st_mode & 0o7777:o}; "
                "refusing to load AppArmor profiles that anyone but root could have changed",
                hint=f"chown root and chmod go-w {path}, or install codex-box as root",
            )


def _run(argv: list[str], path: Path) -> None:
    import subprocess  # here: a container run imports this module for probe/decide only

    debug("apparmor_parser", argv=argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AppArmorError(
            f"{path}: apparmor_parser did not finish ({exc})",
            hint="run it by hand: " + " ".join(argv),
        ) from exc
    if done.returncode != 0:
        raise AppArmorError(_first_error(path, done.stderr, done.returncode))


def _first_error(path: Path, stderr: str, code: int) -> str:
    """The parser's first error as "file:line: what" (the file may be an included one)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if match := _PARSER_ERROR.match(line):
            return f"{match['file']}:{match['line']}: {match['what']}"
    return f"{path}: {lines[0] if lines else f'apparmor_parser exited {code}'}"
