"""codex-box on Podman vs the same `podman run`, local and through the API service, in
rotating rounds (issue 19: ≤ 1.3x `podman --remote run`; reported against the local
`podman run` too).

    .venv/bin/python bench/podman_overhead.py [--rounds 15] [--profile-runs 5]
                                              [--baseline DIR]

Each round runs, back to back, in an order that rotates (after one warm-up of each):
  ours    codex-box run --backend podman --profile offline -- true
  remote  podman --url <socket> run --rm -i <the same options> codex-box/base true
          (the API service's path: the one codex-box takes)
  local   podman run --rm -i <the same options> codex-box/base true
          (the options: --network none --read-only --read-only-tmpfs=false --cap-drop ALL
           --security-opt no-new-privileges --security-opt seccomp=<repo>/seccomp-profiles/
           offline.json --pids-limit 4096 --init --user UID:GID -v WS:WS:ro,rprivate -w WS
           --entrypoint "" --ulimit nofile=H:H --ulimit nproc=H:H -e ... --label ...)
  (--baseline DIR: also ours from another checkout, PYTHONPATH=DIR: old vs new code
   side by side in one run, under the same load; PYTHONPATH set for the bench itself
   chooses the checkout timed as ours)

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
  - codex-box inits the container before it starts it and checks what the service made
    (one inspect) and its binds, and reads the OOM flag after the exit (one inspect):
    its own overhead, counted below.

Printed: medians, the median of the per-round ratios and met/NOT met; the engine round
trips per run, codex-box's (an instrumented run of the real entry point) against
`podman --remote run`'s (through a counting proxy); the backend's import cost; and where
one codex-box run's time goes, with the gap to the remote run split between the CLI
(interpreter start-up, imports, policy, audit) and the backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SOCKET = "unix:///run/podman/podman.sock"  # codex-box's default as root
OURS_ARGS = ["run", "--backend", "podman", "--profile", "offline", "--", "true"]
BACKEND = ("orchestrator.backends.podman.backend", "PodmanBackend")


# --- the raw command, derived from codex-box's own request -------------------------------

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


def main() -> None:
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

    from orchestrator.backends.podman.host import probe

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
    # No CONTAINER_HOST: with it set, the podman CLI itself goes through the service.
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    if "PYTHONPATH" in os.environ:  # the checkout to time (the venv's own otherwise)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    request = printed_request(VENV_BIN / "codex-box", OURS_ARGS, workspace, env)
    ulimits = probe(SOCKET).ulimits()
    ours = [str(VENV_BIN / "codex-box"), *OURS_ARGS]
    remote = raw_podman(request, ulimits, remote=True)
    local = raw_podman(request, ulimits, remote=False)
    commands = {"ours": (ours, env), "remote": (remote, env), "local": (local, env)}
    if args.baseline:
        commands["baseline"] = (ours, {**env, "PYTHONPATH": str(args.baseline.resolve())})
    print("ours:  ", " ".join(ours))
    print("remote:", " ".join(a if a and " " not in a else repr(a) for a in remote))
    rounds = Rounds()
    rounds.run(commands, args.rounds, cwd=workspace, stdin=subprocess.DEVNULL)
    ratio = rounds.ratio("ours", "remote")
    print(f"{args.rounds} rotating rounds, one warm-up each (medians)")
    print(f"  codex-box --backend podman          {rounds.median_ms('ours'):7.1f} ms")
    print(f"  podman --url SOCKET run (API)       {rounds.median_ms('remote'):7.1f} ms")
    print(f"  podman run (local CLI)              {rounds.median_ms('local'):7.1f} ms")
    print(f"  ratio codex-box / remote            {ratio:7.2f}   {verdict(ratio)}")
    print(f"  ratio codex-box / local             {rounds.ratio('ours', 'local'):7.2f}"
          "   (reported, not a target)")
    if args.baseline:
        print(f"  baseline codex-box ({args.baseline})  {rounds.median_ms('baseline'):7.1f} ms"
              f"   ratio baseline / remote {rounds.ratio('baseline', 'remote'):.2f}, "
              f"ours / baseline {rounds.ratio('ours', 'baseline'):.2f}")

    remote_sent = raw_round_trips(["podman", *remote[3:]], SOCKET[7:], ["--url"],
                                  cwd=workspace, env=env, stdin=subprocess.DEVNULL)
    startup = python_startup_ms()
    profiles = profiled(OURS_ARGS, BACKEND, args.profile_runs, env=env, cwd=workspace,
                        raw=remote, baseline=args.baseline)
    print_round_trips(profiles, "podman --url run", remote_sent)
    print("  podman run (local): none (the CLI is the engine)")
    print("import of the Podman backend:")
    print(f"  import {BACKEND[0]} alone    {import_ms(BACKEND[0]):7.1f} ms "
          "(cumulative, -X importtime)")
    for name, profile in profiles.items():
        print_profile(f"one codex-box run{' (baseline)' if name == 'baseline' else ''}",
                      profile, "podman --url run", startup)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
