"""Audit log speed, measured side by side in one run (never asserted in tests).

    .venv/bin/python bench/audit_bench.py [--records 5000] [--verify-records 100000]

In a fresh temporary directory under the home directory (mkdtemp(dir=~): the filesystem
$CODEX_HOME = ~/.codex lives on by default; the output names it and its type), prints:
  1. one writer: records/s of AuditLog(path, sanitizer=Sanitizer(...)).append(record)
     with a realistic command_exec record (sanitizing, flock, chain, O_APPEND write,
     fsync, audit.head), of the same AuditLog with sanitizer=str (the log's own cost,
     the Redactor's left out), and of append_many in batches of 4 (a launch writes 3-4
     records), beside two floors: os.write + os.fsync of a line of the same size to an
     O_APPEND file held open in the same directory, and of 4 such lines per write;
     blocks of each interleaved, their order rotating, so drift hits all alike; the
     ratios, p50/p99 per call, and what sanitizing one record costs on its own;
  2. 8 writer processes (`sys.executable -c`) appending N/8 records each to one log:
     total records/s from the first writer's start to the last writer's end, then
     `verify` of the result: chain intact and N records, or a FAILED line and exit 1
     (a correctness check, not a timing one);
  3. verify: a log of M records (rotated at the default max_bytes, as AuditLog would)
     built with the real AuditLog when the one-writer rate says that takes <= 60 s, else
     M-1 chained lines written directly in audit.py's format plus audit.head, then one
     real AuditLog.append on top; `verify(path)` median of 3 (page cache warm), checked
     ok and M records (FAILED and exit 1 otherwise).
Targets (issue 19): >= 2,000 fsync'd records/s, one writer and 8 writers (each printed
met/NOT met beside the floor: the disk's own limit); verify of 100k records <= 2 s.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.audit.chain import (  # noqa: E402
    GENESIS,
    HEAD_NAME,
    head_line,
    line_hash,
    rotated,
)
from orchestrator.audit.log import (  # noqa: E402
    DEFAULT_MAX_BYTES,
    LOG_NAME,
    TEXT_FIELDS,
    AuditLog,
    Sanitizer,
    now_utc,
)
from orchestrator.audit.verify import verify  # noqa: E402
from orchestrator.settings.config import codex_home  # noqa: E402

TARGET_RATE = 2000.0  # records/s, one writer and 8 writers
BATCH = 4  # append_many: the records of one launch
TARGET_VERIFY_S = 2.0  # seconds for 100k records
BUILD_BUDGET_S = 60.0  # build the verify log with the real AuditLog if it fits in this
WRITERS = 8
COMMAND = "pytest -q tests/unit/test_audit.py -k 'chain and rotate' -xv"  # 60 chars

CHILD = """
import json, sys, time
from pathlib import Path
from orchestrator.audit.log import AuditLog, Sanitizer
path, count, user, home, record = sys.argv[1:6]
log = AuditLog(Path(path), sanitizer=Sanitizer(user=user, home=home))
record = json.loads(record)
print("ready", flush=True)
sys.stdin.readline()
start = time.monotonic()
for _ in range(int(count)):
    log.append(record)
