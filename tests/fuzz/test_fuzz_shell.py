"""Shell command lines as the execution policy splits them (``policy.shell`` through
``Policy.evaluate``: wrappers, getopt, ``bash -c`` scripts, nested shells), the judgement
every ``run``, ``check`` and session exec makes before anything starts. Any argv —
bash's whole grammar, broken scripts, odd bytes (argv that is not UTF-8 arrives as
surrogate escapes) — gives a decision, never a crash; and a forbidden command that bash
would run first is never hidden by what follows it."""

from __future__ import annotations

import functools

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.policy import Context, Policy, load_policy
from orchestrator.policy.decision import Decision, Evaluation

from .conftest import fuzz, odd_text, outcome

TOKENS = [
    "ls", "cat", "echo", "git", "rm", "-rf", "sh", "bash", "-c", "env", "x=1", "PATH=.",
    "LD_PRELOAD=x", ";", "&&", "||", "|", "&", "(", ")", "{", "}", "$(", "`", "$x", "${x}",
    "${x:-y}", "$((1+1))", "<<EOF", "<<-'E'", "EOF", "E", ">", ">>", "2>&1", ">&-", "<(",
    ">(", "if", "then", "else", "fi", "for", "in", "do", "done", "while", "case", "esac",
    "function", "f()", "*", "?", "[a]", "~", "~root", "\\", "'", '"', "#", "!", "[[", "]]",
    "eval", "exec", "source", ".", "xargs", "find", "-exec", "{}", "\\;", "sed", "-i",
    "s/a/b/e", "/etc/passwd", "notes.txt", "/dev/null", "cd", "..", "\n", "\t", "$'\\x41'",
    ":(){ :|:& };:", "coproc", "time", "nohup", "sudo", "timeout", "5", "--", "-", "\0",
]  # fmt: skip
WRAPPERS = [
    [], ["env"], ["env", "-i"], ["nice", "-n", "5"], ["timeout", "5"], ["nohup"],
    ["stdbuf", "-o0"], ["command"], ["exec"], ["time"], ["xargs"], ["setsid"],
    ["sudo", "-u", "root"], ["ionice", "-c3"], ["bash", "-c"], ["sh", "-c"],
]  # fmt: skip

token = st.sampled_from(TOKENS) | odd_text
scripts = st.lists(token, max_size=25).map(" ".join) | st.text(max_size=200)
argvs = st.builds(
    lambda wrap, shell, script, tail: tuple(wrap) + tuple(shell) + (script, *tail),
    st.sampled_from(WRAPPERS),
    st.sampled_from([[], ["bash", "-c"], ["sh", "-c"], ["bash", "-lc"]]),
    scripts,
    st.lists(token, max_size=3),
)
# HOME outside the writable roots: else a shell's startup files make every bash line
# unverified, and the property below would hold for that reason alone.
CONTEXT = Context(
    cwd="/var/tmp/fz-workspace",
    home="/nonexistent/fz-home",
    writable_roots=("/var/tmp/fz-workspace",),
    env=(("PATH", "/usr/bin:/bin"), ("HOME", "/nonexistent/fz-home")),
)


@functools.cache
def policy() -> Policy:
    return Policy(load_policy())  # the shipped default.policy, as `check` uses it


def evaluate(argv: tuple[str, ...]) -> Evaluation:
    result, error = outcome(lambda: policy().evaluate(argv, CONTEXT), argv)
    assert error is None, f"{argv!r}: {error!r}"  # the policy judges; it never refuses to
    assert isinstance(result.decision, Decision)
    return result


@fuzz("shell command line (policy splitter)", examples=400)
@given(argvs | st.lists(token, min_size=1, max_size=8).map(tuple))
def test_any_command_line_gets_a_decision(argv: tuple[str, ...]) -> None:
    evaluate(argv)


@fuzz("shell command line (forbidden first)", examples=300)
@given(st.sampled_from(WRAPPERS[:-2]), st.sampled_from(["\n", "; ", " && ", " | "]), scripts)
def test_a_forbidden_command_first_is_never_hidden(
    wrap: list[str], separator: str, script: str
) -> None:
    """``rm -rf /etc`` runs before anything after it is even parsed by bash (a newline),
    or at least as the first command of the list: whatever follows, the line is never
    judged safe (forbidden, or unverified when the rest does not parse)."""
    argv = (*wrap, "bash", "-c", "rm -rf /etc" + separator + script)
    assert evaluate(argv).decision >= Decision.UNVERIFIED, argv


def test_the_context_lets_a_plain_line_be_safe() -> None:
    """The control for the property above: without the rm, a plain line is safe."""
    assert evaluate(("bash", "-c", "ls -l")).decision is Decision.SAFE
