"""Elevation grant files (``$CODEX_HOME/grants/*.json``, read by ``elevation.find`` on
every profile resolution) and ``elevate --for`` (``elevation.parse_duration``).

A grant file that is not one ``codex-box elevate`` made — bytes, JSON of any shape, a
valid grant with one field changed, or even fields of any type signed with the real key
(as an older or buggy writer might have) — is ignored with a one-line warning, never a
crash, and never counts unless it names this workspace, is unexpired and lasts at most
24 h. A bad ``--for`` is a one-line usage error (exit 2)."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.errors import EXIT_USAGE, UsageError
from orchestrator.resolve import elevation
from orchestrator.resolve import grant_files as files

from .conftest import assert_one_line_error, fuzz, json_values, odd_text, outcome, raw_bytes

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FIELDS = ("version", "workspace", "profile", "reason", "created", "expires", "granted_by",
          "opt_in")  # fmt: skip
times = st.sampled_from(
    ["2026-12-07T11:00:00Z", "2026-12-07T13:00:00Z", "2026-12-09T13:00:00Z", "2026-12-07T11:00Z",
     "2026-12-07T11:00:00+05:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "Z", ""]
)  # fmt: skip


def field_values(workspace: str) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "version": st.sampled_from([1, 2, "1", True, None]),
        "workspace": st.sampled_from([workspace, workspace + "/", "/", ""]) | odd_text,
        "profile": st.sampled_from(["workspace-net", "trusted", "nope", ""]) | json_values,
        "reason": odd_text | json_values,
        "created": times | json_values,
        "expires": times | json_values,
        "granted_by": odd_text | json_values,
        "opt_in": st.booleans() | json_values,
    }


@st.composite
def signed_payloads(draw: st.DrawFn, workspace: str) -> dict[str, Any]:
    """Every field, each drawn from plausible and arbitrary values; sometimes a field
    missing or one more."""
    values = field_values(workspace)
    valid = {"version": 1, "workspace": workspace, "profile": "workspace-net", "reason": "pip",
             "created": "2026-12-07T11:00:00Z", "expires": "2026-12-07T13:00:00Z",
             "granted_by": "me", "opt_in": False}  # fmt: skip
    # Each field usually valid: a check is only reached when every one before it passed.
    payload = {k: valid[k] if draw(st.integers(0, 2)) else draw(values[k])
               for k in FIELDS if draw(st.integers(0, 19))}  # fmt: skip
    if draw(st.booleans()):
        payload[draw(odd_text)] = draw(json_values)
    return payload


def lookup(make_file: Any) -> None:
    with tempfile.TemporaryDirectory() as top:
        home, workspace = Path(top, "home"), Path(top, "proj", "sub")
        workspace.mkdir(parents=True)
        with files.open_dir(home, create=True) as dir_fd:
            assert dir_fd is not None
            key = files.load_key(dir_fd, home, create=True)
            name = elevation.grant_name(str(workspace.parent))
            (home / "grants" / name).write_bytes(make_file(key, str(workspace.parent)))
        found, error = outcome(lambda: elevation.find(home, workspace, now=NOW), make_file)
    assert error is None, error  # a bad grant is ignored, never an error
    for ignored in found.ignored:
        line = ignored.warning()
        assert "\n" not in line and "\r" not in line, line
    grant = found.grant
    if grant is not None:
        assert grant.workspace == str(workspace.parent)
        assert grant.created <= NOW < grant.expires <= grant.created + timedelta(hours=24)
        assert isinstance(grant.profile, str) and isinstance(grant.opt_in, bool)


@fuzz("elevation grant file (unsigned)", examples=200)
@given(raw_bytes | json_values.map(lambda v: json.dumps(v).encode()))
def test_grant_file_not_made_by_elevate(raw: bytes) -> None:
    lookup(lambda key, workspace: raw)


@fuzz("elevation grant file (signed, fields of any type)", examples=300)
@given(st.data())
def test_signed_grant_with_fields_of_any_type(data: st.DataObject) -> None:
    def make(key: bytes, workspace: str) -> bytes:
        return files.signed(key, data.draw(signed_payloads(workspace)))

    lookup(make)


@fuzz("elevation grant file (one field edited)", examples=200)
@given(st.sampled_from(FIELDS), json_values)
def test_a_valid_grant_with_one_field_edited(field: str, value: Any) -> None:
    def make(key: bytes, workspace: str) -> bytes:
        payload = {"version": 1, "workspace": workspace, "profile": "workspace-net",
                   "reason": "pip", "created": "2026-12-07T11:00:00Z",
                   "expires": "2026-12-07T13:00:00Z", "granted_by": "me",
                   "opt_in": False}  # fmt: skip
        body = json.loads(files.signed(key, payload))
        body[field] = value
        return json.dumps(body).encode()

    lookup(make)


durations = st.lists(
    st.tuples(st.integers(0, 10**6).map(str) | st.just("9" * 5000), st.sampled_from("dhmsx")),
    max_size=4,
).map(lambda parts: "".join(f"{n}{u}" for n, u in parts))


@fuzz("elevate --for", examples=300)
@given(durations | odd_text | st.sampled_from(["1h30m", "24h", "86401s", "٣h", " 5m ", "-5m"]))
def test_elevate_for(text: str) -> None:
    duration, error = outcome(lambda: elevation.parse_duration(text), text)
    if error is not None:
        assert_one_line_error(error, UsageError, exit_code=EXIT_USAGE)
        return
    assert timedelta(0) < duration <= timedelta(hours=24), (text, duration)
