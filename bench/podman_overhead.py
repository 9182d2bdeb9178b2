"""codex-box on Podman vs the equivalent raw `podman run`, in alternating pairs.

    .venv/bin/python bench/podman_overhead.py [--pairs 20] [--remote] [--profile-runs 5]

Each pair runs, back to back and in alternating order (after one warm-up of each):
  ours  codex-box run --backend podman --profile offline -- true
  raw   podman run --rm -i --network none --read-only --read-only-tmpfs=false
          --cap-drop ALL --security-opt no-new-privileges
          --security-opt seccomp=<repo>/seccomp-profiles/offline.json --pids-limit 4096
          --init --user UID:GID -v WS:WS:ro,rprivate -w WS --entrypoint ""
          --ulimit nofile=H:H --ulimit nproc=H:H  -e ... --label ...  codex-box/base true
``--remote`` adds a third command to the rotation, the same `podman run` sent through the
API service (`podman --url <socket> run`): the path codex-box takes.

How the raw command is kept equal: it is not written by hand but derived from what
codex-box itself would send, `codex-box run --backend podman --print-spec -- true` run
in the same directory and environment; every key of that request is mapped to its CLI
option, and a key this script does not know stops it (a new backend option must be
mirrored here, not silently left out). The ulimits come from the same
``podman_host.probe()`` / ``PodmanHost.ulimits()`` the backend uses (the service's own
hard limits, because this host's OCI runtime cannot raise rlimits) and are checked
against the printed request.

Differences that remain, and why they cost no measurable time:
  - codex-box removes the container with an API call after `wait`; raw uses --rm (the
    same removal, done by the CLI). Both are inside the timed command.
  - the environment (-e) and labels (--label) are those of the --print-spec run, so
    CODEX_BOX_SESSION/codex-box.session/run differ by value only; codex-box's owner label
    (host:pid:start-time, added at run time) names the benchmark's pid here.
  - protected-path binds: the offline profile has none for this workspace (a fresh
    directory, no .git/.codex); if the profile adds binds or tmpfs mounts they appear in
    the request and are mirrored (-v / --mount type=tmpfs).
  - codex-box attaches stdin/stdout/stderr over the libpod attach endpoint; raw uses -i
    with the CLI's own attach. Both wait for the command's exit.
  - codex-box also sweeps leftovers (one list call) and re-inspects after create and
    after the exit (OOM check): this is codex-box's overhead, and it is measured below.

Printed: medians, the median of the per-pair ratios (target <= 1.3), and where
codex-box's own time goes: interpreter start-up, imports (cumulative, -X importtime),
and one instrumented in-process run per child process (--profile-runs, medians): each
backend step (probe, image check, client, sweep, create, attach, start, wait, inspect,
remove) and each HTTP call to the service.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SOCKET = "unix:///run/podman/podman.sock"  # codex-box's default as root
OURS_ARGS = ["run", "--backend", "podman", "--profile", "offline", "--", "true"]


# --- the raw command, derived from codex-box's own request -------------------------------

def printed_request(workspace: Path, env: dict[str, str]) -> dict[str, Any]:
    argv = [str(VENV_BIN / "codex-box"), *OURS_ARGS[:-2], "--print-spec", "--", "true"]
    out = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["request"]  # type: ignore[no-any-return]


def _bind(mount: dict[str, Any]) -> list[str]:
    source, target = mount["source"], mount["target"]
    if any(c in source + target for c in ":,"):
        sys.exit(f"bind {source} -> {target}: a ':' or ',' cannot be passed with -v")
    mode = "ro" if mount.get("read_only") else "rw"
    return ["-v", f"{source}:{target}:{mode},{mount.get('propagation', 'rprivate')}"]


def _tmpfs(mount: dict[str, Any]) -> list[str]:
    return ["--mount", f"type=tmpfs,destination={mount['target']},tmpfs-mode={mount['mode']}"]


def raw_podman(request: dict[str, Any], ulimits: list[dict[str, Any]], *,
               remote: bool) -> list[str]:
    """The `podman run` argv equal to ``request`` (podman-py create kwargs)."""
    from orchestrator.backends.containers import common as container

    owner = container.LABEL_OWNER
    if request.get("ulimits", []) != ulimits:
        sys.exit(f"ulimits differ: codex-box {request.get('ulimits')} vs probe {ulimits}")
    options: dict[str, Callable[[Any], list[str]]] = {
        "image": lambda v: [],  # positional, below
        "command": lambda v: [],  # positional, below
        "entrypoint": lambda v: ["--entrypoint", json.dumps(v) if v != [""] else ""],
        "working_dir": lambda v: ["-w", v],
        "user": lambda v: ["--user", v],
        "environment": lambda v: [a for k, val in v.items() for a in ("-e", f"{k}={val}")],
        # codex-box adds its owner label at run time (not in --print-spec): so do we.
        "labels": lambda v: [a for k, val in {**v, owner: container.owner_label()}.items()
                             for a in ("--label", f"{k}={val}")],
        "tty": lambda v: ["-t"] if v else [],
        "stdin_open": lambda v: ["-i"] if v else [],
        "init": lambda v: ["--init"] if v else [],
        "privileged": lambda v: ["--privileged"] if v else [],
        "network_mode": lambda v: ["--network", v],
        "read_only": lambda v: ["--read-only"] if v else [],
        "read_write_tmpfs": lambda v: [f"--read-only-tmpfs={str(v).lower()}"],
        "mounts": lambda v: [a for m in v for a in (_bind(m) if m["type"] == "bind"
                                                    else _tmpfs(m))],
        "cap_drop": lambda v: [a for c in v for a in ("--cap-drop", c)],
        "no_new_privileges": lambda v: ["--security-opt", "no-new-privileges"] if v else [],
        "seccomp_profile_path": lambda v: ["--security-opt", f"seccomp={v}"],
        "apparmor_profile": lambda v: ["--security-opt", f"apparmor={v}"],
        "pids_limit": lambda v: ["--pids-limit", str(v)],
        "mem_limit": lambda v: ["--memory", str(v)],
        "memswap_limit": lambda v: ["--memory-swap", str(v)],
        "cpu_period": lambda v: ["--cpu-period", str(v)],
        "cpu_quota": lambda v: ["--cpu-quota", str(v)],
        "ulimits": lambda v: [f"--ulimit={u['Name']}={u['Soft']}:{u['Hard']}" for u in v],
        "runtime": lambda v: ["--runtime", v],
    }
    unknown = set(request) - set(options)
    if unknown:
        sys.exit(f"codex-box sends {sorted(unknown)}: mirror it in raw_podman() first")
    argv = ["podman", *(["--url", SOCKET] if remote else []), "run", "--rm"]
    for key, value in request.items():
        argv += options[key](value)
    return [*argv, request["image"], *request["command"]]


# --- one instrumented codex-box run (in a child process: cold, like the CLI) ------------

def instrumented_run(out_path: str) -> None:
    """Child mode: import, then one real `codex-box run` in-process with every backend
    step and HTTP call timed. Writes {"steps": {...}, "http": [...]} to ``out_path``."""
    steps: dict[str, float] = {}
    http: list[tuple[str, float]] = []
    clock = time.perf_counter
    t = clock()
    import orchestrator.cli.app as cli
    steps["import orchestrator.cli.app"] = clock() - t
    t = clock()
    import podman  # noqa: F401  (what the backend's first podman-py call pays)
    steps["import podman (podman-py)"] = clock() - t
    t = clock()
    import orchestrator.backends.podman.backend as pm
    steps["import orchestrator.backends.podman.backend"] = clock() - t
    from podman.api.client import APIClient

    from orchestrator.backends.containers.engine_api import Endpoint

    def timing(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kw)
            finally:
                steps[name] = steps.get(name, 0.0) + clock() - start
        return wrapper

    def http_timing(fn: Callable[..., Any], label: Callable[..., str]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kw)
            finally:
                http.append((label(*args, **kw), clock() - start))
        return wrapper

    def short(path: str) -> str:
        path = path.split("?")[0].replace("/v4.0.0/libpod", "")
        parts = [p if len(p) < 40 else "{id}" for p in path.split("/")]
        return "/".join(parts)

    pm.probe = timing(pm.probe, "probe (_ping, /proc)")
    pm._has_image = timing(pm._has_image, "image exists")
    pm.PodmanOps.__init__ = timing(pm.PodmanOps.__init__, "PodmanClient()")
    for method, name in (("sweep", "sweep (list)"), ("create", "create (+ inspect, verify)"),
                         ("attach", "attach"), ("start", "start"), ("wait", "wait"),
                         ("oom_killed", "inspect (OOM)"), ("remove", "remove")):
        setattr(pm.PodmanOps, method, timing(getattr(pm.PodmanOps, method), name))
    APIClient._request = http_timing(  # type: ignore[method-assign]
        APIClient._request, lambda _self, method, path, **kw: f"{method} {short(str(path))}")
    Endpoint.request = http_timing(  # type: ignore[method-assign]
        Endpoint.request, lambda _self, method, path, *a, **kw: f"{method} {short(path)}")
    Endpoint.hijack = http_timing(  # type: ignore[method-assign]
        Endpoint.hijack, lambda _self, path: f"POST {short(path)} (hijack)")
    t = clock()
    code = cli.app(args=OURS_ARGS, standalone_mode=False)  # returns the exit code
    steps["whole run (after imports)"] = clock() - t
    if code:
        sys.exit(f"the instrumented codex-box run exited {code}")
    Path(out_path).write_text(json.dumps({"steps": steps, "http": http}))


def profile_runs(runs: int, workspace: Path, env: dict[str, str]) -> float:
    """Medians over ``runs`` instrumented child processes; returns the median wall time
    of one child (for the accounting in ``main``)."""
    import statistics

    steps: dict[str, list[float]] = {}
    http: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    walls, outside = [], []
    for _ in range(runs):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--instrumented-run", out.name],
                           cwd=workspace, env=env, stdin=subprocess.DEVNULL, check=True)
            walls.append(time.perf_counter() - start)
            data = json.loads(Path(out.name).read_text())
        inside = sum(v for k, v in data["steps"].items() if k.startswith(("import", "whole")))
        outside.append(walls[-1] - inside)
        for name, seconds in data["steps"].items():
            steps.setdefault(name, []).append(seconds)
        seen: dict[str, float] = {}
        for name, seconds in data["http"]:
            seen[name] = seen.get(name, 0.0) + seconds
            counts[name] = counts.get(name, 0) + 1
        for name, seconds in seen.items():
            http.setdefault(name, []).append(seconds)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    backend = [k for k in steps if not k.startswith(("import", "whole"))]
    in_backend = [sum(steps[k][i] for k in backend if i < len(steps[k])) for i in range(runs)]
    whole = ms(steps.pop("whole run (after imports)"))
    print(f"one codex-box run, instrumented in-process (median of {runs} child processes):")
    print(f"  {'child process, wall':38}{ms(walls):7.1f} ms")
    print(f"  {'  interpreter start-up + exit':38}{ms(outside):7.1f} ms")
    for name, values in steps.items():
        print(f"  {'  ' + name:38}{ms(values):7.1f} ms")
    print(f"  {'  codex-box logic (CLI, resolve, audit)':38}{whole - ms(in_backend):7.1f} ms")
    print("  HTTP calls to the service (inside the steps above; x = calls per run):")
    for name, values in http.items():
        print(f"    {name + f' x{counts[name] // runs}':52}{ms(values):7.1f} ms")
    return ms(walls)


def main() -> None:
    if sys.argv[1:2] == ["--instrumented-run"]:  # before any import the CLI would not make
        instrumented_run(sys.argv[2])
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from pairs import Pairs, import_ms, python_startup_ms

    from orchestrator.backends.podman.host import probe

    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--remote", action="store_true",
                        help="also time `podman --url SOCKET run` (the API service's path)")
    parser.add_argument("--profile-runs", type=int, default=5,
                        help="instrumented codex-box runs for the breakdown (0: none)")
    args = parser.parse_args()
    if args.pairs < 10:
        parser.error("--pairs: at least 10")
    home = Path(tempfile.mkdtemp(prefix="codex-box-bench-"))
    workspace = home / "ws"
    workspace.mkdir()
    # No CONTAINER_HOST: with it set, the podman CLI itself goes through the service.
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    request = printed_request(workspace, env)
    ulimits = probe(SOCKET).ulimits()
    ours = [str(VENV_BIN / "codex-box"), *OURS_ARGS]
    peers = {"raw": raw_podman(request, ulimits, remote=False)}
    if args.remote:
        peers["remote"] = raw_podman(request, ulimits, remote=True)
    print("ours:", " ".join(ours))
    print("raw: ", " ".join(a if a and " " not in a else repr(a) for a in peers["raw"]))
    pairs = Pairs()
    pairs.run(ours, peers, args.pairs, cwd=workspace, env=env, stdin=subprocess.DEVNULL)
    print(f"{args.pairs} alternating {'rounds' if args.remote else 'pairs'}, one warm-up each")
    print(f"  codex-box --backend podman       median {pairs.median_ms(pairs.ours):7.1f} ms")
    print(f"  raw podman run (same hardening)  median {pairs.median_ms(pairs.peers['raw']):7.1f}"
          f" ms")
    print(f"  median per-pair ratio            {pairs.ratio('raw'):.2f} (target <= 1.3)")
    if args.remote:
        print(f"  podman --url SOCKET run (API)    median "
              f"{pairs.median_ms(pairs.peers['remote']):7.1f} ms   "
              f"ratio ours/remote {pairs.ratio('remote'):.2f}")
    print("where codex-box's own time goes:")
    print(f"  python start-up (python -c pass)     {python_startup_ms():7.1f} ms")
    for module in ("orchestrator.cli.app", "orchestrator.backends.podman.backend", "podman"):
        print(f"  import {module:30}{import_ms(module):7.1f} ms (cumulative, -X importtime)")
    if args.profile_runs > 0:
        profile_runs(args.profile_runs, workspace, env)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
