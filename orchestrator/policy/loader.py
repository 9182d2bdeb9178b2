"""Reading policy files: Starlark, run by a real Starlark interpreter (starlark-rust,
through starlark-pyo3). The only module that imports the binding.

Owns: the builtins a policy file may call (``prefix_rule``, ``define_program``,
``pipe_rule``, ``flag``, ``opt``, ``ARG_*``), checking each rule's examples the moment
it is defined, which files make up the policy (the shipped ``default.policy``, then
``$CODEX_HOME/rules/*.policy``, then the project's ``.codex/rules/*.policy``, which may
only tighten), and turning any Starlark error into one line naming file:line.
Does not own: matching (``rules``), evaluating (``engine``), or the compiled-policy
cache (``cache``: a launch whose rule files are unchanged never evaluates Starlark).

Starlark is hermetic (no files, no network, no clock) and has no unbounded loops;
evaluation still runs under a deadline so a pathological file cannot hang a launch.
"""

from __future__ import annotations

import io
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

from . import cache
from .decision import Decision
from .rules import ArgType, Option, PipeRule, PrefixRule, Program, RuleSet, Token, Where

DEFAULT_POLICY = Path(__file__).with_name("default.policy")
USER_RULES = "rules"  # $CODEX_HOME/rules/*.policy
PROJECT_RULES = (".codex", "rules")  # <workspace>/.codex/rules/*.policy
DEADLINE_S = 2.0
_LOCATION = re.compile(r"--> (?P<file>.+?):(?P<line>\d+):\d+")
_FRAME = re.compile(r"^\s*\* (?P<file>.+?):(?P<line>\d+), in ", re.M)
# Starlark does not tell a Python builtin its caller's line, but its call_stack() does:
# each rule form is a Starlark function that hands its stack to the Python builtin.
PRELUDE_NAME = "<codex-box prelude>"
RULE_FORMS = ("prefix_rule", "define_program", "pipe_rule")
PRELUDE = "".join(
    f"def {form}(**kwargs):\n    _{form}(call_stack(), kwargs)\n" for form in RULE_FORMS
)
_FIX = "fix the rule, then check it with `codex-box policy test FILE`"


class PolicyError(ConfigError):
    """A policy file is malformed or one of its examples fails (exit 125)."""


class _RuleError(Exception):
    """Raised inside a builtin: Starlark reports it with the calling line."""


@dataclass(frozen=True, slots=True)
class Source:
    """One rule file as read for this launch. The bytes hashed into the cache key are
    the bytes evaluated on a miss: a file changed in between is never cached under the
    old content's key."""

    path: Path
    tighten_only: bool
    data: bytes | OSError  # an error is raised in load order, as load_file raises it


def load_policy(*, codex_home: Path | None = None, workspace: Path | None = None) -> RuleSet:
    """The rule set for a launch: default, then the user's, then the project's. From
    the verified cache under ``codex_home`` when no file changed; else evaluated, and
    cached when CODEX_HOME is writable."""
    sources = read_sources(codex_home=codex_home, workspace=workspace)
    files = [(str(s.path), s.tighten_only, s.data) for s in sources if isinstance(s.data, bytes)]
    if codex_home is None or len(files) < len(sources):
        return build(sources)  # nowhere to cache, or an error to raise in its turn
    entry = cache.Entry(codex_home, files)
    if (rules := entry.load()) is None:
        rules = build(sources)  # a PolicyError propagates: nothing is cached
        entry.store(rules)
    return rules


def read_sources(*, codex_home: Path | None, workspace: Path | None) -> list[Source]:
    """Every rule file in load order, read once."""
    paths = [(DEFAULT_POLICY, False)]
    if codex_home is not None:
        paths += [(p, False) for p in sorted((codex_home / USER_RULES).glob("*.policy"))]
    if workspace is not None:
        paths += [(p, True) for p in sorted(workspace.joinpath(*PROJECT_RULES).glob("*.policy"))]
    return [Source(path, tighten_only, _read(path)) for path, tighten_only in paths]


