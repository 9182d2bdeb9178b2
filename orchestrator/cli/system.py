"""``codex-box doctor``, ``apparmor check|install`` and ``gc``: the host, asked and tidied.

Part of the command line: calls the runner, the hardening checks and the backends'
sweep, prints. Owns nothing they decide.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.core.errors import CodexBoxError

from .output import emit_json, fail, host

apparmor_app = typer.Typer(
    no_args_is_help=True,
    help="codex-box's AppArmor profiles (apparmor/), applied by Docker and Podman where loaded.",
)


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
    image: Annotated[
        str | None,
        typer.Option(help="Instead: what IMAGE lacks for CI jobs (bash, git, gitlab-runner…)."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="With --image: docker or podman (default: auto).")
    ] = None,
) -> None:
    """Which backends work here, why not, their versions, and each profile's backend.
    With --image: exit 0 when the image has what a CI job needs, 1 when it lacks one."""
    if image is not None:
        _doctor_image(image, backend, as_json)
        return
    from orchestrator.runner.doctor import diagnose  # loads every backend: only here

    try:
        report = diagnose(host())
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json(report.as_dict())
        return
    for name, diagnosis in report.backends.items():
        state = "available" if diagnosis.available else "unavailable"
        typer.echo(f"{name:<11} {state:<12} {diagnosis.reason}")
        for key, value in diagnosis.facts.items():
            typer.echo(f"{'':<11}   {key}: {value}")
        for note in diagnosis.notes:
            typer.echo(f"{'':<11}   note: {note}")
    typer.echo(f"profile → backend (tried in order: {' → '.join(report.order)})")
    for profile, backend in report.profiles.items():
        typer.echo(f"  {profile:<14} {backend}")
    typer.echo(f"credential broker: {report.broker}")
    for line in report.advice:
        typer.echo(f"advice: {line}")


def _doctor_image(image: str, backend: str | None, as_json: bool) -> None:
    from orchestrator.runner.doctor_image import TOOLS, check_image

    try:
        report = check_image(host(), image, backend=backend)
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json(report.as_dict())
    else:
        typer.echo(f"image {report.image} ({report.backend}):")
        for name, (why, required) in TOOLS.items():
            where = report.found.get(name)
            state = where or ("MISSING" if required else "missing (optional)")
            typer.echo(f"  {name:<14} {state:<28} {why}")
    if not report.ready:
        raise typer.Exit(1)


@apparmor_app.command("check")
def apparmor_check(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Profile files (default: every shipped codex-box-* profile)."),
    ] = None,
) -> None:
    """Compile the profiles without loading them (no AppArmor needed in the kernel).

    Exit 0 when all compile, 1 when one does not (file:line printed), 125 without
    apparmor_parser."""
    from orchestrator.hardening import apparmor

    try:
        problems = apparmor.check(paths or None)
    except CodexBoxError as exc:
        fail(exc)
    for problem in problems:
        typer.echo(f"codex-box: apparmor: {problem}", err=True)
    if problems:
        raise typer.Exit(apparmor.EXIT_CHECK_FAILED)
    typer.echo(f"apparmor: {len(paths or apparmor.shipped())} profiles compile")


@apparmor_app.command("install")
def apparmor_install() -> None:
    """Load the profiles into the kernel (as root; until the next boot).

    Exit 0 when loaded; 125 when this host cannot load them (no AppArmor in the kernel,
    no apparmor_parser, not root) or a profile fails to load."""
    from orchestrator.hardening import apparmor

    try:
        loaded = apparmor.install()
    except CodexBoxError as exc:
        fail(exc)
    for name in loaded:
        typer.echo(f"apparmor: loaded {name}")


def gc() -> None:
    """Remove what runs, sessions and `serve` killed with SIGKILL left behind (containers,
    cgroups, dead sessions' state and sockets, a dead server's pooled sandboxes)."""
    from orchestrator.runner.tidy import leftovers
    from orchestrator.settings.config import codex_home

    for removed in leftovers(codex_home(os.environ)):
        typer.echo(removed)
