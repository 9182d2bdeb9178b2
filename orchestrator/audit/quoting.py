"""Where a secret value ends: shell words, quoted strings, header and YAML lines.

Owns: lexing the text of a record the way a shell splits it — backslash escapes,
single- and double-quoted strings (an unterminated one runs to the end of the text),
the quoted operand of ``sh -c`` as a script of its own — and ``extent``, the region a
value starting at a given position covers, with the closing quote to write back after
the placeholder.
Does not own: where values start or whether they are secret (``patterns``,
``core.secrets``), or replacing them (``redact``).

Why shell rules: a record's target is ``shlex.join(argv)``, so a quoted value
(``--password='a b'``) must go as a whole; inside a quoted argument the value runs to
the end of that argument (``'user=bob&password=a b'``), except in a shell script, where
it is one word of the script and the rest of the script stays readable. Lexing is
possessive throughout (no backtracking), done lazily, and looks back a fixed window.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

# Shell lexing: a backslash escape, a single- and a double-quoted string.
_ESC = r"\\."
_SQ = r"'[^']*+'?"
_DQ = r'"(?:[^"\\]++|\\.)*+"?'
# One shell word, and one line of shell text (a quoted part may span lines).
WORD = re.compile(rf"""(?:[^\s'"\\;&|<>()]++|{_ESC}|{_SQ}|{_DQ})*+""", re.S)
LINE = re.compile(rf"""(?:[^\r\n'"\\]++|{_ESC}|{_SQ}|{_DQ})*+""", re.S)
# A quoted header/JSON/YAML value ("token": "x", …) and what is glued to it short of a
# separator: its quotes are written back, so the structure around it survives.
_QUOTED_VALUE = re.compile(
    rf"""(?:'[^']*+'|"(?:[^"\\]++|\\.)*+")(?:[^\s'"\\;&|<>(),\]}}]++|{_ESC}|{_SQ}|{_DQ})*+""",
    re.S,
)
# Quoted strings where a shell sees them (outside quotes, a backslash escapes a quote).
_QUOTE = re.compile(
    rf"""{_ESC}|'(?P<s>[^']*+)(?P<sq>')?|"(?P<d>(?:[^"\\]++|\\.)*+)(?P<dq>")?""", re.S
)
# The quoted operand of `sh -c`, `bash -lc`, `/bin/zsh -o pipefail -c` …: a script.
_SCRIPT_WINDOW = 200
_SCRIPT_OPTION = re.compile(
    r"(?:^|[\s/])(?:ba|z|da|k|mk|fi)?sh(?:[ \t]++[^\s'\"]++)*?[ \t]++-[A-Za-z]*c[ \t]++$"
)


@dataclass(frozen=True, slots=True)
class _Span:
    start: int  # first character inside the quotes
    end: int  # the closing quote, or the end of the text if there is none
    close_end: int  # after the closing quote
    closer: str  # the closing quote, or ""


@dataclass(frozen=True, slots=True)
class _Context:
    """Where a value that starts inside a quoted string may run to."""

    limit: int
    close_end: int
    closer: str
    outer: bool  # a top-level quoted argument, not a string inside one
    script: bool  # the operand of `sh -c`: its content is shell words


class Quotes:
    """The quoted strings of one text, and of the arguments among them, lexed on use."""

    __slots__ = ("_inner", "_outer", "_scripts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._outer: tuple[list[int], list[_Span]] | None = None
        self._inner: dict[int, tuple[list[int], list[_Span]]] = {}
        self._scripts: dict[int, bool] = {}

    def _lex(self, start: int, end: int) -> tuple[list[int], list[_Span]]:
        spans = []
        for m in _QUOTE.finditer(self._text, start, end):
            group = "s" if m["s"] is not None else "d" if m["d"] is not None else None
            if group is None:  # a backslash escape
                continue
            closer = m["sq" if group == "s" else "dq"] or ""
            inside_end = m.end(group)
            spans.append(_Span(m.start(group), inside_end, inside_end + len(closer), closer))
        return [s.start for s in spans], spans

    @staticmethod
    def _find(index: tuple[list[int], list[_Span]], pos: int) -> tuple[int, _Span] | None:
        i = bisect_right(index[0], pos) - 1
        if i < 0 or pos > index[1][i].end:
            return None
        return i, index[1][i]

    def at(self, pos: int) -> _Context | None:
        if self._outer is None:
            self._outer = self._lex(0, len(self._text))
        found = self._find(self._outer, pos)
        if found is None:
            return None
        i, outer = found
        if i not in self._inner:
            self._inner[i] = self._lex(outer.start, outer.end)
            opening = outer.start - 1
            self._scripts[i] = (
                _SCRIPT_OPTION.search(self._text, max(0, opening - _SCRIPT_WINDOW), opening)
                is not None
            )
        inner = self._find(self._inner[i], pos)
        if inner is not None:
            span = inner[1]
            return _Context(span.end, span.close_end, span.closer, outer=False, script=False)
        return _Context(
            outer.end, outer.close_end, outer.closer, outer=True, script=self._scripts[i]
        )


def match_end(pattern: re.Pattern[str], text: str, pos: int, endpos: int) -> int:
    m = pattern.match(text, pos, endpos)
    return m.end() if m else pos


def extent(text: str, quotes: Quotes, pos: int, *, line: bool, word: bool) -> tuple[int, int, str]:
    """The value starting at ``pos``: where to cut (start, end) and what to write back
    after the placeholder (a closing quote the cut took).

    ``line``: at top level the value runs to the end of the line (a header, YAML), or
    is one quoted string (JSON). ``word``: inside a quoted argument the value is one
    word, not the rest of the argument.
    """
    ctx = quotes.at(pos)
    quoted_start = text.startswith(("'", '"'), pos)
    if line and quoted_start:
        quoted = _QUOTED_VALUE.match(text, pos, len(text) if ctx is None else ctx.limit)
        if quoted:  # keep the quotes: "token": "[REDACTED]", …
            return pos + 1, quoted.end(), text[pos]
    if ctx is None:
        pattern = LINE if line and not quoted_start else WORD
        return pos, match_end(pattern, text, pos, len(text)), ""
    if ctx.script or (word and ctx.outer):
        pattern = LINE if line and not quoted_start else WORD
        end = match_end(pattern, text, pos, ctx.limit)
        if end < ctx.limit:
            return pos, end, ""
    # To the end of the quoted string; for a top-level argument, also whatever is glued
    # to its closing quote ('--password=a'"'"'b' is one argument).
    end = ctx.close_end
    if ctx.outer and ctx.closer:
        end = match_end(WORD, text, end, len(text))
    return pos, end, ctx.closer
