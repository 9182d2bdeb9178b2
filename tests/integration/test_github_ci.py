"""GitHub Actions, for real: the composite action (``action.yml``) run step by step by a
harness doing what the runner does — ``${{ }}`` expanded only in ``env:`` values, each
``run:`` as ``shell: bash`` runs it (``bash --noprofile --norc -eo pipefail``),
GITHUB_OUTPUT/GITHUB_ENV read back —, and the runner container hooks run through the
shipped ``index.js`` and ``hook.sh`` with the documented example inputs
(tests/data/github_hooks)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO, REQUIRE
from tests.integration.session_helpers import alive, containers_of, state_of

ACTION = REPO / "action.yml"
HOOKS = REPO / "orchestrator" / "ci" / "github"
# How the runner starts each (HostContext.GetDefaultShellForScript): .sh with bash, .js
# with its own node.
SHIMS = {"hook.sh": ["bash"], "index.js": ["node"]}
EXAMPLES = REPO / "tests" / "data" / "github_hooks"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
VENV_BIN = str(Path(sys.executable).parent)


def _outputs(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT / GITHUB_ENV file of ``name=value`` lines (the action writes no
    ``name<<DELIMITER`` block: each of its values is one line)."""
    lines = path.read_text().splitlines() if path.exists() else []
    assert not any("<<" in line.split("=", 1)[0] for line in lines), lines
    return dict(line.split("=", 1) for line in lines if "=" in line)


