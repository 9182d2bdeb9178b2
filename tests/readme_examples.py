"""The README's checked examples: parse them, re-run them, compare (and rewrite).

A checked example is a fenced ``console`` block in README.md right after the line

    <!-- checked by tests/unit/test_readme_examples.py -->

optionally with hidden set-up commands (output ignored, exit status must be 0):

    <!-- checked by tests/unit/test_readme_examples.py, after: codex-box profiles new py ... -->

Inside the block:

- ``$ cat PATH`` followed by lines shows a file: the test *writes* those lines to PATH
  (relative to the workspace) before going on, so the reader sees the fixture it uses;
- any other ``$ COMMAND`` is run with ``sh -c`` and the lines up to the next ``$ `` are
  its output, stdout and stderr together;
- a last output line ``[exit N]`` is the exit status it must have (none shown: 0);
- a line that is only ``…`` (indented or not) stands for any number of lines (the
  README's elisions).

Every checked example runs in the same layout, a fresh one per block: ``/var/tmp``
stands for a new temporary directory under /var/tmp, the workspace (and cwd) is
``/var/tmp/demo/proj``, ``HOME`` is ``/var/tmp/demo/home`` and ``CODEX_HOME`` is
``$HOME/.codex``; ``CODEX_BOX_BACKEND=native``, so no engine is asked anything. Only what
must differ between runs and machines is normalised: that directory (shown as
``/var/tmp``), the checkout codex-box runs from (``/work/main``), the user (``root``),
and, for the comparison only, timestamps, hex digests (of temporary paths, run ids) and
the ``  backend:`` line of ``--show-profile`` (which backends answer here). Choose for
checking only examples whose output is otherwise deterministic — policy decisions,
profile resolution, refusals, templates: nothing that needs a kernel sandbox, an engine
or the network.

``python -m tests.readme_examples [--update]`` prints each checked example's drift, or
rewrites README.md with the real output (keeping an elided block's number of head and
tail lines around its ``…``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orchestrator

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# The console script, as users run it; its directory goes first on the examples' PATH.
VENV_BIN = Path(sys.executable).parent
MARKER = re.compile(r"^<!-- checked by tests/unit/test_readme_examples\.py(?:, after: (.*))? -->$")
PROMPT = "$ "
ELISION = "…"
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")
SHOWN_ROOT = "/var/tmp"  # what the temporary directory is shown as
SHOWN_CHECKOUT = "/work/main"  # what the checkout codex-box runs from is shown as
SHOWN_USER = "root"  # what the user running the examples is shown as
BACKEND_LINE = re.compile(r"^  backend: .*$")
VARYING = (
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?Z?"), "[time]"),
    (re.compile(r"\b\d+:\d\d:\d\d left\b"), "[time] left"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "[hex]"),
)
CHECKED_FILE_LINE = re.compile(r"^cat (\S+)$")


@dataclass
class Step:
    """One ``$`` line of an example and the output the README shows for it."""

    command: str
    line: int  # 1-based line of the ``$`` in README.md
    output: list[str] = field(default_factory=list)

    @property
    def writes_file(self) -> str | None:
        """``$ cat PATH``: the path whose content the output shows (and the test writes)."""
        found = CHECKED_FILE_LINE.match(self.command)
        return found.group(1) if found else None

    def expected(self) -> tuple[list[str], int]:
        """The shown output without its ``[exit N]`` line, and that status (default 0)."""
        lines = list(self.output)
        if lines and (found := EXIT_LINE.match(lines[-1])):
            return lines[:-1], int(found.group(1))
        return lines, 0


@dataclass
class Example:
    """A checked ``console`` block: where it is, its hidden set-up, its steps."""

    first_line: int  # 1-based line of the first line inside the fence
    last_line: int  # 1-based line of the closing fence
    setup: str | None
    steps: list[Step]

    @property
    def name(self) -> str:
        return f"README.md:{self.first_line - 1}"


def parse(text: str) -> list[Example]:
    """Every checked example in ``text`` (README.md's content)."""
    lines = text.splitlines()
    examples: list[Example] = []
    index = 0
    while index < len(lines):
        marker = MARKER.match(lines[index])
        index += 1
        if not marker:
            continue
        if index >= len(lines) or lines[index] != "```console":
            raise ValueError(
                f"README.md:{index}: a checked-example marker must be followed by "
                "a ```console block"
            )
        start = index + 1
        end = start
        while end < len(lines) and lines[end] != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{index + 1}: the ```console block never closes")
        steps: list[Step] = []
        for number in range(start, end):
            line = lines[number]
            if line.startswith(PROMPT):
                steps.append(Step(command=line[len(PROMPT) :], line=number + 1))
            elif steps:
                steps[-1].output.append(line)
            else:
                raise ValueError(f"README.md:{number + 1}: output before any `$ ` command")
        examples.append(
            Example(first_line=start + 1, last_line=end + 1, setup=marker.group(1), steps=steps)
        )
        index = end + 1
    return examples


def policy_citations(text: str) -> Iterator[tuple[int, int]]:
    """``(README line, rule line)`` for every ``default.policy:N`` the README cites."""
    for number, line in enumerate(text.splitlines(), 1):
        for found in re.finditer(r"\bdefault\.policy:(\d+)\b", line):
            yield number, int(found.group(1))


def profile_blocks(text: str) -> Iterator[tuple[int, str]]:
    """``(README line, YAML)`` for every ```yaml block that is a user profile (it
    ``extends:`` another): each must load as ``$CODEX_HOME/profiles/NAME.yaml``."""
    for found in re.finditer(r"^```yaml\n(.*?)^```$", text, flags=re.M | re.S):
        if re.search(r"^extends:", found.group(1), flags=re.M):
            yield text.count("\n", 0, found.start()) + 1, found.group(1)


class Layout:
    """A fresh ``/var/tmp`` stand-in with ``demo/proj`` and ``demo/home/.codex``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workspace = root / "demo" / "proj"
        self.home = root / "demo" / "home"
        self.codex_home = self.home / ".codex"
        self.workspace.mkdir(parents=True)
        self.home.mkdir(parents=True)

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "PYTHONPATH")}
        return {
            **keep,
            "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "CODEX_HOME": str(self.codex_home),
            "PYTHONDONTWRITEBYTECODE": "1",
            # --show-profile probes backends: never touch this machine's engines.
            "CODEX_BOX_BACKEND": "native",
        }

    def sh(self, command: str) -> tuple[list[str], int]:
        ran = subprocess.run(
            ["sh", "-c", command],
            cwd=self.workspace,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )
        return normalise(ran.stdout, self.root), ran.returncode


