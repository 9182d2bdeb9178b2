"""``codex-box selftest``: run the escape attacks here, judged on the host, and say
whether the sandbox held — for a CI job on its own runners.

Part of the command line: the options, the one ``HostContext``, the summary or
``--json``, the JUnit file, and the exit code — 0 every attack contained, 1 an attack
escaped, 3 nothing escaped but a control failed or an attack could not be judged, 2 a
usage error, 125 the selftest could not run (a backend named is not available here).
Owns nothing the library (``runner.selftest``) decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.core.errors import CodexBoxError, did_you_mean
from orchestrator.runner.selftest import harness, junit, report
from orchestrator.runner.selftest.model import SANDBOXED, TRUSTED

from .output import echo, emit_json, fail, host, merge_parent_option, usage

PROFILE_CHOICES = (*SANDBOXED, harness.ALL)
BACKEND_CHOICES = (*harness.BACKENDS, harness.ALL)


def profiles_for(value: str) -> tuple[str, ...]:
    if value == harness.ALL:
        return SANDBOXED
    if value in SANDBOXED:
        return (value,)
    if value == TRUSTED:
        usage(
            "selftest --profile trusted: trusted has no sandbox, so every attack would "
            "reach the host by design and there is nothing to prove — choose "
            f"{', '.join(PROFILE_CHOICES)}"
        )
    usage(
        f"selftest --profile {value!r} is not a built-in sandboxed profile — "
        f"{did_you_mean(value, PROFILE_CHOICES)}choose one of: {', '.join(PROFILE_CHOICES)}"
    )


def backends_for(value: str) -> tuple[str, ...]:
    if value in BACKEND_CHOICES:
        return (value,)
    usage(
        f"selftest --backend {value!r} is not one selftest runs on — "
        f"{did_you_mean(value, BACKEND_CHOICES)}choose one of: {', '.join(BACKEND_CHOICES)}"
    )


def selftest(
    ctx: typer.Context,
    backend: Annotated[
        str,
        typer.Option(
            help="native | docker | podman, or all: every one available here (one named "
            "but unavailable exits 125)."
        ),
    ] = harness.ALL,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="offline | net-read-only | workspace | workspace-net, or all (the four).",
        ),
    ] = None,
    junit_file: Annotated[
        Path | None,
        typer.Option("--junit", metavar="FILE", help="Write a JUnit XML report to FILE."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Container image for docker/podman (needs sh, python3, coreutils). "
            "Default codex-box/base."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON instead of a summary.")
    ] = False,
) -> None:
    """Run the sandbox-escape attacks here; exit 0 only if every one was contained."""
    chosen = merge_parent_option(ctx, "profile", profile) or harness.ALL
    request = harness.Request(
        backends=backends_for(backend), profiles=profiles_for(chosen), image=image
    )

    try:
        result = harness.run(host(), request)
    except CodexBoxError as exc:
        fail(exc)
    if junit_file is not None:
        try:
            junit.write(result, junit_file)
        except OSError as exc:
            echo(
                f"codex-box: selftest: cannot write the JUnit report {junit_file}: "
                f"{exc.strerror} — choose a writable path",
                err=True,
            )
            raise typer.Exit(125) from exc
    if as_json:
        emit_json(report.as_dict(result))
    else:
        for line in report.summary(result):
            echo(line)
    raise typer.Exit(report.exit_code(result))
