"""README.md's example outputs are real: the checked ones are re-run and compared.

How an example is marked, run and normalised: ``tests/readme_examples.py``. A drifted
example fails with the real output ready to paste (or run
``.venv/bin/python -m tests.readme_examples --update``). Every ``default.policy:N`` the
README cites must sit in a checked example *and* be the line where a rule of the shipped
policy starts.
"""

from __future__ import annotations

import pytest

from orchestrator.policy import DEFAULT_POLICY, load_file
from tests import readme_examples as rx

TEXT = rx.README.read_text(encoding="utf-8")
EXAMPLES = rx.parse(TEXT)


def test_the_readme_has_checked_examples() -> None:
    assert len(EXAMPLES) >= 5, "the README's checked-example markers are gone"
    assert all(example.steps for example in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_output_is_what_codex_box_prints(example: rx.Example) -> None:
    drifted = [outcome for outcome in rx.run(example) if not outcome.ok]
    assert not drifted, "\n\n".join(rx.report(outcome) for outcome in drifted)


def test_every_policy_citation_is_checked_and_names_a_rule() -> None:
    checked = {line for e in EXAMPLES for line in range(e.first_line, e.last_line)}
    rules = load_file(DEFAULT_POLICY)
    starts = {rule.where.line for rule in (*rules.prefix, *rules.programs, *rules.pipes)}
    citations = list(rx.policy_citations(TEXT))
    assert citations, "the README cites no default.policy line: update this test"
    unchecked = [line for line, _ in citations if line not in checked]
    assert not unchecked, (
        f"README.md lines {unchecked} cite default.policy:N outside a checked example "
        "(mark the block, see tests/readme_examples.py)"
    )
    wrong = [(line, rule) for line, rule in citations if rule not in starts]
    assert not wrong, (
        "README cites default.policy lines where no rule starts (README line, cited line): "
        f"{wrong}; rules start at {sorted(starts)}"
    )


PROFILES = list(rx.profile_blocks(TEXT))


@pytest.mark.parametrize(("line", "yaml"), PROFILES, ids=[f"README.md:{n}" for n, _ in PROFILES])
def test_a_profile_the_readme_shows_loads(line: int, yaml: str) -> None:
    with rx.fresh_layout() as layout:
        profiles = layout.codex_home / "profiles"
        profiles.mkdir(parents=True)
        (profiles / "shown.yaml").write_text(yaml, encoding="utf-8")
        output, status = layout.sh("codex-box profiles show shown")
    assert status == 0, f"README.md:{line}: the profile shown there does not load:\n" + "\n".join(
        output
    )


def test_the_readme_shows_profiles() -> None:
    assert len(PROFILES) >= 2


# The checker itself: it must be able to fail.


def _example(body: str, setup: str | None = None) -> rx.Example:
    marker = "<!-- checked by tests/unit/test_readme_examples.py"
    marker += f", after: {setup} -->" if setup else " -->"
    (example,) = rx.parse(f"intro\n{marker}\n```console\n{body}```\n")
    return example


def test_parse_reads_commands_outputs_exit_and_setup() -> None:
    example = _example("$ echo a\na\n$ false\n[exit 1]\n", setup="true")
    assert example.setup == "true"
    assert [s.command for s in example.steps] == ["echo a", "false"]
    assert example.steps[0].expected() == (["a"], 0)
    assert example.steps[1].expected() == ([], 1)
    assert (example.first_line, example.last_line) == (4, 8)


def test_unmarked_blocks_are_not_checked() -> None:
    assert rx.parse("```console\n$ echo a\nb\n```\n") == []


def test_drift_in_output_or_exit_status_fails() -> None:
    assert all(o.ok for o in rx.run(_example("$ echo a; echo b\na\nb\n")))
    (wrong_text,) = rx.run(_example("$ echo a\nA\n"))
    (wrong_status,) = rx.run(_example("$ echo a; exit 3\na\n"))
    (wrong_line,) = rx.run(_example("$ printf 'default.policy:1\\n'\ndefault.policy:2\n"))
    assert not wrong_text.ok and not wrong_status.ok and not wrong_line.ok
    assert "[exit 3]" in rx.report(wrong_status)


def test_elision_stands_for_lines_but_not_for_a_changed_one() -> None:
    assert rx.matches(["a", "…", "d"], ["a", "b", "c", "d"])
    assert rx.matches(["a", "…", "d"], ["a", "d"])
    assert not rx.matches(["a", "…", "d"], ["a", "b", "c", "e"])
    assert not rx.matches(["a", "b"], ["a", "b", "c"])


def test_only_what_varies_between_runs_and_machines_is_normalised(tmp_path) -> None:
    (here,) = rx.run(
        _example(
            '$ echo "$HOME" "$CODEX_HOME"; pwd\n'
            "/var/tmp/demo/home /var/tmp/demo/home/.codex\n"
            "/var/tmp/demo/proj\n"
        )
    )
    assert here.ok, rx.report(here)
    assert rx.normalise(f"{tmp_path}/x  \n", tmp_path) == ["/var/tmp/x"]
    assert rx.matches(
        ["  backend: docker: at unix:///var/run/docker.sock"],
        ["  backend: native: Landlock ABI 7, seccomp, namespaces"],
    )
    assert rx.matches(
        ["until 2026-11-29T07:24:15Z (1:59:58 left), sha256 dd1451927b7e"],
        ["until 2027-01-02T03:04:05Z (0:00:01 left), sha256 0123456789ab"],
    )
    for shown, real in (
        ("/var/tmp/demo/proj", "/var/tmp/demo/proj2"),
        ("[default.policy:152]", "[default.policy:153]"),
        ("profile offline", "profile workspace"),
        ("  backend: docker", "  backends: docker"),
    ):
        assert not rx.matches([shown], [real]), (shown, real)


def test_cat_steps_write_the_file_they_show() -> None:
    outcomes = rx.run(_example("$ cat sub/f.txt\nhello\n$ cat sub/f.txt | tr a-z A-Z\nHELLO\n"))
    assert [o.ok for o in outcomes] == [True, True]
