"""``codex-box profiles explain | new | templates | allow | deny | allowed`` and (from
``cli_elevate``) ``elevate``.

Part of the command line (it prints and exits, like ``cli``; split off to keep each
module small). Owns: these subcommands' options and output. Does not own: resolving
(``resolve``), writing profiles (``templates``), grants (``elevation``), approval files
(``profile_approval``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from orchestrator.core.errors import CodexBoxError
from orchestrator.profiles.store import ProfileStore, show_value, values_of
from orchestrator.resolve.elevation import iso
from orchestrator.resolve.precedence import ChainEntry, Resolution, resolve_profile
from orchestrator.settings.config import codex_home, load_config

if TYPE_CHECKING:
    from orchestrator.resolve import approval as profile_approval
    from orchestrator.resolve.precedence import ProfileFile

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Workspace = Annotated[str | None, typer.Option(help="Workspace directory (default: cwd).")]


def register(app: typer.Typer, profiles_app: typer.Typer) -> None:
    from .elevate import elevate

    profiles_app.command("explain")(explain)
    profiles_app.command("new")(new)
    profiles_app.command("templates")(list_templates)
    profiles_app.command("allow")(allow)
    profiles_app.command("deny")(deny)
    profiles_app.command("allowed")(allowed)
    app.command("elevate")(elevate)


def _fail(exc: CodexBoxError) -> NoReturn:
    from .app import _fail as fail

    fail(exc)


def warn(resolution: Resolution | None) -> None:
    """Each ignored grant and ignored .codex-profile, one line on stderr (a run also
    puts them in the audit log)."""
    for text in resolution.warnings() if resolution else ():
        typer.echo(f"codex-box: warning: {text}", err=True)


def explain(
    workspace: Workspace = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Explain as if run with --profile.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The files and settings that shaped the profile a run here would use, most
    general first, each with the keys it set; then the effective values."""
    environ = dict(os.environ)
    home = codex_home(environ)
    where = Path(os.path.realpath(workspace or os.getcwd()))
    try:
        resolution = resolve_profile(
            flag=profile,
            environ=environ,
            workspace=where,
            config=load_config(home),
            store=ProfileStore(codex_home=home),
            codex_home=home,
        )
    except CodexBoxError as exc:
        _fail(exc)
    warn(resolution)
    effective = values_of(resolution.profile)
    if as_json:
        from .app import _emit_json

        _emit_json(
            {
                "profile": resolution.profile.name,
                "source": resolution.source.value,
                "detail": resolution.detail,
                "workspace": str(where),
                "chain": [_entry_dict(e) for e in resolution.chain],
                "profile_files": [check.as_dict() for check in resolution.files],
                "effective": effective,
                "warnings": list(resolution.warnings()),
            }
        )
        return
    typer.echo(f"{resolution.profile.name}  (workspace {where})")
    typer.echo("shaped by, most general first:")
    for number, entry in enumerate(resolution.chain, 1):
        if entry.selects:
            typer.echo(f"  {number}. {entry.kind:<15} {entry.where}")
            note = f" — {entry.note}" if entry.note else ""
            typer.echo(f"  {'':<18} selects {entry.profile}{note}")
            continue
        typer.echo(f"  {number}. {entry.kind:<15} {entry.where}")
        if entry.kind == "built-in":
            typer.echo(f"  {'':<18} defines every key ({entry.profile})")
        for key, value in entry.changes.items() if entry.kind != "built-in" else ():
            typer.echo(f"  {'':<18} {key} = {show_value(value)}")
    if resolution.files:
        typer.echo(".codex-profile approval, nearest first:")
        for check in resolution.files:
            typer.echo(f"  {check.path}  selects {check.profile}")
            typer.echo(f"  {'':<4}{check.text()}")
    typer.echo("effective:")
    for key, value in effective.items():
        typer.echo(f"  {key:<26} {show_value(value)}")


def _entry_dict(entry: ChainEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "where": entry.where,
        "profile": entry.profile,
        "selects": entry.selects,
        **({"note": entry.note} if entry.note else {}),
        "sets": dict(entry.changes),
    }


