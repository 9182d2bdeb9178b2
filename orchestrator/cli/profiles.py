"""``codex-box profiles [show NAME | explain | new | templates]``: profiles, listed,
shown, explained and written.

Part of the command line: options and output only. Does not own: resolving
(``resolve``), writing profiles (``profiles.templates``), approvals (``cli.approvals``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.core.errors import CodexBoxError
from orchestrator.profiles.store import show_value, values_of
from orchestrator.resolve.precedence import ChainEntry
from orchestrator.runner.views import profile_dict, profiles_table

from .output import emit_json, fail, host, warn

if TYPE_CHECKING:
    from orchestrator.core.profile import Profile
    from orchestrator.runner.context import HostContext

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Workspace = Annotated[str | None, typer.Option(help="Workspace directory (default: cwd).")]


profiles_app = typer.Typer(help="List profiles, or `profiles show NAME` for one in full.")


@profiles_app.callback(invoke_without_command=True)
def profiles_list(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """Each profile and what it allows."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        profiles = list(host().store.all().values())
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json([profile_dict(p) for p in profiles])
    else:
        typer.echo(profiles_table(profiles))


@profiles_app.command("show")
def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile name or alias.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
) -> None:
    """The full, effective definition of one profile."""
    import yaml  # only this verb prints YAML

    try:
        profile = host().store.get(name)
    except CodexBoxError as exc:
        fail(exc)
    data = profile_dict(profile)
    if as_json:
        emit_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


@profiles_app.command("explain")
def explain(
    workspace: Workspace = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Explain as if run with --profile.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The files and settings that shaped the profile a run here would use, most
    general first, each with the keys it set; then the effective values."""
    context = host()
    where = Path(context.resolved_workspace(workspace))
    try:
        resolution = context.resolve(profile, where)
    except CodexBoxError as exc:
        fail(exc)
    warn(resolution)
    effective = values_of(resolution.profile)
    if as_json:
        emit_json(
            {
                "profile": resolution.profile.name,
                "source": resolution.source.value,
                "detail": resolution.detail,
                "workspace": str(where),
                "chain": [_entry_dict(e) for e in resolution.chain],
                "profile_files": [check.as_dict() for check in resolution.files],
                "effective": effective,
                "secrets": _secrets(context, resolution.profile),
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
    brokered = _secrets(context, resolution.profile)
    if brokered:
        typer.echo("secrets (the sandbox gets a placeholder; the egress proxy adds the value):")
    for secret in brokered:
        typer.echo(
            f"  {secret['name']:<26} {secret['from']} → {', '.join(secret['hosts'])} "
            f"({', '.join(secret['inject'])}; from {secret['declared_in']})"
        )


def _secrets(context: HostContext, profile: Profile) -> list[dict[str, Any]]:
    """The secrets a run of ``profile`` brokers: its own and config.toml's it can use."""
    from orchestrator.profiles.secrets import for_profile

    try:
        config = context.config.secrets
    except CodexBoxError as exc:
        fail(exc)
    own = {b.name for b in profile.secrets}
    return [
        {
            "name": b.name,
            "from": b.shown_source(),
            "hosts": list(b.hosts),
            "inject": list(b.inject),
            "declared_in": profile.origin if b.name in own else str(context.config.path),
        }
        for b in for_profile(profile, config)
    ]


def _entry_dict(entry: ChainEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "where": entry.where,
        "profile": entry.profile,
        "selects": entry.selects,
        **({"note": entry.note} if entry.note else {}),
        "sets": dict(entry.changes),
    }


@profiles_app.command("new")
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

    store = host().store
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
        fail(exc)
    typer.echo(f"wrote {made.path}:")
    typer.echo("".join(f"  {line}\n" for line in made.text.splitlines()).rstrip())
    typer.echo(f"effective profile '{made.profile.name}':")
    for key, value in values_of(made.profile).items():
        typer.echo(f"  {key:<26} {show_value(value)}")
    typer.echo(f"use it: codex-box run --profile {name} -- …  (or `{name}` in .codex-profile)")


@profiles_app.command("templates")
def list_templates(as_json: AsJson = False) -> None:
    """The shipped profile templates, for `profiles new NAME --template T`."""
    from orchestrator.profiles.templates import templates

    found = templates()
    if as_json:
        emit_json(
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
