"""The fuzz suite's budget, counting and report (issue 21, part 2).

Two profiles, chosen by the environment:

- ``ci`` (the default): each test runs a fixed, small number of hypothesis examples
  (``examples=`` of ``@fuzz``), sized so the whole of tests/fuzz stays under 3 minutes
  on a 2-core machine.
- ``long``: ``CODEX_BOX_FUZZ_SECONDS=N`` gives *each test* a wall-clock budget of N
  seconds (``scripts/fuzz.py``, ``make fuzz``: 600 by default).

How the time budget works. Hypothesis has no time budget of its own, and a huge
``max_examples`` cannot be cut short from inside a test without it counting as a failure.
So ``@fuzz`` runs the ``@given`` test again and again, in batches of ``LONG_BATCH``
examples each, until the budget is spent; every batch is a fresh hypothesis run (no
example database, a new random seed), so batches explore different inputs, from small
to large. A batch is short (seconds), so a test overshoots its budget by at most one
batch. The first failing batch stops the test: hypothesis has already shrunk the
failure to a minimal input, which the failure message shows.

Bounds ("every parse bounded in time and memory"). Inputs are bounded in size by the
strategies. Every example has a hypothesis ``deadline``; a parse called through
``outcome`` also runs under a CPU-time alarm (``ITIMER_PROF``: it does not disturb
pytest-timeout's SIGALRM) that raises ``ParseHang`` — a BaseException, so no
``except Exception`` in the code under test can swallow it — after ``PARSE_CPU_S``;
each test runs with its address space capped (``RLIMIT_AS``, ``MEMORY_LIMIT``), so an
input that makes a parser allocate without bound fails with MemoryError instead of
taking the machine down; and pytest-timeout ends a test that blocks outright (the
budget plus slack).

Counting and report. ``@fuzz`` counts every call of the test body (generated examples
and shrink steps alike: each is an input the parser was given) and, when
``CODEX_BOX_FUZZ_REPORT`` names a file, appends one JSON line per test to it:
``{"test", "parser", "examples", "failures", "seconds", "error"}``. A crash that
kills the process (a segfault in a C parser) leaves no report: with
``CODEX_BOX_FUZZ_LOG`` set, every input is appended to that file before it is tried.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from orchestrator.core.errors import CodexBoxError

SECONDS = float(os.environ.get("CODEX_BOX_FUZZ_SECONDS") or 0)
PROFILE = "long" if SECONDS > 0 else "ci"
REPORT = os.environ.get("CODEX_BOX_FUZZ_REPORT")
LOG = os.environ.get("CODEX_BOX_FUZZ_LOG")  # every input, for a crash that kills pytest
LONG_BATCH = 500
DEADLINE = timedelta(seconds=5)  # one parse; generous: CI machines are shared
PARSE_CPU_S = 10.0
# Bytes of address space for the whole test process (CODEX_BOX_FUZZ_MEMORY_MB; 0: none).
MEMORY_LIMIT = int(os.environ.get("CODEX_BOX_FUZZ_MEMORY_MB") or 4096) << 20

settings.register_profile(
    "ci",
    database=None,  # crashes become tests/fuzz/test_regressions.py, not a local cache
    deadline=DEADLINE,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # monkeypatch: set again by every example
    ],
)
settings.register_profile("long", settings.get_profile("ci"), max_examples=LONG_BATCH)
# Applied per test by @fuzz, never loaded globally: hypothesis tests elsewhere in the
# same session (tests/unit) keep their own defaults.


def fuzz(parser: str, *, examples: int = 200) -> Callable[[Any], Any]:
    """Wrap a ``@given`` test: ``examples`` of them under ``ci``; under ``long``,
    batches until CODEX_BOX_FUZZ_SECONDS are spent. Counts inputs, writes the report."""

    def decorate(test: Any) -> Any:
        count = examples if PROFILE == "ci" else LONG_BATCH
        configured = settings(settings.get_profile(PROFILE), max_examples=count)(test)
        inner = configured.hypothesis.inner_test
        tried = [0]

        def counted(*args: Any, **kwargs: Any) -> Any:
            tried[0] += 1
            if LOG:  # before the call: an input that kills the process is the last line
                with open(LOG, "a", encoding="utf-8") as log:
                    log.write(f"{test.__name__} {kwargs!r}\n")
            return inner(*args, **kwargs)

        configured.hypothesis.inner_test = counted  # hypothesis' documented hook

        @functools.wraps(configured)
        def run(*args: Any, **kwargs: Any) -> None:
            started = time.monotonic()
            failures, error = 0, ""
            try:
                while True:
                    configured(*args, **kwargs)
                    if PROFILE == "ci" or time.monotonic() - started >= SECONDS:
                        break
            except BaseException as exc:
                failures, error = 1, f"{type(exc).__name__}: {str(exc).splitlines()[:1]}"
                raise
            finally:
                _report(
                    test=test.__name__,
                    parser=parser,
                    examples=tried[0],
                    failures=failures,
                    seconds=round(time.monotonic() - started, 1),
                    error=error,
                )

        run.fuzz_parser = parser  # type: ignore[attr-defined]
        return run

    return decorate


def _report(**line: Any) -> None:
    if REPORT:
        with open(REPORT, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A hang ends the test (pytest-timeout): the budget plus slack for its last batch."""
    limit = SECONDS * 1.5 + 180 if SECONDS else 150
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(limit))


