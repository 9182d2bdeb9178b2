#!/usr/bin/env bash
# The non-root CI leg (issue 21). Run as root by .ci/run, after the root suite:
#
#   1. makes (once) an unprivileged user, $CI_USER (default codexci), with a real home,
#      subordinate uid/gid ranges (rootless Podman) and a runtime directory
#      /run/user/UID (what pam_systemd makes at login; there is no systemd here);
#   2. copies this checkout's working tree (tracked and untracked files, not what
#      .gitignore ignores: no .venv, no caches) to ~$CI_USER/codex-box, owned by the
#      user — the user cannot write the root checkout and never needs to;
#   3. makes the user's own venv there (`make install`, as the user, with the system's
#      python3: root's interpreter may live under /root, which the user cannot read);
#   4. starts the user's own rootless Podman API service (at
#      $XDG_RUNTIME_DIR/podman/podman.sock, where codex-box looks as non-root);
#   5. runs, as the user, with a clean environment, CODEX_HOME under the real home and
#      CODEX_BOX_REQUIRE_ENGINES=1: the unit suite, the native integration suite and the
#      native escape suite. CODEX_BOX_BACKENDS=native tells the suite what this leg has:
#      no Docker (the user may not reach the root engine's socket) and no Podman backend
#      (rootless Podman cannot enforce codex-box's limits on this host's cgroup v1; see
#      README, "Running as a normal user"). Tests that need either are deselected
#      (listed as not part of this leg), never skipped; tests/integration/
#      test_rootless_podman.py runs instead, against the user's own service, and proves
#      `--backend podman` is refused cleanly. A missing required tool still fails.
#
# Idempotent: a second run reuses the user and its venv (reinstalled when
# pyproject.toml changed) and refreshes the copy. `--setup-only` stops after step 4.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

if [ "$(id -u)" != 0 ]; then
  echo "scripts/ci-nonroot.sh: run it as root (it creates the unprivileged user)" >&2
  exit 2
fi

CI_USER=${CODEX_BOX_CI_USER:-codexci}
USER_HOME=/home/$CI_USER
DEST=$USER_HOME/codex-box
# The user's interpreter: the system's (root's may be a pyenv under /root, unreadable).
USER_PYTHON=${CODEX_BOX_CI_PYTHON:-/usr/bin/python3}

# 1. The user. --------------------------------------------------------------------------
if ! id -u "$CI_USER" >/dev/null 2>&1; then
  useradd --create-home --home-dir "$USER_HOME" --shell /bin/bash --user-group "$CI_USER"
fi
uid=$(id -u "$CI_USER")
# Subordinate ids for rootless Podman's user namespace (useradd adds them where
# login.defs says so; otherwise the first free 65536 above every range listed).
for file in /etc/subuid /etc/subgid; do
  touch "$file"
  if ! grep -q "^$CI_USER:" "$file"; then
    start=$(awk -F: 'BEGIN { top = 100000 } { end = $2 + $3; if (end > top) top = end } END { print top }' "$file")
    echo "$CI_USER:$start:65536" >>"$file"
  fi
done
runtime_dir=/run/user/$uid
install -d -m 0700 -o "$CI_USER" -g "$CI_USER" "$runtime_dir"

as_user() {
  # A login-like, clean environment: nothing of root's (no CODEX_HOME, no DOCKER_HOST,
  # no pyenv) reaches the leg.
  runuser -u "$CI_USER" -- env -i \
    HOME="$USER_HOME" USER="$CI_USER" LOGNAME="$CI_USER" SHELL=/bin/bash \
    PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    XDG_RUNTIME_DIR="$runtime_dir" CI="${CI:-}" \
    CODEX_HOME="$USER_HOME/.codex" CODEX_BOX_REQUIRE_ENGINES=1 \
    CODEX_BOX_BACKENDS=native \
    "$@"
}

# 2. The user's copy of the working tree. -----------------------------------------------
install -d -m 0755 -o "$CI_USER" -g "$CI_USER" "$DEST"
# Everything but the venv (kept: reinstalling costs minutes) is replaced.
find "$DEST" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
git -c safe.directory="$SRC" ls-files -z --cached --others --exclude-standard \
  | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null \
  | as_user tar -xf - -C "$DEST"

# 3. The user's venv and the session helper (make install, as the user). ------------------
as_user make -C "$DEST" --no-print-directory PYTHON="$USER_PYTHON" install

# 4. Rootless Podman: the user's own API service. -----------------------------------------
as_user install -d -m 0700 "$USER_HOME/.codex"
# (Not scripts/start-podman.sh: it passes the socket as CONTAINER_HOST, which turns the
# podman command itself into a remote client.) From /: conmon writes files into its cwd.
sock=$runtime_dir/podman/podman.sock
answers() { as_user curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }
podman_pid=
cleanup() {
  if [ -n "$podman_pid" ]; then kill "$podman_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
if ! answers; then
  rm -f "$sock"
  # Not every podman makes the socket's directory itself ("bind: no such file or
  # directory" on a fresh runtime directory).
  as_user install -d -m 0700 "$runtime_dir/podman"
  podman_pid=$(as_user sh -c "cd / && nohup podman system service --time=0 unix://$sock \
    >'$USER_HOME/podman-service.log' 2>&1 & echo \$!")
  for _ in $(seq 1 60); do answers && break; sleep 0.5; done
  answers || { echo "rootless Podman service did not answer; see $USER_HOME/podman-service.log" >&2
               tail -20 "$USER_HOME/podman-service.log" >&2; exit 1; }
fi
# The busybox test image, from root's Podman (`make images` put it there) into the
# user's storage: the one rootless run this host allows (`--pids 0`, no network) is
# tested with it. (2 MB; codex-box/base would be copied whole per container by the vfs
# driver rootless Podman falls back to here.)
if podman image exists codex-box/test 2>/dev/null; then
  podman save localhost/codex-box/test 2>/dev/null | as_user podman load -q >/dev/null
fi
echo "== codex-box doctor, as $CI_USER"
as_user sh -c "mkdir -p '$USER_HOME/proj' && cd '$USER_HOME/proj' && '$DEST/.venv/bin/codex-box' doctor" || true

if [ "${1:-}" = --setup-only ]; then
  trap - EXIT  # the service stays up for suites run by hand
  exit 0
fi

# 5. The suites, as the user: all three run; the leg fails if any did. ---------------------
started=$(date +%s)
failed=()
suite() {
  local name=$1; shift
  echo "== $name, as $CI_USER"
  as_user sh -c "cd '$DEST' && .venv/bin/pytest -q -rs $*" || failed+=("$name")
}
suite "unit suite" -n 2 tests/unit
suite "native integration suite" -n 2 --dist loadfile tests/integration
suite "native escape suite" -n 2 --dist loadfile tests/escape
echo "== the non-root leg's suites took $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== the non-root leg FAILED: ${failed[*]}" >&2
  exit 1
fi
