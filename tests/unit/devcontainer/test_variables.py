"""``variables``: the Dev Containers spec's ``${...}`` as codex-box fills them
(``substitute``), and every ``${localEnv:NAME}`` a file asks for that could carry a
host secret (``host_variables``)."""

from __future__ import annotations

import pytest

from orchestrator.devcontainer.variables import HARMLESS_LOCAL, host_variables, substitute

WORKSPACE = "/home/alice/proj"
LOCAL = {"HOME": "/home/alice", "USER": "alice", "AWS_SECRET_ACCESS_KEY": "sekrit"}
CONTAINER = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def sub(text: str, workspace: str = WORKSPACE) -> str:
    return substitute(text, workspace=workspace, local=LOCAL, container=CONTAINER)


# --- substitute ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${localWorkspaceFolder}", WORKSPACE),
        ("${containerWorkspaceFolder}/src", f"{WORKSPACE}/src"),  # bound at its host path
        ("${localWorkspaceFolderBasename}", "proj"),
        ("/w/${containerWorkspaceFolderBasename}", "/w/proj"),
        ("${localEnv:HOME}/.cache", "/home/alice/.cache"),
        ("${env:HOME}", "/home/alice"),
        ("${localEnv:USER}", "alice"),
        ("${localEnv:USERNAME}", ""),  # harmless, unset, no default: empty as a shell has it
        ("${localEnv:LOGNAME:nobody}", "nobody"),
        ("${localEnv:USER:nobody}", "alice"),
        ("${containerEnv:PATH}:/opt/bin", "/usr/bin:/bin:/opt/bin"),
        ("${containerEnv:NOPE}", ""),
        ("${containerEnv:NOPE:fallback}", "fallback"),
        ("${containerEnv:LANG:C}", "C.UTF-8"),
        ("a ${localEnv:USER} b ${localWorkspaceFolderBasename} c", "a alice b proj c"),
        ("no variables", "no variables"),
        ("", ""),
    ],
)
def test_known_variables_are_filled(text: str, expected: str) -> None:
    assert sub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "${localEnv:AWS_SECRET_ACCESS_KEY}",  # a host variable: never filled (vetting refuses it)
        "${env:AWS_SECRET_ACCESS_KEY}",
        "${localEnv:AWS_SECRET_ACCESS_KEY:default}",
        "${devcontainerId}",
        "${localHomeFolder}",
        "${unknown:x}",
        "${containerEnv}",  # no name
        "$HOME",
        "${ localEnv:HOME}",
    ],
)
def test_anything_else_is_left_as_written(text: str) -> None:
    assert sub(text) == text


def test_the_host_s_secret_is_never_read_even_when_asked_for() -> None:
    assert "sekrit" not in sub("${localEnv:AWS_SECRET_ACCESS_KEY} ${env:AWS_SECRET_ACCESS_KEY}")


def test_a_basename_ignores_a_trailing_slash() -> None:
    assert sub("${localWorkspaceFolderBasename}", workspace="/home/alice/proj/") == "proj"


def test_only_the_user_s_name_and_home_are_harmless() -> None:
    assert frozenset({"HOME", "USERPROFILE", "USER", "USERNAME", "LOGNAME"}) == HARMLESS_LOCAL


# --- host_variables ------------------------------------------------------------------------


def test_every_host_variable_is_found_with_its_key_path_in_file_order() -> None:
    config = {
        "image": "debian",
        "containerEnv": {"TOKEN": "${localEnv:GITHUB_TOKEN}", "H": "${localEnv:HOME}"},
        "remoteEnv": {"AWS": "x-${env:AWS_SECRET_ACCESS_KEY}-${localEnv:NPM_TOKEN}"},
        "build": {"args": {"PIP_INDEX": "${localEnv:PIP_INDEX_URL}"}},
        "runArgs": ["--init", "--env", "K=${localEnv:KUBECONFIG}"],
        "postCreateCommand": "echo ${localEnv:SECRET}",
        "postStartCommand": {"a": ["sh", "-c", "${localEnv:DEEP}"]},
        "mounts": [{"source": "${localEnv:SSH_DIR}", "target": "/s", "type": "bind"}],
    }
    assert list(host_variables(config)) == [
        ("containerEnv.TOKEN", "GITHUB_TOKEN"),
        ("remoteEnv.AWS", "AWS_SECRET_ACCESS_KEY"),
        ("remoteEnv.AWS", "NPM_TOKEN"),
        ("build.args.PIP_INDEX", "PIP_INDEX_URL"),
        ("runArgs[2]", "KUBECONFIG"),
        ("postCreateCommand", "SECRET"),
        ("postStartCommand.a[2]", "DEEP"),
        ("mounts[0].source", "SSH_DIR"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "${localEnv:HOME}",
        "${localEnv:USER}",
        "${env:USERNAME}",
        "${localEnv:LOGNAME:x}",
        "${localEnv:USERPROFILE}",
        "${localWorkspaceFolder}",
        "${containerEnv:GITHUB_TOKEN}",  # the sandbox's own environment, already filtered
        "${devcontainerId}",
        "plain",
    ],
)
def test_the_user_s_name_and_home_and_other_kinds_are_not_host_variables(value: str) -> None:
    assert list(host_variables({"containerEnv": {"X": value}})) == []


def test_a_variable_with_no_name_is_reported_with_an_empty_one() -> None:
    assert list(host_variables({"a": "${localEnv}"})) == [("a", "")]


def test_a_top_level_list_and_non_strings() -> None:
    assert list(host_variables(["${env:A}", 3, None, True, {"b": "${localEnv:B}"}])) == [
        ("[0]", "A"),
        ("[4].b", "B"),
    ]


def test_a_default_does_not_hide_the_name() -> None:
    assert list(host_variables({"x": "${localEnv:SECRET:fallback}"})) == [("x", "SECRET")]
