"""Who is running codex-box: the one user-name helper, and the home directory.

Owns: ``user_name`` — the login name that audit records are sanitized against (it
becomes ``[USER]``) and that grants and approvals are signed with (``granted_by``,
``approved_by``) — and ``home_of``, the home directory when the environment names none.
Does not own: what is done with them (``audit.redact``, ``resolve``).

Why one helper: there were two, and when no name could be found one said ``""`` and the
other ``"uid N"``, so run records and elevation records were sanitized differently. The
stricter one stays: ``"uid N"`` still names *someone* in a grant, and as the name to
sanitize it turns the uid in a record into ``[USER]`` instead of leaving it in clear.
Both read the environment snapshot they are given (getpass's order), never the
process's own, so a front door that passes another environment gets its answer.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

LOGIN_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")  # getpass.getuser's order


def user_name(environ: Mapping[str, str]) -> str:
    """The login name from ``environ``, else the password database, else ``"uid N"``."""
    for variable in LOGIN_VARIABLES:
        if environ.get(variable):
            return environ[variable]
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no such uid in the password database
        return f"uid {os.getuid()}"


def home_of(environ: Mapping[str, str]) -> str:
    """``$HOME`` from ``environ``, else the password database's home, else ``/``."""
    if environ.get("HOME"):
        return environ["HOME"]
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/"
