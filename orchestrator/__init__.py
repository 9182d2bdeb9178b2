"""codex-box: run commands inside a sandbox chosen by a named security profile.

The public API (``from orchestrator import …``) is ``__all__`` below. Importing this
package is cheap and imports no engine SDK (docker, podman, kubernetes): the names are
loaded on first use (PEP 562), and backends are loaded by name only when chosen. The
native sandbox's child (``python -I -m orchestrator.sandbox.linux.launcher``) imports
this file first, so it must stay this small.
"""

from __future__ import annotations

import importlib

# Not `from typing import TYPE_CHECKING`: importing `typing` costs more than the whole
# of `codex-box exec`'s own work (mypy treats this name the same way).
TYPE_CHECKING = False

__version__ = "0.1.0"

__all__ = [
    "CodexBoxError",
    "HostContext",
    "LaunchOptions",
    "Profile",
    "RunRequest",
    "RunResult",
    "Runner",
    "SandboxSpec",
    "SecurityProfile",
    "Session",
    "__version__",
    "run",
]

# name → the module that defines it
_HOMES = {
    "CodexBoxError": "orchestrator.core.errors",
    "HostContext": "orchestrator.runner.context",
    "LaunchOptions": "orchestrator.core.options",
    "Profile": "orchestrator.core.profile",
    "RunRequest": "orchestrator.runner.pipeline",
    "RunResult": "orchestrator.core.spec",
    "Runner": "orchestrator.runner.pipeline",
    "SandboxSpec": "orchestrator.core.spec",
    "SecurityProfile": "orchestrator.core.profile",
    "Session": "orchestrator.runner.sessions.api",
    "run": "orchestrator.runner.pipeline",
}

if TYPE_CHECKING:
    from typing import Any

    from orchestrator.core.errors import CodexBoxError
    from orchestrator.core.options import LaunchOptions
    from orchestrator.core.profile import Profile, SecurityProfile
    from orchestrator.core.spec import RunResult, SandboxSpec
    from orchestrator.runner.context import HostContext
    from orchestrator.runner.pipeline import Runner, RunRequest, run
    from orchestrator.runner.sessions.api import Session


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