print(json.dumps([start, time.monotonic()]), flush=True)
"""


def make_record(home: str) -> dict[str, str]:
    return {
        "operation": "command_exec",
        "phase": "decided",
        "target": COMMAND,
        "decision": "allowed",
        "reason": "profile dev (workspace (.codex-box.yaml in the workspace))",
        "session_id": "3f9c2a71be04",
        "run_id": "a81d6e0c52f7",
        "profile": "dev",
        "backend": "native",
        "workspace": f"{home}/src/codex-box",
    }


def filesystem(path: Path) -> str:
    """'<mount point> (<type>)' of the mount holding ``path``, from /proc/self/mountinfo."""
    real, best, kind = os.path.realpath(path), "", "?"
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    for line in mounts:
        left, _, right = line.partition(" - ")
        point = left.split()[4]
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, right.split()[0]
    return f"{best} ({kind})"


def existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def fail(message: str) -> None:
    print(f"FAILED: {message}")
    sys.exit(1)


def check(path: Path, expected: int, what: str) -> float:
    """verify(path): chain intact, no torn lines, ``expected`` records; seconds taken."""
    start = time.perf_counter()
    report = verify(path)
    took = time.perf_counter() - start
    if not report.ok or report.torn or report.records != expected:
        fail(
            f"{what}: ok={report.ok} records={report.records} (expected {expected}) "
            f"problems={report.problems[:3]} torn={report.torn[:3]}"
        )
    return took


def one_writer(base: Path, n: int, record: dict[str, str], sanitizer: Sanitizer) -> dict:
    """Interleaved blocks of each way of writing n records; per way: records/s, p50/p99
    per call (a call writes `per` records)."""
    warm = AuditLog(base / "warmup" / LOG_NAME, sanitizer=sanitizer)
    warm.append(record)
    line = (base / "warmup" / LOG_NAME).read_bytes()
    directory = base / "single"
    directory.mkdir()
    logs = {
        name: AuditLog(directory / name / LOG_NAME, sanitizer=sanitizer if real else str)
        for name, real in (("append", True), ("bare", False), ("many", True))
    }
    fds = {
        name: os.open(
            directory / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        for name in ("raw", "raw4")
    }
    batch = [record] * BATCH
    lines4 = line * BATCH

    def raw(fd: int, data: bytes) -> None:
        os.write(fd, data)
        os.fsync(fd)

    ways: dict[str, tuple[int, Callable[[], object]]] = {
        "append": (1, lambda: logs["append"].append(record)),
        "bare": (1, lambda: logs["bare"].append(record)),
        "many": (BATCH, lambda: logs["many"].append_many(batch)),
        "raw": (1, lambda: raw(fds["raw"], line)),
        "raw4": (BATCH, lambda: raw(fds["raw4"], lines4)),
    }
    for _, call in ways.values():  # warm-up: files created, descriptors open
        call()
    times: dict[str, list[float]] = {name: [] for name in ways}
    block = max(BATCH, min(200, n // 10))
    done = 0
    names = list(ways)
    try:
        while done < n:
            size = min(block, n - done)
            turn = (done // block) % len(names)
            for name in names[turn:] + names[:turn]:  # no way always after the same one
                per, call = ways[name]
                for _ in range(max(1, size // per)):
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
            done += size
    finally:
        for fd in fds.values():
            os.close(fd)
        for log in logs.values():
            log.close()
    for name in ("append", "bare", "many"):  # the warm-up call's records too
        check(directory / name / LOG_NAME, (1 + len(times[name])) * ways[name][0], name)
    result: dict = {"block": block, "line_bytes": len(line)}
    for name, (per, _) in ways.items():
        spent = times[name]
        result[name] = {
            "rate": rate(per * len(spent), sum(spent)),
            "calls": len(spent),
            "p50_ms": statistics.median(spent) * 1e3,
            "p99_ms": pct(spent, 0.99) * 1e3,
        }
    result["mean_line_bytes"] = (directory / "append" / LOG_NAME).stat().st_size / (
        1 + len(times["append"])
    )
    result["sanitize_us"] = sanitize_cost(record, sanitizer)
    return result


def sanitize_cost(record: dict[str, str], sanitizer: Sanitizer) -> float:
    """Microseconds the Redactor takes over one record's text fields (median of 5 x 200)."""
    fields = [v for k, v in record.items() if k in TEXT_FIELDS]
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            for value in fields:
                sanitizer(value)
        runs.append((time.perf_counter() - start) / 200)
    return statistics.median(runs) * 1e6


def verdict(value: float) -> str:
    return f"target >= {TARGET_RATE:,.0f}: {'met' if value >= TARGET_RATE else 'NOT met'}"


def many_writers(base: Path, n: int, record: dict[str, str], user: str, home: str) -> dict:
    directory = base / "concurrent"
    directory.mkdir()
    path = directory / LOG_NAME
    counts = [n // WRITERS + (1 if i < n % WRITERS else 0) for i in range(WRITERS)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(count), user, home, json.dumps(record)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for count in counts
    ]
    for child in children:  # every interpreter up and imported before any writes
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            fail("a writer process did not start")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    spans = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            fail(f"a writer process exited {child.returncode}")
        spans.append(json.loads(out))
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    verify_s = check(path, n, f"{WRITERS} writers")
    return {"rate": rate(n, wall), "wall_s": wall, "per_writer": counts, "verify_s": verify_s}