def new(
    name: Annotated[str, typer.Argument(help="The new profile's name (its file name).")],
    base: Annotated[
        str | None, typer.Option("--from", help="Start from this profile (built-in or yours).")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Start from a template (`profiles templates`).")
    ] = None,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option("--allow-domain", help="Allow only these domains (repeatable)."),
    ] = None,
    deny_domain: Annotated[
        list[str] | None, typer.Option("--deny-domain", help="Deny this domain (repeatable).")
    ] = None,
    inspect_tls: Annotated[
        bool, typer.Option("--inspect-tls", help="Filter methods inside HTTPS too.")
    ] = False,
    description: Annotated[str | None, typer.Option(help="One line about it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile.")] = False,
) -> None:
    """Write $CODEX_HOME/profiles/NAME.yaml, checked like any user profile first."""
    from orchestrator.profiles import templates

    store = ProfileStore(codex_home=codex_home(os.environ))
    try:
        if (store.user_dir() / f"{name}.yaml").exists() and not force:
            raise templates.exists(store.user_dir() / f"{name}.yaml")
        made = templates.render(
            store,
            name=name,
            base=base,
            template=template,
            allow=tuple(allow_domain or ()),
            deny=tuple(deny_domain or ()),
            inspect_tls=inspect_tls,
            description=description,
        )
        templates.write(made, force=force)
    except CodexBoxError as exc:
        _fail(exc)
    typer.echo(f"wrote {made.path}:")
    typer.echo("".join(f"  {line}\n" for line in made.text.splitlines()).rstrip())
    typer.echo(f"effective profile '{made.profile.name}':")
    for key, value in values_of(made.profile).items():
        typer.echo(f"  {key:<26} {show_value(value)}")
    typer.echo(f"use it: codex-box run --profile {name} -- …  (or `{name}` in .codex-profile)")


def list_templates(as_json: AsJson = False) -> None:
    """The shipped profile templates, for `profiles new NAME --template T`."""
    from orchestrator.profiles.templates import templates

    found = templates()
    if as_json:
        from .app import _emit_json

        _emit_json(
            [
                {
                    "name": t.name,
                    "extends": t.extends,
                    "allow": list(t.allow),
                    "deny": list(t.deny),
                    "description": t.description,
                    "path": str(t.path),
                }
                for t in found.values()
            ]
        )
        return
    for t in found.values():
        typer.echo(f"{t.name:<16} extends {t.extends:<14} allow: {', '.join(t.allow)}")
        typer.echo(f"{'':<16} {t.description}")


# --- approving a .codex-profile -------------------------------------------------------

FileArg = Annotated[
    str | None,
    typer.Argument(
        help="A .codex-profile, or the directory holding one (default: the one that "
        "applies to the workspace).",
        show_default=False,
    ),
]


def _target(path: str | None, workspace: str | None, *, must_exist: bool) -> Path:
    """The realpath of the .codex-profile meant: PATH (a file or its directory), else
    the nearest at or above the workspace."""
    from orchestrator.core.errors import UsageError
    from orchestrator.resolve.precedence import PROFILE_FILE, find_profile_file

    if path is None:
        where = Path(os.path.realpath(workspace or os.getcwd()))
        found = find_profile_file(where)
        if found is None:
            raise UsageError(f"no {PROFILE_FILE} at or above {where}", hint="name the file: PATH")
        return found.path
    given = Path(os.path.abspath(path))
    if given.is_dir() and not given.is_symlink():
        given = given / PROFILE_FILE
    if given.name != PROFILE_FILE:
        raise UsageError(f"{path} is not a {PROFILE_FILE}", hint=f"name a {PROFILE_FILE} file")
    # The directory's realpath, the name itself: a symlinked .codex-profile is refused
    # when read (it is never followed), so approving through a link approves nothing.
    target = Path(os.path.realpath(given.parent)) / PROFILE_FILE
    if must_exist and not os.path.lexists(target):
        raise UsageError(f"{target} does not exist", hint="name an existing .codex-profile")
    return target


