"""Evaluating a command line against a loaded rule set.

Owns: the walk from argv to every simple command it runs (through wrappers and shell
scripts), matching each against the rules, the strictest-wins combination, and the
Match → path check (every written file inside the profile's writable roots, symlinks
followed; outside → Forbidden, with the path in the reason).
Does not own: the rules' syntax (``loader``), shell grammar (``shell``), wrappers
(``wrappers``), or what happens to the decision at launch (``runner``).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, replace

from ..write_roots import inside
from .decision import Decision, Evaluation, Finding
from .rules import Program, RuleSet, expand_home, path_hits
from .shell import GLOB_CHARS, Word, parse
from .wrappers import unwrap

MAX_DEPTH = 8  # bash -c "bash -c '...'" nesting we follow before giving up (Unverified)


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """Where the command would run, for the paths it writes."""

    cwd: str
    home: str
    # Realpaths the profile lets the command write; None: no sandbox (trusted), where
    # only a rule's forbidden paths stop a write.
    writable_roots: tuple[str, ...] | None = ()
    protected_paths: tuple[str, ...] = ()


class Policy:
    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._prefix_by_program: dict[str, list[int]] = {}
        for index, rule in enumerate(rules.prefix):
            first = rule.pattern[0]
            for name in first if isinstance(first, tuple) else (first,):
                self._prefix_by_program.setdefault(name, []).append(index)

    def evaluate(self, argv: tuple[str, ...] | list[str], context: Context) -> Evaluation:
        argv = tuple(argv)
        findings: list[Finding] = []
        self._command([Word(a) for a in argv], context, findings, depth=0)
        return Evaluation.of(argv, findings)

    # --- one command (argv words), through its wrappers ------------------------------

    def _command(
        self, words: list[Word], context: Context, out: list[Finding], *, depth: int
    ) -> str:
        """Judge one command; returns the innermost program's name (for pipe rules)."""
        unwrapped = unwrap(words)
        shown = tuple(w.value for w in words)
        for problem in unwrapped.problems:
            out.append(Finding(decision=problem.decision, command=shown, reason=problem.reason))
        if not unwrapped.words or (unwrapped.stopped and unwrapped.script is None):
            return unwrapped.words[0].value if unwrapped.words else ""
        inner: list[Finding] = []
        if unwrapped.script is not None:
            self._script(unwrapped.script, context, inner, depth=depth + 1, by=shown)
        else:
            self._simple(unwrapped.words, context, inner)
        if unwrapped.hidden_arguments:
            inner = [_hidden(f) for f in inner]
        out += inner
        return unwrapped.words[0].value

    def _script(
        self, text: str, context: Context, out: list[Finding], *, depth: int, by: tuple[str, ...]
    ) -> None:
        if depth > MAX_DEPTH:
            out.append(_unverified(by, f"shells nested more than {MAX_DEPTH} deep"))
            return
        script = parse(text)
        for problem in script.problems:
            out.append(Finding(decision=problem.decision, command=by, reason=problem.reason))
        for pipeline in script.pipelines:
            if len(pipeline) == 1 and pipeline[0].argv[:1] in (("cd",), ("pushd",)):
                if not pipeline[0].complete:
                    continue  # its target is computed at run time: already Unverified
                # Later relative paths are relative to where cd went (a cd inside a
                # subshell is applied to the rest too: stricter, never looser).
                moved = _cd(pipeline[0].argv, context)
                if moved is None:
                    out.append(_unverified(pipeline[0].argv, "a cd whose target is not literal"))
                else:
                    context = moved
                continue
            programs = [
                self._command(list(command.words), context, out, depth=depth)
                if command.complete
                else ""  # a word computed at run time: already Unverified, nothing to match
                for command in pipeline
            ]
            for rule in self.rules.pipes:
                if rule.matches(programs):
                    reason = rule.justification or rule.describe()
                    out.append(
                        Finding(
                            decision=rule.decision, command=by, reason=reason, rule=str(rule.where)
                        )
                    )
        for word, writer in script.writes:
            out.extend(self._redirection(word, writer, context))

    def _redirection(self, word: Word, writer: tuple[str, ...], context: Context) -> list[Finding]:
        """An output redirection writes like ``tee FILE``: judged by the rules for tee
        (their forbidden paths too), named after the command that redirects."""
        judged: list[Finding] = []
        self._simple([Word("tee"), word], context, judged)
        return [
            Finding(
                decision=f.decision,
                command=writer,
                reason=f"redirection to {word.value}: {f.reason}",
                rule=f.rule,
                writes=f.writes,
            )
            for f in judged
        ]

    # --- one simple command against the rules ----------------------------------------

    def _simple(self, words: list[Word], context: Context, out: list[Finding]) -> None:
        argv = tuple(w.value for w in words)
        matched = False
        for index in self._prefix_by_program.get(argv[0], ()):
            rule = self.rules.prefix[index]
            if rule.matches(argv):
                matched = True
                out.append(
                    Finding(
                        decision=rule.decision,
                        command=argv,
                        reason=rule.justification or rule.describe(),
                        rule=str(rule.where),
                    )
                )
        by_value = {w.value: w for w in words}
        for program in self.rules.programs:
            if program.program != argv[0] or (hit := program.match(argv)) is None:
                continue
            matched = True
            written = [by_value.get(v, Word(v)) for v in hit.writes]
            if written:
                out.append(
                    self._writes(argv, written, context, program=program, rule=str(program.where))
                )
            else:
                out.append(
                    Finding(
                        decision=Decision.SAFE,
                        command=argv,
                        reason=f"{program.describe()}: reads only",
                        rule=str(program.where),
                    )
                )
        if not matched:
            if any(program.program == argv[0] for program in self.rules.programs):
                reason = (
                    f"'{argv[0]}' is used in a way its define_program rules do not cover "
                    "(an option they do not list, or an argument of the wrong type)"
                )
            else:
                reason = f"no rule covers '{argv[0]}'"
            out.append(_unverified(argv, reason))

    def _writes(
        self,
        argv: tuple[str, ...],
        words: list[Word],
        context: Context,
        *,
        program: Program | None,
        rule: str,
    ) -> Finding:
        """Match when every written path is allowed; else Forbidden, naming the path."""
        shown = [w.value for w in words]
        for word in words:
            lexical, real = _target(word, context)
            if program is not None and any(
                path_hits(p, t, home=context.home)
                for p in program.forbidden_paths
                for t in (lexical, real)
            ):
                why = program.justification or f"{program.program} of a system path"
                reason: str | None = f"{why}: {word.value}"
            elif problem := _outside(lexical, real, context) or _glob_problem(word, context):
                reason = f"writes {word.value} ({real}), {problem}"
            else:
                reason = None
            if reason is not None:
                return Finding(
                    decision=Decision.FORBIDDEN,
                    command=argv,
                    reason=reason,
                    rule=rule,
                    writes=tuple(shown),
                )
        return Finding(
            decision=Decision.MATCH,
            command=argv,
            reason=f"writes {', '.join(shown)} inside the writable roots",
            rule=rule,
            writes=tuple(shown),
        )


