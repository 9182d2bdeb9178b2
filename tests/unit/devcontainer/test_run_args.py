"""``run_args.read_run_args``: a devcontainer.json's ``runArgs`` read as ``docker run``
reads them — what codex-box applies (env, labels, hostname, user), what it decides
itself (changed), and what it refuses (everything that reaches the host, and every
argument it does not know)."""

from __future__ import annotations

import pytest

from orchestrator.devcontainer.findings import CHANGED, REFUSED
from orchestrator.devcontainer.run_args import Applied, read_run_args


def read(*args: str) -> tuple[Applied, list[tuple[str, str, str]]]:
    applied, found = read_run_args(list(args))
    return applied, [(f.key, f.value, f.action) for f in found]


# --- applied -------------------------------------------------------------------------------


def test_env_in_every_spelling_is_applied_in_order() -> None:
    applied, found = read("--env", "A=1", "-e", "B=2", "--env=C=3", "-eD=4", "-e", "E=x=y")
    assert applied.env == ["A=1", "B=2", "C=3", "D=4", "E=x=y"]
    assert found == []


def test_labels_hostname_and_user_are_applied() -> None:
    applied, found = read("--label", "a=b", "-l", "c=d", "--label=e=f", "-lg=h")
    assert applied.labels == ["a=b", "c=d", "e=f", "g=h"] and found == []
    assert read("--hostname", "box")[0].hostname == "box"
    assert read("-h", "box")[0].hostname == "box"
    assert read("--hostname=box")[0].hostname == "box"
    assert read("-hbox")[0].hostname == "box"
    assert read("--user", "vscode")[0].user == "vscode"
    assert read("-u", "1000:1000")[0].user == "1000:1000"
    assert read("--user=node")[0].user == "node"
    assert read("-uroot")[0].user == "root"


def test_the_last_hostname_and_user_win() -> None:
    applied, _ = read("-h", "one", "--hostname=two", "-u", "a", "--user", "b")
    assert (applied.hostname, applied.user) == ("two", "b")


def test_a_value_after_a_value_taking_flag_is_never_read_as_a_flag() -> None:
    # `--env --privileged`: a variable named --privileged (refused: no value, so the host's
    # would pass), not the flag; `--label --cap-add=ALL`: a label.
    applied, found = read("--env", "--privileged", "--label", "--cap-add=ALL")
    assert applied.env == [] and applied.labels == ["--cap-add=ALL"]
    assert found == [("runArgs[0]", "--env --privileged", "refused")]


def test_nothing_at_all() -> None:
    applied, found = read()
    assert applied == Applied() and found == []


# --- changed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--name", "dev"], "--name dev"),
        (["--name=dev"], "--name=dev"),
        (["-w", "/src"], "-w /src"),
        (["--workdir=/src"], "--workdir=/src"),
        (["--shm-size", "1g"], "--shm-size 1g"),
        (["--shm-size=2g"], "--shm-size=2g"),
        (["--add-host", "db:10.0.0.1"], "--add-host db:10.0.0.1"),
        (["--stop-signal", "SIGINT"], "--stop-signal SIGINT"),
        (["--stop-timeout=3"], "--stop-timeout=3"),
        (["--platform", "linux/amd64"], "--platform linux/amd64"),
        (["--init"], "--init"),
        (["--rm"], "--rm"),
        (["-t"], "-t"),
        (["--tty"], "--tty"),
        (["-i"], "-i"),
        (["--interactive"], "--interactive"),
        (["-it"], "-it"),
        (["--network", "bridge"], "--network bridge"),
        (["--network=none"], "--network=none"),
        (["--net", "mynet"], "--net mynet"),
        (["--ipc=private"], "--ipc=private"),
        (["--userns", "keep-id"], "--userns keep-id"),
        (["--uts=private"], "--uts=private"),
        (["--cgroupns", "private"], "--cgroupns private"),
    ],
)
def test_harmless_arguments_codex_box_decides_are_changed(args: list[str], shown: str) -> None:
    applied, found = read(*args)
    assert found == [("runArgs[0]", shown, CHANGED)]
    assert applied == Applied()


def test_a_network_is_the_profile_s_and_other_namespaces_codex_box_s() -> None:
    _, network = read_run_args(["--network", "bridge"])
    _, ipc = read_run_args(["--ipc", "private"])
    assert network[0].why == "the profile decides the network"
    assert ipc[0].why == "codex-box decides them"


