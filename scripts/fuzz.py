"""Run the fuzz suite for longer than CI does (``make fuzz``), and print what it tried.

    python scripts/fuzz.py [--seconds N] [-k EXPR] [--report FILE] [--log FILE]

Each test in tests/fuzz runs hypothesis in batches until N seconds are spent
(CODEX_BOX_FUZZ_SECONDS, default 600: tests/fuzz/conftest.py says how), then this
prints one row per test: the parser, the inputs tried and the crashes found. A crash
fails its test with the minimal input hypothesis shrank it to; make it a plain test in
tests/fuzz/test_regressions.py. ``--log`` appends every input before it is tried, for a
crash that kills the process (a segfault in a C parser) and so leaves no report.
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="budget per test")
    parser.add_argument("-k", dest="select", help="only tests matching this pytest -k expression")
    parser.add_argument("--report", type=Path, help="keep the JSON-lines report here")
    parser.add_argument("--log", type=Path, help="append every input tried to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be more than 0")

    with tempfile.TemporaryDirectory() as scratch:
        report = args.report or Path(scratch, "fuzz-report.jsonl")
        report.unlink(missing_ok=True)
        env = {**os.environ, "CODEX_BOX_FUZZ_SECONDS": str(args.seconds),
               "CODEX_BOX_FUZZ_REPORT": str(report)}  # fmt: skip
        if args.log:
            env["CODEX_BOX_FUZZ_LOG"] = str(args.log)
        fuzz = ROOT / "tests" / "fuzz"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(fuzz),
                   "--ignore", str(fuzz / "test_regressions.py")]  # fmt: skip
        if args.select:
            command += ["-k", args.select]
        status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        lines = report.read_text().splitlines() if report.exists() else []
        rows = [json.loads(line) for line in lines]
    print_table(rows)
    if status < 0:
        print(f"pytest was killed by signal {-status}: a crash no report line shows "
              "(rerun with --log FILE; its last line is the input)", file=sys.stderr)  # fmt: skip
    return status


def print_table(rows: list[dict[str, object]]) -> None:
    header = ("parser", "test", "inputs tried", "crashes", "seconds")
    table = [header] + [
        tuple(str(r[k]) for k in ("parser", "test", "examples", "failures", "seconds"))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for number, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            print("  ".join("-" * width for width in widths))
    total = sum(int(str(r["examples"])) for r in rows)
    crashes = sum(int(str(r["failures"])) for r in rows)
    print(f"{len(rows)} tests, {total} inputs tried, {crashes} crashes")
    for r in rows:
        if r.get("error"):
            print(f"  {r['test']}: {r['error']}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
