"""What the driver knows about one job (orchestrator.ci.gitlab.job): the job response
only (CUSTOM_ENV_* are the job's to set: without a response the driver refuses); the
server's host[:port]; the project id and timeout; masked values; the job's state
between the driver's calls."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.ci.gitlab import job
from orchestrator.ci.gitlab.job import Job, JobState, read_job
from orchestrator.ci.gitlab.protocol import ProtocolError

TOKEN = "glcbt-64_TestJobToken0123456789"  # noqa: S105 -- a test value


def _read(path: Path) -> Job:
    return read_job({"JOB_RESPONSE_FILE": str(path)})


# --- read_job: the response file, nothing else ---------------------------------------


def test_the_job_comes_from_the_response_file(response_file: Callable[..., Path]) -> None:
    path = response_file(
        id=4242,
        token=TOKEN,
        repo_url=f"https://gitlab-ci-token:{TOKEN}@gitlab.example.test/group/proj.git",
        job_info={"name": "test", "stage": "test", "project_id": 31},
        runner_info={"timeout": 5400},
        variables=[
            {"key": "PUBLIC", "value": "visible-value", "public": True, "masked": False},
            {"key": "DEPLOY_KEY", "value": "masked-Value-7f3a9c", "masked": True},
            {"key": "OTHER", "value": "second-masked-value", "masked": True},
        ],
    )
    assert _read(path) == Job(
        id="4242",
        token=TOKEN,
        server="gitlab.example.test",
        project_id="31",
        masked=("masked-Value-7f3a9c", "second-masked-value"),
        timeout_s=5400,
    )


def test_a_job_overriding_custom_env_cannot_change_what_the_response_file_says(
    response_file: Callable[..., Path],
) -> None:
    environ = {
        "JOB_RESPONSE_FILE": str(response_file(id=1001, runner_info={"timeout": 60})),
        # What a job's own `variables:` would do (they override every CUSTOM_ENV_*):
        "CUSTOM_ENV_CI_JOB_ID": "9999",
        "CUSTOM_ENV_CI_PROJECT_ID": "9999",
        "CUSTOM_ENV_CI_JOB_TOKEN": "someone-elses-token",
        "CUSTOM_ENV_CI_SERVER_URL": "https://attacker.example",
        "CUSTOM_ENV_CI_JOB_TIMEOUT": "2000000",
    }
    found = read_job(environ)
    assert (found.id, found.token, found.server, found.project_id, found.timeout_s) == (
        "1001",
        TOKEN,
        "gitlab.example.test",
        "77",
        60,
    )


@pytest.mark.parametrize("response", [None, ""])
def test_without_a_response_file_the_job_is_refused(response: str | None) -> None:
    # CUSTOM_ENV_* stand-ins are the job's to set: a job naming another's id would reach
    # its session, one naming another server would get network to it.
    environ = {
        "CUSTOM_ENV_CI_JOB_ID": "17",
        "CUSTOM_ENV_CI_PROJECT_ID": "3",
        "CUSTOM_ENV_CI_JOB_TOKEN": "tok-from-env",
        "CUSTOM_ENV_CI_SERVER_URL": "https://GitLab.Example.test:8443",
    }
    if response is not None:
        environ["JOB_RESPONSE_FILE"] = response
    with pytest.raises(ProtocolError, match=r"\$JOB_RESPONSE_FILE is not set") as caught:
        read_job(environ)
    assert "12.1" in (caught.value.hint or "")


def test_a_response_file_that_cannot_be_read_is_refused_not_skipped(tmp_path: Path) -> None:
    environ = {"JOB_RESPONSE_FILE": str(tmp_path / "gone.json"), "CUSTOM_ENV_CI_JOB_ID": "5"}
    with pytest.raises(ProtocolError, match="cannot read the job response"):
        read_job(environ)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("{", "cannot read the job response"),
        ("", "cannot read the job response"),
        (b"\xff\xfe{}", "cannot read the job response"),
        ("[1, 2]", "is not a JSON object"),
        ('"1001"', "is not a JSON object"),
        ("null", "is not a JSON object"),
    ],
)
def test_a_malformed_response_is_refused(
    response_file: Callable[..., Path], raw: str | bytes, match: str
) -> None:
    with pytest.raises(ProtocolError, match=match):
        _read(response_file(raw))


def test_an_oversized_response_is_refused_unparsed(
    response_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = response_file(id=1)
    monkeypatch.setattr(job, "MAX_RESPONSE_BYTES", path.stat().st_size - 1)
    with pytest.raises(ProtocolError, match="is not a JSON object"):
        _read(path)
    monkeypatch.setattr(job, "MAX_RESPONSE_BYTES", path.stat().st_size)
    assert _read(path).id == "1"


_NOT_A_NUMBER = ["", "abc", "-1", -1, "1.5", 1.5, "1e3", "12 3", "../1", "1" * 21, 10**20,
                 "\u0663", "\u00b2", "5\n", "\n5", " 5", "1\x00", True, False, None, [1],
                 {"id": 1}]  # fmt: skip


@pytest.mark.parametrize("job_id", _NOT_A_NUMBER)
def test_a_job_id_that_is_not_a_number_is_refused(
    response_file: Callable[..., Path], job_id: object
) -> None:
    # "5\n" would name the state file "5\n.json" and the sessions "gl-5\n".
    with pytest.raises(ProtocolError, match=r"job id .* is not a number"):
        _read(response_file(id=job_id))


@pytest.mark.parametrize("project_id", _NOT_A_NUMBER)
def test_a_project_id_that_is_not_a_number_is_refused(
    response_file: Callable[..., Path], project_id: object
) -> None:
    with pytest.raises(ProtocolError, match=r"project id .* is not a number"):
        _read(response_file(job_info={"project_id": project_id}))


@pytest.mark.parametrize("job_info", [None, [], "77", 77, {}, {"id": 77}])
def test_a_response_without_a_project_id_is_refused(
    response_file: Callable[..., Path], job_info: object
) -> None:
    with pytest.raises(ProtocolError, match="project id '' is not a number"):
        _read(response_file(job_info=job_info))


def test_a_response_without_a_job_id_is_refused(response_file: Callable[..., Path]) -> None:
    raw = json.dumps({"token": TOKEN, "job_info": {"project_id": 1}})
    with pytest.raises(ProtocolError, match="job id '' is not a number"):
        _read(response_file(raw))


@pytest.mark.parametrize("value", [1, "1", "0001", "1" * 20, 2**63 - 1, 10**20 - 1])
def test_numeric_ids_are_accepted_as_text(
    response_file: Callable[..., Path], value: object
) -> None:
    found = _read(response_file(id=value, job_info={"project_id": value}))
    assert (found.id, found.project_id) == (str(value), str(value))


# --- the timeout -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [
        (1, 1),
        (3600, 3600),
        (30 * 86400 - 1, 30 * 86400 - 1),
        (30 * 86400, None),  # 30 days or more: not a timeout GitLab sets
        (10**12, None),
        (0, None),
        (-5, None),
        ("3600", None),
        ("1h", None),
        (3600.0, None),
        (True, None),
        (None, None),
        ([3600], None),
    ],
)
def test_the_timeout_is_the_response_s_whole_seconds_up_to_thirty_days(
    response_file: Callable[..., Path], timeout: object, seconds: int | None
) -> None:
    assert _read(response_file(runner_info={"timeout": timeout})).timeout_s == seconds


@pytest.mark.parametrize("runner_info", [None, {}, [], "3600", 3600])
def test_a_response_without_a_timeout_has_none(
    response_file: Callable[..., Path], runner_info: object
) -> None:
    assert _read(response_file(runner_info=runner_info)).timeout_s is None


# --- the server ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("https://gitlab.example.test/g/p.git", "gitlab.example.test"),
        ("https://GitLab.EXAMPLE.test/g/p.git", "gitlab.example.test"),
        (
            "https://gitlab-ci-token:SECRET@gitlab.example.test:8443/g/p.git",
            "gitlab.example.test:8443",
        ),
        ("https://gitlab.example.test:443/g/p.git", "gitlab.example.test:443"),
        ("http://10.1.2.3:8080/g/p.git", "10.1.2.3:8080"),
        ("https://[2001:DB8::1]/g/p.git", "[2001:db8::1]"),
        ("https://u:p@[2001:db8::1]:8443/g/p.git", "[2001:db8::1]:8443"),
        ("ssh://git@gitlab.example.test:2222/g/p.git", "gitlab.example.test:2222"),
        ("", ""),
    ],
)
def test_the_server_is_host_and_port_of_the_repository_url(
    response_file: Callable[..., Path], url: str, server: str
) -> None:
    assert read_job({"JOB_RESPONSE_FILE": str(response_file(repo_url=url))}).server == server


@pytest.mark.parametrize(
    "git_info",
    [None, "https://x.example/", [], {"no_url": 1}, {"repo_url": None}, {"repo_url": False}],
)
def test_a_response_without_a_repository_url_has_no_server(
    response_file: Callable[..., Path], git_info: object
) -> None:
    path = response_file(
        json.dumps({"id": 3, "token": TOKEN, "git_info": git_info, "job_info": {"project_id": 1}})
    )
    assert _read(path).server == ""


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://gitlab_example.test/", "is not a host name"),
        ("https://exa%20mple.test/", "is not a host name"),
        ("file:///srv/repo.git", "is not a host name"),
        ("https://[fe80::1%25eth0]/", "is not a host name"),
        ("https://gitlab.example.test:99999/", "port"),
        ("https://gitlab.example.test:http/", "port"),
    ],
)
def test_a_server_that_is_not_a_host_is_refused(
    response_file: Callable[..., Path], url: str, match: str
) -> None:
    with pytest.raises(ProtocolError, match=match):
        read_job({"JOB_RESPONSE_FILE": str(response_file(repo_url=url))})


def test_the_job_token_in_a_refused_url_is_masked(response_file: Callable[..., Path]) -> None:
    for url in (
        f"https://gitlab-ci-token:{TOKEN}@bad_host.example/g/p.git",
        f"https://gitlab-ci-token:{TOKEN}@gitlab.example.test:99999/g/p.git",
    ):
        with pytest.raises(ProtocolError) as caught:
            read_job({"JOB_RESPONSE_FILE": str(response_file(repo_url=url))})
        assert TOKEN not in caught.value.message
        assert "gitlab-ci-token:[MASKED]@" in caught.value.message


def test_a_refused_url_with_an_empty_password_is_shown_as_it_is(
    response_file: Callable[..., Path],
) -> None:
    # Replacing the empty password (url.replace("", …)) would put "[MASKED]" between
    # every character of the message's URL.
    with pytest.raises(ProtocolError) as caught:
        read_job({"JOB_RESPONSE_FILE": str(response_file(repo_url="https://u:@bad_host/"))})
    assert "'https://u:@bad_host/'" in caught.value.message


# --- masked values and secrets -------------------------------------------------------


def test_only_masked_non_empty_values_are_collected(response_file: Callable[..., Path]) -> None:
    variables = [
        {"key": "A", "value": "masked-one-value", "masked": True},
        {"key": "B", "value": "public-value", "masked": False},
        {"key": "C", "value": "unmasked-by-default"},
        {"key": "D", "value": "", "masked": True},
        {"key": "E", "masked": True},
        {"key": "F", "value": 12345678, "masked": True},
        "not-a-variable",
        {"key": "G", "value": "masked-two-value", "masked": "yes"},
    ]
    found = read_job({"JOB_RESPONSE_FILE": str(response_file(variables=variables))})
    assert found.masked == ("masked-one-value", "12345678", "masked-two-value")


@pytest.mark.parametrize("token", [None, True, False, 0, 1234567890, [TOKEN], {"t": TOKEN}])
def test_a_token_that_is_not_a_string_is_empty_never_its_repr(
    response_file: Callable[..., Path], token: object
) -> None:
    # A null token must be "", never "None": `scripts.without` would strip the word
    # from every job script (`x = None` → `x = `) and the audit log mask it everywhere.
    # A number is text as JSON writes it (ids are numbers); anything else is "".
    path = response_file(token=token)
    found = _read(path)
    assert found.token == (str(token) if type(token) is int else "")
    assert "None" not in found.secrets() and "True" not in found.secrets()


def test_a_missing_token_is_empty(response_file: Callable[..., Path]) -> None:
    found = _read(response_file(json.dumps({"id": 1, "job_info": {"project_id": 2}})))
    assert found.token == ""
    assert found.secrets() == ()


@pytest.mark.parametrize("value", [None, True, False, [1], {"v": 1}])
def test_a_masked_value_that_is_not_text_is_left_out(
    response_file: Callable[..., Path], value: object
) -> None:
    variables = [{"key": "A", "value": value, "masked": True}]
    assert _read(response_file(variables=variables)).masked == ()


@pytest.mark.parametrize("variables", [None, {}, "x", 5])
def test_variables_that_are_not_a_list_mask_nothing(
    response_file: Callable[..., Path], variables: object
) -> None:
    assert _read(response_file(variables=variables)).masked == ()


def test_secrets_are_the_token_then_each_masked_value_once() -> None:
    the_job = Job(
        id="1", token=TOKEN, server="", masked=("masked-a", TOKEN, "masked-b", "masked-a")
    )
    assert the_job.secrets() == (TOKEN, "masked-a", "masked-b")


def test_secrets_shorter_than_four_characters_are_left_out() -> None:
    # GitLab refuses to mask a variable under 8 characters, so only a missing token
    # ("") or a value from an unusual source is this short; masking "ab" everywhere
    # would turn the whole audit record into [MASKED] noise.
    the_job = Job(id="1", token="", server="", masked=("a", "ab", "abc", "abcd", "abcde"))
    assert the_job.secrets() == ("abcd", "abcde")


# --- the job's state ----------------------------------------------------------------


def _state(**overrides: object) -> JobState:
    fields: dict[str, object] = {
        "job_id": "1001",
        "profile": "workspace",
        "runner_profile": "gitlab-gitlab-example-test",
        "backend": "native",
        "image": None,
        "root": "/b/0/p",
        "builds": "/b/0/p/builds",
        "cache": "/b/0/p/cache",
    }
    fields.update(overrides)
    return JobState(**fields)  # type: ignore[arg-type]


def test_state_round_trips(tmp_path: Path) -> None:
    state = _state(sessions={"job": "s-1", "runner": "s-2"}, approve=False, policy_mode="enforce")
    job.save(tmp_path, state)
    assert job.load(tmp_path, "1001") == state
    assert dataclasses.asdict(job.load(tmp_path, "1001") or _state()) == dataclasses.asdict(state)


def test_state_is_private_and_written_in_one_step(tmp_path: Path) -> None:
    job.save(tmp_path, _state())
    directory = job.state_dir(tmp_path)
    assert directory == tmp_path / "ci" / "gitlab"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(job.state_path(tmp_path, "1001").stat().st_mode) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == ["1001.json"]


def test_saving_again_replaces_the_state(tmp_path: Path) -> None:
    job.save(tmp_path, _state())
    job.save(tmp_path, _state(profile="offline"))
    loaded = job.load(tmp_path, "1001")
    assert loaded is not None and loaded.profile == "offline"


def test_a_job_that_was_never_prepared_has_no_state(tmp_path: Path) -> None:
    assert job.load(tmp_path, "1") is None
    assert job.load_quietly(tmp_path, "1") is None


@pytest.mark.parametrize("text", ["{", "[]", '{"job_id": "1"}', '{"unknown": 1}', "\xff"])
def test_an_unreadable_state_is_refused_by_load_and_ignored_by_load_quietly(
    tmp_path: Path, text: str
) -> None:
    path = job.state_path(tmp_path, "1")
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="latin-1")
    with pytest.raises(ProtocolError, match="is unreadable"):
        job.load(tmp_path, "1")
    assert job.load_quietly(tmp_path, "1") is None


def test_forget_removes_the_state_and_is_idempotent(tmp_path: Path) -> None:
    job.save(tmp_path, _state())
    job.save(tmp_path, _state(job_id="1002"))
    job.forget(tmp_path, "1001")
    job.forget(tmp_path, "1001")
    job.forget(tmp_path, "never-was")
    assert job.load(tmp_path, "1001") is None
    assert job.load(tmp_path, "1002") is not None
    assert os.listdir(job.state_dir(tmp_path)) == ["1002.json"]
