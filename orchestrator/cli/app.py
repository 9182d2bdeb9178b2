"""The ``codex-box`` command line (Typer). The only module that prints or exits.

Owns: argument parsing, output formatting choices (text / ``--json``), the interactive
opt-in prompt, loguru configuration, and mapping errors to exit codes (DESIGN.md §4).
Does not own: any decision — ``runner`` makes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from orchestrator import __version__
from orchestrator.core import log
from orchestrator.core.errors import EXIT_SETUP, CodexBoxError, UsageError, did_you_mean
from orchestrator.profiles.store import ProfileStore
from orchestrator.resolve.precedence import Resolution, resolve_profile
from orchestrator.runner.pipeline import Runner, RunRequest
from orchestrator.settings.config import codex_home, load_config

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Run commands inside a sandbox chosen by a named security profile.",
)
profiles_app = typer.Typer(help="List profiles, or `profiles show NAME` for one in full.")
app.add_typer(profiles_app, name="profiles")
apparmor_app = typer.Typer(
    no_args_is_help=True,
    help="codex-box's AppArmor profiles (apparmor/), applied by Docker and Podman where loaded.",
)
app.add_typer(apparmor_app, name="apparmor")
policy_app = typer.Typer(no_args_is_help=True, help="The execution policy's rule files.")
app.add_typer(policy_app, name="policy")


def _fail(exc: CodexBoxError) -> NoReturn:
    typer.echo(f"codex-box: {exc.one_line()}", err=True)
    raise typer.Exit(exc.exit_code)


def _emit_json(data: Any, *, err: bool = False) -> None:
    typer.echo(json.dumps(data, indent=None if err else 2, ensure_ascii=False), err=err)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"codex-box {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    show_profile: Annotated[
        bool,
        typer.Option(
            "--show-profile", help="Print the profile that applies here and where it came from."
        ),
    ] = False,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile name.")] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace directory (default: cwd).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log exact launch details to stderr.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if debug or os.environ.get("CODEX_BOX_DEBUG"):
        from loguru import logger

        logger.remove()
        logger.add(sys.stderr, level="DEBUG")
        log.enable()
    if ctx.invoked_subcommand is not None:
        return
    if not show_profile:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    from orchestrator.runner.views import resolution_dict, resolution_text

    environ = dict(os.environ)
    home = codex_home(environ)
    try:
        resolution = resolve_profile(
            flag=profile,
            environ=environ,
            workspace=Path(os.path.realpath(workspace or os.getcwd())),
            config=load_config(home),
            store=ProfileStore(codex_home=home),
            codex_home=home,
        )
    except CodexBoxError as exc:
        _fail(exc)
    _grant_warnings(resolution)
    backend = _backend_for_show(environ, profile=profile, workspace=workspace)
    if as_json:
        _emit_json({**resolution_dict(resolution), "backend": backend})
    else:
        typer.echo(f"{resolution_text(resolution)}\n  backend: {backend}")


def _backend_for_show(
    environ: dict[str, str], *, profile: str | None, workspace: str | None
) -> str:
    """Which backend a run here would use, and why (or why none) — launching nothing."""
    request = RunRequest(
        argv=("true",),
        environ=environ,
        cwd=os.getcwd(),
        profile=profile,
        workspace=workspace,
        trust_opt_in=True,
    )
    try:
        selection = Runner(request).prepare(audit=False, policy=False).selection
    except CodexBoxError as exc:
        return f"none — {exc.one_line()}"
    skipped = f" (skipped {'; '.join(selection.skipped)})" if selection.skipped else ""
    return selection.why + skipped


# Options stop at the first argument (the command), so `run ls -la` passes -la to ls,
# while a mistyped option before it (`--profle`) is a usage error, not the command.
@app.command(context_settings={"allow_interspersed_args": False})
def run(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="[--] COMMAND [ARGS]...", help="The command to run in the sandbox."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="offline, net-read-only, workspace, workspace-net, trusted, or yours.",
        ),
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace directory (default: cwd).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="auto (Docker when reachable, else native) | docker | native."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            help="Pass a withheld host variable (NAME) or set one (NAME=VALUE). Repeatable.",
        ),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="Kill after this long (30, 5m); exit 124.")
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option(help="Memory limit (512m, 2g). Default: none."),
    ] = None,
    pids: Annotated[
        str | None, typer.Option(help="Process limit (0 = none). Default 4096.")
    ] = None,
    cpus: Annotated[str | None, typer.Option(help="CPU quota, e.g. 1.5 (0 = none).")] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Container image (container backends). Default "
            "codex-box/base, built by `make images`."
        ),
    ] = None,
    tty: Annotated[bool, typer.Option("--tty", "-t", help="Run on the terminal.")] = False,
    trust: Annotated[
        bool,
        typer.Option(
            "--yes-i-trust-this-workspace", help="Opt in to a profile that needs it (trusted)."
        ),
    ] = False,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve",
            help="Run a command the policy cannot verify without asking (recorded in the audit).",
        ),
    ] = False,
    policy_mode: Annotated[
        str | None,
        typer.Option(
            "--policy-mode",
            help="enforce (default) | audit-only (record the decision, refuse nothing) | off.",
        ),
    ] = None,
    print_spec: Annotated[
        bool,
        typer.Option(
            "--print-spec",
            help="Print the exact launch request the backend would make; run nothing.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="After the command ends, print its result as one JSON line on stderr."
        ),
    ] = False,
) -> None:
    """Run COMMAND in the sandbox of the resolved profile (see `--show-profile`)."""
    profile = _merge_parent_option(ctx, "profile", profile)
    workspace = _merge_parent_option(ctx, "workspace", workspace)
    if not command:
        typer.echo(
            "codex-box: no command given — put it after --, e.g. codex-box run -- make test",
            err=True,
        )
        raise typer.Exit(2)
    request = RunRequest(
        argv=tuple(command),
        environ=dict(os.environ),
        cwd=os.getcwd(),
        profile=profile,
        workspace=workspace,
        backend=backend,
        env_names=tuple(env or ()),
        timeout=timeout,
        memory=memory,
        pids=pids,
        cpus=cpus,
        image=image,
        tty=tty,
        trust_opt_in=trust,
        approve=approve,
        policy_mode=policy_mode,
    )
    runner = Runner(request, confirm=_confirm_on_tty)
    try:
        if print_spec:
            prepared = runner.prepare(probe=False, policy=False)
            _emit_json(
                {
                    "backend": prepared.backend.name,
                    "why": prepared.selection.why,
                    "skipped": list(prepared.selection.skipped),
                    "request": prepared.backend.translate(prepared.spec),
                }
            )
            return
        try:
            prepared = runner.prepare()
        finally:  # an ignored elevation grant explains a refusal, so also before one
            _grant_warnings(runner.resolution)
        outcome = runner.run(prepared)
    except CodexBoxError as exc:
        _fail(exc)
    result = outcome.result
    for warning in outcome.warnings:  # the post-run check: planted git repositories
        typer.echo(f"codex-box: warning: {warning}", err=True)
    if result.detail and (result.exit_code in (124, 126, 127) or result.oom_killed):
        typer.echo(f"codex-box: {result.detail}", err=True)
    if as_json:
        from orchestrator.runner.views import result_dict

        _emit_json(
            result_dict(
                result,
                run_id=runner.run_id,
                session_id=runner.session_id,
                profile=outcome.prepared.spec.profile,
            ),
            err=True,
        )
    raise typer.Exit(result.exit_code)


def _merge_parent_option(ctx: typer.Context, name: str, value: str | None) -> str | None:
    """`codex-box --profile X run …` means `run --profile X`; two different values is an error."""
    outer = ctx.parent.params.get(name) if ctx.parent else None
    if outer is not None and value is not None and outer != value:
        typer.echo(
            f"codex-box: --{name} given twice ({outer!r} before `run`, {value!r} after) "
            "— give it once",
            err=True,
        )
        raise typer.Exit(2)
    return value if value is not None else outer


def _one_of(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise UsageError(
            f"{flag} {value!r} is not one of the recorded values",
            hint=f"{did_you_mean(value, choices)}use one of: {', '.join(choices)}",
        )


def _confirm_on_tty(question: str) -> bool | None:
    """The user's answer; None when there is no terminal to ask on."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    # Not click's confirm: it writes the prompt's last character to stdout (through
    # input()), which would land in the output of the command being approved.
    sys.stderr.write(f"codex-box: {question} [y/N]: ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


@app.command("check", context_settings={"allow_interspersed_args": False})
def check_cmd(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="[--] COMMAND [ARGS]...", help="The command to judge."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Judge as under this profile.")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace directory (default: cwd).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the execution policy's decision for COMMAND, its matched rules and reasons,
    resolved exactly as `run` would (profile, workspace, rule files); run nothing.
    Exit 0 whatever the decision (125 for a bad profile or policy file)."""
    from orchestrator.policy import gate

    profile = _merge_parent_option(ctx, "profile", profile)
    workspace = _merge_parent_option(ctx, "workspace", workspace)
    if not command:
        typer.echo("codex-box: no command given — e.g. codex-box check -- rm -rf build", err=True)
        raise typer.Exit(2)
    environ = dict(os.environ)
    runner = Runner(
        RunRequest(
            argv=tuple(command),
            environ=environ,
            cwd=os.getcwd(),
            profile=profile,
            workspace=workspace,
            trust_opt_in=True,  # nothing runs: no opt-in to ask for
        )
    )
    try:
        _, spec = runner.compile()
        evaluation = gate.evaluate(
            spec, home=environ.get("HOME") or str(Path.home()), codex_home=runner.home
        )
    except CodexBoxError as exc:
        _fail(exc)
    if as_json:
        _emit_json({**evaluation.as_json(), "profile": spec.profile, "workspace": spec.workspace})
        return
    typer.echo(f"{evaluation.decision.label}: {' '.join(command)}")
    for finding in evaluation.findings:
        rule = f"  [{finding.rule}]" if finding.rule else ""
        shown = " ".join(finding.command) or "(whole line)"
        typer.echo(f"  {finding.decision.label:<10} {shown}: {finding.reason}{rule}")
    typer.echo(f"  profile {spec.profile}, workspace {spec.workspace}")


@policy_app.command("test")
def policy_test(
    files: Annotated[list[Path], typer.Argument(help="Policy files (*.policy).")],
    project: Annotated[
        bool,
        typer.Option("--project", help="Check as a project's .codex/rules file (tighten only)."),
    ] = False,
) -> None:
    """Load each file and check every rule's examples (match/not_match,
    should_match/should_not_match). Exit 0 when all pass, 125 with file:line otherwise."""
    from orchestrator.policy import load_file

    for path in files:
        try:
            rules = load_file(path, tighten_only=project)
        except CodexBoxError as exc:
            _fail(exc)
        count = len(rules.prefix) + len(rules.programs) + len(rules.pipes)
        typer.echo(f"{path}: {count} rules, every example passes")


@profiles_app.callback(invoke_without_command=True)
def profiles_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each profile and what it allows."""
    if ctx.invoked_subcommand is not None:
        return
    from orchestrator.runner.views import profile_dict, profiles_table

    try:
        profiles = list(ProfileStore(codex_home=codex_home(os.environ)).all().values())
    except CodexBoxError as exc:
        _fail(exc)
    if as_json:
        _emit_json([profile_dict(p) for p in profiles])
    else:
        typer.echo(profiles_table(profiles))


@profiles_app.command("show")
def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile name or alias.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
) -> None:
    """The full, effective definition of one profile."""
    import yaml

    from orchestrator.runner.views import profile_dict

    try:
        profile = ProfileStore(codex_home=codex_home(os.environ)).get(name)
    except CodexBoxError as exc:
        _fail(exc)
    data = profile_dict(profile)
    if as_json:
        _emit_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


