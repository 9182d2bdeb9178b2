"""host.user: the one user-name helper — the login name, or "uid N" when there is none."""

from __future__ import annotations

import getpass
import os

import pytest

from orchestrator.audit.log import Sanitizer
from orchestrator.host.user import user_name


def test_the_login_name_comes_from_getpass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    assert user_name() == "alice"


@pytest.mark.parametrize("error", [KeyError("uid"), OSError("no name")])
def test_without_a_name_it_is_the_uid_so_a_grant_still_names_someone(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def fail() -> str:
        raise error

    monkeypatch.setattr(getpass, "getuser", fail)
    assert user_name() == f"uid {os.getuid()}"


def test_a_uid_stand_in_is_sanitized_out_of_records_like_a_name() -> None:
    sanitize = Sanitizer(user="uid 1234", home="")
    assert sanitize("owned by uid 1234, not uid 12345") == "owned by [USER], not uid 12345"
