"""Every crash the fuzz suite found, as a plain test with its concrete input (issue 21).
The last group was found in files outside the parsers (sandbox/linux, runner/views,
hardening) and fixed there."""

from __future__ import annotations

import datetime
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.audit.chain import last_record
from orchestrator.audit.log import AuditLog, Sanitizer
from orchestrator.audit.query import parse_line, parse_time
from orchestrator.audit.verify import verify
from orchestrator.core.errors import CodexBoxError, ConfigError, UsageError
from orchestrator.policy.decision import Decision
from orchestrator.profiles.store import ProfileStore
from orchestrator.resolve import elevation
from orchestrator.resolve import grant_files as files
from orchestrator.runner.sessions.request import StartRequest
from orchestrator.settings.config import load_config

from . import test_fuzz_profiles, test_fuzz_proxy, test_fuzz_shell
from .conftest import assert_one_line_error


def one_line(exc: pytest.ExceptionInfo[CodexBoxError]) -> str:
    line = exc.value.one_line()
    assert "\n" not in line and "\r" not in line, line
    return line


def test_config_key_with_a_newline_is_named_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[sandbox]\n"\\u000A" = false\n')
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    assert "'sandbox.\\n'" in one_line(exc)


@pytest.mark.parametrize(
    "text",
    [
        "extends: " + test_fuzz_profiles._laughs(9),  # billion laughs: hung, then OOM
        "extends: " + "[" * 500 + "]" * 500,  # RecursionError in line_of
        "? '\n\n  '\n: offline\n",  # a key holding newlines: a multi-line error
        'extends: workspace\nfilesystem: {writable_paths: ["~/.ssh\\nforged: line"]}',
    ],
)
def test_codex_profile_regressions(text: str) -> None:
    started = time.monotonic()
    _, error, _ = test_fuzz_profiles._resolve(text)
    assert time.monotonic() - started < 5
    assert isinstance(error, ConfigError), error
    assert_one_line_error(error, ConfigError, exit_code=125)


def test_user_profile_with_a_5000_digit_number(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "fz.yaml").write_text("extends: 9" + "9" * 5000)  # int(): ValueError
    with pytest.raises(ConfigError) as exc:
        ProfileStore(codex_home=tmp_path).get("fz")
    one_line(exc)


def test_user_profile_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    not_utf8 = b"extends: workspace\ndescription: \xed\xa0\x80"
    (tmp_path / "profiles" / "fz.yaml").write_bytes(not_utf8)
    with pytest.raises(ConfigError) as exc:
        ProfileStore(codex_home=tmp_path).get("fz")
    assert "not UTF-8" in one_line(exc)


@pytest.mark.parametrize(
    "argv",
    [
        ("bash", "-c", "echo \udcff"),  # argv that is not UTF-8: UnicodeEncodeError
        ("sh", "-c", "cat > \udcff"),
        ("\ud800",),  # a lone surrogate in realpath: UnicodeEncodeError
        ("\x00",),  # realpath: "embedded null byte"
        ("bash", "-c", "rm -rf /etc\n0\x00"),
    ],
)
def test_shell_command_lines_get_a_decision(argv: tuple[str, ...]) -> None:
    assert isinstance(test_fuzz_shell.evaluate(argv).decision, Decision)


def test_a_brace_before_a_far_code_point_does_not_crash_the_parser() -> None:
    """tree-sitter-bash 0.25 segfaulted (not every time) on `{` + U+20000 or above."""
    code = (
        "from orchestrator.policy.shell import parse\n"
        "for text in ['{\\U00104080', 'x{\\U00104dc1', '{\\U000e0067', '{\\U0002c670'] * 100:\n"
        "    assert parse(text).problems\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    argv = ("bash", "-c", "ls {\U00104080")
    assert test_fuzz_shell.evaluate(argv).decision is Decision.UNVERIFIED


def test_starlark_panic_is_a_policy_error() -> None:
    """Run apart: with an address-space limit (this suite's) the same file makes
    starlark-rust abort the process instead (see the report: not bounded yet)."""
    code = (
        "from orchestrator.policy.loader import PolicyError, load_text\n"
        "try:\n"
        "    load_text('x = \"x\" * 50000000\\ny = \"\".join([x] * 100)', filename='p.policy')\n"
        "except PolicyError as exc:\n"
        "    print(exc.one_line())\n"
    )
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, unlimited))
    assert ran.returncode == 0 and ran.stdout.startswith("p.policy: evaluation failed"), ran


def test_grant_with_a_lone_surrogate_is_ignored(tmp_path: Path) -> None:
    workspace = tmp_path / "proj"
    workspace.mkdir()
    home = tmp_path / "home"
    with files.open_dir(home, create=True) as dir_fd:
        assert dir_fd is not None
        files.load_key(dir_fd, home, create=True)
    name = elevation.grant_name(str(workspace))
    (home / "grants" / name).write_text(
        '{"version": "\\ud800", "workspace": "", "profile": "", "reason": "", "created": "",'
        ' "expires": "", "granted_by": "", "opt_in": false, "hmac": "x"}'
    )
    found = elevation.find(home, workspace)
    assert found.grant is None and "HMAC" in found.ignored[0].why


def test_grant_made_for_a_workspace_with_a_newline_warns_on_one_line(tmp_path: Path) -> None:
    from . import test_fuzz_grants

    def made_elsewhere(key: bytes, workspace: str) -> bytes:
        payload = {"version": 1, "workspace": "/p\nforged line", "profile": "workspace-net",
                   "reason": "pip", "created": "2026-12-07T11:00:00Z",
                   "expires": "2026-12-07T13:00:00Z", "granted_by": "me", "opt_in": False}
        return files.signed(key, payload)

    test_fuzz_grants.lookup(made_elsewhere)  # asserts every warning is one line


