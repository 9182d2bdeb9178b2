#!/bin/sh
# `make demo`: sandboxed commands on the native Linux backend (no container engine),
# showing what each profile allows and refuses. Network traffic goes only to a
# server this script starts on 127.0.0.1.
set -u
CB="$1"
DEMO=$(mktemp -d /var/tmp/codex-box-demo.XXXXXX)
trap 'kill "$SERVER" 2>/dev/null; rm -rf "$DEMO"' EXIT INT TERM
mkdir -p "$DEMO/proj/.git/hooks" "$DEMO/www"
echo "hello from a server on 127.0.0.1" > "$DEMO/www/index.html"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$DEMO/www" "$PORT" >/dev/null 2>&1 &
SERVER=$!
cd "$DEMO/proj" || exit 1

# Each step is printed as it can be pasted back into a shell: quoted as Python's
# shlex.join quotes (python3 is needed above anyway).
step() {
  printf '\n\033[1m$ codex-box %s\033[0m\n' \
    "$(python3 -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@")"
}
run() { step "$@"; "$CB" "$@"; echo "→ exit $?"; }

run --show-profile
run profiles
# The execution policy judges every command before any sandbox starts.
run check -- bash -lc 'ls && rm -rf /'
run run --backend native --profile workspace -- rm -rf /
run run --backend native --profile workspace -- python3 -c 'print(1)'
run run --backend native --profile workspace -- sh -c 'ls | wc -l && echo built > out.txt'
# From here on the policy only records (audit-only): these show the sandbox itself
# stopping what a command tries.
AO=--policy-mode=audit-only
run run $AO --backend native --profile offline -- sh -c 'head -1 /etc/os-release; echo x > /etc/x'
sleep 0.3
run run $AO --backend native --profile offline -- curl -sS --max-time 3 "http://127.0.0.1:$PORT/"
run run $AO --backend native --profile workspace-net -- curl -sS --max-time 3 "http://127.0.0.1:$PORT/"
run run $AO --backend native --profile workspace -- sh -c 'echo built > out.txt && cat out.txt; echo evil > .git/hooks/pre-commit; echo workspace-net > .codex-profile'
run run $AO --backend native --profile workspace -- grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
run run $AO --backend native --profile workspace --timeout 1 -- sleep 30
run run --backend native --profile trusted -- true
run audit --decision denied
