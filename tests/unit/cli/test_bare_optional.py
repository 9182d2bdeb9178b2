"""``argv_scan.bare_optional``: ``--devcontainer`` given no value becomes
``--devcontainer=`` (Click would take the next word, even ``--``, as its value) — only
before ``--``: the command after it is not codex-box's to read."""

from __future__ import annotations

import pytest

from orchestrator.cli.argv_scan import OPTIONAL_VALUE, bare_optional


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--devcontainer", "--", "make"], ["run", "--devcontainer=", "--", "make"]),
        (["run", "--devcontainer"], ["run", "--devcontainer="]),
        (["run", "--devcontainer", "-p", "offline", "--", "ls"],
         ["run", "--devcontainer=", "-p", "offline", "--", "ls"]),
        (["run", "--devcontainer", "--profile=workspace", "--", "ls"],
         ["run", "--devcontainer=", "--profile=workspace", "--", "ls"]),
        (["session", "start", "--devcontainer", "--name", "dev"],
         ["session", "start", "--devcontainer=", "--name", "dev"]),
        (["run", "--devcontainer", ".devcontainer/python", "--", "ls"],
         ["run", "--devcontainer", ".devcontainer/python", "--", "ls"]),
        (["run", "--devcontainer", "devcontainer.json"],
         ["run", "--devcontainer", "devcontainer.json"]),
        (["run", "--devcontainer=x.json", "--", "ls"],
         ["run", "--devcontainer=x.json", "--", "ls"]),
        (["run", "--devcontainer=", "--", "ls"], ["run", "--devcontainer=", "--", "ls"]),
        (["run", "--", "tool", "--devcontainer"], ["run", "--", "tool", "--devcontainer"]),
        (["run", "--", "tool", "--devcontainer", "--x"],
         ["run", "--", "tool", "--devcontainer", "--x"]),
        (["run", "--devcontainer", "--", "tool", "--devcontainer"],
         ["run", "--devcontainer=", "--", "tool", "--devcontainer"]),
        (["run", "--devcontainers", "--", "x"], ["run", "--devcontainers", "--", "x"]),
        (["run", "-d", "--", "x"], ["run", "-d", "--", "x"]),
        ([], []),
    ],
)  # fmt: skip
def test_a_bare_devcontainer_before_the_command_gets_an_empty_value(
    argv: list[str], expected: list[str]
) -> None:
    assert bare_optional(argv) == expected


def test_the_caller_s_list_is_not_changed() -> None:
    argv = ["run", "--devcontainer", "--", "x"]
    bare_optional(argv)
    assert argv == ["run", "--devcontainer", "--", "x"]


def test_twice_is_each_one() -> None:
    assert bare_optional(["run", "--devcontainer", "--devcontainer", "--", "x"]) == [
        "run",
        "--devcontainer=",
        "--devcontainer=",
        "--",
        "x",
    ]


def test_only_devcontainer_takes_an_optional_value() -> None:
    assert OPTIONAL_VALUE == ("--devcontainer",)