@pytest.mark.parametrize("text", ["9" * 5000 + "h", "9" * 50000 + "x"])
def test_elevate_for_a_very_long_number(text: str) -> None:
    """5000 digits: int() raised ValueError; 50,000: a minute of regex backtracking."""
    started = time.monotonic()
    with pytest.raises(UsageError) as exc:
        elevation.parse_duration(text)
    one_line(exc)
    assert time.monotonic() - started < 1


# Days back to before 1 January of year 1, whatever today is (a fixed 739957d stopped
# being that on 2026-12-08).
BEFORE_YEAR_ONE = f"{datetime.date.today().toordinal() + 1}d"


@pytest.mark.parametrize("text", [BEFORE_YEAR_ONE, "9" * 5000 + "d", "99999999999999s"])
def test_audit_since_far_back(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_time(text)


@pytest.mark.parametrize("junk", [b"[" * 3000, b'{"seq": 1' + b"0" * 5000 + b"}"])
def test_audit_log_ending_in_junk(tmp_path: Path, junk: bytes) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, sanitizer=Sanitizer(user="", home=""))
    log.append({"operation": "command_exec", "decision": "allowed", "target": "a"})
    with path.open("ab") as out:
        out.write(junk + b"\n")
    before = path.read_bytes()
    log.close()
    last_record(path)  # RecursionError, for deep JSON
    AuditLog(path, sanitizer=Sanitizer(user="", home="")).append({"operation": "approval"})
    assert path.read_bytes().startswith(before)
    assert verify(path).torn and parse_line(junk.decode(), number=2, file=path)["operation"] == (
        "unparseable"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"CONNECT origin.test:" + b"0" * 5000 + b"443 HTTP/1.1\r\n\r\n",
        b"POST http://origin.test/ HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    ],
)
def test_proxy_answers_a_5000_digit_number(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    test_fuzz_proxy.check(data, False, monkeypatch)  # was: its catch-all, no answer


# Found by the 60-second run while orchestrator/ was frozen: the fix (netproxy/http.py,
# urlsplit's ValueError → BadRequest 400) is in the report; drop the mark once it is in.
@pytest.mark.parametrize("target", [b"http://[::1/", b"http://[x]/"])
def test_proxy_answers_a_malformed_ipv6_url(monkeypatch: pytest.MonkeyPatch, target: bytes) -> None:
    test_fuzz_proxy.check(b"GET " + target + b" HTTP/1.1\r\n\r\n", False, monkeypatch)


@pytest.mark.parametrize("data", [None, [], {"bogus": 1, "environ": {}, "cwd": "/"},
                                  {"environ": {}, "cwd": "/", "options": None}])  # fmt: skip
def test_malformed_session_start_request(data: object) -> None:
    with pytest.raises(CodexBoxError) as exc:
        StartRequest.from_json(data)
    one_line(exc)


# -- found in files outside the parsers (fixed by the maintainer) ----------------------------


def test_audit_table_with_a_null_operation() -> None:
    from orchestrator.runner.views import audit_line

    line = audit_line({"operation": None, "profile": ["x"]})
    assert "None" in line and "\n" not in line


def test_wire_frame_of_deep_json() -> None:
    import socket

    from orchestrator.sandbox.linux import wire

    ours, theirs = socket.socketpair()
    with ours, theirs:
        body = b"[" * 3000
        theirs.sendall(len(body).to_bytes(4, "big") + body)
        with pytest.raises(wire.WireError):
            wire.recv(ours)


def test_seccomp_argument_value_infinity() -> None:
    from orchestrator.sandbox.linux.seccomp import SeccompError, parse

    rule = {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": float("inf")}]}  # fmt: skip
    with pytest.raises(SeccompError):
        parse({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})


def test_seccomp_syscall_names_that_are_not_strings() -> None:
    from orchestrator.sandbox.linux.seccomp import SeccompError, parse

    rule = {"names": [5, None], "action": "SCMP_ACT_ERRNO"}
    with pytest.raises(SeccompError):
        parse({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})


def test_seccomp_file_not_utf8(tmp_path: Path) -> None:
    from orchestrator.sandbox.linux.seccomp import SeccompError, load_file

    (tmp_path / "p.json").write_bytes(b"\x80")
    with pytest.raises(SeccompError):
        load_file(str(tmp_path / "p.json"))


def test_seccomp_file_of_deep_json(tmp_path: Path) -> None:
    from orchestrator.sandbox.linux.seccomp import SeccompError, load_file

    (tmp_path / "p.json").write_text("[" * 3000)
    with pytest.raises(SeccompError):
        load_file(str(tmp_path / "p.json"))


def test_seccomp_lint_of_a_json_array(tmp_path: Path) -> None:
    from orchestrator.hardening.seccomp_lint import problems_in

    (tmp_path / "default.json").write_text("[]")
    assert "default.json: not a JSON object" in problems_in(tmp_path)


def test_an_error_whose_input_holds_a_newline_is_still_one_line() -> None:
    # The backstop in CodexBoxError.one_line, for whatever a parser lets through.
    err = CodexBoxError("key 'a\nb' is unknown", hint="fix\x1b[31m it")
    assert err.one_line() == "key 'a\\nb' is unknown — fix\\x1b[31m it"
