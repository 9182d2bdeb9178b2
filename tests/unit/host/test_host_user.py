"""host.user: the one user-name helper — the login name, or "uid N" when there is none —
read from the environment snapshot it is given, never the process's own."""

from __future__ import annotations

import os
import pwd

import pytest

from orchestrator.audit.log import Sanitizer
from orchestrator.host.user import home_of, user_name


def test_the_login_name_comes_from_the_given_environment_in_getpass_order() -> None:
    assert user_name({"USER": "bob", "LOGNAME": "alice"}) == "alice"
    assert user_name({"USERNAME": "carol"}) == "carol"


def test_without_a_login_variable_the_password_database_names_the_user() -> None:
    assert user_name({}) == pwd.getpwuid(os.getuid()).pw_name


def test_without_a_name_it_is_the_uid_so_a_grant_still_names_someone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unknown(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    assert user_name({}) == f"uid {os.getuid()}"
    assert home_of({}) == "/"


def test_home_is_the_environment_s_then_the_password_database_s() -> None:
    assert home_of({"HOME": "/home/x"}) == "/home/x"
    assert home_of({}) == pwd.getpwuid(os.getuid()).pw_dir


def test_a_uid_stand_in_is_sanitized_out_of_records_like_a_name() -> None:
    sanitize = Sanitizer(user="uid 1234", home="")
    assert sanitize("owned by uid 1234, not uid 12345") == "owned by [USER], not uid 12345"
