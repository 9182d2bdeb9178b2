"""Splitting a JSONC object into its members as written, and putting it back together:
comments, strings that look like comments or structure, JSON5's quotes and bare keys."""

from __future__ import annotations

import json5
import pytest

from orchestrator.devcontainer.jsonc_edit import (
    has_inner_comments,
    leading_comments,
    rebuild,
    split,
)

TEXT = """\
// head
{
  // about a
  "a": 1, // after a
  'b': "x // not a comment, { nor } this",
  c: [1, /* inside */ 2,],
  "d": {"e": "]}"}, /* after d */
  // the end
}
// tail
"""


def test_split_keeps_every_members_text() -> None:
    parts = split(TEXT)
    assert parts is not None
    assert [m.key for m in parts.members] == ["a", "b", "c", "d"]
    assert parts.head == "// head\n"
    assert parts.members[0].lead == "\n  // about a\n  "
    assert parts.members[0].body == '"a": 1'
    assert parts.members[0].trail == " // after a\n"  # on its line: a's, after the comma
    assert parts.members[1].lead == "  "
    assert parts.members[2].body == "c: [1, /* inside */ 2,]"
    assert parts.members[3].trail == " /* after d */\n"
    assert parts.inner_tail == "  // the end\n"
    assert parts.tail == "\n// tail\n"
    assert parts.indent() == "  "


def test_rebuild_with_everything_kept_is_the_text_itself() -> None:
    parts = split(TEXT)
    assert parts is not None
    keep = json5.loads(TEXT)
    assert rebuild(parts, keep=keep, added=[], head=parts.head, banner="") == TEXT


def test_rebuild_drops_changes_and_adds_members() -> None:
    parts = split(TEXT)
    assert parts is not None
    keep = {"a": 1, "c": [9], "d": {"e": "]}"}}
    text = rebuild(
        parts, keep=keep, changed=["c"], added=[("z", ["q"])], head="// new\n", banner="ours"
    )
    assert json5.loads(text) == {**keep, "z": ["q"]}
    assert text.startswith("// new\n{\n  // about a\n")
    assert "not a comment" not in text and "// after a" in text
    assert '  "c": [\n    9\n  ]' in text
    assert '  // ours\n  "z": [\n    "q"\n  ]' in text
    assert text.endswith("// the end\n}\n// tail\n")


def test_an_empty_object_and_one_ending_without_a_comma() -> None:
    for text in ("{}", "{ }\n", "{ // c\n}", '{"a": 1}', '{"a": 1 // c\n}'):
        parts = split(text)
        assert parts is not None, text
        out = rebuild(parts, keep=json5.loads(text), added=[("k", 1)], head="", banner="b")
        assert json5.loads(out) == {**json5.loads(text), "k": 1}, out


@pytest.mark.parametrize(
    "text", ["[1]", "// only a comment", '"s"', '{"a": 1} 2', '{"a": 1, "a": 2}', "{", "{,}x"]
)
def test_anything_but_one_object_of_distinct_keys_is_not_split(text: str) -> None:
    assert split(text) is None


def test_leading_comments() -> None:
    assert leading_comments(TEXT) == "// head\n"
    assert leading_comments("/* a */ // b\n {}") == "/* a */ // b\n "
    assert leading_comments("") == ""


def test_inner_comments_are_those_after_the_first_value_character() -> None:
    assert has_inner_comments(TEXT)
    assert not has_inner_comments('// head\n{"a": "/x // y", "b": "/*"}\n')
    assert has_inner_comments('{"a": 1} // after')


def test_a_line_comment_moved_with_its_member_ends_its_line() -> None:
    for text in ('{"a": [1], // about a\n "b": 2, "c": 3}',
                 '{"a": [1], /* about\n a */\n "b": 2, /* b */\n "c": 3}'):  # fmt: skip
        parts = split(text)
        assert parts is not None
        assert rebuild(parts, keep=json5.loads(text), added=[], head="", banner="") == text
        out = rebuild(parts, keep={"a": [1], "c": 3}, added=[], head="", banner="")
        assert json5.loads(out) == {"a": [1], "c": 3} and "about" in out, out
