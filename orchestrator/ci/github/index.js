// GitHub runner container hooks → codex-box. Point the runner at this file:
//   ACTIONS_RUNNER_CONTAINER_HOOKS=/path/to/orchestrator/ci/github/index.js   (the runner's .env)
// Why .js and not hook.sh: the runner starts a .js hook with its own node, by absolute
// path (HostContext.GetDefaultShellForScript), but looks a .sh hook's `bash` up on a PATH
// that starts with the directories the job's steps added through $GITHUB_PATH — a
// sandboxed step could plant a `bash` there and be run on the host, outside any sandbox.
// For the same reason codex-box is found by absolute path, never on PATH:
// $CODEX_BOX_BIN (absolute), else the codex-box installed beside this package.
'use strict'
const { spawnSync } = require('child_process')
const fs = require('fs')
const path = require('path')

function codexBox () {
  const given = process.env.CODEX_BOX_BIN
  if (given) {
    if (!path.isAbsolute(given)) {
      throw new Error(`CODEX_BOX_BIN must be an absolute path (got ${given})`)
    }
    return given
  }
  // An editable checkout (its .venv), then an installed package (site-packages → venv bin).
  for (const relative of ['../../../.venv/bin/codex-box', '../../../../../../bin/codex-box']) {
    const candidate = path.resolve(__dirname, relative)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch (_) {}
  }
  throw new Error("codex-box not found beside this file: set CODEX_BOX_BIN (absolute) in the runner's .env")
}

let bin
try {
  bin = codexBox()
} catch (error) {
  process.stderr.write(`codex-box: ${error.message}\n`)
  process.exit(125)
}
// stdin (the runner's JSON), stdout and stderr (the job's log) are the hook's own.
const child = spawnSync(bin, ['ci', 'github-hook'], { stdio: 'inherit' })
if (child.error) {
  process.stderr.write(`codex-box: could not start ${bin}: ${child.error.message}\n`)
  process.exit(125)
}
const signals = require('os').constants.signals
process.exit(child.status !== null ? child.status : 128 + (signals[child.signal] || 0))
