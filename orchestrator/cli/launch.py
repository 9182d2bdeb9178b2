"""The body of ``codex-box run``, without its command line: one ``RunArgs`` (``cli.fast``) → one
``RunRequest`` → the runner → what is printed and the exit code.

Owns: what ``run`` prints (the spec for ``--print-spec``, warnings, the detail of a
failed start, the ``--json`` result line) and its exit code. Shared by the Typer verb
(``cli.run``) and the fast path (``cli.fast``), so both do exactly the same thing with
the same arguments. Imports no Typer: the fast path never loads it.
Does not own: parsing the command line, any decision (``runner``).
"""

from __future__ import annotations

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import LaunchOptions
from orchestrator.runner.context import HostContext
from orchestrator.runner.pipeline import Runner, RunRequest

from .fast import RunArgs
from .output import confirm_on_tty, echo, emit_json, fail, host, usage, warn


def remote_address(flag: str | None) -> str | None:
    """--server, else CODEX_BOX_SERVER, else None: run here."""
    import os

    return flag or os.environ.get("CODEX_BOX_SERVER") or None


def _auto(context: HostContext) -> bool:
    """config.toml says ``[sandbox] devcontainer = "auto"`` (a malformed one: not here —
    the runner then refuses the launch naming the file, and audits it)."""
    try:
        return context.config.devcontainer == "auto"
    except CodexBoxError:
        return False


def execute(args: RunArgs) -> int:
    """Run it; the exit code to leave with (a usage or setup error exits here)."""
    if not args.command:
        usage("no command given — put it after --, e.g. codex-box run -- make test")
    server = remote_address(args.server)
    if server is not None and args.devcontainer is not None:
        usage("--devcontainer runs here only, not through --server")
    if server is not None:
        from . import remote  # the API client only when a server is asked for

        return remote.run(args, server)
    context = host()
    options = LaunchOptions(
        env_names=args.env,
        timeout=args.timeout,
        memory=args.memory,
        pids=args.pids,
        cpus=args.cpus,
        image=args.image,
        tty=args.tty,
    )
    backend = args.backend
    dc_error: CodexBoxError | None = None
    if args.devcontainer is not None or _auto(context):
        from . import devcontainer_launch as dcl

        try:
            found = dcl.config_file(context, args.devcontainer, args.workspace)
            if found is not None:
                dc = dcl.prepare(
                    context,
                    file=found[0],
                    workspace=found[1],
                    profile=args.profile,
                    backend=backend,
                    options=options,
                    build=not args.print_spec,
                )
                dcl.report(dc, brief=True)
                if dc.lifecycle and not args.print_spec:
                    return dcl.run_in_session(context, args, dc)
                options, backend = dc.options, dc.engine
        except CodexBoxError as exc:
            dc_error = exc
    request = RunRequest(
        argv=args.command,
        profile=args.profile,
        workspace=args.workspace,
        backend=backend,
        options=options,
        trust_opt_in=args.trust,
        approve=args.approve,
        policy_mode=args.policy_mode,
    )
    runner = Runner(context, request, confirm=confirm_on_tty)
    if dc_error is not None:  # refused or unusable: audited like any refused launch
        try:
            runner.refuse(dc_error)
        except CodexBoxError as exc:
            fail(exc)
        fail(dc_error)
    try:
        if args.print_spec:
            prepared = runner.prepare(probe=False, policy=False)
            emit_json(
                {
                    "backend": prepared.backend.name,
                    "why": prepared.selection.why,
                    "skipped": list(prepared.selection.skipped),
                    "request": prepared.backend.translate(prepared.spec, prepared.selection.facts),
                }
            )
            return 0
        try:
            prepared = runner.prepare()
        finally:  # an ignored elevation grant explains a refusal, so also before one
            warn(runner.resolution)
        outcome = runner.run(prepared)
    except CodexBoxError as exc:
        fail(exc)
    result = outcome.result
    for warning in outcome.warnings:  # the post-run check: planted git repositories
        echo(f"codex-box: warning: {warning}", err=True)
    if result.detail and (result.exit_code in (124, 126, 127) or result.oom_killed):
        echo(f"codex-box: {result.detail}", err=True)
    if args.as_json:
        emit_json(runner.result(outcome), err=True)
    return result.exit_code
