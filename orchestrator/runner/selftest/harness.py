"""Running the catalogue: each attack through the real pipeline (``pipeline.Runner``,
the path ``codex-box run`` takes), in a fresh scratch site, then judged on the host.

Owns: which backends run (the ones named, or every one available here for ``all``),
one ``Site`` per case (scratch HOME, CODEX_HOME and workspace, so the caller's own are
never a target), the run's output captured from the descriptors the backends write to,
host processes counted while a run is in flight, and the verdict per case.
Does not own: the attacks (``attacks``), printing or exit codes (``cli.selftest``).

The runs are made with the execution policy off: the attacks are commands an
enforcing policy would refuse before any sandbox started, which would prove nothing
about the sandbox. Each run's context is the caller's environment with HOME and
CODEX_HOME pointed into the site: config.toml, user profiles and grants of the caller
are not used, so what is proven is the built-in profiles on this host's kernel and
engines.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.backends import base
from orchestrator.core.errors import BackendUnavailable, CodexBoxError, SandboxSetupError
from orchestrator.core.options import LaunchOptions

from ..context import HostContext
from ..pipeline import Runner, RunRequest
from . import capture
from .attacks import CATALOGUE
from .model import TRUSTED, Attack, Case, Effect, Expect, Outcome, Plan, Ran, Report, Suite
from .model import verdict as decide
from .site import SCRATCH_BASE, Listeners, Site

ALL = "all"
BACKENDS = ("native", "docker", "podman")
RUN_TIMEOUT = "30"  # a hung attack ends as 124 and is judged like any other
FIXES = {
    "native": "codex-box doctor shows what the kernel lacks (Landlock, seccomp, namespaces)",
    "docker": "start dockerd and build the image (`make images`), or leave docker out",
    "podman": "start the Podman service (scripts/start-podman.sh) and `make images`, "
    "or leave podman out",
}

OnCase = Callable[[str, str, Case], None]  # (backend, profile, case): progress


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    backends: tuple[str, ...]  # names, or ("all",)
    profiles: tuple[str, ...]
    image: str | None = None  # container backends; None: their default (codex-box/base)
    attacks: tuple[Attack, ...] = CATALOGUE
    expect: Expect | None = None  # force every attack's expectation (the judge's own tests)
    scratch: Path = field(default=SCRATCH_BASE)


def choose_backends(
    context: HostContext, names: tuple[str, ...], *, workspace: Path, image: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The backends to run, and those ``all`` left out with why. A backend named
    outright that cannot run here is an error: a CI job that asked for it must not pass
    without it. Each is probed for an offline run of ``workspace`` as the caller's
    environment describes it (DOCKER_HOST, CONTAINER_HOST, the image)."""
    wanted = BACKENDS if ALL in names else names
    chosen: list[str] = []
    left_out: dict[str, str] = {}
    for name in wanted:
        request = RunRequest(
            argv=("true",),
            profile="offline",
            workspace=str(workspace),
            backend=name,
            options=LaunchOptions(image=image),
            policy_mode="off",
        )
        spec = Runner(context, request).compile()[1]
        availability = base.load(name).availability(spec)
        if availability.ok:
            chosen.append(name)
        elif ALL in names:
            left_out[name] = availability.reason
        else:
            raise BackendUnavailable(
                f"selftest: backend {name} cannot run here: {availability.reason}",
                hint=FIXES.get(name, "choose another --backend"),
            )
    if not chosen:
        reasons = "; ".join(f"{n}: {why}" for n, why in left_out.items())
        raise BackendUnavailable(
            f"selftest: no backend can run here ({reasons})", hint=FIXES["native"]
        )
    return chosen, left_out


def run(context: HostContext, request: Request, *, on_case: OnCase | None = None) -> Report:
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="codex-box-selftest-", dir=request.scratch))
    root.chmod(0o755)  # the sandbox reaches the sites inside as this same user
    suites: list[Suite] = []
    try:
        probe_site = Site.make(root, "probe")  # a workspace (and HOME) to probe backends with
        try:
            here = HostContext.from_environ(
                probe_site.environ(context.environ), cwd=str(probe_site.workspace)
            )
            backends, left_out = choose_backends(
                here, request.backends, workspace=probe_site.workspace, image=request.image
            )
        finally:
            probe_site.close()
        listeners = Listeners(root)
        try:
            for backend in backends:
                for profile in request.profiles:
                    suite = run_suite(
                        context, request, backend, profile, root, listeners, on_case=on_case
                    )
                    suites.append(suite)
        finally:
            listeners.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return Report(suites=tuple(suites), unavailable=left_out, seconds=time.monotonic() - started)


