"""Who is running codex-box: the one user-name helper.

Owns: ``user_name`` — the login name that audit records are sanitized against (it
becomes ``[USER]``) and that grants and approvals are signed with (``granted_by``,
``approved_by``).
Does not own: the home directory (the front door reads ``$HOME``) or what is done with
the name (``audit.redact``, ``resolve``).

Why one helper: there were two, and when no name could be found one said ``""`` and the
other ``"uid N"``, so run records and elevation records were sanitized differently. The
stricter one stays: ``"uid N"`` still names *someone* in a grant, and as the name to
sanitize it turns the uid in a record into ``[USER]`` instead of leaving it in clear.
"""

from __future__ import annotations

import getpass
import os


def user_name() -> str:
    """The login name (``getpass``: ``$LOGNAME``, ``$USER``, ``$LNAME``, ``$USERNAME``,
    then the password database), or ``"uid N"`` when there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no such uid in the password database (KeyError < 3.13)
        return f"uid {os.getuid()}"