def build_with_auditlog(
    path: Path, m: int, record: dict[str, str], sanitizer: Sanitizer, keep: int
) -> float:
    log = AuditLog(path, sanitizer=sanitizer, keep=keep)
    start = time.perf_counter()
    for _ in range(m):
        log.append(record)
    return time.perf_counter() - start


def build_directly(
    path: Path, m: int, record: dict[str, str], sanitizer: Sanitizer, keep: int
) -> float:
    """M-1 chained lines in audit.py's format, rotated by DEFAULT_MAX_BYTES, audit.head;
    then the M-th record by the real AuditLog, continuing the chain it finds."""
    start = time.perf_counter()
    clean = {k: sanitizer(v) if k in TEXT_FIELDS else v for k, v in record.items()}
    files: list[list[bytes]] = [[]]
    size, prev = 0, GENESIS
    for seq in range(1, m):
        fields = {"timestamp": now_utc(), "seq": seq, **clean, "prev": prev}
        line = (json.dumps(fields, ensure_ascii=True) + "\n").encode()
        if size and size + len(line) > DEFAULT_MAX_BYTES:
            files.append([])
            size = 0
        files[-1].append(line)
        size += len(line)
        prev = line_hash(line)
    for age, lines in enumerate(reversed(files)):  # newest is audit.log, then .1, .2 …
        (rotated(path, age) if age else path).write_bytes(b"".join(lines))
    if m > 1:
        path.with_name(HEAD_NAME).write_bytes(head_line(m - 1, prev))
    AuditLog(path, sanitizer=sanitizer, keep=keep).append(record)
    return time.perf_counter() - start


