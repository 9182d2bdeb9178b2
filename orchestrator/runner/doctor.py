"""`codex-box doctor`: every backend's state here, and which one each profile would use.

Owns: probing all backends at once, each in its own thread under one deadline, so a
hung engine costs the budget, not a hang; and the per-profile choice ``auto`` would
make right now, from the same probes.
Does not own: any probe (each backend's ``diagnose``/``availability``) or printing
(``cli``).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.backends import base
from orchestrator.core.errors import CodexBoxError
from orchestrator.profiles.store import BUILTIN_NAMES

from .context import HostContext
from .preview import builtin_specs
from .selection import order_for

BUDGET_S = 2.5  # the whole report; `doctor` must answer within 3 s even if an engine hangs
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Report:
    backends: dict[str, base.Diagnosis]
    order: tuple[str, ...]  # the backends a run tries, in order (auto, or the one named)
    profiles: dict[str, str]  # profile → "docker" / "none: why"
    elapsed_s: float
    advice: tuple[str, ...] = ()  # settings outside codex-box that close a hole it cannot
    broker: str = ""  # whether the egress proxy can inject brokered secrets here

    def as_dict(self) -> dict[str, Any]:
        return {
            "backends": [
                {
                    "name": name,
                    "available": d.available,
                    "reason": d.reason,
                    "facts": dict(d.facts),
                    "notes": list(d.notes),
                }
                for name, d in self.backends.items()
            ],
            "order": list(self.order),
            "profiles": self.profiles,
            "elapsed_ms": round(self.elapsed_s * 1000),
            "advice": list(self.advice),
            "broker": self.broker,
        }


def diagnose(context: HostContext, *, budget_s: float = BUDGET_S) -> Report:
    started = time.monotonic()
    deadline = started + budget_s
    specs = builtin_specs(context)
    if not specs:
        raise CodexBoxError("no profile compiles here", hint="run doctor from your workspace")
    here = specs.get("offline") or next(iter(specs.values()))
    backends = {name: base.load(name) for name in base.REGISTRY}
    diagnoses = _parallel(
        {name: functools.partial(b.diagnose, here) for name, b in backends.items()}, deadline
    )
    report: dict[str, base.Diagnosis] = {}
    for name in backends:
        outcome = diagnoses.get(name)
        if isinstance(outcome, base.Diagnosis):
            report[name] = outcome
        else:
            why = outcome or f"no answer within {budget_s:g} s (engine hung?)"
            report[name] = base.Diagnosis(available=False, reason=str(why))
    requested = context.backend_choice(None)
    order = base.AUTO_ORDER if requested == "auto" else (requested,)
    orders = {profile: order_for(requested, spec) for profile, spec in specs.items()}
    checks: dict[str, Callable[[], base.Availability]] = {
        f"{profile}\0{name}": functools.partial(backends[name].availability, spec)
        for profile, spec in specs.items()
        for name in orders[profile]
        if name in report and report[name].available
    }
    answers = _parallel(checks, deadline)
    profiles = {}
    for profile in specs:
        chosen = [n for n in orders[profile] if _ok(answers.get(f"{profile}\0{n}"))]
        profiles[profile] = chosen[0] if chosen else f"none: no backend ({requested}) can run it"
    for profile in BUILTIN_NAMES:
        profiles.setdefault(profile, "none: the profile does not compile here")
    return Report(
        report,
        order,
        profiles,
        time.monotonic() - started,
        advice(context.environ),
        broker=broker_check(context),
    )


def broker_check(context: HostContext) -> str:
    """Whether brokered secrets can work here: the proxy terminates TLS with a CA made
    for each run, so make one and sign a leaf as a run would."""
    try:
        from orchestrator.netproxy.tls import SessionCA

        SessionCA("doctor").context_for("doctor.invalid")
    except Exception as exc:  # ImportError (cryptography), ssl.SSLError, …
        return f"cannot inject: the proxy cannot terminate TLS here ({exc})"
    try:
        declared = [b.name for b in context.config.secrets]
    except CodexBoxError as exc:
        return f"can inject (TLS termination works); config.toml: {exc.message}"
    listed = f"; config.toml brokers {', '.join(declared)}" if declared else ""
    return f"can inject (TLS termination with a per-run CA works){listed}"


def advice(environ: Mapping[str, str]) -> tuple[str, ...]:
    """What the user's own git config should say (read as text: git is not run)."""
    from orchestrator.host.githooks import safe_bare_repository

    if safe_bare_repository(environ) == "explicit":
        return ()
    return (
        "run `git config --global safe.bareRepository explicit`: a sandbox that writes "
        "a workspace can lay out a bare repository (HEAD, objects/, refs/, config) "
        "where there is no .git, and your next `git status` there would run its "
        "core.fsmonitor; with this setting git ignores bare repositories it was not "
        "pointed at (codex-box also reports them after each run)",
    )


def _ok(answer: object) -> bool:
    return isinstance(answer, base.Availability) and answer.ok


def _parallel(calls: Mapping[str, Callable[[], T]], deadline: float) -> dict[str, T | str]:
    """Run each call in a daemon thread; what has not answered by ``deadline`` is left
    out (a hung engine socket cannot hold the report)."""
    results: dict[str, T | str] = {}

    def work(key: str, call: Callable[[], T]) -> None:
        try:
            results[key] = call()
        except Exception as exc:  # a probe's failure is its answer
            results[key] = f"probe failed: {exc}"

    threads = [
        threading.Thread(target=work, args=item, daemon=True, name=f"doctor-{item[0]}")
        for item in calls.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(results)
