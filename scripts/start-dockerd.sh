#!/usr/bin/env bash
# Start dockerd in the background if no engine answers, and wait until it does.
# (There is no systemd on these machines.) Prints the pid it started, or nothing.
# Also after a crash (tests/faults kills dockerd on purpose): a SIGKILLed dockerd leaves
# its pid file and the containerd it started, and a new dockerd refuses the first and
# can time out on the second; both are cleared first.
set -euo pipefail
LOG=${DOCKERD_LOG:-/var/log/codex-box-dockerd.log}
PIDFILE=/var/run/docker.pid
CONTAINERD_PIDFILE=/var/run/docker/containerd/containerd.pid
if docker version >/dev/null 2>&1; then
  exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 1; }

running() {  # pid name: is pid a live (not zombie) process called name?
  [ -n "$1" ] && grep -qx "$2" "/proc/$1/comm" 2>/dev/null \
    && ! grep -q '^State:.*zombie' "/proc/$1/status" 2>/dev/null
}

clear_crash_leftovers() {
  local old
  old=$(cat "$PIDFILE" 2>/dev/null || true)
  if running "$old" dockerd; then
    return  # a dockerd runs but does not answer yet: leave it be
  fi
  rm -f "$PIDFILE"
  # The crashed dockerd's containerd (the containers' shims outlive it; the new
  # containerd finds them again).
  old=$(cat "$CONTAINERD_PIDFILE" 2>/dev/null || true)
  if running "$old" containerd; then
    kill "$old" 2>/dev/null || true
    for _ in $(seq 1 40); do running "$old" containerd || break; sleep 0.25; done
    running "$old" containerd && kill -9 "$old" 2>/dev/null || true
  fi
}

# nofile: the OCI runtime here cannot raise rlimits, so give containers an explicit one.
cd /  # not the caller's directory: nothing the engine writes lands in a checkout
for attempt in 1 2 3; do
  clear_crash_leftovers
  nohup dockerd --default-ulimit nofile=1024:1024 >>"$LOG" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do
    if docker version >/dev/null 2>&1; then
      echo "$pid"
      exit 0
    fi
    kill -0 "$pid" 2>/dev/null || break  # it gave up: clear and try again
    sleep 0.5
  done
  echo "dockerd attempt $attempt did not answer; see $LOG" >&2
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
echo "dockerd did not answer within 3 attempts; see $LOG" >&2
tail -20 "$LOG" >&2
exit 1