def verify_speed(
    base: Path,
    m: int,
    record: dict[str, str],
    sanitizer: Sanitizer,
    single_rate: float,
    line_bytes: float,
) -> dict:
    directory = base / "verify"
    directory.mkdir()
    path = directory / LOG_NAME
    keep = math.ceil(m * line_bytes * 1.2 / DEFAULT_MAX_BYTES) + 2  # nothing rotated away
    estimate = m / single_rate
    if estimate <= BUILD_BUDGET_S:
        how = f"real AuditLog.append x {m} (estimated {estimate:.0f} s <= {BUILD_BUDGET_S:.0f} s)"
        build_s = build_with_auditlog(path, m, record, sanitizer, keep)
    else:
        how = (
            f"{m - 1} lines written directly + 1 real AuditLog.append "
            f"(AuditLog estimated {estimate:.0f} s > {BUILD_BUDGET_S:.0f} s)"
        )
        build_s = build_directly(path, m, record, sanitizer, keep)
    times = []
    files = 0
    for _ in range(3):
        start = time.perf_counter()
        report = verify(path)
        times.append(time.perf_counter() - start)
        if not report.ok or report.torn or report.records != m:
            fail(
                f"verify of the {m}-record log: ok={report.ok} records={report.records} "
                f"problems={report.problems[:3]} torn={report.torn[:3]}"
            )
        files = len(report.files)
    total = sum(p.stat().st_size for p in directory.glob(LOG_NAME + "*"))
    return {
        "how": how,
        "build_s": build_s,
        "build_rate": rate(m, build_s),
        "median_s": statistics.median(times),
        "times": times,
        "files": files,
        "mb": total / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--verify-records", type=int, default=100_000)
    args = parser.parse_args()
    if args.records < WRITERS or args.verify_records < 1:
        parser.error(f"--records >= {WRITERS} and --verify-records >= 1")
    n, m = args.records, args.verify_records

    home = os.path.expanduser("~")
    user = getpass.getuser()
    sanitizer = Sanitizer(user=user, home=home)
    record = make_record(home)
    base = Path(tempfile.mkdtemp(prefix="codex-box-audit-bench-", dir=home))
    ch = codex_home(os.environ)
    same = os.stat(existing_ancestor(ch)).st_dev == os.stat(base).st_dev
    print(f"directory: {base}  (tempfile.mkdtemp(dir=~), not /var/tmp)")
    print(
        f"filesystem: {filesystem(base)}; $CODEX_HOME would be {ch}: "
        f"{'same filesystem' if same else 'a DIFFERENT filesystem'}"
    )
    print(f"{os.uname().machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")

    try:
        one = one_writer(base, n, record, sanitizer)
        print(
            f"\n1. one writer, {n} records per way, fsync per call (blocks of "
            f"{one['block']} interleaved, order rotating)"
        )
        print(f"   line: {one['line_bytes']} bytes (mean in the log {one['mean_line_bytes']:.0f})")
        print(f"   {'':44} {'records/s':>10} {'p50 ms':>8} {'p99 ms':>8}  per call")
        rows = (
            ("append", "AuditLog.append"),
            ("bare", "AuditLog.append, sanitizer=str"),
            ("many", f"AuditLog.append_many, batches of {BATCH}"),
            ("raw", "floor: os.write + os.fsync (O_APPEND)"),
            ("raw4", f"floor: {BATCH} lines per os.write + os.fsync"),
        )
        for key, label in rows:
            way = one[key]
            print(
                f"   {label:44} {way['rate']:10.0f} {way['p50_ms']:8.3f} "
                f"{way['p99_ms']:8.3f}  {1 if key in ('append', 'bare', 'raw') else BATCH}"
            )
        ratio = one["raw"]["rate"] / one["append"]["rate"]
        bare_ratio = one["raw"]["rate"] / one["bare"]["rate"]
        many_ratio = one["raw4"]["rate"] / one["many"]["rate"]
        print(
            f"   time per record vs the floor: append {ratio:.2f}x, append without "
            f"sanitizing {bare_ratio:.2f}x, append_many vs its floor {many_ratio:.2f}x"
        )
        over = (1 / one["append"]["rate"] - 1 / one["raw"]["rate"]) * 1e6
        print(
            f"   AuditLog.append: {over:.0f} us per record over the floor, of which "
            f"sanitizing (the Redactor, before the lock) {one['sanitize_us']:.0f} us"
        )
        print(
            f"   one writer: AuditLog.append {one['append']['rate']:.0f} records/s, "
            f"{verdict(one['append']['rate'])} (floor {one['raw']['rate']:.0f}: "
            f"{verdict(one['raw']['rate'])})"
        )

        many = many_writers(base, n, record, user, home)
        print(
            f"\n2. {WRITERS} writer processes x {many['per_writer'][0]} records "
            f"(sys.executable -c), one log"
        )
        print(
            f"   total {many['rate']:.0f} records/s ({n} in {many['wall_s']:.2f} s, first "
            f"start to last end)   one writer {one['append']['rate']:.0f} records/s, "
            f"floor {one['raw']['rate']:.0f}"
        )
        print(f"   {WRITERS} writers: {verdict(many['rate'])}")
        print(
            f"   verify: chain intact, {n} records == {n}, no torn lines "
            f"({many['verify_s'] * 1e3:.0f} ms)"
        )

        ver = verify_speed(
            base, m, record, sanitizer, one["append"]["rate"], one["mean_line_bytes"]
        )
        print(
            f"\n3. verify of {m} records ({ver['files']} files, {ver['mb']:.1f} MB, "
            f"rotated at {DEFAULT_MAX_BYTES // 2**20} MiB)"
        )
        print(
            f"   built by {ver['how']}: {ver['build_s']:.1f} s ({ver['build_rate']:.0f} records/s)"
        )
        scaled = ver["median_s"] * 100_000 / m
        print(
            f"   verify(path): median {ver['median_s']:.3f} s of 3 "
            f"({', '.join(f'{t:.3f}' for t in ver['times'])}), "
            f"{rate(m, ver['median_s']):.0f} records/s"
            f"   target <= {TARGET_VERIFY_S:g} s per 100k: "
            f"{'met' if scaled <= TARGET_VERIFY_S else 'NOT met'}"
        )
        print(f"   report.ok, report.records == {m}")

        print(
            json.dumps(
                {
                    "directory": str(base.parent),
                    "filesystem": filesystem(base),
                    "one_writer_records_per_s": round(one["append"]["rate"]),
                    "floor_records_per_s": round(one["raw"]["rate"]),
                    "ratio_audit_vs_floor": round(ratio, 2),
                    "ratio_unsanitized_vs_floor": round(bare_ratio, 2),
                    "append_many_records_per_s": round(one["many"]["rate"]),
                    "ratio_append_many_vs_floor_4": round(many_ratio, 2),
                    "sanitize_us_per_record": round(one["sanitize_us"]),
                    "writers_8_records_per_s": round(many["rate"]),
                    "verify_records": m,
                    "verify_median_s": round(ver["median_s"], 3),
                }
            )
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
