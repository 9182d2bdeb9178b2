"""One thing a profile does to a devcontainer.json key: ``Finding``.

Owns: the vocabulary of ``devcontainer check`` and of the refusal a run exits with —
the key (``runArgs[2]``), its value as written (shortened), refused or changed, and
why. Does not own: the rules (``vetting``, ``run_args``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

REFUSED, CHANGED = "refused", "changed"


@dataclass(frozen=True, slots=True)
class Finding:
    key: str  # the devcontainer.json key, e.g. "runArgs[2]"
    value: str  # its value as written (shortened)
    action: str  # refused | changed
    why: str

    def line(self) -> str:
        return f"{self.key} {self.value}: {self.action} — {self.why}"


def refused_finding(key: str, value: Any, why: str) -> Finding:
    return Finding(key, short(value), REFUSED, why)


def changed_finding(key: str, value: Any, why: str) -> Finding:
    return Finding(key, short(value), CHANGED, why)


def short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")  # a finding is one line
    return text if len(text) <= 120 else text[:117] + "..."


def refused(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.action == REFUSED]