@app.command("doctor")
def doctor_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Which backends work here, why not, their versions, and each profile's backend."""
    from orchestrator.runner.doctor import diagnose

    try:
        report = diagnose(os.environ, os.getcwd())
    except CodexBoxError as exc:
        _fail(exc)
    if as_json:
        _emit_json(report.as_dict())
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
    for line in report.advice:
        typer.echo(f"advice: {line}")


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
        _fail(exc)
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
        _fail(exc)
    for name in loaded:
        typer.echo(f"apparmor: loaded {name}")


@app.command("gc")
def gc_cmd() -> None:
    """Remove what runs killed with SIGKILL left behind (containers, cgroups)."""
    from orchestrator.backends import base

    for name in base.REGISTRY:
        for removed in base.load(name).gc():
            typer.echo(f"{name}: removed {removed}")


def _register_audit() -> None:
    from .audit import audit_app

    app.add_typer(audit_app, name="audit")


_register_audit()


def _grant_warnings(resolution: Resolution | None) -> None:
    from .profiles import warn

    warn(resolution)


def _register_profiles() -> None:
    from .profiles import register

    register(app, profiles_app)  # profiles explain|new|templates, elevate


_register_profiles()


def main() -> None:
    try:
        app(prog_name="codex-box")
    except SystemExit as exc:
        _exit_now(exc.code)
    except Exception as exc:  # a bug, not bad input: still one line and a documented code
        if os.environ.get("CODEX_BOX_DEBUG"):
            raise
        typer.echo(
            f"codex-box: internal error: {type(exc).__name__}: {exc} — nothing more "
            "was run; rerun with CODEX_BOX_DEBUG=1 for the traceback and report it",
            err=True,
        )
        _exit_now(EXIT_SETUP)


def _exit_now(code: object) -> None:
    """Exit without the interpreter's teardown (20-35 ms per run with an engine SDK
    loaded). Safe because everything durable is already on disk: audit records are
    fsync'd when written, the sandbox is gone, and codex-box registers no atexit work.
    Only our own buffered output remains, flushed here."""
    status = code if isinstance(code, int) else (0 if code is None else EXIT_SETUP)
    if not isinstance(code, int) and code is not None:
        print(code, file=sys.stderr)  # SystemExit("message") semantics
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to tell
            stream.flush()
    os._exit(status)
