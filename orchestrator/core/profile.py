"""The security profile as frozen data, with the seed's Python API.

Owns: ``SecurityProfile`` (the built-in names), ``Profile`` and the ``SandboxPolicy``
values it maps to (seed §Implementation).
Does not own: reading YAML (``profiles.store``) or choosing a profile (``resolve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .brokered import SecretBinding


class SecurityProfile(StrEnum):
    """The seed's ``SecurityProfile``: the five built-in profiles by name. A user's own
    profiles are names too (``Profile.name``); these are the ones always present."""

    OFFLINE = "offline"
    NET_READ_ONLY = "net-read-only"
    WORKSPACE = "workspace"
    WORKSPACE_NET = "workspace-net"
    TRUSTED = "trusted"


class Network(StrEnum):
    NONE = "none"
    # Egress for reading only, always through the egress proxy: GET, HEAD and OPTIONS
    # for plain HTTP (and for HTTPS with network.inspect_tls), CONNECT otherwise.
    READ_ONLY = "read-only"
    FULL = "full"


class Access(StrEnum):
    READ_ONLY = "read-only"
    READ_WRITE = "read-write"


class Capabilities(StrEnum):
    NONE = "none"  # every capability and the bounding set dropped
    DEFAULT = "default"  # the engine's / host's default set (trusted only)


class PlantedRepo(StrEnum):
    """What a run that planted a git repository (or executing git config) gets."""

    WARN = "warn"  # an audit record and a warning line; the files stay
    QUARANTINE = "quarantine"  # the same, and the planted config/HEAD/hook moved aside


# Names inside a writable workspace that stay read-only, each because a tool on the
# HOST later runs or trusts what it holds, with no review of a diff in between:
#   .git             hooks and config (core.fsmonitor, aliases…) run on the next commit
#   .codex           Codex's own config: the agent must not rewrite its next sandbox
#   .codex-profile   the profile of the next run: the agent must not choose it
#   .mcp.json        Claude Code's project MCP servers: commands it starts
#   .vscode          tasks.json (runOn: folderOpen) and settings.json (interpreter,
#                    terminal env, tool paths) run when the folder is opened
#   .devcontainer, .devcontainer.json   initializeCommand runs on the host
#   .envrc           direnv runs it in the user's shell on `cd`
#   .claude          settings.json hooks: shell commands Claude Code runs
#   .cursor          mcp.json (commands) and rules/ (instructions to the next agent)
#   .idea            JetBrains run configurations and startup tasks
#   .gemini          Gemini CLI settings.json: MCP server commands, hooks
# Deliberately NOT protected: Makefile, package.json scripts, .github/workflows/,
# pyproject.toml, tox.ini, .pre-commit-config.yaml — project files an agent is asked to
# edit, which run only when a human acts on a change they can review in the diff.
DEFAULT_PROTECTED = (
    ".git",
    ".codex",
    ".codex-profile",
    ".mcp.json",
    ".vscode",
    ".devcontainer",
    ".devcontainer.json",
    ".envrc",
    ".claude",
    ".cursor",
    ".idea",
    ".gemini",
)
# The protected names that are files (a missing one gets an empty file as its read-only
# placeholder); every other protected name is a directory.
PROTECTED_FILE_NAMES: frozenset[str] = frozenset(
    {".codex-profile", ".mcp.json", ".devcontainer.json", ".envrc"}
)
# Never removable with filesystem.unprotect: without them the sandbox could plant git
# hooks, rewrite its own config, or pick its own next profile — codex-box's own
# guarantees, not a convenience for other tools.
NEVER_UNPROTECTED = (".git", ".codex", ".codex-profile")
# filesystem.deny_read of every sandboxed built-in: the host's credential stores, which a
# sandbox that reads the whole filesystem could otherwise copy out (over the network, or
# into the workspace for the next unsandboxed step). Native masks each with an empty
# read-only mount; container backends mask those inside what they bind. CODEX_HOME's own
# keys are masked apart from this list and cannot be removed (compile.deny_read).
DEFAULT_DENY_READ = (
    "~/.ssh",  # private keys; an agent socket path in config
    "~/.gnupg",  # private keys, the trust database
    "~/.aws",  # credentials, and SSO/CLI token caches beside config
    "~/.azure",  # az CLI access and refresh tokens
    "~/.config/gcloud",  # gcloud credentials and access tokens
    "~/.kube",  # kubeconfig client keys and bearer tokens, and their cache
    "~/.docker/config.json",  # registry auths (base64 user:password)
    "~/.config/gh/hosts.yml",  # GitHub CLI OAuth tokens
    "~/.git-credentials",  # git's plaintext credential store
    "~/.netrc",  # logins curl, git and ftp send anywhere
    "~/.npmrc",  # npm registry _authToken
    "~/.pypirc",  # PyPI upload tokens
    "~/.local/share/keyrings",  # GNOME keyring files
    "/etc/shadow",  # password hashes (readable when the sandbox runs as root)
    "/etc/gshadow",  # group password hashes (likewise)
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadOnly:
    """The seed's ``SandboxPolicy::ReadOnly``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkspaceWrite:
    """The seed's ``SandboxPolicy::WorkspaceWrite { network }``."""

    network: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DangerFullAccess:
    """The seed's ``SandboxPolicy::DangerFullAccess``."""


