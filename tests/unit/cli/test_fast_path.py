"""The Typer-free fast path of ``run`` reads every command line it accepts exactly as
Typer reads it, and declines the rest (help, errors, anything unusual) to Typer."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.cli import fast, launch, tree
from orchestrator.cli.fast import RunArgs

VALUES = ["offline", "workspace", "a=b", "", "-x", "--", "ls", "5m", "NAME=va lue", "é"]
PIECES = st.one_of(
    st.sampled_from(sorted(fast.VALUE_OPTIONS)).flatmap(
        lambda name: st.sampled_from(VALUES).map(lambda value: [name, value])
    ),
    st.sampled_from([n for n in fast.VALUE_OPTIONS if n.startswith("--")]).flatmap(
        lambda name: st.sampled_from(VALUES).map(lambda value: [f"{name}={value}"])
    ),
    st.sampled_from(sorted(fast.FLAG_OPTIONS)).map(lambda name: [name]),
    st.sampled_from(
        [["--help"], ["-h"], ["-tp", "x"], ["-poffline"], ["--tty=1"], ["--no-tty"], ["--profle"]]
    ),
)
COMMANDS = st.sampled_from(
    [
        [],
        ["--"],
        ["--", "ls"],
        ["ls", "-la"],
        ["-"],
        ["--", "--help"],
        ["sh", "-c", "x -- y"],
        ["ls", "--", "--profile", "x"],
        ["--", "-p", "x"],
    ]
)


def typer_reads(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> RunArgs | None:
    """What the Typer verb hands to ``launch.execute`` for ``argv`` (None: it refused
    the command line, or never got that far)."""
    seen: list[RunArgs] = []

    def capture(args: RunArgs) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(launch, "execute", capture)
    app = tree.build(argv)
    try:
        app(args=argv, prog_name="codex-box", standalone_mode=False)
    except (Exception, SystemExit):  # a usage error, help, ...: not read as a run
        return None
    return seen[0] if seen else None


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(st.lists(PIECES, max_size=4).map(lambda pieces: [t for p in pieces for t in p]), COMMANDS)
@example([], ["ls"])
@example(["--profile", "offline", "-e", "A", "--env", "B=1", "-t"], ["--", "make", "test"])
@example(["--backend=native", "--json", "--print-spec"], ["true"])
def test_the_fast_path_reads_a_run_exactly_as_typer_does(
    options: list[str], command: list[str]
) -> None:
    argv = ["run", *options, *command]
    quick = fast.parse(argv, {})
    if quick is None:
        return  # Typer reads it: nothing to agree on
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert typer_reads(argv, monkeypatch) == quick, argv


def test_the_fast_path_accepts_the_common_shapes() -> None:
    """Not vacuous: the everyday command lines do take the fast path."""
    assert fast.parse(["run", "--", "true"], {}) == RunArgs(command=("true",))
    assert fast.parse(["run", "-p", "offline", "--backend", "native", "--", "true"], {}) == (
        RunArgs(command=("true",), profile="offline", backend="native")
    )
    assert fast.parse(["run", "-e", "A", "-e", "B=2", "ls", "-la"], {}) == RunArgs(
        command=("ls", "-la"), env=("A", "B=2")
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--help"],
        ["run", "-h"],
        ["--profile", "offline", "run", "--", "true"],  # a global option: Typer merges it
        ["run", "--profle", "offline", "--", "true"],  # a typo: Typer's usage error
        ["run", "-p", "a", "-p", "b", "true"],  # repeated
        ["run", "--profile=", "true"],
        ["run", "--profile"],
        ["run", "--"],
        ["run"],
        ["check", "--", "true"],
    ],
)
def test_the_fast_path_declines_what_typer_must_answer(argv: list[str]) -> None:
    assert fast.parse(argv, {}) is None


def test_debug_goes_through_typer() -> None:
    assert fast.parse(["run", "--", "true"], {"CODEX_BOX_DEBUG": "1"}) is None


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["run", "--", "true"], "run"),
        (["--debug", "-p", "offline", "check", "ls"], "check"),
        (["--profile", "run", "run"], "run"),
        (["--profile=x", "profiles", "list"], "profiles"),
        (["--help"], None),
        (["-h", "run"], None),
        (["nosuchverb"], None),
        ([], None),
    ],
)
def test_only_the_invoked_verb_is_built(argv: list[str], verb: str | None) -> None:
    assert tree.invoked_verb(argv) == verb
    app = tree.build(argv)
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert names == ({verb} if verb else set(tree.VERBS))


@pytest.mark.parametrize(
    ("raised", "code"), [(KeyboardInterrupt, 130), (EOFError, 1), (BrokenPipeError, 1)]
)
def test_the_fast_path_ends_an_interrupt_as_typer_does(
    raised: type[BaseException], code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typer ends Ctrl-C with 130, end of input and a closed pipe with 1 (typer.core)."""
    from orchestrator.cli import app

    def interrupted(args: RunArgs) -> int:
        raise raised

    exits: list[object] = []
    monkeypatch.setattr(launch, "execute", interrupted)
    monkeypatch.setattr(app, "_exit_now", exits.append)
    monkeypatch.setattr("sys.argv", ["codex-box", "run", "--", "true"])
    app.main()
    assert exits == [code]