def normalise(output: str, root: Path) -> list[str]:
    """Output lines as the README shows them: the temporary directory as ``/var/tmp``,
    the checkout as ``/work/main``, the user as ``root``, trailing blanks dropped."""
    checkout = Path(orchestrator.__file__).resolve().parent.parent
    for real, shown in (
        (root.resolve(), SHOWN_ROOT),
        (root, SHOWN_ROOT),
        (checkout, SHOWN_CHECKOUT),
    ):
        output = output.replace(str(real), shown)
    output = re.sub(rf"\bby {re.escape(getpass.getuser())}\b", f"by {SHOWN_USER}", output)
    return [line.rstrip() for line in output.splitlines()]


def comparable(line: str) -> str:
    """What two lines are compared on: the line without what differs from run to run
    and machine to machine (``--show-profile``'s ``  backend:`` line, timestamps, hex
    digests of temporary paths and run ids)."""
    line = line.rstrip()
    if BACKEND_LINE.match(line):
        return "  backend: [this machine's]"
    for pattern, token in VARYING:
        line = pattern.sub(token, line)
    return line


def is_elision(line: str) -> bool:
    return line.strip() == ELISION


def matches(expected: list[str], actual: list[str]) -> bool:
    """``actual`` is ``expected``, where a ``…`` line stands for any number of lines,
    both compared as ``comparable`` sees them."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if is_elision(line) else re.escape(comparable(line)) + r"\n"
        for line in expected
    )
    return re.fullmatch(pattern, "".join(f"{comparable(line)}\n" for line in actual)) is not None


@dataclass
class Outcome:
    step: Step
    actual: list[str]
    status: int

    @property
    def ok(self) -> bool:
        expected, status = self.step.expected()
        return self.status == status and matches(expected, self.actual)

    def shown(self) -> list[str]:
        """The real output as the README should show it, elisions kept (same number of
        head and tail lines around a single ``…``)."""
        lines = list(self.actual)
        expected, _ = self.step.expected()
        elisions = [index for index, line in enumerate(expected) if is_elision(line)]
        if len(elisions) == 1:
            head = elisions[0]
            tail = len(expected) - head - 1
            if len(lines) > head + tail:
                kept_tail = lines[len(lines) - tail :] if tail else []
                lines = [*lines[:head], expected[head], *kept_tail]
        return lines + ([f"[exit {self.status}]"] if self.status else [])


@contextlib.contextmanager
def fresh_layout() -> Iterator[Layout]:
    # Under /var/tmp, as shown, not /tmp: every write profile may write /tmp, so a path
    # outside the workspace but under /tmp would be judged writable.
    with tempfile.TemporaryDirectory(prefix="readme-example-", dir=SHOWN_ROOT) as tmp:
        yield Layout(Path(tmp))


def run(example: Example) -> list[Outcome]:
    """Run one example in a fresh layout; one outcome per step (``$ cat`` steps write)."""
    with fresh_layout() as layout:
        if example.setup:
            output, status = layout.sh(example.setup)
            if status:
                raise RuntimeError(
                    f"{example.name}: set-up `{example.setup}` exited {status}:\n"
                    + "\n".join(output)
                )
        outcomes = []
        for step in example.steps:
            if (path := step.writes_file) is not None:
                target = layout.workspace / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("".join(f"{line}\n" for line in step.output), encoding="utf-8")
            actual, status = layout.sh(step.command)
            outcomes.append(Outcome(step, actual, status))
        return outcomes


def report(outcome: Outcome) -> str:
    expected, status = outcome.step.expected()
    return (
        f"README.md:{outcome.step.line}: `$ {outcome.step.command}` drifted\n"
        f"--- README shows (exit {status}):\n" + "\n".join(expected) + "\n"
        f"--- real output, as the README should show it (exit {outcome.status}):\n"
        + "\n".join(outcome.shown())
    )


def update(text: str) -> tuple[str, int]:
    """README text with every drifted step's output replaced by the real one."""
    lines = text.splitlines()
    replacements: list[tuple[int, int, list[str]]] = []  # 0-based [start, end) → new lines
    for example in parse(text):
        for outcome in run(example):
            if outcome.ok or outcome.step.writes_file is not None:
                continue
            start = outcome.step.line  # 0-based index of the first output line
            replacements.append((start, start + len(outcome.step.output), outcome.shown()))
    for start, end, new in sorted(replacements, reverse=True):
        lines[start:end] = new
    return "\n".join(lines) + "\n", len(replacements)


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    if argv == ["--update"]:
        new, count = update(text)
        README.write_text(new, encoding="utf-8")
        print(f"README.md: {count} example output(s) rewritten")
        return 0
    drifted = [o for e in parse(text) for o in run(e) if not o.ok]
    for outcome in drifted:
        print(report(outcome), end="\n\n")
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
