"""The Typer-free fast path of ``exec`` reads every command line it accepts exactly as
Typer reads it, and declines the rest — including the flags a session fixes at start,
which only the Typer verb answers (with a usage error)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.cli import exec_cmd, tree
from orchestrator.cli import exec_fast as fast
from orchestrator.cli.exec_fast import ExecArgs

VALUES = ["abc123def456", "ci-42", "a=b", "", "-x", "--", "sub", "5m", "NAME=va lue"]
PIECES = st.one_of(
    st.sampled_from(sorted(fast.EXEC_VALUES)).flatmap(
        lambda name: st.sampled_from(VALUES).map(lambda value: [name, value])
    ),
    st.sampled_from([n for n in fast.EXEC_VALUES if n.startswith("--")]).flatmap(
        lambda name: st.sampled_from(VALUES).map(lambda value: [f"{name}={value}"])
    ),
    st.sampled_from(sorted(fast.EXEC_FLAGS)).map(lambda name: [name]),
    st.sampled_from(
        [["--help"], ["-h"], ["--profile", "trusted"], ["-p", "x"], ["--image", "i"],
         ["--detach=1"], ["--sesion", "x"]]
    ),
)
COMMANDS = st.sampled_from(
    [[], ["--"], ["--", "ls"], ["ls", "-la"], ["-"], ["--", "--help"], ["--", "-s", "x"]]
)


def typer_reads(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> ExecArgs | None:
    seen: list[ExecArgs] = []

    def capture(args: ExecArgs) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(exec_cmd, "execute", capture)
    app = tree.build(argv)
    try:
        app(args=argv, prog_name="codex-box", standalone_mode=False)
    except (Exception, SystemExit):
        return None
    return seen[0] if seen else None


@settings(max_examples=600, derandomize=True, deadline=None)
@given(st.lists(PIECES, max_size=4).map(lambda pieces: [t for p in pieces for t in p]), COMMANDS)
@example(["-s", "ci-42", "--cwd", "sub", "-e", "A", "--env", "B=1"], ["--", "make", "test"])
@example(["--session=abc123def456", "--json", "--detach", "--approve"], ["true"])
def test_the_fast_path_reads_an_exec_exactly_as_typer_does(
    options: list[str], command: list[str]
) -> None:
    argv = ["exec", *options, *command]
    quick = fast.parse_exec(argv, {})
    if quick is None:
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert typer_reads(argv, monkeypatch) == quick, argv


def test_the_fast_path_takes_the_everyday_exec() -> None:
    assert fast.parse_exec(["exec", "--", "true"], {}) == ExecArgs(command=("true",))
    assert fast.parse_exec(["exec", "-s", "ci", "--timeout", "5m", "make"], {}) == ExecArgs(
        command=("make",), session="ci", timeout="5m"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["exec", "--profile", "trusted", "--", "true"],  # fixed at start: Typer refuses it
        ["exec", "--workspace", "/", "true"],
        ["exec", "--help"],
        ["exec", "-s", "a", "-s", "b", "true"],
        ["exec"],
        ["run", "--", "true"],
    ],
)
def test_the_fast_path_declines_what_typer_must_answer(argv: list[str]) -> None:
    assert fast.parse_exec(argv, {}) is None


@pytest.mark.parametrize("flag", ["--profile", "--workspace", "--backend", "--image"])
def test_a_flag_the_session_fixed_is_a_usage_error_on_exec(
    flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[ExecArgs] = []
    monkeypatch.setattr(exec_cmd, "execute", lambda args: ran.append(args) or 0)
    argv = ["exec", "-s", "x", flag, "v", "--", "true"]
    with pytest.raises(SystemExit) as exited:
        tree.build(argv)(args=argv, prog_name="codex-box", standalone_mode=False)
    assert exited.value.code == 2
    assert not ran
    assert "fixed when it starts" in capsys.readouterr().err
