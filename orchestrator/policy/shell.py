"""Shell text (``bash -c SCRIPT``) split into the simple commands it runs, with a real
bash grammar (tree-sitter-bash), so that no command hides inside a script.

Owns: which shell constructs are read with confidence (words, quotes, ``&&``, ``||``,
``;``, ``|``, subshells, redirections) and which make the line Unverified (command
substitution, parameter expansion, ``eval``-like constructs, backslash escapes,
heredocs that expand, control flow), and recognising a fork bomb.
Does not own: what a simple command is allowed to do (``engine``).

Why a grammar and not ``shlex``: shlex cannot see ``$(...)``, backticks or the
boundaries bash itself uses, which is exactly where an evasion hides.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .decision import Decision

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

GLOB_CHARS = frozenset("*?[")
# Output redirections (a file is written) and those that only duplicate descriptors.
WRITE_OPS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
DUP_OPS = frozenset({">&", "<&", ">&-", "<&-"})
HARMLESS_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
# Variables that decide which code runs: set in front of a "safe" program they make it
# run anything (PATH=. ls, LD_PRELOAD=x.so cat, GIT_EXTERNAL_DIFF=x git diff).
CODE_VARIABLES = frozenset(
    {"PATH", "IFS", "ENV", "BASH_ENV", "PS4", "PROMPT_COMMAND", "SHELLOPTS", "BASHOPTS",
     "PAGER", "MANPAGER", "EDITOR", "VISUAL", "LESSOPEN", "LESSCLOSE", "NODE_OPTIONS",
     "PERL5OPT", "PERL5LIB", "RUBYOPT", "RUBYLIB", "PYTHONPATH", "PYTHONSTARTUP",
     "PYTHONHOME", "JAVA_TOOL_OPTIONS", "HOME", "XDG_CONFIG_HOME", "CDPATH",
     "RIPGREP_CONFIG_PATH", "GREP_OPTIONS", "SED", "TAR_OPTIONS", "ZDOTDIR", "INPUTRC",
     # ...or how bash reads the rest of the line: GLOBIGNORE turns dotglob on (`*` then
     # reaches .git), EXECIGNORE skips PATH entries, BASH_COMPAT changes the grammar.
     "GLOBIGNORE", "EXECIGNORE", "BASH_COMPAT"}
)  # fmt: skip
CODE_VARIABLE_PREFIXES = ("LD_", "DYLD_", "GIT_", "BASH_FUNC_")


def dangerous_variable(name: str) -> bool:
    return name in CODE_VARIABLES or name.startswith(CODE_VARIABLE_PREFIXES)


@dataclass(frozen=True, slots=True)
class Word:
    """A literal argument after bash's quote removal."""

    value: str
    glob: bool = False  # unquoted * ? [: bash expands it against the file system
    tilde: bool = False  # unquoted leading ~: bash expands it to $HOME


@dataclass(frozen=True, slots=True)
class Command:
    words: tuple[Word, ...]
    complete: bool = True  # False: a word is computed at run time (already a problem)

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(w.value for w in self.words)


@dataclass(frozen=True, slots=True)
class Problem:
    decision: Decision
    reason: str


@dataclass(slots=True)
class Script:
    pipelines: list[list[Command]] = field(default_factory=list)
    # (file, by, pipeline): the index of the pipeline it belongs to, so that it is
    # resolved from the directory that pipeline runs in (a later cd does not count).
    writes: list[tuple[Word, tuple[str, ...], int]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# tree-sitter-bash 0.25 reads out of bounds (a segfault, now and then) on `{` followed by
# a code point of U+20000 or above (CJK extension B on, private use): a sandbox could
# kill codex-box, or a session's keeper, with one command line. Such text is not parsed.
_UNPARSEABLE = "\U00020000"


@functools.cache
def _parser() -> Parser:
    import tree_sitter_bash
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_bash.language()))


def parse(text: str) -> Script:
    try:
        # Argv that is not UTF-8 arrives as surrogate escapes: judge the bytes bash gets.
        source = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no argv can hold (Python callers)
        walker = _Walker(b"")
        walker.unverified("the shell text is not valid text (a lone surrogate)")
        return walker.script
    if max(text, default="") >= _UNPARSEABLE:
        walker = _Walker(b"")
        walker.unverified(f"characters past U+{ord(_UNPARSEABLE) - 1:X} are not inspected")
        return walker.script
    tree = _parser().parse(source)
    walker = _Walker(source)
    if tree.root_node.has_error:
        walker.unverified("the shell text does not parse (unbalanced quotes or syntax)")
    else:
        walker.statements(tree.root_node)
    return walker.script


