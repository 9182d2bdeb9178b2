"""The runner container hooks' protocol, read and answered (orchestrator.ci.github.protocol),
against the documented example inputs (tests/data/github_hooks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.ci.github import protocol
from orchestrator.ci.github.mounts import PathPlan
from orchestrator.ci.github.protocol import ProtocolError

from .conftest import EXAMPLES

PLAN = PathPlan.from_json(
    [["/__w", "/r/_work"], ["/foo", "/host/foo"], ["/github/home", "/r/_work/_temp/_github_home"]]
)


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("prepare-job.json", "prepare_job"),
        ("run-script-step.json", "run_script_step"),
        ("run-container-step.json", "run_container_step"),
    ],
)
def test_every_documented_example_parses_as_its_command(name: str, command: str) -> None:
    text = (EXAMPLES / name).read_text()
    hook = protocol.parse_input(text)
    assert hook.command == command
    assert dict(hook.args) == json.loads(text)["args"]


def test_the_runner_s_one_line_form_after_other_output_is_read_like_hooklib() -> None:
    line = json.dumps({"command": "cleanup_job", "responseFile": "/r/x.json", "state": {"a": 1}})
    hook = protocol.parse_input("noise the shell printed\n" + line + "\n")
    assert (hook.command, hook.response_file) == ("cleanup_job", "/r/x.json")
    assert dict(hook.state) == {"a": 1}
    assert dict(hook.args) == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not one JSON object"),
        ("[1]", "must be a JSON object"),
        ('{"command": "rm_rf"}', "unknown hook command 'rm_rf'"),
        ('{"command": "cleanup_job", "args": [1]}', "args and state must be objects"),
        ('{"command": "cleanup_job", "responseFile": 3}', "responseFile"),
    ],
)
def test_input_that_is_not_the_protocol_is_refused_saying_why(text: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        protocol.parse_input(text)


def test_a_script_step_runs_its_entry_point_in_host_paths_with_prepend_path(
    script_example: dict[str, Any],
) -> None:
    args = {**script_example["args"], "entryPointArgs": ["-e", "/__w/_temp/abc.sh", ""]}
    args["environmentVariables"] = {**args["environmentVariables"], "HOME": "/github/home"}
    step = protocol.script_step(
        args, plan=PLAN, job_env={"JOB": "1", "NODE_ENV": "production"}, base_path="/usr/bin:/bin"
    )
    assert step.argv == ("bash", "-e", "/r/_work/_temp/abc.sh")
    assert step.cwd == "/r/_work/repo/repo"
    assert step.env == {
        "JOB": "1",
        "NODE_ENV": "development",  # the step's own env wins over the job container's
        "HOME": "/r/_work/_temp/_github_home",
        "PATH": "/host/foo/bar:bar/foo:/usr/bin:/bin",
    }


def test_the_documented_script_step_keeps_its_relative_script_name(
    script_example: dict[str, Any],
) -> None:
    step = protocol.script_step(script_example["args"], plan=PLAN, job_env={}, base_path="/bin")
    assert step.argv == ("bash", "-e", "example-script.sh")


def test_a_step_path_goes_before_the_step_s_own_path() -> None:
    args = {"entryPoint": "sh", "prependPath": ["/a"], "environmentVariables": {"PATH": "/p"}}
    assert protocol.script_step(args, plan=PLAN, job_env={}, base_path="/x").env["PATH"] == "/a:/p"


def test_a_variable_with_an_impossible_name_is_dropped_by_name_only() -> None:
    args = {"entryPoint": "sh", "environmentVariables": {"BAD NAME": "s3cret", "OK": "v"}}
    step = protocol.script_step(args, plan=PLAN, job_env={}, base_path="/x")
    assert step.env == {"OK": "v"}
    assert step.notes == ("dropped the variable 'BAD NAME': not a valid name or value",)
    assert "s3cret" not in " ".join(step.notes)


def test_a_script_step_without_an_entry_point_is_refused() -> None:
    with pytest.raises(ProtocolError, match="entryPoint"):
        protocol.script_step({"entryPointArgs": []}, plan=PLAN, job_env={}, base_path="/x")


def test_the_job_container_gives_its_image_and_nothing_it_could_widen(
    prepare_example: dict[str, Any],
) -> None:
    options, notes = protocol.launch_options(prepare_example["args"]["container"])
    assert options.image == "node:22"
    assert (options.cpus, options.memory, options.pids) == (None, None, None)
    text = "\n".join(notes)
    assert "ignored createOptions '--cpus 1'" in text
    assert "registry credentials not used" in text and "ports not published" in text

    registry = {"username": "u", "password": "p4ss-w0rd-xyz", "serverUrl": "https://r"}
    _, notes = protocol.launch_options({"image": "x", "registry": registry})
    assert "p4ss-w0rd-xyz" not in "\n".join(notes)


def test_a_privileged_create_option_is_ignored_and_said_so() -> None:
    options, notes = protocol.launch_options({"image": "x", "createOptions": "--privileged"})
    assert options.image == "x" and "--privileged" in notes[0]


def test_a_job_may_tighten_the_runner_s_profile_but_never_widen_it() -> None:
    assert protocol.choose_profile("workspace", None, ()) == "workspace"
    assert protocol.choose_profile("workspace", "offline", ()) == "offline"
    with pytest.raises(PermissionError, match="wider than this runner's 'workspace'"):
        protocol.choose_profile("workspace", "workspace-net", ("network none → full",))


def test_the_prepare_job_response_has_what_the_runner_reads() -> None:
    response = protocol.prepare_response(session_id="abc123", network="none", alpine=False)
    # HookResponse.cs: PrepareJobResponse{State, Context{Container{Id,Network}, Services}, IsAlpine}
    assert response == {
        "state": {"session": "abc123"},
        "context": {"container": {"id": "abc123", "network": "none"}, "services": []},
        "isAlpine": False,
    }
    json.dumps(response)


def test_a_trusted_container_step_passes_variables_by_name_not_value(
    container_example: dict[str, Any],
) -> None:
    (run,) = protocol.container_step_argv(container_example["args"], name="s1")
    assert run[:3] == ["docker", "run", "--rm"]
    assert run[run.index("-e") : run.index("-e") + 2] == ["-e", "NODE_ENV"]
    assert "development" not in " ".join(run)
    assert run[-3:] == ["node:22", "-e", "example-script.sh"]
    assert "--entrypoint" in run and "-w" in run


def test_a_container_step_with_a_dockerfile_builds_it_first() -> None:
    build, run = protocol.container_step_argv({"dockerfile": "/w/app/Dockerfile"}, name="s1")
    assert build == [
        "docker", "build", "-t", "codex-box-github-step:s1", "-f", "/w/app/Dockerfile", "/w/app"
    ]  # fmt: skip
    assert run[-1] == "codex-box-github-step:s1"
