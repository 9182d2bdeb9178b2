"""``$CODEX_HOME/config.toml``: the settings codex-box reads from it.

Owns: parsing the file and mapping both accepted forms to a profile name —
the seed's (``[sandbox] mode = "workspace-write"``, ``network_access = true``) and
Codex's (``sandbox_mode = …``, ``[sandbox_workspace_write] network_access = …``).
Does not own: precedence between config, env and flags (``resolve``).

The file is shared with Codex, so unknown *top-level* keys are Codex's business and
are ignored; inside the ``[sandbox]`` table, which is ours, unknown keys are errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.core.brokered import SecretBinding
from orchestrator.core.errors import ConfigError, did_you_mean, printable
from orchestrator.core.paths import codex_home as codex_home  # its home; re-exported
from orchestrator.profiles.store import canonical_name

if TYPE_CHECKING:  # [serve] is parsed (its module loaded) only when the file has it
    from .serve import ServeSettings

_SANDBOX_KEYS = ("mode", "profile", "network_access", "backend", "devcontainer")
_POLICY_KEYS = ("mode",)
_AUDIT_KEYS = ("max_bytes", "keep", "syslog", "jsonl")
_NETWORK_KEYS = ("hosts", "ca_bundle")
POLICY_MODES = ("enforce", "audit-only", "off")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditSettings:
    """[audit]: rotation by size, and optional copies (syslog, a second JSONL file)."""

    max_bytes: int = 10 * 1024 * 1024
    keep: int = 5
    syslog: bool = False
    jsonl: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSettings:
    """[network]: how the egress proxy resolves names and verifies upstream TLS.

    ``hosts`` is the proxy's own /etc/hosts (name → IP); a name listed here is still
    refused when its address is loopback, link-local or the host's own.
    """

    hosts: tuple[tuple[str, str], ...] = ()
    ca_bundle: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: Path
    profile: str | None = None  # already mapped through aliases and network_access
    backend: str | None = None
    # [sandbox] devcontainer: "auto" (use the workspace's devcontainer.json when it has
    # one) or "off" (only with --devcontainer; the default).
    devcontainer: str = "off"
    policy_mode: str | None = None  # [policy] mode: enforce | audit-only | off
    audit: AuditSettings = AuditSettings()
    network: NetworkSettings = NetworkSettings()
    serve: ServeSettings | None = None  # [serve]; None: none in the file (the defaults)
    # [secrets]: brokered secrets for every profile that can reach their hosts
    # (profiles.secrets.for_profile); a profile's own of the same name wins.
    secrets: tuple[SecretBinding, ...] = ()


def load_config(home: Path) -> Config:
    path = home / "config.toml"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path=path)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", hint="check its permissions"
        ) from exc
    import tomllib  # only when there is a config.toml: start-up time

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: malformed TOML ({exc})", hint="fix the TOML syntax") from exc
    return Config(path=path, **_settings(path, data))


def _settings(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    sandbox = data.get("sandbox", {})
    if not isinstance(sandbox, dict):
        raise ConfigError(
            f"{path}: 'sandbox' must be a table", hint="write [sandbox] on its own line"
        )
    for key in sandbox:
        if key not in _SANDBOX_KEYS:
            raise ConfigError(
                # repr: a key may hold a newline; the error stays one line.
                f"{path}: unknown key {f'sandbox.{key}'!r}",
                hint=f"{did_you_mean(key, _SANDBOX_KEYS)}allowed: {', '.join(_SANDBOX_KEYS)}",
            )
    mode = _opt_str(path, "sandbox.profile", sandbox.get("profile"))
    mode = mode or _opt_str(path, "sandbox.mode", sandbox.get("mode"))
    network = _opt_bool(path, "sandbox.network_access", sandbox.get("network_access"))
    if mode is None:  # Codex's own spelling
        mode = _opt_str(path, "sandbox_mode", data.get("sandbox_mode"))
        codex_ww = data.get("sandbox_workspace_write", {})
        if isinstance(codex_ww, dict) and network is None:
            network = _opt_bool(
                path, "sandbox_workspace_write.network_access", codex_ww.get("network_access")
            )
    profile = _with_network(mode, network) if mode else None
    backend = _opt_str(path, "sandbox.backend", sandbox.get("backend"))
    devcontainer = _opt_str(path, "sandbox.devcontainer", sandbox.get("devcontainer")) or "off"
    if devcontainer not in ("auto", "off"):
        raise ConfigError(
            f"{path}: sandbox.devcontainer {devcontainer!r} is not auto or off",
            hint='write devcontainer = "auto" to use a workspace\'s devcontainer.json',
        )
    return {
        "profile": profile,
        "backend": backend,
        "devcontainer": devcontainer,
        "policy_mode": _policy_mode(path, data),
        "audit": _audit(path, data),
        "network": _network(path, data),
        "secrets": _secrets(path, data),
        "serve": _serve(path, data),
    }


def _serve(path: Path, data: dict[str, Any]) -> ServeSettings | None:
    if "serve" not in data:
        return None
    from . import serve

    return serve.parse(path, data["serve"])


def _secrets(path: Path, data: dict[str, Any]) -> tuple[SecretBinding, ...]:
    if "secrets" not in data:
        return ()
    from orchestrator.profiles import secrets  # only when [secrets] is there

    def fail(key: str, problem: str, hint: str) -> ConfigError:
        return ConfigError(printable(f"{path}: key {key!r}: {problem}"), hint=printable(hint))

    return secrets.parse_entries(data["secrets"], fail)


def _network(path: Path, data: dict[str, Any]) -> NetworkSettings:
    table = _table(path, data, "network", _NETWORK_KEYS)
    hosts = table.get("hosts", {})
    if not isinstance(hosts, dict):
        raise ConfigError(
            f"{path}: 'network.hosts' must be a table of name = \"IP\"",
            hint='write [network.hosts] then e.g. "pypi.internal" = "10.0.0.5"',
        )
    import ipaddress  # only when [network.hosts] is there: start-up time

    pairs = []
    for name, address in hosts.items():
        try:
            if not isinstance(address, str):  # ip_address(7) would be 0.0.0.7
                raise TypeError(address)
            pairs.append((name.lower().rstrip("."), str(ipaddress.ip_address(address))))
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{path}: network.hosts {name!r} = {address!r} is not an IP address",
                hint='write the address as a string, e.g. "10.0.0.5"',
            ) from exc
    bundle = _opt_str(path, "network.ca_bundle", table.get("ca_bundle"))
    if bundle is not None and not os.path.isfile(os.path.expanduser(bundle)):
        raise ConfigError(
            f"{path}: network.ca_bundle {bundle!r} is not a file",
            hint="give the path of a PEM file of CA certificates",
        )
    return NetworkSettings(
        hosts=tuple(sorted(pairs)),
        ca_bundle=os.path.abspath(os.path.expanduser(bundle)) if bundle else None,
    )


def _audit(path: Path, data: dict[str, Any]) -> AuditSettings:
    table = _table(path, data, "audit", _AUDIT_KEYS)
    settings = AuditSettings()
    max_bytes, keep = table.get("max_bytes", settings.max_bytes), table.get("keep", settings.keep)
    # keep ≥ 1: rotation never throws the newest history away with the file it fills.
    for key, value, low in (("max_bytes", max_bytes, 4096), ("keep", keep, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(
                f"{path}: 'audit.{key}' must be a whole number ≥ {low}, got {value!r}",
                hint="e.g. max_bytes = 10485760, keep = 5",
            )
    jsonl = _opt_str(path, "audit.jsonl", table.get("jsonl"))
    return AuditSettings(
        max_bytes=max_bytes,
        keep=keep,
        syslog=bool(_opt_bool(path, "audit.syslog", table.get("syslog"))),
        jsonl=os.path.expanduser(jsonl) if jsonl else None,
    )


def _table(path: Path, data: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(
            f"{path}: '{name}' must be a table", hint=f"write [{name}] on its own line"
        )
    for key in table:
        if key not in keys:
            raise ConfigError(
                f"{path}: unknown key {f'{name}.{key}'!r}",
                hint=f"{did_you_mean(key, keys)}allowed: {', '.join(keys)}",
            )
    return table


def _policy_mode(path: Path, data: dict[str, Any]) -> str | None:
    policy = _table(path, data, "policy", _POLICY_KEYS)
    mode = _opt_str(path, "policy.mode", policy.get("mode"))
    if mode is not None and mode not in POLICY_MODES:
        raise ConfigError(
            f"{path}: policy.mode {mode!r} is not a policy mode",
            hint=f"{did_you_mean(mode, POLICY_MODES)}use one of: {', '.join(POLICY_MODES)}",
        )
    return mode


def _with_network(mode: str, network: bool | None) -> str:
    # As in Codex, network_access only ever qualifies workspace-write: it must not
    # quietly give a read-only mode network.
    name = canonical_name(mode)
    return "workspace-net" if network and name == "workspace" else name


def _opt_str(path: Path, key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ConfigError(
        f"{path}: '{key}' must be a non-empty string, got {value!r}",
        hint=f'write {key.rsplit(".", 1)[-1]} = "workspace"',
    )


def _opt_bool(path: Path, key: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(
        f"{path}: '{key}' must be true or false, got {value!r}",
        hint="write true or false, unquoted",
    )
