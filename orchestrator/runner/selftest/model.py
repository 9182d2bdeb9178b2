"""The selftest's vocabulary: what an attack expects under one profile, what a run left
as evidence, what the host showed, and the verdict those make.

Owns: ``verdict`` — the one rule that turns an expectation and an effect into an
outcome — and the per-profile expectation helpers the catalogue is written with.
Does not own: any attack (``attacks``), running anything (``harness``), output
(``junit``, ``report``).

Why judged by effect: a command's exit code says what the attacker saw, and a sandbox
that breaks everything also makes every attack "fail". An attack passes only when it
demonstrably ran (its witness) and the host shows none of its effect; a positive
control passes only when the host shows its effect.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .site import Site

# The four built-in profiles that sandbox; `trusted` runs on the host by design.
SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
TRUSTED = "trusted"
WRITABLE = frozenset({"workspace", "workspace-net", TRUSTED})  # the workspace is writable
FULL_NETWORK = frozenset({"workspace-net", TRUSTED})  # raw egress, no proxy
NO_SANDBOX = "trusted has no sandbox: it allows every attack by design"


class Expect(enum.StrEnum):
    CONTAINED = "contained"  # an attack: the host must show none of its effect
    REACHES = "reaches"  # a positive control: the host must show its effect
    SKIP = "skip"  # the profile allows it, or it means nothing on this backend


class Outcome(enum.StrEnum):
    CONTAINED = "contained"  # pass: the attack ran and changed nothing on the host
    REACHED = "reached"  # pass: the positive control worked
    ESCAPED = "escaped"  # failure: the attack's effect is on the host
    BROKEN = "broken"  # failure: a positive control did not work (the harness proves nothing)
    ERROR = "error"  # could not be judged: the attack did not run, or setting it up failed
    SKIPPED = "skipped"

    @property
    def passed(self) -> bool:
        return self in (Outcome.CONTAINED, Outcome.REACHED, Outcome.SKIPPED)


@dataclass(frozen=True, slots=True)
class Plan:
    """How one attack applies to one profile on one backend."""

    expect: Expect
    why: str = ""  # a SKIP's reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Ran:
    """What one sandboxed run left: its output and exit, or why it never started."""

    exit_code: int | None  # None: codex-box refused or failed before the command ran
    stdout: str = ""
    stderr: str = ""
    error: str = ""  # the CodexBoxError's one line, when exit_code is None
    peak_processes: int = 0  # most host processes carrying the attack's mark at once
    seconds: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True, slots=True)
class Effect:
    """What the host showed after one run."""

    seen: bool  # the attack's (or control's) effect is on the host
    evidence: str  # what was looked at and found, one line
    ran: bool = True  # the attack's witness: it really ran (else it proves nothing)


def verdict(expect: Expect, effect: Effect) -> tuple[Outcome, str]:
    """The outcome of one case and the line that explains it."""
    if expect is Expect.SKIP:
        return Outcome.SKIPPED, effect.evidence
    if expect is Expect.REACHES:
        if effect.seen:
            return Outcome.REACHED, effect.evidence
        return Outcome.BROKEN, f"positive control failed: {effect.evidence}"
    if effect.seen:  # an effect on the host counts even when the witness is missing
        return Outcome.ESCAPED, effect.evidence
    if not effect.ran:
        return Outcome.ERROR, f"the attack did not run, so it proves nothing: {effect.evidence}"
    return Outcome.CONTAINED, effect.evidence


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One attack's result under one profile on one backend (a JUnit testcase)."""

    name: str
    summary: str
    outcome: Outcome
    detail: str
    control: bool = False
    seconds: float = 0.0
    output: str = ""  # the run's output, trimmed (JUnit system-out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Suite:
    """Every case of one backend by profile (a JUnit testsuite)."""

    backend: str
    profile: str
    cases: tuple[Case, ...]
    seconds: float = 0.0

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for case in self.cases if case.outcome in outcomes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    suites: tuple[Suite, ...]
    unavailable: dict[str, str] = field(default_factory=dict)  # backend → why it was left out
    seconds: float = 0.0

    @property
    def escaped(self) -> int:
        return sum(s.count(Outcome.ESCAPED) for s in self.suites)

    @property
    def unproven(self) -> int:
        """Failed controls and cases that could not be judged."""
        return sum(s.count(Outcome.BROKEN, Outcome.ERROR) for s in self.suites)

    @property
    def contained(self) -> bool:
        """Every attack was run and contained, and every control worked."""
        return bool(self.suites) and self.escaped == 0 and self.unproven == 0


PlanFor = Callable[[str, str], Plan]  # (profile, backend) → Plan


def contained_everywhere(profile: str, backend: str) -> Plan:
    """Every sandboxed profile must stop it, on every backend."""
    del backend
    return Plan(Expect.SKIP, NO_SANDBOX) if profile == TRUSTED else Plan(Expect.CONTAINED)


def control_everywhere(profile: str, backend: str) -> Plan:
    del profile, backend
    return Plan(Expect.REACHES)


def only_on(backends: Collection[str], plan: PlanFor, why: str) -> PlanFor:
    """``plan`` on ``backends``; skipped elsewhere for ``why``."""

    def planned(profile: str, backend: str) -> Plan:
        return plan(profile, backend) if backend in backends else Plan(Expect.SKIP, why)

    return planned


@dataclass(frozen=True, slots=True, kw_only=True)
class Attack:
    """One entry of the catalogue: what runs in the sandbox, what the host is set up
    with before, and how the host is judged after. ``command`` returning ``()`` means
    nothing runs in the sandbox: the case is judged on the host alone (a control of the
    harness itself)."""

    name: str  # "fs.write-outside": a JUnit testcase name
    summary: str  # what it tries, one line
    command: Callable[[Site], tuple[str, ...]]
    judge: Callable[[Site, Ran], Effect]
    plan: PlanFor = contained_everywhere
    setup: Callable[[Site], None] = lambda site: None
    control: bool = False  # a positive control wherever it is planned REACHES
    pids: str | None = None  # a process limit for the run (--pids)
    # Host processes whose command line is exactly this are counted while it runs.
    watch: Callable[[Site], bytes] | None = None
