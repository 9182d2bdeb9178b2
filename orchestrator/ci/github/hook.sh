#!/bin/sh
# GitHub runner container hooks → codex-box, for runners that want a shell hook:
#   ACTIONS_RUNNER_CONTAINER_HOOKS=/path/to/orchestrator/ci/github/hook.sh   (the runner's .env)
# Prefer index.js beside this file: the runner runs a .sh hook with the first `bash` on a
# PATH that begins with the directories a job's steps added through $GITHUB_PATH (a
# sandboxed step could plant one), and a .js hook with its own node by absolute path.
# The runner writes {command, responseFile, args, state} on stdin; `codex-box ci
# github-hook` reads it. codex-box is found by absolute path, never on PATH (same reason):
# $CODEX_BOX_BIN, else the codex-box installed beside this package.
set -eu
if [ -n "${CODEX_BOX_BIN:-}" ]; then
    case $CODEX_BOX_BIN in
        /*) exec "$CODEX_BOX_BIN" ci github-hook ;;
        *) echo "codex-box: CODEX_BOX_BIN must be an absolute path (got $CODEX_BOX_BIN)" >&2; exit 125 ;;
    esac
fi
here=$(cd "$(dirname "$0")" && pwd -P)
# An editable checkout (its .venv), then an installed package (site-packages → venv bin).
for candidate in "$here/../../../.venv/bin/codex-box" "$here/../../../../../../bin/codex-box"; do
    if [ -x "$candidate" ]; then
        exec "$candidate" ci github-hook
    fi
done
echo "codex-box: not found beside $here: set CODEX_BOX_BIN (absolute) in the runner's .env" >&2
exit 125
