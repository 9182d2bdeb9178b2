"""Policy files: Starlark run by starlark-rust, examples checked on load, every error
one line naming file:line, and a project's rules that may only tighten."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.errors import EXIT_SETUP
from orchestrator.policy import Context, Decision, Policy, PolicyError, load_file, load_policy
from orchestrator.policy.loader import DEFAULT_POLICY, load_text
from orchestrator.policy.rules import ArgType, sed_script_ok


def load(text: str, *, name: str = "mine.policy", tighten_only: bool = False) -> Policy:
    return Policy(load_text(text, filename=f"/rules/{name}", tighten_only=tighten_only))


def error_of(text: str, **kw: bool) -> str:
    with pytest.raises(PolicyError) as info:
        load(text, **kw)
    assert info.value.exit_code == EXIT_SETUP == 125
    assert "\n" not in info.value.message, "one line"
    assert "codex-box policy test" in info.value.hint
    return info.value.message


CTX = Context(cwd="/ws", home="/home/u", writable_roots=("/ws",))


def test_the_shipped_policy_loads_with_every_example_passing() -> None:
    rules = load_file(DEFAULT_POLICY)
    assert len(rules.prefix) >= 15 and len(rules.programs) >= 10 and rules.pipes
    assert rules.files == (str(DEFAULT_POLICY),)


def test_a_rule_remembers_the_line_it_was_defined_on() -> None:
    policy = load('X = 1\n\nprefix_rule(\n    pattern = ["ls"],\n    decision = "safe",\n)\n')
    finding = policy.evaluate(["ls"], CTX).findings[0]
    assert finding.rule == "mine.policy:3"


def test_a_rule_defined_inside_a_function_names_the_line_of_the_rule() -> None:
    policy = load('def safe(p):\n    prefix_rule(pattern = [p], decision = "safe")\n\nsafe("ls")\n')
    assert policy.evaluate(["ls"], CTX).findings[0].rule == "mine.policy:2"


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('prefix_rule(pattern = ["ls"], decision = "allow")\n', 1, "decision must be one of"),
        ('\nprefix_rule(pattern = ["ls"])\n', 2, "decision must be one of"),
        ('prefix_rule(pattern = [], decision = "safe")\n', 1, "pattern must name"),
        ('prefix_rule(pattern = ["ls"], decision = "safe", bogus = 1)\n', 1, "bogus"),
        ('x = 1 +\n', 1, "Parse error"),
        ('x = 1\ny = undefined_name\n', 2, "undefined_name"),
        ('load("other.policy", "x")\n', 1, "other.policy"),
        ('fail("no")\n', 1, "fail: no"),
        ('\n\nprefix_rule(pattern = ["rm"], decision = "forbidden",\n'
         '            match = [["rm", "-rf", "/"]], not_match = [["rm", "x"]])\n',
         3, "not_match example 'rm x' matches this rule"),
        ('prefix_rule(pattern = ["ls"], decision = "safe", match = [["cat"]])\n',
         1, "match example 'cat' does not match"),
        ('define_program(program = "cp", args = [ARG_RFILE, ARG_WFILE],\n'
         '               should_match = [["cp", "-r", "a", "b"]])\n', 1,
         "should_match example 'cp -r a b' does not match"),
        ('define_program(program = "cp", args = [ARG_RFILES, ARG_WFILES])\n', 1,
         "at most one plural"),
        ('define_program(program = "cp", args = ["ARG_NOPE"])\n', 1, "not an argument type"),
        ('define_program(program = "x", requires = ["-t"])\n', 1, "not defined"),
        ('define_program(program = "x", forbidden_paths = ["etc"])\n', 1, "must be absolute"),
        ('define_program(program = "x", options = ["-r"])\n', 1, "flag(...) or opt(...)"),
        ('pipe_rule(source = ["curl"], sink = ["sh"], decision = "safe")\n', 1,
         "decision must be one of unverified, forbidden"),
        ('for x in [1]:\n    pass\n', 1, "cannot be used outside `def`"),
    ],
)
def test_every_load_error_is_one_line_naming_file_and_line(text: str, line: int, what: str) -> None:
    message = error_of(text)
    assert message.startswith(f"/rules/mine.policy:{line}: "), message
    assert what in message


def test_an_unreadable_or_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"missing\.policy: cannot be read"):
        load_file(tmp_path / "missing.policy")
    binary = tmp_path / "bin.policy"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match=r"bin\.policy: cannot be read"):
        load_file(binary)


def test_starlark_is_hermetic_and_a_long_evaluation_is_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "open" in error_of('open("/etc/passwd")\n')  # no files, no os, no time
    monkeypatch.setattr("orchestrator.policy.loader.DEADLINE_S", 0.2)
    message = error_of(
        "def spin():\n    n = 0\n    for i in range(100000000):\n        n += i * i\n"
        "    return n\nspin()\n"
    )
    assert "longer than 0.2 s" in message


@pytest.mark.parametrize(
    "rule",
    ['prefix_rule(pattern = ["ls"], decision = "safe")',
     'define_program(program = "cp", args = [ARG_RFILE, ARG_WFILE])'],
)
def test_a_projects_rules_may_not_loosen(rule: str) -> None:
    message = error_of(rule + "\n", tighten_only=True)
    assert "may only tighten" in message and "$CODEX_HOME/rules/" in message


def test_a_projects_rules_may_tighten(tmp_path: Path) -> None:
    rules_dir = tmp_path / "proj" / ".codex" / "rules"
    rules_dir.mkdir(parents=True)
    (rules_dir / "no-git-push.policy").write_text(
        'prefix_rule(pattern = ["git", "log"], decision = "forbidden",\n'
        '            justification = "this project keeps its history private")\n'
    )
    policy = Policy(load_policy(workspace=tmp_path / "proj"))
    evaluation = policy.evaluate(["git", "log"], CTX)
    assert evaluation.decision is Decision.FORBIDDEN
    assert "history private" in evaluation.summary()
    (rules_dir / "loosen.policy").write_text('prefix_rule(pattern = ["curl"], decision = "safe")\n')
    with pytest.raises(PolicyError, match=r"loosen\.policy:1: .*may only tighten"):
        load_policy(workspace=tmp_path / "proj")


def test_user_rules_add_to_the_default_and_cannot_override_a_forbidden(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "mine.policy").write_text(
        'prefix_rule(pattern = ["make"], decision = "safe", match = [["make", "test"]])\n'
        'prefix_rule(pattern = ["mkfs"], decision = "safe")\n'
    )
    policy = Policy(load_policy(codex_home=tmp_path))
    assert policy.evaluate(["make", "test"], CTX).decision is Decision.SAFE
    assert policy.evaluate(["mkfs", "/dev/sda"], CTX).decision is Decision.FORBIDDEN  # strictest


def test_typed_options_and_arguments_make_a_match_only_with_written_files() -> None:
    policy = load(
        'define_program(program = "cp", options = [flag("-r", "--recursive"),\n'
        '    opt("-t", ARG_WFILE, aliases = ["--target-directory"])],\n'
        '    args = [ARG_RFILES, ARG_WFILE])\n'
        'define_program(program = "head", options = [opt("-n", ARG_POS_INT)],\n'
        '    args = [ARG_RFILES_OR_CWD])\n'
    )
    assert policy.evaluate(["head", "-n", "5", "f"], CTX).decision is Decision.SAFE
    assert policy.evaluate(["head", "-n5"], CTX).decision is Decision.SAFE
    assert policy.evaluate(["head", "-n", "0"], CTX).decision is Decision.UNVERIFIED  # not > 0
    match = policy.evaluate(["cp", "--recursive", "a", "b", "dst"], CTX)
    assert match.decision is Decision.MATCH and match.findings[0].writes == ("dst",)
    assert policy.evaluate(["cp", "-rx", "a", "b"], CTX).decision is Decision.UNVERIFIED


@pytest.mark.parametrize(
    ("script", "ok"),
    [("s/a/b/", True), ("s/a/b/g", True), ("s|a|b|2", True), ("1,5p", True), ("$d", True),
     ("/x/d", True), ("s/a/b/g;p", True), ("y/abc/xyz/", True), ("10q", True),
     ("s/x/y/e", False), ("s/x/y/w out", False), ("1e id", False), ("e id", False),
     ("w /etc/x", False), ("r /etc/shadow", False), ("s/a/b/;e", False), ("s/a\\/b/c/", False),
     ("s/a/b", False), ("", False), ("p;W out", False)],
)
def test_a_sed_script_is_a_sed_command_only_without_exec_or_file_commands(
    script: str, ok: bool
) -> None:
    assert sed_script_ok(script) is ok
    assert ArgType.SED_COMMAND.value == "ARG_SED_COMMAND"
