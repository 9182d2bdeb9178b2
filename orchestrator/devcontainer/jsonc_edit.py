"""Rewriting some top-level keys of a JSONC object while keeping the rest of its text.

Owns: splitting a ``devcontainer.json``'s top-level object into its members as written
(the comments and formatting before, inside and after each), and putting a file back
together with some members left out and others appended — returned only when the text
reads back (``json5``) as exactly the object asked for, else None. Does not own: which
keys change (``export``).

Why not a round-trip parser from PyPI: ``json-five`` installs a module named ``json5``,
as the ``json5`` package ``config`` reads with does, and ``json4humans`` had one release
in 2022. A devcontainer.json merge only rewrites whole top-level keys, so keeping every
member it does not rewrite as written keeps every comment but those inside a rewritten
key's value.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_CODE, _STRING = 1, 2  # a character outside comments and whitespace; inside a string


@dataclass(frozen=True, slots=True)
class Member:
    key: str
    lead: str  # whitespace and comments before it (after the previous comma)
    body: str  # "key": value, as written
    trail: str  # comments after the value, and after its comma to the end of its line


@dataclass(frozen=True, slots=True)
class Split:
    head: str  # everything before the object's "{": the file's leading comments
    members: tuple[Member, ...]
    inner_tail: str  # whitespace and comments after the last member, before "}"
    tail: str  # everything after the "}"
    trailing_comma: bool  # after the last member

    def indent(self) -> str:
        for member in self.members:
            line = member.lead.rsplit("\n", 1)
            if len(line) == 2 and not line[1].strip():
                return line[1]
        return "  "


def split(text: str) -> Split | None:
    """``text`` (one JSONC object) in members; None for anything else."""
    kinds = _classify(text)
    code = [i for i, kind in enumerate(kinds) if kind]
    if not code or text[code[0]] != "{" or kinds[code[0]] != _CODE:
        return None
    opening, depth, start = code[0], 0, code[0] + 1
    bounds: list[tuple[int, int]] = []
    closing = -1
    for i in code:
        if kinds[i] != _CODE:
            continue
        char = text[i]
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                closing = i
                break
        elif char == "," and depth == 1:
            bounds.append((start, i))
            start = i + 1
    if closing < 0 or any(kinds[closing + 1 :]):
        return None
    bounds.append((start, closing))
    members: list[Member] = []
    inner_tail = ""
    for number, (begin, end) in enumerate(bounds):
        inside = [i for i in range(begin, end) if kinds[i]]
        if not inside:  # after a trailing comma, or an empty object: comments only
            if number != len(bounds) - 1:
                return None
            inner_tail = text[begin:end]
            continue
        first, last = inside[0], inside[-1]
        key = _key(text[first : last + 1])
        if key is None:
            return None
        members.append(Member(key, text[begin:first], text[first : last + 1], text[last + 1 : end]))
    keys = [m.key for m in members]
    if len(set(keys)) != len(keys):
        return None  # a repeated key: which one counts is the parser's business
    trailing = bool(members) and len(bounds) > len(members)
    # A comment on the line a member ends on is that member's, after its comma.
    leads = [m.lead for m in members[1:]] + [inner_tail] if members else []
    for number, lead in enumerate(leads):
        end = _line_end(lead)
        same_line, newline, rest = lead[:end], lead[end : end + 1], lead[end + 1 :]
        if newline and same_line.strip():  # the line's end goes too: a // comment ends there
            before = members[number]
            trail = before.trail + same_line + newline
            members[number] = Member(before.key, before.lead, before.body, trail)
            if number + 1 < len(members):
                after = members[number + 1]
                members[number + 1] = Member(after.key, rest, after.body, after.trail)
            else:
                inner_tail = rest
    return Split(text[:opening], tuple(members), inner_tail, text[closing + 1 :], trailing)


def leading_comments(text: str) -> str:
    """The whitespace and comments ``text`` starts with."""
    kinds = _classify(text)
    first = next((i for i, kind in enumerate(kinds) if kind), len(text))
    return text[:first]


def has_inner_comments(text: str) -> bool:
    """Whether ``text`` has a comment after its first value character."""
    kinds = _classify(text)
    first = next((i for i, kind in enumerate(kinds) if kind), len(text))
    return any(not kinds[i] and not text[i].isspace() for i in range(first, len(text)))


def rebuild(
    parts: Split,
    *,
    keep: Mapping[str, Any],
    changed: Collection[str] = (),
    added: Sequence[tuple[str, Any]],
    head: str,
    banner: str,
) -> str:
    """The object with the members named in ``keep`` as written (those in ``changed``
    with their value from ``keep``), then ``added`` (each a key and its value, the first
    preceded by the ``banner`` comment), after ``head``."""
    indent = parts.indent()
    pieces = [
        (m.lead, _member(m.key, keep[m.key], indent) if m.key in changed else m.body, m.trail)
        for m in parts.members
        if m.key in keep
    ]
    for number, (key, value) in enumerate(added):
        lead = f"\n{indent}// {banner}\n{indent}" if number == 0 else f"\n{indent}"
        pieces.append((lead, _member(key, value, indent), ""))
    inner = "".join(
        lead + body + ("," if number < len(pieces) - 1 or parts.trailing_comma else "") + trail
        for number, (lead, body, trail) in enumerate(pieces)
    )
    inner_tail = parts.inner_tail
    if added and not inner_tail.strip():
        inner_tail = "\n"  # after a member of ours
    return f"{head}{{{inner}{inner_tail}}}{parts.tail}"


def dumps(value: Any, indent: str = "") -> str:
    """``value`` as JSON indented by two spaces a level, its lines after the first
    indented by ``indent`` (where it sits in a file)."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)


def _line_end(gap: str) -> int:
    """Where the first line of ``gap`` (whitespace and comments) ends: its first newline
    outside a block comment; its length when it has none."""
    i = 0
    while i < len(gap):
        if gap.startswith("/*", i):
            close = gap.find("*/", i + 2)
            i = len(gap) if close < 0 else close + 2
        elif gap[i] == "\n":
            return i
        else:
            i += 1
    return len(gap)


def _member(key: str, value: Any, indent: str) -> str:
    return f"{json.dumps(key)}: {dumps(value, indent)}"


def _key(body: str) -> str | None:
    import json5  # as config reads the file

    try:
        member = json5.loads("{" + body + "}")
    except ValueError:
        return None
    if not isinstance(member, dict) or len(member) != 1:
        return None
    return str(next(iter(member)))


def _classify(text: str) -> bytearray:
    """Per character: 0 for whitespace or a comment, ``_CODE``, or ``_STRING``."""
    kinds = bytearray(len(text))
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "\"'":
            j = i + 1
            while j < n and text[j] != char:
                j += 2 if text[j] == "\\" else 1
            end = min(j + 1, n)
            kinds[i:end] = bytes([_STRING]) * (end - i)
            i = end
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
        else:
            if not char.isspace():
                kinds[i] = _CODE
            i += 1
    return kinds
