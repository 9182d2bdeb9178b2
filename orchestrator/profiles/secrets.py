"""A user profile's ``secrets:``: the credentials its runs use without holding them.

Owns: the section's syntax and checks, and the presets. Each entry names the variable
the sandbox sees and says where the real value comes from (``env:NAME``,
``file:PATH``, ``command:["argv", …]`` run on the host once per run), the hosts it is
bound to (``network.allow`` patterns: no ``*``, no public-suffix wildcards) and how it
is injected (``header``, ``basic-auth``). ``GH_TOKEN: github`` takes a preset whole;
``{preset: github, from: file:~/.config/gh/token}`` a preset with one key changed.
Every bound host must be reachable under the profile's own network rules: a secret the
profile could never use is a mistake to report, not to carry.
Does not own: where a secret may be declared (a user profile only: a ``.codex-profile``
is refused in ``profiles.definition``), its placeholder (``compile.credentials``) or
its value (``runner.credentials``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.core import domains
from orchestrator.core.brokered import INJECT_MODES, SOURCE_KINDS, SecretBinding
from orchestrator.core.errors import ConfigError
from orchestrator.core.profile import Network, Profile

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Variables codex-box itself sets in every sandbox: a secret may not shadow them.
RESERVED = re.compile(
    r"(CODEX_BOX_.*|CODEX_SANDBOX.*|(HTTPS?|ALL|NO)_PROXY|PATH|HOME|"
    r"SSL_CERT_FILE|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS|PIP_CERT|"
    r"GIT_SSL_CAINFO|PIP_PROXY|GIT_.*)",
    re.IGNORECASE,
)
KEYS = ("preset", "from", "hosts", "inject")

# The common ones. The placeholder has the real token's prefix and length, so clients
# that check a token's format before sending it (gh, npm, the OpenAI SDK) still do.
PRESETS: Mapping[str, SecretBinding] = {
    "github": SecretBinding(
        name="",
        source=(),
        # git over HTTPS sends the token as a Basic password; gh and the REST API
        # as "Authorization: token …" / "Bearer …".
        # githubusercontent.com is a public suffix: its hosts are named one by one.
        hosts=(
            "github.com",
            "api.github.com",
            "uploads.github.com",
            "codeload.github.com",
            "raw.githubusercontent.com",
            "objects.githubusercontent.com",
        ),
        inject=("header", "basic-auth"),
        prefix="ghp_",
        length=40,
    ),
    "pypi": SecretBinding(
        name="",
        source=(),
        hosts=("upload.pypi.org", "test.pypi.org"),
        inject=("basic-auth",),  # twine: user __token__, the token as the password
        prefix="pypi-",
        length=180,
    ),
    "npm": SecretBinding(
        name="",
        source=(),
        hosts=("registry.npmjs.org",),
        inject=("header",),
        prefix="npm_",
        length=40,
    ),
    "openai": SecretBinding(
        name="",
        source=(),
        hosts=("api.openai.com",),
        inject=("header",),
        prefix="sk-proj-",
        length=164,
    ),
    "anthropic": SecretBinding(
        name="",
        source=(),
        hosts=("api.anthropic.com",),
        inject=("header",),  # x-api-key
        prefix="sk-ant-api03-",
        length=108,
    ),
}
CUSTOM_PREFIX, CUSTOM_LENGTH = "cbx_", 44

Fail = Callable[[str, str, str], ConfigError]


def parse(value: Any, profile: Profile, fail: Fail) -> tuple[SecretBinding, ...]:
    """The ``secrets:`` mapping of a user profile that becomes ``profile``."""
    bindings = parse_entries(value, fail)
    for binding in bindings:
        if problem := _unreachable(binding, profile):
            raise fail(*problem)
    return bindings


def parse_entries(value: Any, fail: Fail) -> tuple[SecretBinding, ...]:
    """A mapping of variable names to presets or entries (a profile's ``secrets:``, or
    config.toml's ``[secrets]``), without asking which profile may use them."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise fail(
            "secrets",
            f"expected a mapping of variable names, got {type(value).__name__}",
            "write e.g. 'secrets: {GH_TOKEN: github}'",
        )
    return tuple(_one(str(name), entry, fail) for name, entry in value.items())


def for_profile(profile: Profile, config: tuple[SecretBinding, ...]) -> tuple[SecretBinding, ...]:
    """The secrets a run of ``profile`` brokers: its own, then each of config.toml's
    ``[secrets]`` it does not name itself — each only if the profile can reach all its
    hosts (config secrets follow the user from profile to profile, where they can be
    used at all; a .codex-profile that narrows a user profile's network drops those
    its own no longer reaches — never a network for them)."""
    own = {b.name for b in profile.secrets}
    candidates = (*profile.secrets, *(b for b in config if b.name not in own))
    return tuple(b for b in candidates if reachable(b, profile))


def reachable(binding: SecretBinding, profile: Profile) -> bool:
    return _unreachable(binding, profile) is None