def _cd(argv: tuple[str, ...], context: Context) -> Context | None:
    args = [a for a in argv[1:] if a not in ("-L", "-P", "--")]
    if len(args) > 1 or (args and args[0].startswith("-")):
        return None
    target = expand_home(args[0] if args else "~", context.home)
    return replace(context, cwd=os.path.normpath(os.path.join(context.cwd, target)))


def _target(word: Word, context: Context) -> tuple[str, str]:
    """The absolute path a written argument names, lexically and with symlinks followed.
    A glob names the directory it expands in (``/*`` → ``/``); a leading ``~`` is the
    home directory (also unexpanded: judged as bash would have expanded it)."""
    value = expand_home(word.value, context.home)
    if word.glob:
        # `*/../..` is the parent's parent whatever `*` matches: normalise first, then
        # the glob names the directory it expands in (`/*` → `/`, `/et*/x` → `/`).
        value = _normal(os.path.join(context.cwd, value))
        cut = min((value.index(c) for c in GLOB_CHARS if c in value), default=len(value))
        value = value[:cut]
        value = value if value.endswith("/") else os.path.dirname(value) or "/"
    path = _normal(os.path.join(context.cwd, value or "."))
    return path, os.path.realpath(path)


def _normal(path: str) -> str:
    path = os.path.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _glob_problem(word: Word, context: Context) -> str | None:
    if not word.glob:
        return None
    reached = [p for p in context.protected_paths if _glob_reaches(word, p, context)]
    return f"a glob that can reach the protected path {reached[0]}" if reached else None


def _glob_reaches(word: Word, protected: str, context: Context) -> bool:
    """Whether a glob could expand to a protected path, inside it or to a parent of it.
    As in bash (dotglob off), a name starting with "." is matched only by a pattern
    component that starts with "." too: `*` does not reach `.git`, `.g*` does."""
    value = expand_home(word.value, context.home)
    pattern = _normal(os.path.join(context.cwd, value)).split("/")
    parts = protected.split("/")
    return all(
        fnmatch.fnmatchcase(p, g) and (g.startswith(".") or not p.startswith("."))
        for p, g in zip(parts, pattern, strict=False)
    )


def _outside(lexical: str, real: str, context: Context) -> str | None:
    if context.writable_roots is None:
        return None
    for path in (lexical, real):
        for protected in context.protected_paths:
            if inside(path, protected):
                return f"inside the protected path {protected}"
        if not any(inside(path, root) for root in context.writable_roots):
            roots = ", ".join(context.writable_roots) or "none: this profile writes nothing"
            return f"outside the profile's writable roots ({roots})"
    return None


def _hidden(finding: Finding) -> Finding:
    if finding.decision is not Decision.MATCH:
        return finding
    return Finding(
        decision=Decision.UNVERIFIED,
        command=finding.command,
        reason="xargs adds file arguments that cannot be checked before it runs",
        rule=finding.rule,
        writes=finding.writes,
    )


def _unverified(argv: tuple[str, ...], reason: str) -> Finding:
    return Finding(decision=Decision.UNVERIFIED, command=argv, reason=reason)