@pytest.fixture(autouse=True)
def _bounded_memory() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if not MEMORY_LIMIT:
        yield
        return
    limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class ParseHang(BaseException):
    """A parse used more than PARSE_CPU_S of CPU: unbounded work on one input."""


@contextlib.contextmanager
def cpu_bounded(seconds: float = PARSE_CPU_S) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise ParseHang(f"one parse used more than {seconds:g} s of CPU")

    old = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


# -- the property every parser shares ------------------------------------------------------


def assert_one_line_error(exc: BaseException, *kinds: type[CodexBoxError], exit_code: int) -> None:
    """``exc`` is one of ``kinds`` (a CodexBoxError), names itself in one line, and maps
    to the documented exit code."""
    assert isinstance(exc, kinds), f"{type(exc).__name__} is not one of {kinds}: {exc!r}"
    line = exc.one_line()
    assert line.strip(), f"an empty message: {exc!r}"
    assert "\n" not in line and "\r" not in line, f"not one line: {line!r}"
    assert exc.exit_code == exit_code, f"exit {exc.exit_code}, documented {exit_code}: {line}"


def outcome(call: Callable[[], Any], about: object = None) -> tuple[Any, BaseException | None]:
    """(result, None), or (None, the CodexBoxError); anything else propagates: a crash.
    The call is CPU-bounded (``cpu_bounded``); a hang names ``about`` (the input)."""
    try:
        with cpu_bounded():
            return call(), None
    except CodexBoxError as exc:
        return None, exc
    except ParseHang as hang:
        raise ParseHang(f"{hang} on {about!r:.500}") from None


# -- shared strategies ----------------------------------------------------------------------

from hypothesis import strategies as st  # noqa: E402

# Text a parser meets in the wild and in attacks: any code point (NUL, controls, RTL
# marks, astral), and the lone surrogates argv and file names decode to (surrogateescape).
ODD_CHARS = st.characters(codec=None, exclude_categories=())
odd_text = st.text(ODD_CHARS, max_size=40) | st.sampled_from(
    ["", "\0", "\n", "\r\n", "\u202e", "\udcff", "\ud800", "😀", "ǅ", "İ", "\u0085", "\u2028"]
)
long_text = st.integers(1, 20).map(lambda n: "x" * (n * 997))
huge_ints = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, -1, 0]) | st.integers()
scalars = (
    st.none()
    | st.booleans()
    | huge_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | odd_text
    | long_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=20,
)
raw_bytes = st.binary(max_size=2048)


@st.composite
def deep_nesting(draw: st.DrawFn, opener: str = "[", closer: str = "]") -> str:
    """Brackets nested past any recursion limit a parser might have (closed or not)."""
    depth = draw(st.sampled_from([50, 999, 1001, 3000, 20000]))
    closed = draw(st.booleans())
    return opener * depth + (closer * depth if closed else "")