def _one(name: str, entry: Any, fail: Fail) -> SecretBinding:
    key = f"secrets.{name}"
    if not _NAME.fullmatch(name):
        raise fail(key, f"{name!r} is not an environment variable name", "use A-Z, 0-9 and _")
    if RESERVED.fullmatch(name):
        raise fail(key, f"{name} is set by codex-box itself", "choose another variable name")
    if isinstance(entry, str):
        entry = {"preset": entry}
    if not isinstance(entry, dict):
        raise fail(
            key,
            f"expected a preset name or a mapping, got {type(entry).__name__}",
            f"write a preset ({', '.join(PRESETS)}) or from/hosts/inject",
        )
    for sub in entry:
        if sub not in KEYS:
            raise fail(f"{key}.{sub}", "unknown key", f"allowed: {', '.join(KEYS)}")
    base = None
    if "preset" in entry:
        base = PRESETS.get(entry["preset"]) if isinstance(entry["preset"], str) else None
        if base is None:
            raise fail(
                f"{key}.preset",
                f"unknown preset {entry['preset']!r}",
                f"use one of: {', '.join(PRESETS)}",
            )
    elif "hosts" not in entry:
        raise fail(
            key,
            "names no preset and no hosts",
            f"add 'hosts: [...]' or a preset ({', '.join(PRESETS)})",
        )
    source = _source(entry["from"], key, fail) if "from" in entry else ("env", name)
    hosts = _hosts(entry["hosts"], key, fail) if "hosts" in entry else base.hosts if base else ()
    inject = (
        _inject(entry["inject"], key, fail)
        if "inject" in entry
        else base.inject
        if base
        else ("header",)
    )
    return SecretBinding(
        name=name,
        source=source,
        hosts=hosts,
        inject=inject,
        prefix=base.prefix if base else CUSTOM_PREFIX,
        length=base.length if base else CUSTOM_LENGTH,
    )


def _source(value: Any, key: str, fail: Fail) -> tuple[str, ...]:
    where, hint = f"{key}.from", 'write env:NAME, file:~/path or command:["pass", "show", "gh"]'
    if isinstance(value, dict) and list(value) == ["command"]:
        value = "command:" + json.dumps(value["command"])
    if not isinstance(value, str):
        raise fail(where, f"expected a string, got {value!r}", hint)
    kind, colon, rest = value.partition(":")
    if not colon or kind not in SOURCE_KINDS or not rest.strip():
        raise fail(where, f"{value!r} is not a source", hint)
    if kind == "env" and not _NAME.fullmatch(rest):
        raise fail(where, f"{rest!r} is not an environment variable name", hint)
    if kind == "file" and not (rest.startswith(("/", "~/"))):
        raise fail(
            where, f"{rest!r} is not an absolute path", "write file:/abs/path or file:~/path"
        )
    if kind == "command":
        try:
            argv = json.loads(rest)
        except ValueError:
            argv = None
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) and a for a in argv)):
            raise fail(where, f"{rest!r} is not a JSON list of strings", hint)
        return ("command", *argv)
    return (kind, rest)


def _hosts(value: Any, key: str, fail: Fail) -> tuple[str, ...]:
    where = f"{key}.hosts"
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail(where, f"expected a non-empty list of host names, got {value!r}", domains.SYNTAX)
    for item in value:
        try:
            domains.parse(item)
        except domains.PatternError as exc:
            raise fail(where, str(exc), domains.SYNTAX) from exc
    return tuple(value)


def _inject(value: Any, key: str, fail: Fail) -> tuple[str, ...]:
    modes = [value] if isinstance(value, str) else value
    if not isinstance(modes, list) or not modes or not all(m in INJECT_MODES for m in modes):
        raise fail(
            f"{key}.inject",
            f"expected {' or '.join(INJECT_MODES)} (or a list of them), got {value!r}",
            "header: the placeholder anywhere in a header's value; basic-auth: as the "
            "password of Authorization: Basic",
        )
    return tuple(dict.fromkeys(modes))


def _unreachable(binding: SecretBinding, profile: Profile) -> tuple[str, str, str] | None:
    """Why ``profile`` could never use ``binding``, as (key, problem, hint); or None."""
    key = f"secrets.{binding.name}.hosts"
    if not profile.sandboxed:
        return (
            "secrets",
            f"profile {profile.name} runs with no sandbox: nothing could keep the value "
            "from the command",
            "extend workspace-net or net-read-only instead of trusted",
        )
    if profile.network is Network.NONE:
        return (
            key,
            f"profile {profile.name} has no network: {binding.name} could never be used",
            "extend a profile with network (net-read-only, workspace-net)",
        )
    allow = [domains.parse(p) for p in profile.allow_domains]
    deny = [domains.parse(p, any_port=True) for p in profile.deny_domains]
    for text in binding.hosts:
        host = domains.parse(text)
        if allow and not any(a.covers(host) for a in allow):
            return (
                key,
                f"{text} is not reachable under network.allow ({', '.join(profile.allow_domains)})",
                f"add {text} to network.allow, or drop it from the secret's hosts",
            )
        if any(d.covers(host) or host.covers(d) for d in deny):
            return (
                key,
                f"{text} is denied by network.deny",
                "drop it from network.deny or from the secret's hosts",
            )
    return None