class Harness:
    """Runs ``action.yml``'s steps with a GitHub-like environment under ``root``."""

    def __init__(self, root: Path, base_env: dict[str, str], *, installed: bool = True) -> None:
        """``installed``: codex-box is on PATH (a self-hosted runner's); else the action
        installs its own copy, as on a fresh hosted runner."""
        self.action = yaml.safe_load(ACTION.read_text())
        self.temp = root / "runner_temp"
        self.workspace = root / "github_workspace"
        self.temp.mkdir()
        self.workspace.mkdir()
        path = [d for d in base_env["PATH"].split(":") if not (Path(d) / "codex-box").exists()]
        self.env = {
            **base_env,
            "PATH": ":".join([VENV_BIN, *path] if installed else path),
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_ACTION_PATH": str(REPO),
            "GITHUB_RUN_ID": "4242",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_ACTION": "__run",
        }

    def _expand(self, text: str, inputs: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
        def value(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("inputs."):
                return inputs[expr.removeprefix("inputs.")]
            if expr == "github.action_path":
                return str(REPO)
            if expr == "github.workspace":
                return str(self.workspace)
            parts = expr.split(".")
            if len(parts) == 4 and parts[0] == "steps" and parts[2] == "outputs":
                return steps.get(parts[1], {}).get(parts[3], "")
            raise AssertionError(f"the harness does not know the expression {expr!r}")

        return EXPRESSION.sub(value, text)

    def run(self, **given: str) -> tuple[int, dict[str, str], str, str]:
        """(exit code of the last step run, the action's outputs, stdout, stderr)."""
        declared = self.action["inputs"]
        unknown = {k.replace("_", "-") for k in given} - set(declared)
        assert not unknown, f"the action has no input {unknown}"
        inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()}
        inputs.update({k.replace("_", "-"): v for k, v in given.items()})
        for name, spec in declared.items():
            assert not spec.get("required") or inputs[name], f"input {name} is required"
        steps: dict[str, dict[str, str]] = {}
        extra_env: dict[str, str] = {}
        code, out, err = 0, "", ""
        for number, step in enumerate(self.action["runs"]["steps"]):
            assert "${{" not in step["run"], f"an expression inside run: of step {number}"
            assert step["shell"] == "bash"
            output, genv = self.temp / f"output_{number}", self.temp / f"env_{number}"
            script = self.temp / f"step_{number}.sh"
            script.write_text(step["run"])
            env = {**self.env, **extra_env, "GITHUB_OUTPUT": str(output), "GITHUB_ENV": str(genv)}
            env |= {k: self._expand(str(v), inputs, steps) for k, v in step.get("env", {}).items()}
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                env=env, cwd=self.workspace, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            code, out, err = proc.returncode, out + proc.stdout, err + proc.stderr
            steps[step.get("id", str(number))] = _outputs(output)
            extra_env.update(_outputs(genv))
            if code != 0:
                break
        declared_out = self.action["outputs"].items()
        outputs = {name: self._expand(spec["value"], inputs, steps) for name, spec in declared_out}
        return code, outputs, out, err


@pytest.fixture
def action(native_available: None, tmp_path: Path, base_env: dict[str, str]) -> Harness:
    return Harness(tmp_path, base_env)


def test_action_yml_is_valid_for_github_and_the_check_can_fail(tmp_path: Path) -> None:
    checker = shutil.which("check-jsonschema", path=VENV_BIN)
    assert checker, "check-jsonschema is not installed: it is a dev dependency (pyproject [dev])"
    cmd = [checker, "--builtin-schema", "vendor.github-actions"]
    ran = subprocess.run([*cmd, str(ACTION)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    broken = yaml.safe_load(ACTION.read_text())
    del broken["runs"]["steps"][0]["shell"]  # a composite run step must name its shell
    (tmp_path / "action.yml").write_text(yaml.safe_dump(broken))
    ran = subprocess.run([*cmd, str(tmp_path / "action.yml")], capture_output=True, text=True)
    assert ran.returncode != 0


def test_every_input_reaches_the_steps_through_env_never_inside_run() -> None:
    data = yaml.safe_load(ACTION.read_text())
    assert set(data["inputs"]) == {"profile", "run", "workspace", "allow-domains", "backend"}
    assert data["runs"]["using"] == "composite"
    used = set()
    for step in data["runs"]["steps"]:
        assert "${{" not in step["run"] and "{{" not in step["run"]
        for value in step.get("env", {}).values():
            used |= set(re.findall(r"inputs\.([\w-]+)", str(value)))
    assert used == set(data["inputs"])


def test_the_action_runs_the_script_under_the_profile_and_outputs_the_result(
    action: Harness, codex_home: Path
) -> None:
    code, outputs, out, err = action.run(
        run="echo hello from the sandbox\necho written > made.txt", backend="native"
    )
    assert code == 0, err
    assert "hello from the sandbox" in out
    # The script's output cannot be read as workflow commands: between a random token's
    # ::stop-commands:: and its end marker.
    stop = re.search(r"^::stop-commands::([0-9a-f]{32})$", out, re.MULTILINE)
    assert stop is not None, out
    assert out.index(stop.group(0)) < out.index("hello from") < out.index(f"::{stop.group(1)}::")
    assert (action.workspace / "made.txt").read_text() == "written\n"
    result = json.loads(outputs["result"])
    schema = json.loads((REPO / "orchestrator/runner/result.schema.json").read_text())
    jsonschema.validate(result, schema)  # the result contract, as `run --json` prints it
    assert result["exit_code"] == 0 and outputs["exit-code"] == "0"
    assert (result["profile"], result["backend"]) == ("workspace", "native")
    records = [json.loads(line) for line in Path(outputs["audit-log"]).read_text().splitlines()]
    assert records and {r["session_id"] for r in records} == {result["session_id"]}
    ended = [r for r in records if r.get("phase") == "ended"]
    assert ended[-1]["exit_code"] == 0 and "made.txt" in ended[-1]["target"]


def test_the_action_fails_with_the_command_s_exit_code_and_still_outputs(
    action: Harness,
) -> None:
    code, outputs, _, _ = action.run(run="echo partial; exit 7", backend="native")
    assert (code, outputs["exit-code"], json.loads(outputs["result"])["exit_code"]) == (7, "7", 7)
    assert Path(outputs["audit-log"]).stat().st_size > 0


def test_the_profile_input_confines_the_script(action: Harness) -> None:
    code, outputs, _, _ = action.run(
        profile="offline", run="echo x > forbidden.txt", backend="native"
    )
    assert code != 0 and not (action.workspace / "forbidden.txt").exists()
    assert outputs["exit-code"] == str(code)
    code, outputs, _, err = action.run(profile="trusted", run="true", backend="native")
    assert (code, outputs["result"]) == (126, "") and "opt-in" in err  # never opted in


def test_inputs_are_data_not_shell(action: Harness, tmp_path: Path) -> None:
    planted = tmp_path / "pwned"
    code, outputs, _, err = action.run(
        profile=f'workspace"; touch {planted}; echo "',
        run="echo '${{ github.token }}' $(echo literal)",
        backend="native",
    )
    assert code == 125 and "unknown profile" in err
    assert not planted.exists() and outputs["result"] == ""
    code, outputs, out, _ = action.run(run="echo '${{ x }}'", backend="native")
    assert code == 0 and "${{ x }}" in out


def test_on_a_runner_without_codex_box_the_action_installs_its_own_copy(
    native_available: None, tmp_path: Path, base_env: dict[str, str]
) -> None:
    fresh = Harness(tmp_path, base_env, installed=False)
    code, outputs, out, err = fresh.run(run="echo installed and sandboxed", backend="native")
    assert code == 0, err
    assert "installed and sandboxed" in out
    assert (fresh.temp / "codex-box-venv" / "bin" / "codex-box").exists()
    assert json.loads(outputs["result"])["exit_code"] == 0


def test_allow_domains_narrow_a_networked_profile_into_a_user_profile(
    action: Harness, codex_home: Path
) -> None:
    code, outputs, _, err = action.run(
        profile="workspace-net", allow_domains="example.com, pypi.org", run="true",
        backend="native",
    )  # fmt: skip
    assert code == 0, err
    name = json.loads(outputs["result"])["profile"]
    assert name.startswith("gha-")
    text = (codex_home / "profiles" / f"{name}.yaml").read_text()
    assert "extends: workspace-net" in text and "example.com" in text and "pypi.org" in text
    code, _, _, err = action.run(profile="workspace", allow_domains="example.com", run="true")
    assert code == 2 and "need network" in err


# --- the runner container hooks --------------------------------------------------------


def _need(shim: str) -> None:
    if shutil.which(SHIMS[shim][0]) is None:  # CI (CODEX_BOX_REQUIRE_ENGINES=1) has node
        (pytest.fail if REQUIRE else pytest.skip)(f"no {SHIMS[shim][0]} to start {shim} with")


class Runner:
    """A runner's work layout, and the hook called as the runner calls it."""

    def __init__(self, root: Path, env: dict[str, str], shim: str = "index.js") -> None:
        _need(shim)
        self.shim = [*SHIMS[shim], str(HOOKS / shim)]
        self.layout = root / "runner"
        self.work = self.layout / "_work"
        for d in ("_work/repo/repo", "_work/_temp/_github_home", "_work/_temp/_github_workflow",
                  "_work/_actions", "_work/_tool", "_work/_temp/_runner_hook_responses",
                  "externals"):  # fmt: skip
            (self.layout / d).mkdir(parents=True)
        self.env = env

    def example(self, name: str) -> dict[str, Any]:
        text = (EXAMPLES / name).read_text()
        return dict(json.loads(text.replace("/Users/thomas/git/runner/_layout", str(self.layout))))

    def call(self, data: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str, str]:
        response = None
        if data.get("responseFile"):
            path = self.work / "_temp" / "_runner_hook_responses" / f"{data['command']}.json"
            path.write_text("")  # the runner creates it empty (ContainerHookManager.cs)
            data = {**data, "responseFile": str(path)}
        proc = subprocess.run(
            self.shim, input=json.dumps(data), env=self.env,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if data.get("responseFile"):
            text = Path(data["responseFile"]).read_text()
            response = json.loads(text) if text.strip() else None
        return proc.returncode, response, proc.stdout, proc.stderr


@pytest.fixture(params=list(SHIMS))
def runner(request: pytest.FixtureRequest, tmp_path: Path, base_env: dict[str, str]) -> Runner:
    return Runner(tmp_path, {**base_env, "CODEX_BOX_BACKEND": "native"}, request.param)


def _sessions(codex_home: Path) -> list[str]:
    root = codex_home / "sessions"
    return sorted(p.name for p in root.glob("[!.]*")) if root.exists() else []


def _step(state: Any, entry: str, *args: str, **env: str) -> dict[str, Any]:
    step = {"entryPoint": entry, "entryPointArgs": list(args), "environmentVariables": env,
            "workingDirectory": "/__w/repo/repo"}  # fmt: skip
    return {"command": "run_script_step", "responseFile": None, "state": state, "args": step}


def _cleanup(state: Any) -> dict[str, Any]:
    return {"command": "cleanup_job", "responseFile": None, "state": state, "args": {}}


def _job(runner: Runner, **container: Any) -> dict[str, Any]:
    prepare = runner.example("prepare-job.json")
    prepare["args"]["container"].update(container)
    prepare["args"]["services"] = []  # refused (tests/unit/ci/github/test_hook.py)
    return prepare


def test_the_four_hook_commands_run_a_job_and_leave_nothing(
    native_available: None, runner: Runner, codex_home: Path
) -> None:
    prepare = _job(runner, environmentVariables={"NODE_ENV": "development",
                                                 "NPM_TOKEN": "npm_s3cr3tv4lu3xyz"})  # fmt: skip
    registry = prepare["args"]["container"]["registry"]
    registry["password"] = "r3g1stry-p4ss"  # noqa: S105 -- a marker the log must not hold
    code, response, _, err = runner.call(prepare)
    assert code == 0, err
    assert "r3g1stry-p4ss" not in err
    assert "dropped the mount /var/run/docker.sock" in err
    assert response is not None and set(response) == {"state", "context", "isAlpine"}
    session = response["state"]["session"]
    container = {"id": session, "network": "none"}
    assert response["context"] == {"container": container, "services": []}
    assert response["isAlpine"] is False and _sessions(codex_home) == [session]
    keeper = int(state_of(codex_home, session)["keeper_pid"])

    shutil.copy(EXAMPLES / "example-script.sh", runner.work / "repo" / "repo")
    step = runner.example("run-script-step.json")
    step["state"] = response["state"]
    code, _, out, err = runner.call(step)
    assert (code, out) == (0, "Hello World\n"), err

    (runner.work / "_temp" / "step.sh").write_text(
        'echo "$NODE_ENV $PWD $HOME"; echo built > artefact; test -n "$NPM_TOKEN"\n'
        "touch /etc/escaped 2>/dev/null && echo ESCAPED; exit 3\n"
    )
    step["args"].update(entryPointArgs=["-e", "/__w/_temp/step.sh"],
                        environmentVariables={"HOME": "/github/home"})  # fmt: skip
    code, _, out, err = runner.call(step)
    assert code == 3, err
    home = runner.work / "_temp" / "_github_home"
    assert out == f"development {runner.work / 'repo' / 'repo'} {home}\n"
    assert (runner.work / "repo" / "repo" / "artefact").exists()

    container_step = runner.example("run-container-step.json")
    container_step["state"] = response["state"]
    code, _, _, err = runner.call(container_step)
    assert code == 126 and "container step" in err and "'workspace'" in err

    cleanup = _cleanup(response["state"])
    assert runner.call(cleanup)[0] == 0
    assert _sessions(codex_home) == [] and not alive(keeper)
    assert runner.call(cleanup)[0] == 0  # twice: the runner may retry
    log = (codex_home / "audit.log").read_text()
    assert "npm_s3cr3tv4lu3xyz" not in log and "r3g1stry-p4ss" not in log
    assert "example-script.sh" in log  # each step is audited by its command line


def test_a_job_may_narrow_its_profile_in_its_container_env(
    native_available: None, runner: Runner, codex_home: Path
) -> None:
    prepare = _job(runner, environmentVariables={"CODEX_BOX_PROFILE": "offline"})
    code, response, _, err = runner.call(prepare)
    assert code == 0 and response is not None, err
    try:
        assert "profile offline" in err
        code, _, _, _ = runner.call(_step(response["state"], "sh", "-c", "echo x > f"))
        assert code != 0 and not (runner.work / "repo" / "repo" / "f").exists()
    finally:
        assert runner.call(_cleanup(response["state"]))[0] == 0
    assert _sessions(codex_home) == []


def test_the_hook_runs_a_job_in_the_docker_backend_with_the_test_image(
    docker_available: None, runner: Runner, codex_home: Path
) -> None:
    runner.env["CODEX_BOX_BACKEND"] = "docker"
    code, response, _, err = runner.call(_job(runner, image="codex-box/test"))
    assert code == 0 and response is not None, err
    session = response["state"]["session"]
    assert len(containers_of("docker", session)) == 1
    (runner.work / "_temp" / "step.sh").write_text("echo in $PWD; echo ok > from-docker\n")
    code, _, out, err = runner.call(_step(response["state"], "sh", "-e", "/__w/_temp/step.sh"))
    assert runner.call(_cleanup(response["state"]))[0] == 0
    assert code == 0, err
    assert out == f"in {runner.work / 'repo' / 'repo'}\n"
    assert (runner.work / "repo" / "repo" / "from-docker").read_text() == "ok\n"
    assert containers_of("docker", session) == [] and _sessions(codex_home) == []


@pytest.mark.parametrize("shim", list(SHIMS))
def test_the_shims_run_codex_box_bin_and_never_one_found_on_path(
    shim: str, tmp_path: Path, base_env: dict[str, str]
) -> None:
    _need(shim)
    fake = tmp_path / "bin" / "codex-box"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "called with: $*"; cat >/dev/null\n')
    fake.chmod(0o755)
    ran = subprocess.run(
        [*SHIMS[shim], str(HOOKS / shim)], input="{}", env={**base_env, "CODEX_BOX_BIN": str(fake)},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "called with: ci github-hook\n")
    # A copy with no codex-box beside it, and one planted first on PATH (what a step can
    # do through $GITHUB_PATH): refused, the planted one never run.
    alone = tmp_path / "a" / "b" / "c" / shim
    alone.parent.mkdir(parents=True)
    shutil.copy(HOOKS / shim, alone)
    planted = {**base_env, "PATH": f"{fake.parent}:{base_env['PATH']}"}
    for env in (planted, {**planted, "CODEX_BOX_BIN": "codex-box"}):
        ran = subprocess.run([*SHIMS[shim], str(alone)], input="{}", env=env,
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        assert ran.returncode == 125 and "called with" not in ran.stdout, ran.stderr
        assert "CODEX_BOX_BIN" in ran.stderr
    assert os.access(HOOKS / "hook.sh", os.X_OK)


def test_a_step_can_neither_read_nor_plant_the_runner_s_hook_responses(
    native_available: None, runner: Runner, codex_home: Path
) -> None:
    """The runner reads each hook's answer from _temp/_runner_hook_responses: a step that
    could read it would see the job's state, one that could write it would answer the
    runner's next hook call itself (another session, another container). It is masked."""
    code, response, _, err = runner.call(_job(runner))
    assert code == 0 and response is not None, err
    responses = runner.work / "_temp" / "_runner_hook_responses"
    assert (responses / "prepare_job.json").read_text().strip()  # the runner's, on the host
    try:
        probe = (
            f"ls -A {responses} | wc -l; cat {responses}/prepare_job.json 2>/dev/null "
            f"|| echo unreadable; echo '{{}}' > {responses}/run_script_step.json 2>/dev/null "
            "|| echo unwritable"
        )
        code, _, out, err = runner.call(_step(response["state"], "sh", "-c", probe))
        assert code == 0, err
        assert out.split() == ["0", "unreadable", "unwritable"]
        assert not (responses / "run_script_step.json").exists()
    finally:
        assert runner.call(_cleanup(response["state"]))[0] == 0
