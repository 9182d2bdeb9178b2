"""``codex-box audit …``: list, follow, summarise and verify the audit log.

Part of the command line. Owns: the audit subcommands' options and output formats (a table, a
JSON array with ``--json``, JSON Lines with ``--jsonl``). Does not own: reading or
verifying (``audit.query``, ``audit.verify``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.audit.log import DECISIONS, LOG_NAME, OPERATIONS
from orchestrator.core.errors import CodexBoxError, printable
from orchestrator.runner.views import audit_line

from .output import emit_json, fail, host, one_of

if TYPE_CHECKING:
    from orchestrator.audit.query import Query

EXIT_CHAIN_BROKEN = 1  # `audit verify`: the chain is broken (a verdict, like a linter's)

audit_app = typer.Typer(help="The audit log: list records (filters), tail, summary, verify.")

Decision = Annotated[str | None, typer.Option(help="allowed | denied | requires_approval")]
Operation = Annotated[str | None, typer.Option(help="e.g. command_exec, approval")]
Profile = Annotated[str | None, typer.Option(help="A profile name.")]
Session = Annotated[str | None, typer.Option(help="A session id.")]
Since = Annotated[str | None, typer.Option(help="ISO time or age (30m, 2h, 7d).")]
Until = Annotated[str | None, typer.Option(help="ISO time or age.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON document.")]
AsJsonl = Annotated[bool, typer.Option("--jsonl", help="JSON Lines: one record per line.")]


def _log() -> Path:
    """This command's audit log (each verb asks once)."""
    return host().home / LOG_NAME


def _query(
    decision: str | None,
    operation: str | None,
    profile: str | None,
    session: str | None,
    since: str | None,
    until: str | None,
) -> Query:
    from orchestrator.audit.query import of_filters  # the audit verbs only: start-up

    one_of("--decision", decision, DECISIONS)
    one_of("--operation", operation, OPERATIONS)
    return of_filters(
        decision=decision,
        operation=operation,
        profile=profile,
        session=session,
        since=since,
        until=until,
    )


def _print(records: Iterable[Mapping[str, Any]], *, as_json: bool, as_jsonl: bool) -> None:
    if as_json:
        typer.echo(json.dumps(list(records), ensure_ascii=False, indent=2))
        return
    for record in records:
        typer.echo(json.dumps(record, ensure_ascii=False) if as_jsonl else audit_line(record))


@audit_app.callback(invoke_without_command=True)
def audit_list(
    ctx: typer.Context,
    decision: Decision = None,
    operation: Operation = None,
    profile: Profile = None,
    session: Session = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(help="Show at most the last N records (0 = all).")] = 0,
    as_json: AsJson = False,
    as_jsonl: AsJsonl = False,
) -> None:
    """Show audit records, oldest first (every rotated file included)."""
    if ctx.invoked_subcommand is not None:
        return
    from orchestrator.audit.query import read

    try:
        query = _query(decision, operation, profile, session, since, until)
        records = list(read(_log(), query))
    except CodexBoxError as exc:
        fail(exc)
    _print(records[-limit:] if limit > 0 else records, as_json=as_json, as_jsonl=as_jsonl)


@audit_app.command("tail")
def audit_tail(
    follow_: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new records.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", help="Start with the last N records.")] = 10,
    decision: Decision = None,
    operation: Operation = None,
    profile: Profile = None,
    as_jsonl: AsJsonl = False,
) -> None:
    """The newest records; with -f, follow the log as it grows (across rotations)."""
    from orchestrator.audit.query import follow, read

    try:
        query = _query(decision, operation, profile, None, None, None)
        log = _log()
        recent = list(read(log, query))
    except CodexBoxError as exc:
        fail(exc)
    _print(recent[-lines:] if lines > 0 else [], as_json=False, as_jsonl=as_jsonl)
    if follow_:
        sys.stdout.flush()
        try:
            for record in follow(log, query):
                _print([record], as_json=False, as_jsonl=as_jsonl)
                sys.stdout.flush()
        except KeyboardInterrupt:
            return


@audit_app.command("summary")
def audit_summary(
    since: Since = None,
    until: Until = None,
    profile: Profile = None,
    session: Session = None,
    as_json: AsJson = False,
) -> None:
    """Counts by decision, profile and operation, and the most often denied targets."""
    from orchestrator.audit.query import read, summarise

    try:
        query = _query(None, None, profile, session, since, until)
        summary = summarise(read(_log(), query))
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json(summary)
        return
    typer.echo(f"{summary['records']} records, {summary['from'] or '-'} … {summary['to'] or '-'}")
    for title in ("by_decision", "by_profile", "by_operation"):
        typer.echo(f"{title.replace('_', ' ')}:")
        for key, count in summary[title].items():
            typer.echo(f"  {printable(key):<20} {count:>7}")
    typer.echo("top denied:")
    for item in summary["top_denied"] or [{"target": "(none)", "count": 0}]:
        typer.echo(f"  {item['count']:>7}  {printable(item['target'])}")


@audit_app.command("verify")
def audit_verify(as_json: AsJson = False) -> None:
    """Check the hash chain over every file of the log. Exit 0 when it is intact (torn
    lines from interrupted writes are reported), 1 at the first broken or missing
    record (file:line printed), 125 when the log cannot be read."""
    from orchestrator.audit.verify import verify
    from orchestrator.core.errors import AuditError

    log = _log()
    try:
        report = verify(log)
    except OSError as exc:
        fail(AuditError(f"cannot read audit log {log}: {exc.strerror}",
                         hint="check its permissions"))  # fmt: skip
    if as_json:
        emit_json(report.as_json())
    else:
        for line in report.torn:
            typer.echo(f"codex-box: audit: {line}", err=True)
        for line in report.problems[:1]:
            typer.echo(f"codex-box: audit: {line}", err=True)
        if report.ok:
            start = f" from seq {report.first_seq}" if report.first_seq not in (None, 1) else ""
            typer.echo(
                f"audit: chain intact: {report.records} records in {len(report.files)} "
                f"file(s){start}"
            )
    if not report.ok:
        raise typer.Exit(EXIT_CHAIN_BROKEN)
