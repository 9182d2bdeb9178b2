"""codex-box on Docker vs the same `docker run`, in rotating rounds (issue 19: ≤ 1.3x).

    .venv/bin/python bench/docker_overhead.py [--rounds 15] [--profile-runs 5]
                                              [--baseline DIR]

Each round runs, back to back, in an order that rotates:
  ours  codex-box run --backend docker --image codex-box/test --profile offline -- true
  raw   docker run --rm -i <the same container options> codex-box/test true
  (--baseline DIR: also ours from another checkout, PYTHONPATH=DIR: old vs new code
   side by side in one run, under the same load; PYTHONPATH set for the bench itself
   chooses the checkout timed as ours)
and prints the medians, the median of the per-round ratios and met/NOT met.

The raw command is not written by hand: it is derived from the create body codex-box
itself sends (`--print-spec` in the same directory and environment); every key of it is
mapped to its `docker run` option, and a key this script does not know stops it (a new
backend option must be mirrored here, not silently left out). What remains different:
  - codex-box as root stages each bind's source (a bind mount made from the descriptor
    compile checked; staging.py) and removes it after: its own cost, in ours.
  - the owner label names the benchmark's pid; the session/run labels and environment
    differ by value only.
  - raw uses --rm (the CLI waits for the engine's removal); codex-box removes the
    container with an explicit call after reading its OOM flag. Both wait for it.

Also printed: the engine round trips per run, codex-box's (an instrumented run of the
real entry point) against raw `docker run`'s (through a counting proxy); the backend's
import cost; and where one codex-box run's time goes, with the gap to raw split between
the CLI (interpreter start-up, imports, policy, audit) and the backend.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from pairs import (
    Rounds,
    import_ms,
    print_profile,
    print_round_trips,
    printed_request,
    profiled,
    python_startup_ms,
    raw_round_trips,
    verdict,
)

VENV_BIN = Path(sys.executable).parent
IMAGE = "codex-box/test"
OURS_ARGS = ["run", "--backend", "docker", "--image", IMAGE, "--profile", "offline", "--",
             "true"]
BACKEND = ("orchestrator.backends.docker", "DockerBackend")


def _mount(mount: dict[str, Any]) -> list[str]:
    if mount["Type"] != "bind" or any(c in mount["Source"] + mount["Target"] for c in ",="):
        sys.exit(f"mount {mount}: not mirrored by this script")
    spec = f"type=bind,src={mount['Source']},dst={mount['Target']}"
    spec += ",readonly" if mount.get("ReadOnly") else ""
    spec += f",bind-propagation={mount.get('BindOptions', {}).get('Propagation', 'rprivate')}"
    return ["--mount", spec]


def _security(option: str, scratch: Path) -> list[str]:
    if option.startswith("seccomp="):  # the CLI takes a file and sends its content
        (scratch / "seccomp.json").write_text(option.removeprefix("seccomp="))
        option = f"seccomp={scratch / 'seccomp.json'}"
    return ["--security-opt", option]


def raw_docker(request: dict[str, Any], scratch: Path) -> list[str]:
    """The `docker run` argv equal to ``request`` (a create body)."""
    from orchestrator.backends.containers import common as container

    def flag(name: str) -> Any:
        return lambda v: [name] if v else []

    top: dict[str, Any] = {
        "Image": lambda v: [], "Cmd": lambda v: [],  # positional, below
        "Entrypoint": lambda v: ["--entrypoint", ""] if v == [] else sys.exit(f"entrypoint {v}"),
        "WorkingDir": lambda v: ["-w", v],
        "User": lambda v: ["--user", v],
        "Env": lambda v: [a for e in v for a in ("-e", e)],
        # codex-box adds its owner label at run time (not in --print-spec): so do we.
        "Labels": lambda v: [a for k, val in {**v, container.LABEL_OWNER:
                                              container.owner_label()}.items()
                             for a in ("--label", f"{k}={val}")],
        "Tty": flag("-t"),
        "OpenStdin": flag("-i"),
        # What `docker run -i` sets itself (attached, not detached).
        "StdinOnce": lambda v: [], "AttachStdin": lambda v: [], "AttachStdout": lambda v: [],
        "AttachStderr": lambda v: [],
        "HostConfig": lambda v: [],  # below
    }
    host: dict[str, Any] = {
        "NetworkMode": lambda v: ["--network", v],
        "ReadonlyRootfs": flag("--read-only"),
        "Tmpfs": lambda v: [a for t, o in v.items() for a in ("--tmpfs", f"{t}:{o}")],
        "Mounts": lambda v: [a for m in v for a in _mount(m)],
        "Init": flag("--init"),
        "Privileged": flag("--privileged"),
        "CapDrop": lambda v: [a for c in v for a in ("--cap-drop", c)],
        "SecurityOpt": lambda v: [a for o in v for a in _security(o, scratch)],
        "PidsLimit": lambda v: ["--pids-limit", str(v)],
        "Memory": lambda v: ["--memory", str(v)],
        "MemorySwap": lambda v: ["--memory-swap", str(v)],
        "NanoCpus": lambda v: ["--cpus", str(v / 1e9)],
    }
    unknown = (set(request) - set(top)) | (set(request["HostConfig"]) - set(host))
    if unknown:
        sys.exit(f"codex-box sends {sorted(unknown)}: mirror it in raw_docker() first")
    argv = ["docker", "run", "--rm"]
    for key, value in request.items():
        argv += top[key](value)
    for key, value in request["HostConfig"].items():
        argv += host[key](value)
    return [*argv, request["Image"], *request["Cmd"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--profile-runs", type=int, default=5,
                        help="instrumented codex-box runs for the breakdown")
    parser.add_argument("--baseline", type=Path,
                        help="another codex-box checkout to time side by side (PYTHONPATH)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="codex-box-bench-"))
    workspace = home / "ws"
    workspace.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    if "PYTHONPATH" in os.environ:  # the checkout to time (the venv's own otherwise)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    raw = raw_docker(printed_request(VENV_BIN / "codex-box", OURS_ARGS, workspace, env), home)
    ours = [str(VENV_BIN / "codex-box"), *OURS_ARGS]
    commands = {"ours": (ours, env), "raw": (raw, env)}
    if args.baseline:
        commands["baseline"] = (ours, {**env, "PYTHONPATH": str(args.baseline.resolve())})
    print("ours:", " ".join(ours))
    print("raw: ", " ".join(a if a and " " not in a and len(a) < 80 else repr(a[:77] + "...")
                            for a in raw))
    rounds = Rounds()
    rounds.run(commands, args.rounds, cwd=workspace, stdin=subprocess.DEVNULL)
    ratio = rounds.ratio("ours", "raw")
    print(f"{args.rounds} rotating rounds, one warm-up each (medians)")
    print(f"  codex-box --backend docker      {rounds.median_ms('ours'):7.1f} ms")
    print(f"  raw docker run (same options)   {rounds.median_ms('raw'):7.1f} ms")
    print(f"  ratio codex-box / raw           {ratio:7.2f}   {verdict(ratio)}")
    if args.baseline:
        print(f"  baseline codex-box ({args.baseline})  {rounds.median_ms('baseline'):7.1f} ms"
              f"   ratio baseline / raw {rounds.ratio('baseline', 'raw'):.2f}, "
              f"ours / baseline {rounds.ratio('ours', 'baseline'):.2f}")

    socket_path = (os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")[7:]
    raw_sent = raw_round_trips(raw, socket_path, ["-H"], cwd=workspace, env=env,
                               stdin=subprocess.DEVNULL)
    startup = python_startup_ms()
    profiles = profiled(OURS_ARGS, BACKEND, args.profile_runs, env=env, cwd=workspace,
                        raw=raw, baseline=args.baseline)
    print_round_trips(profiles, "raw docker run", raw_sent)
    print("import of the Docker backend:")
    print(f"  import {BACKEND[0]} alone            {import_ms(BACKEND[0]):7.1f} ms "
          "(cumulative, -X importtime)")
    for name, profile in profiles.items():
        print_profile(f"one codex-box run{' (baseline)' if name == 'baseline' else ''}",
                      profile, "raw docker run", startup)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
