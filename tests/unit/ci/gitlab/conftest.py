"""Helpers for the GitLab custom-executor driver's unit tests: gitlab-runner's own
ShellEscape (ported byte for byte), the bash script its bash shell writes, and job
responses as the runner writes them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

# helpers/shell_escape.go (gitlab-runner): each byte of the UTF-8 text is a literal, a
# character that forces quoting, one of the C escapes, or \xHH — every non-ASCII byte
# included.
_LIT = frozenset(b",-./0123456789@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
_QUO = frozenset(b' !"#$%&()*+:;<=>?[]^`{|}~')
_ESC = {
    0x07: "\\a",
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0B: "\\v",
    0x0C: "\\f",
    0x0D: "\\r",
    0x27: "\\'",
    0x5C: "\\\\",
}


def shell_escape(text: str) -> str:
    """gitlab-runner's ``helpers.ShellEscape``."""
    if not text:
        return "''"
    out, escape = [], False
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte in _LIT:
            out.append(chr(byte))
        elif byte in _QUO:
            out.append(chr(byte))
            escape = True
        elif byte in _ESC:
            out.append(_ESC[byte])
            escape = True
        else:
            out.append(f"\\x{byte:02x}")
            escape = True
    body = "".join(out)
    return f"$'{body}'" if escape else body


def runner_script(
    commands: str, *, variables: Mapping[str, str] | None = None, cd: str | None = None
) -> str:
    """A stage script the way gitlab-runner's bash shell writes it: every variable
    exported, each command echoed before it runs, all of it behind ``: | eval $'…'``."""
    body = "".join(f"export {k}={shell_escape(v)}\n" for k, v in (variables or {}).items())
    if cd is not None:
        body += f"cd {shell_escape(cd)}\n"
    for line in commands.splitlines():
        body += f"echo {shell_escape(chr(27) + '[32;1m$ ' + line + chr(27) + '[0;m')}\n{line}\n"
    return (
        "#!/usr/bin/env bash\n\nset -eo pipefail\nset +o noclobber\n"
        f": | eval {shell_escape(body)}\nexit 0\n"
    )


@pytest.fixture
def response_file(tmp_path: Path) -> Callable[..., Path]:
    """``response_file(id=7, token=..., repo_url=..., variables=[...])`` → the path of a
    job response as gitlab-runner writes it ($JOB_RESPONSE_FILE); project 77 unless
    ``job_info`` says otherwise; ``raw`` is written as it is."""
    counter = iter(range(1000))

    def write(raw: str | bytes | None = None, **fields: Any) -> Path:
        path = tmp_path / f"response-{next(counter)}.json"
        if raw is None:
            data: dict[str, Any] = {
                "id": 1001,
                "token": "glcbt-64_TestJobToken0123456789",
                "job_info": {"name": "test", "stage": "test", "project_id": 77},
            }
            repo_url = fields.pop("repo_url", "https://gitlab.example.test/group/proj.git")
            data["git_info"] = {"repo_url": repo_url}
            data.update(fields)
            raw = json.dumps(data)
        path.write_bytes(raw.encode() if isinstance(raw, str) else raw)
        return path

    return write
