"""Starlark rule files (``policy.loader.load_policy``, as every launch loads them: the
default policy, ``$CODEX_HOME/rules/*.policy``, then the project's tighten-only
``.codex/rules/*.policy``): rule calls with arguments of every type, Starlark that runs
away, and text that is not Starlark at all give a valid rule set or a one-line
``PolicyError`` (exit 125) naming file:line — never a crash, a hang, or a project rule
that loosens."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.errors import EXIT_SETUP
from orchestrator.policy.decision import Decision
from orchestrator.policy.loader import PolicyError, load_policy
from orchestrator.policy.rules import ArgType

from .conftest import ODD_CHARS, assert_one_line_error, fuzz, huge_ints, odd_text, outcome

DECISIONS = ["safe", "match", "unverified", "forbidden", "SAFE", "allow", ""]
WORDS = ["git", "ls", "-l", "--output", "status", "*", "~/x", "/etc", "a b", "'", "\\", "--"]


def starlark(value: Any) -> str:
    """A Python value as a Starlark literal (JSON's escapes are Starlark's)."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        return f"{value[0]}({', '.join(starlark(v) for v in value[1:])})"  # a call
    if isinstance(value, list):
        return "[" + ", ".join(starlark(v) for v in value) + "]"
    return "{" + ", ".join(f"{starlark(k)}: {starlark(v)}" for k, v in value.items()) + "}"


words = st.sampled_from(WORDS) | odd_text
arg_types = st.sampled_from([k.value for k in ArgType]) | words
option_calls = st.tuples(st.just("flag"), words) | st.tuples(
    st.just("opt"), words, arg_types
)  # fmt: skip
leaf = (
    st.none() | st.booleans() | huge_ints.filter(lambda n: abs(n) < 2**62)
    | words | st.sampled_from(DECISIONS) | arg_types | option_calls
)  # fmt: skip
literal = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=2),
    max_leaves=12,
)
KWARGS = {
    "prefix_rule": ["pattern", "decision", "justification", "match", "not_match", "with_any"],
    "define_program": ["program", "options", "args", "requires", "forbidden_paths",
                       "justification", "should_match", "should_not_match"],
    "pipe_rule": ["source", "sink", "decision", "justification"],
}  # fmt: skip


@st.composite
def rule_calls(draw: st.DrawFn) -> str:
    form = draw(st.sampled_from(sorted(KWARGS)))
    names = draw(st.lists(st.sampled_from(KWARGS[form]) | words, unique=True, max_size=6))
    args = ", ".join(f"{n}={starlark(draw(literal))}" if n.isidentifier() else starlark(n)
                     for n in names)  # fmt: skip
    return f"{form}({args})"


@st.composite
def plausible_rules(draw: st.DrawFn) -> str:
    """Rules that mostly load: what a tighten-only check has to stop."""
    program = draw(st.sampled_from(["git", "ls", "curl"]))
    decision = draw(st.sampled_from(DECISIONS[:4]))
    form = draw(st.sampled_from(["prefix", "pipe", "program"]))
    if form == "prefix":
        return f"prefix_rule(pattern=[{program!r}], decision={decision!r})"
    if form == "pipe":
        return f"pipe_rule(source=[{program!r}], sink=['sh'], decision={decision!r})"
    return f"define_program(program={program!r}, args=['ARG_RFILES_OR_CWD'])"


RUNAWAY = st.sampled_from(
    [
        "def f():\n    for i in range(2147483647):\n        pass\nf()",
        "def f():\n    return f()\nf()",
        "x = 1 << 100000000",
        "x = [0] * 3000000000",
        "load('x.star', 'y')",
        "x = {}\nx[x] = 1",
        "prefix_rule(**{'pattern': ['ls'], 'decision': 'safe', 'x': 1})",
        "\0",
        "\ufeffprefix_rule(pattern=['ls'], decision='safe')",
    ]
)
policy_texts = (
    st.lists(rule_calls() | plausible_rules() | RUNAWAY, min_size=1, max_size=4).map("\n".join)
    | st.text(st.sampled_from(list("()[]{}=,:'\"\\\n #*.abc_0")) | ODD_CHARS, max_size=200)
)


def check(text: str, *, project: bool) -> None:
    with tempfile.TemporaryDirectory() as top:
        home, workspace = Path(top, "home"), Path(top, "proj")
        rules = workspace / ".codex" / "rules" if project else home / "rules"
        rules.mkdir(parents=True)
        home.mkdir(exist_ok=True)
        (rules / "fz.policy").write_bytes(text.encode("utf-8", "surrogatepass"))
        loaded, error = outcome(lambda: load_policy(codex_home=home, workspace=workspace), text)
    if error is not None:
        assert_one_line_error(error, PolicyError, exit_code=EXIT_SETUP)
        assert "fz.policy" in error.message, f"the error names another file: {error.message}"
        return
    if project:  # README: a project's rules may only tighten
        mine = [r for r in (*loaded.prefix, *loaded.pipes) if r.where.file.endswith("fz.policy")]
        assert all(r.decision >= Decision.UNVERIFIED for r in mine), text
        assert not [p for p in loaded.programs if p.where.file.endswith("fz.policy")], text


@fuzz("Starlark rule file ($CODEX_HOME/rules)", examples=120)
@given(policy_texts)
def test_user_rule_file(text: str) -> None:
    check(text, project=False)


@fuzz("Starlark rule file (project .codex/rules)", examples=120)
@given(policy_texts)
def test_project_rule_file(text: str) -> None:
    check(text, project=True)
