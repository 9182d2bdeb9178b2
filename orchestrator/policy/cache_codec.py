"""The compiled policy's JSON form: every rule field written and read explicitly.

Owns: ``encode`` and ``decode`` of a ``RuleSet`` (the cache entry's body) and
``Invalid``, what a body that is not exactly what ``encode`` writes raises.
Does not own: the entry, its key or its verification (``cache``): nothing here is
trusted until ``cache`` has checked the entry's MAC.
"""

from __future__ import annotations

from typing import Any

from .decision import Decision
from .rules import ArgType, Option, PipeRule, PrefixRule, Program, RuleSet, Where

FORMAT = 1


class Invalid(ValueError):
    """An entry, its directory or its key may not be used (the message says why)."""


# --- the rules as JSON, every field written and read explicitly ---------------------------
# Positional (a launch parses it): a rule is the list of its fields; files and (shared,
# frozen) options are indexes into tables. Decoding checks every list, length, enum and
# index; the MAC, over a body this code wrote (the code is in the key), vouches for types.

_DECISIONS = {d.label: d for d in Decision}
_ARG_TYPES = {a.value: a for a in ArgType}
_TOP = {"format", "key", "files", "options", "prefix", "programs", "pipes"}


def encode(rules: RuleSet, *, key: str) -> dict[str, Any]:
    files = {name: index for index, name in enumerate(rules.files)}

    def at(where: Where) -> list[Any]:
        return [files[where.file], where.line]

    options = {
        o: i for i, o in enumerate(dict.fromkeys(o for p in rules.programs for o in p.options))
    }
    return {
        "format": FORMAT,
        "key": key,
        "files": list(rules.files),
        "options": [
            [list(o.names), None if o.value is None else o.value.value, o.optional] for o in options
        ],
        "prefix": [
            [
                [list(t) if isinstance(t, tuple) else t for t in r.pattern],
                r.decision.label,
                r.justification,
                *at(r.where),
                list(r.with_any),
            ]
            for r in rules.prefix
        ],
        "programs": [
            [
                p.program,
                [options[o] for o in p.options],
                [a.value for a in p.args],
                *at(p.where),
                list(p.requires),
                list(p.forbidden_paths),
                p.justification,
            ]
            for p in rules.programs
        ],
        "pipes": [
            [list(r.source), list(r.sink), r.decision.label, r.justification, *at(r.where)]
            for r in rules.pipes
        ],
    }


def decode(data: object, *, key: str) -> RuleSet:
    """The rule set an entry holds; Invalid (a ValueError), KeyError, IndexError or
    TypeError for anything but the shape ``encode`` writes."""
    if type(data) is not dict or data.keys() != _TOP:
        raise Invalid("the entry has other fields than this version writes")
    if data["format"] != FORMAT or data["key"] != key:
        raise Invalid("the entry is for another format or another set of rule files")
    # Tables by index: a KeyError for an index that is not one (negative ones too).
    files = dict(enumerate(_strings(data["files"])))
    table = dict(enumerate(_option(*_list(o, 3)) for o in _list(data["options"])))
    return RuleSet(
        prefix=tuple(_prefix(files, r) for r in _list(data["prefix"])),
        programs=tuple(_program(files, table, p) for p in _list(data["programs"])),
        pipes=tuple(_pipe(files, r) for r in _list(data["pipes"])),
        files=tuple(files.values()),
    )


def _prefix(files: dict[int, str], data: Any) -> PrefixRule:
    pattern, decision, why, file, line, with_any = _list(data, 6)
    return PrefixRule(
        pattern=tuple(t if type(t) is str else _strings(t) for t in _list(pattern)),
        decision=_DECISIONS[decision],
        justification=why,
        where=_where(files, file, line),
        with_any=_strings(with_any),
    )


def _program(files: dict[int, str], table: dict[int, Option], data: Any) -> Program:
    program, options, args, file, line, requires, forbidden_paths, why = _list(data, 8)
    return Program(
        program=program,
        options=tuple(map(table.__getitem__, _list(options))),
        args=tuple(_ARG_TYPES[a] for a in _list(args)),
        where=_where(files, file, line),
        requires=_strings(requires),
        forbidden_paths=_strings(forbidden_paths),
        justification=why,
    )


def _pipe(files: dict[int, str], data: Any) -> PipeRule:
    source, sink, decision, why, file, line = _list(data, 6)
    return PipeRule(
        source=_strings(source),
        sink=_strings(sink),
        decision=_DECISIONS[decision],
        justification=why,
        where=_where(files, file, line),
    )


def _option(names: Any, value: Any, optional: Any) -> Option:
    if type(optional) is not bool:
        raise Invalid(f"not a boolean: {optional!r}")
    kind = None if value is None else _ARG_TYPES[value]
    return Option(names=_strings(names), value=kind, optional=optional)


def _where(files: dict[int, str], file: Any, line: Any) -> Where:
    if type(line) is not int:
        raise Invalid(f"not a line number: {line!r}")
    return Where(file=files[file], line=line)


def _list(data: Any, length: int | None = None) -> list[Any]:
    if type(data) is not list or (length is not None and len(data) != length):
        raise Invalid(f"not a list{'' if length is None else f' of {length}'}: {data!r:.80}")
    return data


def _strings(data: Any) -> tuple[str, ...]:
    return tuple(_list(data))
