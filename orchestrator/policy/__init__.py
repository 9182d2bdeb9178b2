"""The execution policy: every command line is judged before any sandbox starts.

``load_policy`` reads the Starlark rule files (or, when none changed since a launch
evaluated them, their verified compiled form under CODEX_HOME: ``cache``);
``Policy(rules).evaluate(argv, context)`` returns an ``Evaluation`` whose decision is
safe, match, unverified or forbidden.
"""

from __future__ import annotations

from .context import Context
from .decision import Decision, Evaluation, Finding
from .engine import Policy
from .loader import DEFAULT_POLICY, PolicyError, load_file, load_policy

__all__ = [
    "DEFAULT_POLICY",
    "Context",
    "Decision",
    "Evaluation",
    "Finding",
    "Policy",
    "PolicyError",
    "load_file",
    "load_policy",
]