class _Walker:
    def __init__(self, source: bytes) -> None:
        self.source = source
        self.script = Script()

    def unverified(self, reason: str) -> None:
        self.script.problems.append(Problem(Decision.UNVERIFIED, reason))

    def text(self, node: Node) -> str:
        return self.source[node.start_byte : node.end_byte].decode(errors="surrogateescape")

    def statements(self, node: Node) -> None:
        for child in node.named_children:
            self.statement(child)

    def statement(self, node: Node) -> None:
        kind = node.type
        if kind == "comment":
            return
        if kind in ("command", "pipeline", "redirected_statement"):
            self.pipeline(node)
        elif kind in ("list", "subshell", "compound_statement", "negated_command"):
            self.statements(node)
        elif kind == "function_definition":
            self.function(node)
        elif kind in _CONTROL_FLOW:
            # Which branch or how often is not known: the whole is Unverified, and every
            # command inside is judged as if it ran (so a forbidden one still forbids).
            self.unverified(f"control flow ('{kind.removesuffix('_statement')}') is not inspected")
            self.statements(node)
        elif kind == "variable_assignment":
            self.assignment(node)
        else:
            self.unverified(f"the shell construct '{kind}' is not inspected")

    def pipeline(self, node: Node) -> None:
        parts = node.named_children if node.type == "pipeline" else [node]
        commands: list[Command] = []
        for part in parts:
            if part.type == "command":
                commands.append(self.command(part, []))
            elif part.type == "redirected_statement":
                body = part.child_by_field_name("body")
                redirects = [c for c in part.named_children if c != body]
                if body is not None and body.type == "command":
                    commands.append(self.command(body, redirects))
                else:
                    if body is not None:
                        self.statement(body)
                    self.redirects(redirects, by=("(redirection)",))
            else:
                self.statement(part)
        if commands:
            self.script.pipelines.append(commands)

    def command(self, node: Node, redirects: list[Node]) -> Command:
        words: list[Word] = []
        inner_redirects = list(redirects)
        complete = True
        for child in node.named_children:
            kind = child.type
            if kind == "variable_assignment":
                self.assignment(child)
                continue
            if kind.endswith("_redirect"):
                inner_redirects.append(child)
                continue
            for part in child.named_children if kind == "command_name" else [child]:
                got = self.word(part)
                complete = complete and bool(got)
                words += got
        command = Command(tuple(words), complete=complete)
        self.redirects(inner_redirects, by=command.argv)
        return command

    def assignment(self, node: Node) -> None:
        name = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        variable = self.text(name) if name is not None else "?"
        if dangerous_variable(variable):
            self.unverified(f"it sets {variable}, which decides what code runs")
        if value is not None:
            self.word(value)

    def redirects(self, nodes: list[Node], *, by: tuple[str, ...]) -> None:
        for node in nodes:
            if node.type == "heredoc_redirect":
                if self._expands(node):
                    self.unverified("a heredoc that expands variables or commands")
                continue
            if node.type == "herestring_redirect":
                for child in node.named_children:
                    self.word(child)
                continue
            if node.type != "file_redirect":
                self.unverified(f"the redirection '{node.type}' is not inspected")
                continue
            operator = next((self.text(c) for c in node.children if not c.is_named), "")
            target = node.child_by_field_name("destination")
            if target is None:
                continue
            if operator in DUP_OPS and (target.type == "number" or self.text(target) == "-"):
                continue
            words = self.word(target)
            if operator in WRITE_OPS or operator in DUP_OPS:
                for word in words:
                    if word.value not in HARMLESS_TARGETS:
                        self.script.writes.append((word, by, len(self.script.pipelines)))

    def function(self, node: Node) -> None:
        name_node = node.child_by_field_name("name")
        name = self.text(name_node) if name_node is not None else ""
        body = node.child_by_field_name("body")
        if body is not None and name and name in self._called(body):
            self.script.problems.append(
                Problem(
                    Decision.FORBIDDEN,
                    f"a fork bomb: shell function '{name}' starts itself again",
                )
            )
        else:
            self.unverified(f"it defines a shell function ('{name}')")

    def _called(self, node: Node) -> set[str]:
        names = set()
        stack = [node]
        while stack:
            current = stack.pop()
            if current.type == "command_name":
                names.add(self.text(current))
            stack.extend(current.named_children)
        return names

    def _expands(self, node: Node) -> bool:
        stack = [node]
        while stack:
            current = stack.pop()
            if current.type in _EXPANSIONS:
                return True
            stack.extend(current.named_children)
        return False

    def word(self, node: Node) -> list[Word]:
        """The literal value of an argument node; records a problem (and returns
        nothing) when bash would compute it at run time."""
        kind = node.type
        text = self.text(node)
        if kind in ("word", "number"):
            if any(c in text for c in "\\$`"):
                self.unverified(f"the word {text!r} uses escapes or expansions")
                return []
            if "{" in text and ("," in text or ".." in text):
                self.unverified(f"the word {text!r} uses brace expansion")
                return []
            if text.startswith("~") and not (text == "~" or text.startswith("~/")):
                self.unverified(f"the word {text!r} expands to another user's home directory")
                return []
            return [Word(text, glob=bool(GLOB_CHARS & set(text)), tilde=text.startswith("~"))]
        if kind == "raw_string":
            return [Word(text[1:-1])]
        if kind == "string":
            inner = list(node.named_children)
            content = "".join(self.text(c) for c in inner if c.type == "string_content")
            if any(c.type != "string_content" for c in inner) or any(
                ch in content for ch in "\\$`"
            ):
                self.unverified(f"the string {text!r} expands variables, commands or escapes")
                return []
            return [Word(content)]
        if kind == "concatenation":
            unquoted = "".join(self.text(c) for c in node.named_children if c.type == "word")
            if "{" in unquoted and ("," in unquoted or ".." in unquoted):
                self.unverified(f"the word {text!r} uses brace expansion")
                return []
            parts: list[Word] = []
            for child in node.named_children:
                got = self.word(child)
                if not got:
                    return []
                parts += got
            first_unquoted = node.named_children[0].type == "word"
            return [
                Word(
                    "".join(p.value for p in parts),
                    glob=any(p.glob for p in parts),
                    tilde=first_unquoted and parts[0].tilde,
                )
            ]
        self.unverified(f"'{text}' ({kind.replace('_', ' ')}) is computed when it runs")
        return []


_CONTROL_FLOW = frozenset(
    {"if_statement", "elif_clause", "else_clause", "while_statement", "for_statement",
     "c_style_for_statement", "case_statement", "case_item", "do_group"}
)  # fmt: skip
_EXPANSIONS = frozenset(
    {"simple_expansion", "expansion", "command_substitution", "arithmetic_expansion",
     "process_substitution"}
)  # fmt: skip
