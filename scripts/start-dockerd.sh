#!/usr/bin/env bash
# Start dockerd in the background if no engine answers, and wait until it does.
# (There is no systemd on these machines.) Prints the pid it started, or nothing.
set -euo pipefail
LOG=${DOCKERD_LOG:-/var/log/codex-box-dockerd.log}
if docker version >/dev/null 2>&1; then
  exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
# nofile: the OCI runtime here cannot raise rlimits, so give containers an explicit one.
cd /  # not the caller's directory: nothing the engine writes lands in a checkout
nohup dockerd --default-ulimit nofile=1024:1024 >"$LOG" 2>&1 &
pid=$!
for _ in $(seq 1 60); do
  if docker version >/dev/null 2>&1; then
    echo "$pid"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $LOG" >&2
tail -20 "$LOG" >&2
exit 1
