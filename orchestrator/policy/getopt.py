"""GNU getopt_long, as far as the policy needs it to read an option word the way the
program itself will: the one parser behind ``define_program`` options, the wrappers'
options (``xargs``, ``env``, ``timeout``…) and the long options prefix rules name.

Owns: long options by unique prefix (``--o`` is ``--output`` when nothing else starts
with ``--o``), ``--opt=value``, short clusters (``-rf``, ``-tDIR``), and optional
arguments, which getopt gives an option only in the ``--opt=value`` or attached
``-ovalue`` form: in ``xargs --max-lines touch f`` the word ``touch`` is the command.
Does not own: what an option means (``rules``, ``wrappers``). Pure: no file access.

Why it matters: a reader that resolves an option differently from the program lets a
write or a command through disguised as a value or as an unknown-but-harmless word.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)
MIN_ABBREVIATION = 3  # "--x": getopt_long accepts any unique prefix, even one letter


class Arity(enum.Enum):
    NONE = "none"  # a flag
    REQUIRED = "required"  # -o X, -oX, --opt X, --opt=X
    OPTIONAL = "optional"  # only -oX and --opt=X: a separate word is not its value


Table = Mapping[str, tuple[T, Arity]]  # option spelling → (what it is, its arity)
Parsed = tuple[list[tuple[T, str | None]], int]  # (options with values, words consumed)


def resolve_long(name: str, table: Table[T]) -> tuple[T, Arity] | None:
    """``name`` (``--xyz``, no ``=``) exactly, or the one option it abbreviates; None when
    unknown or ambiguous (two different options start with it: getopt refuses too)."""
    if name in table:
        return table[name]
    if len(name) < MIN_ABBREVIATION or not name.startswith("--"):
        return None
    found = {hit[0]: hit for n, hit in table.items() if n.startswith("--") and n.startswith(name)}
    return next(iter(found.values())) if len(found) == 1 else None


def abbreviates(word: str, long_name: str) -> bool:
    """Whether ``word`` (``--ou``, ``--ou=x``) can stand for ``long_name`` (``--output``)
    when the program's other long options are not known: any prefix counts, so that
    a rule about a dangerous option also catches each spelling getopt may accept."""
    if not (word.startswith("--") and long_name.startswith("--")):
        return False
    name = word.partition("=")[0]
    return len(name) >= MIN_ABBREVIATION and long_name.startswith(name)


def parse_option(token: str, following: Sequence[str], table: Table[T]) -> Parsed[T] | None:
    """One option word (it starts with ``-`` and is neither ``-`` nor ``--``), with the
    word after it when its value is separate; None when an option is unknown, ambiguous
    or lacks its required value, or a flag is given a value (getopt fails there too)."""
    if token.startswith("--"):
        name, eq, inline = token.partition("=")
        hit = resolve_long(name, table)
        if hit is None:
            return None
        option, arity = hit
        if arity is Arity.NONE:
            return None if eq else ([(option, None)], 1)
        if eq:
            return [(option, inline)], 1
        return _separate(option, arity, following)
    if token in table:  # "-t", or a single-dash long name a rule declares ("-name")
        option, arity = table[token]
        return ([(option, None)], 1) if arity is Arity.NONE else _separate(option, arity, following)
    out: list[tuple[T, str | None]] = []
    for index in range(1, len(token)):
        hit = table.get(f"-{token[index]}")
        if hit is None:
            return None
        option, arity = hit
        if arity is Arity.NONE:
            out.append((option, None))
            continue
        attached = token[index + 1 :]  # -tDIR, -l5: the rest of the word is the value
        if attached or arity is Arity.OPTIONAL:
            out.append((option, attached or None))
            return out, 1
        if not following:
            return None
        out.append((option, following[0]))
        return out, 2
    return out, 1


def _separate(option: T, arity: Arity, following: Sequence[str]) -> Parsed[T] | None:
    if arity is Arity.OPTIONAL:  # the next word is a positional, never this value
        return [(option, None)], 1
    return ([(option, following[0])], 2) if following else None
