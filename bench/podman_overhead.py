"""codex-box on Podman vs the equivalent raw `podman run`, in rotating rounds.

    .venv/bin/python bench/podman_overhead.py [--rounds 15]

Each round runs, in rotating order:
  ours    codex-box run --backend podman --profile offline -- true
  raw     podman run  (the local CLI: no API service in between)
  remote  podman --url <the API socket> run  (the path codex-box takes: the REST service)
with the same hardening codex-box asks for: --rm, network none, read-only rootfs, cap-drop
ALL, no-new-privileges, seccomp-profiles/offline.json, pids 4096, --init, the caller's
uid:gid, the workspace bound read-only at its own path as working directory, -i, image
codex-box/base, and the ulimits the backend probes on this host (the service's own hard
limits, when the OCI runtime cannot raise rlimits). Left out, as they cost no time:
labels, and binds of protected paths (the offline profile has none).

Printed: medians, the median per-round ratio against each raw form (target <= 1.3), and
where codex-box's own time goes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pairs import Pairs, import_ms, python_startup_ms

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SOCKET = "unix:///run/podman/podman.sock"  # codex-box's default as root


def raw_podman(workspace: Path, *, remote: bool) -> list[str]:
    from orchestrator.backends.podman_host import probe

    ulimits = [f"--ulimit={u['Name']}={u['Soft']}:{u['Hard']}" for u in probe(SOCKET).ulimits()]
    return [
        "podman", *(["--url", SOCKET] if remote else []), "run", "--rm", "-i",
        "--network", "none", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--security-opt", f"seccomp={REPO / 'seccomp-profiles' / 'offline.json'}",
        "--pids-limit", "4096", "--init", "--user", f"{os.getuid()}:{os.getgid()}",
        "-v", f"{workspace}:{workspace}:ro,rprivate", "-w", str(workspace), *ulimits,
        "--entrypoint", "", "codex-box/base", "true",
    ]


def podman_calls_ms() -> dict[str, float]:
    """One run's API calls, timed one by one (what `remote` also pays, plus ours)."""
    from orchestrator.backends.podman import _client
    from orchestrator.backends.podman_host import probe

    out: dict[str, float] = {}

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        out[name] = (now - start) * 1000
        return now

    t = time.perf_counter()
    probe(SOCKET)
    t = lap("probe (_ping, /proc)", t)
    client = _client(SOCKET)
    box = client.containers.create(image="codex-box/base", command=["true"], entrypoint=[""],
                                   init=True, stdin_open=True, read_only=True,
                                   network_mode="none", ulimits=probe(SOCKET).ulimits())
    t = lap("create + inspect", t)
    box.start()
    t = lap("start", t)
    box.wait(condition=["exited", "stopped"], interval="10ms")
    t = lap("wait", t)
    box.remove(force=True, v=True)
    lap("remove", t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if args.rounds < 10:
        parser.error("at least 10 rounds")
    home = Path(tempfile.mkdtemp(prefix="codex-box-bench-"))
    workspace = home / "ws"
    workspace.mkdir()
    # No CONTAINER_HOST: with it set, the podman CLI itself goes through the service.
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    ours = [str(VENV_BIN / "codex-box"), "run", "--backend", "podman", "--profile", "offline",
            "--", "true"]
    peers = {"raw": raw_podman(workspace, remote=False),
             "remote": raw_podman(workspace, remote=True)}
    pairs = Pairs()
    pairs.run(ours, peers, args.rounds, cwd=workspace, env=env, stdin=subprocess_devnull())
    print(f"{args.rounds} rounds, order rotating")
    print(f"  codex-box --backend podman       median {pairs.median_ms(pairs.ours):7.1f} ms")
    print(f"  raw podman run (local CLI)       median {pairs.median_ms(pairs.peers['raw']):7.1f} ms"
          f"   ratio {pairs.ratio('raw'):.2f} (target <= 1.3)")
    print(f"  podman --url SOCKET run (remote) median "
          f"{pairs.median_ms(pairs.peers['remote']):7.1f} ms   ratio {pairs.ratio('remote'):.2f}")
    print("where codex-box's own time goes:")
    print(f"  python start-up                      {python_startup_ms():7.1f} ms")
    for module in ("orchestrator.cli", "orchestrator.backends.podman", "podman"):
        print(f"  import {module:30}{import_ms(module):7.1f} ms (cumulative)")
    for name, ms in podman_calls_ms().items():
        print(f"  API {name:33}{ms:7.1f} ms")
    shutil.rmtree(home, ignore_errors=True)


def subprocess_devnull() -> int:
    import subprocess

    return subprocess.DEVNULL


if __name__ == "__main__":
    main()