# --- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--privileged"], "--privileged"),
        (["--privileged=true"], "--privileged=true"),
        (["--privileged=false"], "--privileged=false"),  # not ours to read: refused all the same
        (["--cap-add", "SYS_ADMIN"], "--cap-add SYS_ADMIN"),
        (["--cap-add=ALL"], "--cap-add=ALL"),
        (["--device", "/dev/kvm"], "--device /dev/kvm"),
        (["--gpus", "all"], "--gpus all"),
        (["--device-cgroup-rule=c 1:3 mr"], "--device-cgroup-rule=c 1:3 mr"),
        (["--security-opt", "seccomp=unconfined"], "--security-opt seccomp=unconfined"),
        (["-v", "/:/host"], "-v /:/host"),
        (["--volume=/etc:/e"], "--volume=/etc:/e"),
        (["--mount", "type=bind,src=/,dst=/h"], "--mount type=bind,src=/,dst=/h"),
        (["--volumes-from", "other"], "--volumes-from other"),
        (["--volumes-from=other"], "--volumes-from=other"),
        (["--env-file", ".env"], "--env-file .env"),
        (["--env-file=/home/alice/.aws/env"], "--env-file=/home/alice/.aws/env"),
        (["--cgroup-parent", "/x"], "--cgroup-parent /x"),
        (["--runtime", "runc"], "--runtime runc"),
        (["--runtime=nvidia"], "--runtime=nvidia"),
        (["--network=host"], "--network=host"),
        (["--net", "host"], "--net host"),
        (["--network=container:x"], "--network=container:x"),
        (["--net=ns:/proc/1/ns/net"], "--net=ns:/proc/1/ns/net"),
        (["--network", "/proc/1/ns/net"], "--network /proc/1/ns/net"),
        (["--pid=host"], "--pid=host"),
        (["--pid", "container:db"], "--pid container:db"),
        (["--ipc=host"], "--ipc=host"),
        (["--ipc=container:x"], "--ipc=container:x"),
        (["--userns=host"], "--userns=host"),
        (["--uts=host"], "--uts=host"),
        (["--cgroupns=host"], "--cgroupns=host"),
        (["--network"], "--network "),  # no value at all: not "the profile's"
        (["--network="], "--network="),
        (["--frobnicate"], "--frobnicate"),
        (["--sysctl=net.ipv4.ip_forward=1"], "--sysctl=net.ipv4.ip_forward=1"),
        (["--ulimit", "nofile=1"], "--ulimit"),
        (["-ti"], "-ti"),
        (["--init=false"], "--init=false"),  # a flag given a value is not the flag we know
        (["-P"], "-P"),
        (["--publish", "80:80"], "--publish"),
    ],
)
def test_what_reaches_the_host_and_every_unknown_argument_is_refused(
    args: list[str], shown: str
) -> None:
    _, found = read(*args)
    assert found[0] == ("runArgs[0]", shown, REFUSED)


def test_keys_count_arguments_not_options_and_keep_the_file_s_order() -> None:
    _, found = read("--init", "--env", "A=1", "--cap-add", "NET_ADMIN", "--privileged", "--rm")
    assert found == [
        ("runArgs[0]", "--init", CHANGED),
        ("runArgs[3]", "--cap-add NET_ADMIN", REFUSED),
        ("runArgs[5]", "--privileged", REFUSED),
        ("runArgs[6]", "--rm", CHANGED),
    ]


def test_the_key_prefix_is_the_caller_s() -> None:
    _, found = read_run_args(["--privileged"], key="mergedRunArgs")
    assert found[0].key == "mergedRunArgs[0]"
    assert found[0].line() == (
        "mergedRunArgs[0] --privileged: refused — a privileged container is the host's root"
    )


def test_a_refusal_says_why() -> None:
    reasons = {
        tuple(args): read_run_args(args)[1][0].why
        for args in (["--env-file", "x"], ["--volumes-from", "x"], ["--runtime", "x"],
                     ["--cgroup-parent", "x"], ["--net=container:x"], ["--bogus"])
    }  # fmt: skip
    assert "reads a host file" in reasons[("--env-file", "x")]
    assert "another container's mounts" in reasons[("--volumes-from", "x")]
    assert "OCI runtime" in reasons[("--runtime", "x")]
    assert "limits" in reasons[("--cgroup-parent", "x")]
    assert "namespace of the host or another container" in reasons[("--net=container:x",)]
    assert "does not know to be harmless" in reasons[("--bogus",)]


def test_a_long_value_is_shortened_to_one_line() -> None:
    _, found = read_run_args(["--cap-add", "X" * 300 + "\nY"])
    assert len(found[0].value) == 120 and found[0].value.endswith("...")
    assert "\n" not in found[0].line()


def test_env_without_a_value_is_not_applied_as_a_host_passthrough() -> None:
    applied, found = read("--env", "AWS_SECRET_ACCESS_KEY", "-eGITHUB_TOKEN")
    assert all("=" in item for item in applied.env)
    assert [action for _, _, action in found] == [REFUSED, REFUSED]


def test_a_shorthand_with_an_equals_sign_reads_as_docker_reads_it() -> None:
    applied, _ = read("-e=FOO=1", "-h=box", "-u=node")
    assert (applied.env, applied.hostname, applied.user) == (["FOO=1"], "box", "node")