def build(sources: Sequence[Source]) -> RuleSet:
    """Evaluate the files in order (Starlark); PolicyError for the first problem."""
    rules = RuleSet()
    for source in sources:
        try:
            if isinstance(source.data, OSError):
                raise source.data
            # Decoded as Path.read_text decodes: UTF-8, universal newlines.
            text = io.TextIOWrapper(io.BytesIO(source.data), encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{source.path}: cannot be read ({exc})", hint=_FIX) from exc
        rules += load_text(text, filename=str(source.path), tighten_only=source.tighten_only)
    return rules


def load_file(path: Path, *, tighten_only: bool = False) -> RuleSet:
    """One policy file's rules; PolicyError naming file:line on any problem."""
    return build([Source(path, tighten_only, _read(path))])


def _read(path: Path) -> bytes | OSError:
    try:
        return path.read_bytes()
    except OSError as exc:
        return exc


def load_text(text: str, *, filename: str, tighten_only: bool = False) -> RuleSet:
    import starlark

    builder = _Builder(filename, tighten_only=tighten_only)
    module = starlark.Module()
    for name, value in builder.builtins().items():
        if callable(value):
            module.add_callable(name, value)
        else:
            module[name] = value
    globals_ = starlark.Globals.extended_by([starlark.LibraryExtension.CallStack])
    deadline = time.monotonic() + DEADLINE_S
    options = starlark.EvalOptions(check_cancelled=lambda: time.monotonic() > deadline)
    try:
        starlark.eval(module, starlark.parse(PRELUDE_NAME, PRELUDE), globals_)
        # Starlark takes UTF-8 names only; a path that is not (a workspace named in
        # another encoding) is shown with its odd bytes escaped.
        shown = filename.encode("utf-8", "backslashreplace").decode("utf-8")
        ast = starlark.parse(shown, text, starlark.Dialect.standard())
        starlark.eval_with(options, module, ast, globals_)
    except starlark.StarlarkError as exc:
        if time.monotonic() > deadline:
            raise PolicyError(
                f"{filename}: evaluation took longer than {DEADLINE_S:g} s", hint=_FIX
            ) from exc
        raise PolicyError(_one_line(str(exc), filename), hint=_FIX) from exc
    except BaseException as exc:
        # starlark-rust panics on some overflows (`"".join([x] * 100)` past 4 GiB: "len
        # overflow"); pyo3 raises that as PanicException, a BaseException. A project's
        # rule file (a cloned repository's) must not crash every launch with it.
        if type(exc).__name__ != "PanicException":
            raise
        raise PolicyError(f"{filename}: evaluation failed ({exc})", hint=_FIX) from None
    return RuleSet(
        prefix=tuple(builder.prefix),
        programs=tuple(builder.programs),
        pipes=tuple(builder.pipes),
        files=(filename,),
    )


def _one_line(message: str, filename: str) -> str:
    """Starlark's multi-line report → "file:line: what"."""
    frames = [f for f in _FRAME.finditer(message) if f["file"] != PRELUDE_NAME]
    where = frames[-1] if frames else _LOCATION.search(message)
    location = f"{where['file']}:{where['line']}" if where else filename
    what = next(
        (ln.removeprefix("error: ") for ln in message.splitlines() if ln.startswith("error: ")),
        message.strip().splitlines()[0] if message.strip() else "error",
    )
    return f"{location}: {what.replace('_RuleError: ', '')}"


class _Builder:
    """The builtins of one file; collects its rules. Each builtin checks its arguments
    and examples at once, so an error points at the rule's own line."""

    def __init__(self, filename: str, *, tighten_only: bool) -> None:
        self.filename = filename
        self.tighten_only = tighten_only
        self.prefix: list[PrefixRule] = []
        self.programs: list[Program] = []
        self.pipes: list[PipeRule] = []
        self.line = 0

    def builtins(self) -> dict[str, Any]:
        names: dict[str, Any] = {kind.value: kind.value for kind in ArgType}
        names |= {f"_{form}": self._called(getattr(self, form)) for form in RULE_FORMS}
        names |= {"flag": flag, "opt": opt}
        return names

    def _called(self, form: Callable[..., None]) -> Callable[[str, dict[str, Any]], None]:
        def call(stack: str, kwargs: dict[str, Any]) -> None:
            frames = [f for f in _FRAME.finditer(stack) if f["file"] != PRELUDE_NAME]
            self.line = int(frames[-1]["line"]) if frames else 0
            try:
                form(**kwargs)
            except TypeError as exc:  # an unknown or missing keyword argument
                raise _RuleError(str(exc).replace("_Builder.", "")) from None

        return call

    def where(self) -> Where:
        return Where(file=self.filename, line=self.line)

    def decision(self, value: object, *, allowed: Iterable[Decision]) -> Decision:
        names = [d.label for d in allowed]
        if not isinstance(value, str) or value not in names:
            raise _RuleError(f"decision must be one of {', '.join(names)}, not {value!r}")
        chosen = Decision.from_label(value)
        if self.tighten_only and chosen < Decision.UNVERIFIED:
            raise _RuleError(
                f"a project's rules may only tighten: decision {value!r} is not allowed "
                "here (use 'unverified' or 'forbidden'; put loosening rules in "
                "$CODEX_HOME/rules/)"
            )
        return chosen

    def prefix_rule(
        self,
        pattern: object = None,
        decision: object = None,
        justification: object = "",
        match: object = (),
        not_match: object = (),
        with_any: object = (),
    ) -> None:
        tokens = _pattern(pattern)
        rule = PrefixRule(
            pattern=tokens,
            decision=self.decision(
                decision, allowed=(Decision.SAFE, Decision.UNVERIFIED, Decision.FORBIDDEN)
            ),
            justification=_text(justification, "justification"),
            with_any=tuple(_strings(with_any, "with_any")),
            where=self.where(),
        )
        _examples(rule.matches, match, "match", expected=True)
        _examples(rule.matches, not_match, "not_match", expected=False)
        self.prefix.append(rule)

    def define_program(
        self,
        program: object = None,
        options: object = (),
        args: object = (),
        requires: object = (),
        forbidden_paths: object = (),
        justification: object = "",
        should_match: object = (),
        should_not_match: object = (),
    ) -> None:
        if self.tighten_only:
            raise _RuleError(
                "a project's rules may only tighten: define_program (which can make a "
                "command safe) belongs in $CODEX_HOME/rules/"
            )
        if not isinstance(program, str) or not program or " " in program:
            raise _RuleError(f"program must be one program name, not {program!r}")
        rule = Program(
            program=program,
            options=tuple(_option(o) for o in _list(options, "options")),
            args=tuple(_arg_type(a) for a in _list(args, "args")),
            requires=tuple(_strings(requires, "requires")),
            forbidden_paths=tuple(_paths(forbidden_paths)),
            justification=_text(justification, "justification"),
            where=self.where(),
        )
        if sum(kind.plural for kind in rule.args) > 1:
            raise _RuleError("args may contain at most one plural type (ARG_*FILES, ...)")
        known = {name for o in rule.options for name in o.names}
        if missing := [r for r in rule.requires if r not in known]:
            raise _RuleError(f"requires names options that are not defined: {missing}")
        _examples(lambda a: rule.match(a) is not None, should_match, "should_match", True)
        _examples(lambda a: rule.match(a) is not None, should_not_match, "should_not_match", False)
        self.programs.append(rule)

    def pipe_rule(
        self,
        source: object = None,
        sink: object = None,
        decision: object = None,
        justification: object = "",
    ) -> None:
        self.pipes.append(
            PipeRule(
                source=tuple(_strings(source, "source", nonempty=True)),
                sink=tuple(_strings(sink, "sink", nonempty=True)),
                decision=self.decision(decision, allowed=(Decision.UNVERIFIED, Decision.FORBIDDEN)),
                justification=_text(justification, "justification"),
                where=self.where(),
            )
        )


def flag(name: object, *aliases: object) -> dict[str, Any]:
    names = [name, *aliases]
    if not all(isinstance(n, str) and n.startswith("-") for n in names):
        raise _RuleError(f"flag names start with '-': {names!r}")
    return {"option": names, "value": None}


def opt(
    name: object, value: object = None, aliases: object = (), optional: object = False
) -> dict[str, Any]:
    """An option with a value; ``optional = True``: getopt's optional argument, given
    only as ``-oVALUE`` or ``--opt=VALUE`` (a separate word is a positional)."""
    names = [name, *_strings(aliases, "aliases")]
    if not all(isinstance(n, str) and n.startswith("-") for n in names):
        raise _RuleError(f"option names start with '-': {names!r}")
    if not isinstance(optional, bool):
        raise _RuleError(f"optional must be True or False, not {optional!r}")
    return {"option": names, "value": _arg_type(value).value, "optional": optional}


def _option(value: object) -> Option:
    if not isinstance(value, dict) or "option" not in value:
        raise _RuleError(f"options must be made with flag(...) or opt(...), not {value!r}")
    kind = value.get("value")
    return Option(
        names=tuple(value["option"]),
        value=ArgType(kind) if isinstance(kind, str) else None,
        optional=bool(value.get("optional", False)),
    )


def _arg_type(value: object) -> ArgType:
    try:
        return ArgType(value)
    except ValueError:
        known = ", ".join(k.value for k in ArgType)
        raise _RuleError(f"{value!r} is not an argument type (one of {known})") from None


def _pattern(value: object) -> tuple[Token, ...]:
    items = _list(value, "pattern")
    if not items:
        raise _RuleError("pattern must name at least the program")
    tokens: list[Token] = []
    for item in items:
        if isinstance(item, str) and item:
            tokens.append(item)
        elif isinstance(item, list) and item and all(isinstance(i, str) and i for i in item):
            tokens.append(tuple(item))
        else:
            raise _RuleError(f"pattern items are strings or lists of strings, not {item!r}")
    return tuple(tokens)


def _paths(value: object) -> list[str]:
    paths = _strings(value, "forbidden_paths")
    for path in paths:
        if not (path.startswith("/") or path == "~" or path.startswith("~/")):
            raise _RuleError(f"forbidden path {path!r} must be absolute or start with ~")
    return paths


def _examples(
    check: Callable[[Sequence[str]], bool], value: object, name: str, expected: bool
) -> None:
    for example in _list(value, name):
        if isinstance(example, str):
            argv = shlex.split(example)
        elif isinstance(example, list) and all(isinstance(a, str) for a in example):
            argv = list(example)
        else:
            raise _RuleError(f"{name} examples are strings or lists of strings: {example!r}")
        if check(argv) is not expected:
            verb = "does not match" if expected else "matches"
            raise _RuleError(f"{name} example {shlex.join(argv)!r} {verb} this rule")


def _list(value: object, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise _RuleError(f"{name} must be a list, not {value!r}")
    return list(value)


def _strings(value: object, name: str, *, nonempty: bool = False) -> list[str]:
    items = _list(value, name)
    if not all(isinstance(i, str) and i for i in items) or (nonempty and not items):
        raise _RuleError(f"{name} must be a list of non-empty strings, not {value!r}")
    return items


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _RuleError(f"{name} must be a string, not {value!r}")
    return value
