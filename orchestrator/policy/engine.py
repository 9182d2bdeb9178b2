"""Evaluating a command line against a loaded rule set.

Owns: the walk from argv to every simple command it runs (through wrappers and shell
scripts), matching each against the rules, the strictest-wins combination, and the
Match → path check (every written file inside the profile's writable roots, symlinks
followed; outside → Forbidden, with the path in the reason).
Does not own: the rules' syntax (``loader``), shell grammar (``shell``), wrappers
(``wrappers``), or what happens to the decision at launch (``runner``).
"""

from __future__ import annotations

from .context import Context, Scan, git_problem, launch_problems
from .decision import Decision, Evaluation, Finding
from .paths import cd, glob_problem, outside, target
from .rules import Program, RuleSet, path_hits
from .shell import Word, parse
from .wrappers import unwrap

__all__ = ["MAX_DEPTH", "Context", "Policy"]

MAX_DEPTH = 8  # bash -c "bash -c '...'" nesting we follow before giving up (Unverified)


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
        scan = Scan(env=dict(context.env or ()))
        self._command([Word(a) for a in argv], context, findings, scan, depth=0)
        for git_argv, where in scan.gits:
            if reason := git_problem(git_argv, where, scan):
                findings.append(_unverified(git_argv, reason))
        return Evaluation.of(argv, findings)

    # --- one command (argv words), through its wrappers ------------------------------

    def _command(
        self, words: list[Word], context: Context, out: list[Finding], scan: Scan, *, depth: int
    ) -> str:
        """Judge one command; returns the innermost program's name (for pipe rules)."""
        unwrapped = unwrap(words)
        shown = tuple(w.value for w in words)
        for problem in unwrapped.problems:
            out.append(Finding(decision=problem.decision, command=shown, reason=problem.reason))
        for reason in launch_problems(unwrapped, context, scan, in_shell=depth > 0):
            out.append(_unverified(shown, reason))
        if not unwrapped.words or (unwrapped.stopped and unwrapped.script is None):
            return unwrapped.words[0].value if unwrapped.words else ""
        inner: list[Finding] = []
        if unwrapped.script is not None:
            self._script(unwrapped.script, context, inner, scan, depth=depth + 1, by=shown)
        else:
            self._simple(unwrapped.words, context, inner, scan)
        if unwrapped.hidden_arguments:
            inner = [_hidden(f) for f in inner]
        out += inner
        return unwrapped.words[0].value

    def _script(
        self,
        text: str,
        context: Context,
        out: list[Finding],
        scan: Scan,
        *,
        depth: int,
        by: tuple[str, ...],
    ) -> None:
        if depth > MAX_DEPTH:
            out.append(_unverified(by, f"shells nested more than {MAX_DEPTH} deep"))
            return
        script = parse(text)
        for problem in script.problems:
            out.append(Finding(decision=problem.decision, command=by, reason=problem.reason))
        for index, pipeline in enumerate(script.pipelines):
            for word, writer, _ in (w for w in script.writes if w[2] == index):
                out.extend(self._redirection(word, writer, context, scan))
            if len(pipeline) == 1 and pipeline[0].argv[:1] in (("cd",), ("pushd",)):
                if not pipeline[0].complete:
                    continue  # its target is computed at run time: already Unverified
                # Later relative paths are relative to where cd went (a cd inside a
                # subshell is applied to the rest too: stricter, never looser).
                moved = cd(pipeline[0].argv, context)
                if moved is None:
                    out.append(_unverified(pipeline[0].argv, "a cd whose target is not literal"))
                else:
                    context = moved
                continue
            programs = [
                self._command(list(command.words), context, out, scan, depth=depth)
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
        for word, writer, _ in (w for w in script.writes if w[2] >= len(script.pipelines)):
            out.extend(self._redirection(word, writer, context, scan))

    def _redirection(
        self, word: Word, writer: tuple[str, ...], context: Context, scan: Scan
    ) -> list[Finding]:
        """An output redirection writes like ``tee FILE``: judged by the rules for tee
        (their forbidden paths too), named after the command that redirects."""
        judged: list[Finding] = []
        self._simple([Word("tee"), word], context, judged, scan)
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

    def _simple(self, words: list[Word], context: Context, out: list[Finding], scan: Scan) -> None:
        argv = tuple(w.value for w in words)
        start = len(out)
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
                    self._writes(
                        argv, written, context, scan, program=program, rule=str(program.where)
                    )
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
        # git runs programs its configuration names: checked once the line's writes
        # are known (the command itself already needs a person when unverified).
        if argv[0] == "git" and max(f.decision for f in out[start:]) < Decision.UNVERIFIED:
            scan.gits.append((argv, context))

    def _writes(
        self,
        argv: tuple[str, ...],
        words: list[Word],
        context: Context,
        scan: Scan,
        *,
        program: Program | None,
        rule: str,
    ) -> Finding:
        """Match when every written path is allowed; else Forbidden, naming the path."""
        shown = [w.value for w in words]
        for word in words:
            lexical, real = target(word, context)
            scan.written += [lexical, real]
            if program is not None and any(
                path_hits(p, t, home=context.home)
                for p in program.forbidden_paths
                for t in (lexical, real)
            ):
                why = program.justification or f"{program.program} of a system path"
                reason: str | None = f"{why}: {word.value}"
            elif problem := outside(lexical, real, context) or glob_problem(word, context):
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