def run_suite(
    context: HostContext,
    request: Request,
    backend: str,
    profile: str,
    root: Path,
    listeners: Listeners,
    *,
    on_case: OnCase | None = None,
) -> Suite:
    started = time.monotonic()
    cases: list[Case] = []
    for attack in request.attacks:
        plan = attack.plan(profile, backend)
        if request.expect is not None and not attack.control:
            plan = Plan(request.expect)
        case = run_case(
            context,
            attack,
            plan,
            backend=backend,
            profile=profile,
            root=root,
            listeners=listeners,
            image=request.image,
        )
        if attack.name == "control.runs" and case.outcome is Outcome.BROKEN and not cases:
            # Nothing runs on this backend at all: not a verdict on any attack.
            why = case.detail.removeprefix("positive control failed: ")
            raise SandboxSetupError(
                f"selftest: backend {backend} cannot run `sh -c echo` under {profile}: {why}",
                hint=FIXES.get(backend, "see codex-box doctor"),
            )
        cases.append(case)
        if on_case is not None:
            on_case(backend, profile, case)
    return Suite(
        backend=backend, profile=profile, cases=tuple(cases), seconds=time.monotonic() - started
    )


def run_case(
    context: HostContext,
    attack: Attack,
    plan: Plan,
    *,
    backend: str,
    profile: str,
    root: Path,
    listeners: Listeners | None = None,
    image: str | None = None,
) -> Case:
    """One attack in a fresh site; its verdict. Never raises for what the attack or
    codex-box did: that is the case's outcome."""
    started = time.monotonic()

    def case(outcome: Outcome, detail: str, ran: Ran | None = None) -> Case:
        return Case(
            name=attack.name,
            summary=attack.summary,
            outcome=outcome,
            detail=detail,
            control=attack.control and plan.expect is Expect.REACHES,
            seconds=time.monotonic() - started,
            output=capture.trim(ran.output) if ran else "",
        )

    if plan.expect is Expect.SKIP:
        return case(Outcome.SKIPPED, plan.why)
    try:
        site = Site.make(root, attack.name, listeners)
    except OSError as exc:
        return case(Outcome.ERROR, f"could not lay out the scratch site: {exc}")
    try:
        try:
            attack.setup(site)
        except OSError as exc:
            return case(Outcome.ERROR, f"setting the host up failed: {exc}")
        ran = _sandboxed(context, attack, site, backend=backend, profile=profile, image=image)
        effect = attack.judge(site, ran)
        if ran.error and not effect.seen:
            effect = Effect(False, f"codex-box did not run it: {ran.error}", ran=False)
        outcome, detail = decide(plan.expect, effect)
        return case(outcome, detail, ran)
    finally:
        site.close()


def _sandboxed(
    context: HostContext,
    attack: Attack,
    site: Site,
    *,
    backend: str,
    profile: str,
    image: str | None,
) -> Ran:
    argv = attack.command(site)
    if not argv:  # judged on the host alone
        return Ran(exit_code=0)
    request = RunRequest(
        argv=argv,
        profile=profile,
        workspace=str(site.workspace),
        backend=backend,
        options=LaunchOptions(timeout=RUN_TIMEOUT, pids=attack.pids, image=image),
        trust_opt_in=profile == TRUSTED,
        policy_mode="off",
    )
    here = HostContext.from_environ(site.environ(context.environ), cwd=str(site.workspace))
    started = time.monotonic()
    watch = capture.Watch(attack.watch(site)) if attack.watch else None
    with capture.captured() as streams, watch or contextlib.nullcontext():
        try:
            exit_code: int | None = Runner(here, request).run().result.exit_code
            error = ""
        except CodexBoxError as exc:
            exit_code, error = None, exc.one_line()
    return Ran(
        exit_code=exit_code,
        stdout=streams.stdout,
        stderr=streams.stderr,
        error=error,
        peak_processes=watch.peak if watch else 0,
        seconds=time.monotonic() - started,
    )
