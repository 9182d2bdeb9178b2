"""``codex-box ci gitlab config|prepare|run|cleanup`` and ``codex-box ci github-hook``:
the CI drivers (``orchestrator.ci``) as gitlab-runner and the GitHub runner call them.

Part of the command line: the argv each CI system passes, read by Typer. Owns nothing a
driver decides; each verb's exit code is the driver's (GitLab's are the runner's own
``$BUILD_FAILURE_EXIT_CODE`` / ``$SYSTEM_FAILURE_EXIT_CODE``).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

ci_app = typer.Typer(
    help="Drivers for CI job runners: GitLab's custom executor, GitHub's container hooks.",
    no_args_is_help=True,
)
gitlab_app = typer.Typer(
    help="GitLab Runner's custom executor: set config_exec/prepare_exec/run_exec/"
    "cleanup_exec to `codex-box` with these as their args (see the README).",
    no_args_is_help=True,
)
ci_app.add_typer(gitlab_app, name="gitlab")

Profile = Annotated[
    str | None, typer.Option("--profile", "-p", help="The job's profile (default: workspace).")
]
MaxProfile = Annotated[
    str | None,
    typer.Option(help="The widest profile a job may have; a wider one fails the job."),
]


@gitlab_app.command("config")
def gitlab_config(
    builds_root: Annotated[
        str | None, typer.Option(help="Where job directories go (default $CODEX_HOME/ci/builds).")
    ] = None,
) -> None:
    """Print the driver's configuration as JSON (gitlab-runner's config stage)."""
    from orchestrator.ci.gitlab import driver

    raise typer.Exit(driver.config(os.environ, builds_root=builds_root))


@gitlab_app.command("prepare")
def gitlab_prepare(
    profile: Profile = None,
    max_profile: MaxProfile = None,
    runner_profile: Annotated[
        str | None,
        typer.Option(help="The runner stages' profile (default: network to the GitLab host only)."),
    ] = None,
    backend: Annotated[str | None, typer.Option(help="auto | docker | podman | native.")] = None,
    image: Annotated[str | None, typer.Option(help="Container backends: the image.")] = None,
    refuse_unverified: Annotated[
        bool,
        typer.Option(help="Fail a stage the execution policy cannot verify (default: run it)."),
    ] = False,
    policy_mode: Annotated[str | None, typer.Option(help="enforce | audit-only | off.")] = None,
    pass_job_token: Annotated[
        bool, typer.Option(help="Let the job's own stages see CI_JOB_TOKEN (default: not).")
    ] = False,
    idle_timeout: Annotated[str, typer.Option(help="End a job's session idle this long.")] = "1h",
) -> None:
    """Start the job's sessions (gitlab-runner's prepare stage)."""
    from orchestrator.ci.gitlab import driver

    raise typer.Exit(
        driver.prepare(
            os.environ,
            profile=profile,
            max_profile=max_profile,
            runner_profile=runner_profile,
            backend=backend,
            image=image,
            refuse_unverified=refuse_unverified,
            policy_mode=policy_mode,
            pass_job_token=pass_job_token,
            idle_timeout=idle_timeout,
        )
    )


@gitlab_app.command("run")
def gitlab_run(
    script: Annotated[str, typer.Argument(help="The stage's script, as gitlab-runner wrote it.")],
    stage: Annotated[str, typer.Argument(help="The stage: build_script, get_sources, ...")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print each stage's result (JSON) in the job log.")
    ] = False,
) -> None:
    """Run one stage's script in the job's session (gitlab-runner's run stage)."""
    from orchestrator.ci.gitlab import driver

    raise typer.Exit(driver.run(os.environ, script=script, stage=stage, as_json=as_json))


@gitlab_app.command("cleanup")
def gitlab_cleanup(
    keep_builds: Annotated[
        bool,
        typer.Option(help="Keep the job's directory (default: removed; one per job)."),
    ] = False,
) -> None:
    """Stop the job's sessions, remove its directory, forget it (safe to repeat)."""
    from orchestrator.ci.gitlab import driver

    raise typer.Exit(driver.cleanup(os.environ, keep_builds=keep_builds))


@ci_app.command("github-hook")
def github_hook() -> None:
    """GitHub runner container hooks: read {command, responseFile, args, state} on stdin."""
    from orchestrator.ci.github import hook

    raise typer.Exit(hook.main(os.environ, sys.stdin))