SandboxPolicy = ReadOnly | WorkspaceWrite | DangerFullAccess


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    name: str
    description: str
    network: Network
    rootfs: Access
    workspace: Access
    private_tmp: bool
    writable_paths: tuple[str, ...] = ()
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED  # after `unprotected` is applied
    # Default protected names a user profile removed on purpose (filesystem.unprotect).
    unprotected: tuple[str, ...] = ()
    on_planted_repo: PlantedRepo = PlantedRepo.WARN
    sandboxed: bool = True
    seccomp: str | None = "default"
    apparmor: str | None = None  # an AppArmor profile in apparmor/, for container backends
    capabilities: Capabilities = Capabilities.NONE
    requires_opt_in: bool = False
    extends: str | None = None
    origin: str = "builtin"
    # network.* (domains.py patterns): empty allow = every domain (on ports 80/443).
    allow_domains: tuple[str, ...] = ()
    deny_domains: tuple[str, ...] = ()
    inspect_tls: bool = False
    allow_local_hosts: bool = False
    # filesystem.deny_read: host paths (~/…, /abs, globs) a sandboxed run cannot read.
    deny_read: tuple[str, ...] = ()
    # secrets: credentials the egress proxy injects; the sandbox holds placeholders.
    secrets: tuple[SecretBinding, ...] = ()
    # mcp.*: the tools of a server `codex-box mcp wrap` runs (names or fnmatch patterns);
    # an empty allow list admits every tool.
    mcp_allow_tools: tuple[str, ...] = ()
    mcp_deny_tools: tuple[str, ...] = ()

    def allows_network(self) -> bool:
        return self.network is not Network.NONE

    def uses_egress_proxy(self) -> bool:
        """Whether the sandbox's only way out is the egress proxy. `read-only` always
        (methods are its point); `full` once any rule names what it may reach."""
        if not self.sandboxed or self.network is Network.NONE:
            return False
        return self.network is Network.READ_ONLY or bool(
            self.allow_domains or self.deny_domains or self.inspect_tls or self.secrets
        )

    def allows_write(self) -> bool:
        return self.workspace is Access.READ_WRITE or self.allows_full_write()

    def allows_full_write(self) -> bool:
        return self.rootfs is Access.READ_WRITE

    def to_sandbox_policy(self) -> SandboxPolicy:
        if self.allows_full_write() or not self.sandboxed:
            return DangerFullAccess()
        if self.allows_write():
            return WorkspaceWrite(network=self.allows_network())
        return ReadOnly()
