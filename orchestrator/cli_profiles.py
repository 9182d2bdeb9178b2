"""``codex-box profiles explain | new | templates`` and (from ``cli_elevate``) ``elevate``.

Part of the command line (it prints and exits, like ``cli``; split off to keep each
module small). Owns: these subcommands' options and output. Does not own: resolving
(``resolve``), writing profiles (``templates``), grants (``elevation``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from .config import codex_home, load_config
from .errors import CodexBoxError
from .profile_store import ProfileStore, show_value, values_of
from .resolve import ChainEntry, Resolution, resolve_profile

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Workspace = Annotated[str | None, typer.Option(help="Workspace directory (default: cwd).")]


def register(app: typer.Typer, profiles_app: typer.Typer) -> None:
    from .cli_elevate import elevate

    profiles_app.command("explain")(explain)
    profiles_app.command("new")(new)
    profiles_app.command("templates")(list_templates)
    app.command("elevate")(elevate)


def _fail(exc: CodexBoxError) -> NoReturn:
    from .cli import _fail as fail

    fail(exc)


def warn(resolution: Resolution | None) -> None:
    """Each ignored grant, one line on stderr (they are also in the audit log)."""
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
        from .cli import _emit_json

        _emit_json(
            {
                "profile": resolution.profile.name,
                "source": resolution.source.value,
                "detail": resolution.detail,
                "workspace": str(where),
                "chain": [_entry_dict(e) for e in resolution.chain],
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
    from . import templates

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
    from .templates import templates

    found = templates()
    if as_json:
        from .cli import _emit_json

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