def allow(
    path: FileArg = None,
    workspace: Workspace = None,
) -> None:
    """Approve this exact content of a .codex-profile that widens the profile (an edit
    needs approval again). It can never make a file select an opt-in profile."""
    from orchestrator.core.errors import UsageError
    from orchestrator.profiles.widening import wider
    from orchestrator.resolve import (
        approval as profile_approval,  # approvals only: not on every command's start-up
    )
    from orchestrator.resolve.precedence import profile_of, read_profile_file, without_file

    from .elevate import _user, audit_writer

    environ = dict(os.environ)
    home = codex_home(environ)
    try:
        target = _target(path, workspace, must_exist=True)
        found: ProfileFile | None = read_profile_file(target)
        if found is None:
            raise UsageError(f"{target} is empty: it selects nothing", hint="write a profile in it")
        store = ProfileStore(codex_home=home)
        profile = profile_of(store, found)  # trusted (opt-in) stays refused: exit 126
        base = without_file(target, config=load_config(home), store=store, codex_home=home)
        record = audit_writer(environ, home)
        approval = profile_approval.approve(
            home, target, found.text.encode(), profile=profile.name, approved_by=_user()
        )
        try:
            record(profile_approval.record_approved(approval))
        except CodexBoxError:
            profile_approval.revoke(home, target)  # no approval without its record
            raise
    except CodexBoxError as exc:
        _fail(exc)
    typer.echo(f"approved {target} (sha256 {approval.sha256[:12]}): selects {profile.name}")
    widens = wider(base.profile, profile)
    if widens:
        typer.echo(f"  wider than '{base.profile.name}' there: {'; '.join(widens)}")
    else:
        typer.echo(f"  not wider than '{base.profile.name}' there: it applied without approval")
    typer.echo(f"  an edit needs approval again; revoke with: codex-box profiles deny {target}")


def deny(
    path: FileArg = None,
    workspace: Workspace = None,
) -> None:
    """Revoke the approval of a .codex-profile: a wider one is ignored again."""
    from orchestrator.resolve import (
        approval as profile_approval,  # approvals only: not on every command's start-up
    )

    from .elevate import audit_writer

    environ = dict(os.environ)
    home = codex_home(environ)
    try:
        target = _target(path, workspace, must_exist=False)
        record = audit_writer(environ, home)
        had = profile_approval.revoke(home, target)
        record(profile_approval.record_revoked(target, had))
    except CodexBoxError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(CodexBoxError(f"cannot revoke: {exc}", hint="check CODEX_HOME's permissions"))
    typer.echo(f"revoked the approval of {target}" if had else f"{target} was not approved")


def allowed(as_json: AsJson = False) -> None:
    """Every approved .codex-profile: path, content hash, when, and whether the file
    still holds what was approved."""
    from orchestrator.resolve import (
        approval as profile_approval,  # approvals only: not on every command's start-up
    )

    home = codex_home(os.environ)
    rows: list[dict[str, Any]] = []
    try:
        found = profile_approval.listing(home)
    except CodexBoxError as exc:
        _fail(exc)
    for item in found:
        if isinstance(item, profile_approval.Approval):
            rows.append(
                {
                    "path": item.path,
                    "sha256": item.sha256,
                    "profile": item.profile,
                    "approved": iso(item.approved),
                    "approved_by": item.approved_by,
                    "state": _still(home, item),
                }
            )
        else:
            rows.append({"path": str(item[0]), "state": f"invalid: {item[1]}"})
    if as_json:
        from .app import _emit_json

        _emit_json(rows)
        return
    if not rows:
        typer.echo("no approved .codex-profile (codex-box profiles allow PATH approves one)")
    for row in rows:
        if "sha256" not in row:
            typer.echo(f"{row['path']}  {row['state']}")
            continue
        typer.echo(
            f"{row['path']}  sha256 {row['sha256'][:12]}  {row['profile']}  "
            f"{row['approved']} by {row['approved_by']}  {row['state']}"
        )


def _still(home: Path, approval: profile_approval.Approval) -> str:
    """``matches``, ``edited`` or ``missing``: does the file still hold what was approved?"""
    from orchestrator.resolve import (
        approval as profile_approval,  # approvals only: not on every command's start-up
    )
    from orchestrator.resolve.precedence import read_profile_file

    try:
        found = read_profile_file(Path(approval.path))
    except CodexBoxError as exc:
        return f"unreadable: {exc.message}"
    if found is None:
        return "missing"
    checked = profile_approval.check(home, found.path, found.text.encode())
    return "matches" if isinstance(checked, profile_approval.Approval) else "edited"
