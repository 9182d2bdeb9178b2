#!/usr/bin/env bash
# Start the Podman API service in the background if nothing answers on its socket, and
# wait until it does. (There is no systemd on these machines.) Prints the pid it
# started, or nothing. The socket: $CONTAINER_HOST, else the rootful default.
set -euo pipefail
URL=${CONTAINER_HOST:-unix:///run/podman/podman.sock}
SOCK=${URL#unix://}
LOG=${PODMAN_SERVICE_LOG:-/var/log/codex-box-podman.log}
answers() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if answers; then
  exit 0
fi
command -v podman >/dev/null || { echo "podman not installed (apt-get install podman runc catatonit)" >&2; exit 1; }
mkdir -p "$(dirname "$SOCK")"
rm -f "$SOCK"
# From /, not the caller's directory: conmon writes an empty `oom` file into its working
# directory when a container is OOM-killed, which littered the checkout's root.
cd /
nohup podman system service --time=0 "unix://$SOCK" >"$LOG" 2>&1 &
pid=$!
for _ in $(seq 1 60); do
  if answers; then
    echo "$pid"
    exit 0
  fi
  sleep 0.5
done
echo "the Podman service did not answer within 30 s; see $LOG" >&2
tail -20 "$LOG" >&2
exit 1
